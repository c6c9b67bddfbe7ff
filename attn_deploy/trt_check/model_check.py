"""Static TensorRT compatibility check of an ONNX model: no TensorRT needed.

Every node is judged against TensorRT's ONNX parser support as onnx-tensorrt publishes it
(``support_table``), for each target TensorRT version (default: the versions of the table, 10.3
for JetPack 6 and the newest; any 10.x or 11.x can be named, and is judged with the table of the
same major at or below it): operator, opset range, the listed input types, and the restrictions
the doc states that can be decided from the file (constant inputs, attribute values, ranks).
Each attn_deploy node is bound the way that version's parser binds it (``plugin_binding``: the
plugin, or the node's model-local function, and why); a node that goes to its function is judged
by the function's body, one that goes to the plugin by the plugin's rules.

    result = check_model("cbam.onnx")
    if not result:
        print(result.summary())
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import onnx

from attn_deploy.errors import AttnDeployError
from attn_deploy.op_contract import DOMAIN, PLUGIN_NAMESPACE, PLUGIN_VERSION
from attn_deploy.trt_check.graph_facts import (GraphFacts, graph_constants, graph_facts,
                                               infer_types)
from attn_deploy.trt_check.node_rules import check_plugin_node, doc_type, evaluate_check
from attn_deploy.trt_check.plugin_binding import parse_version, parser_binding
from attn_deploy.trt_check.support_table import load_table, table_versions

# Ops whose listed types describe their output (they have no data input).
_TYPED_BY_OUTPUT = {"Constant", "ConstantOfShape", "RandomNormal", "RandomUniform"}


@dataclass
class NodeVerdict:
    node: str
    op: str
    domain: str
    opset: int
    supported: bool
    via: str  # native, plugin, function (imported as its local function), or "" if unsupported
    where: str = "graph"
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class VersionVerdict:
    tensorrt: str
    opset: int | None
    model_reasons: list[str]
    nodes: list[NodeVerdict]
    table: str = ""  # the operator table judged with (same major, at or below ``tensorrt``)

    def __bool__(self) -> bool:
        return not self.model_reasons and all(n.supported for n in self.nodes)


@dataclass
class Failure:
    node: str  # "" for the model itself (opset, graph I/O types)
    op: str
    versions: list[str]
    reasons: list[str]


@dataclass
class CheckResult:
    """Truthy when every node passes for every TensorRT version checked."""

    path: str
    versions: dict[str, VersionVerdict]

    def __bool__(self) -> bool:
        return all(self.versions.values())

    def failures(self) -> list[Failure]:
        """Failing nodes (and model-level problems), one entry per node across versions."""
        merged: dict[tuple[str, str], Failure] = {}
        for v, verdict in self.versions.items():
            items = [("", "model", r) for r in verdict.model_reasons]
            items += [(f"{n.where}/{n.node}" if n.where != "graph" else n.node, n.op, r)
                      for n in verdict.nodes if not n.supported for r in n.reasons]
            for node, op, reason in items:
                f = merged.setdefault((node, op), Failure(node, op, [], []))
                if v not in f.versions:
                    f.versions.append(v)
                if reason not in f.reasons:
                    f.reasons.append(reason)
        return list(merged.values())

    def summary(self, verbose: bool = False) -> str:
        lines = []
        for v, verdict in self.versions.items():
            ours = [n for n in verdict.nodes if n.domain == DOMAIN]
            n_plugin = sum(n.via == "plugin" for n in ours)
            n_function = sum(n.via == "function" for n in ours)
            state = "PASS" if verdict else "FAIL"
            table = f", operator table {verdict.table}" if verdict.table != v else ""
            lines.append(f"TensorRT {v}: {state}  opset {verdict.opset}, "
                         f"{len(verdict.nodes)} nodes ({n_plugin} through attn_deploy plugins, "
                         f"{n_function} as their local functions{table})")
            lines += [f"  model: {r}" for r in verdict.model_reasons]
            for n in verdict.nodes:
                if n.domain == DOMAIN and n.supported:
                    lines.append(f"  {n.node} [{n.op}]: {n.via}: " + "; ".join(n.notes))
                elif not n.supported:
                    where = "" if n.where == "graph" else f" in {n.where}"
                    lines.append(f"  {n.node} [{n.domain or 'ai.onnx'}::{n.op}]{where}: "
                                 + "; ".join(n.reasons))
                elif verbose and n.notes:
                    lines.append(f"  {n.node} [{n.op}] note: " + "; ".join(n.notes))
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"path": self.path, "passed": bool(self),
                "versions": {v: {**asdict(d), "passed": bool(d)} for v, d in self.versions.items()}}


def check_model(model: str | Path | onnx.ModelProto, versions: list[str] | None = None,
                plugins_loaded: bool = True) -> CheckResult:
    """Check ``model`` (a path or a ModelProto) against TensorRT ``versions`` (default: the
    table's), as TensorRT's parser reads the file with (``plugins_loaded``) or without the
    plugin library loaded."""
    from attn_deploy.onnx_file import check_model_proto, read_onnx_file

    path = str(model) if not isinstance(model, onnx.ModelProto) else "<model>"
    if isinstance(model, onnx.ModelProto):
        proto = model
        check_model_proto(proto, path)
    else:
        proto = read_onnx_file(model)  # never a verdict on a file that is not a usable model
    versions = list(versions or table_versions())
    tables = {v: table_for(v) for v in versions}
    inferred = infer_types(proto)
    return CheckResult(path, {v: _check_version(inferred, v, tables[v], plugins_loaded)
                              for v in versions})


def table_for(version: str) -> str:
    """The operator table a TensorRT version is judged with: the newest table version of the
    same major at or below it, else the oldest of that major."""
    try:
        target = parse_version(version)
    except ValueError as exc:
        raise AttnDeployError(str(exc)) from None
    known = table_versions()
    same_major = [v for v in known if parse_version(v)[0] == target[0]]
    if target < (10, 0) or not same_major:
        raise AttnDeployError(f"TensorRT {version}: the check covers TensorRT 10.x and 11.x "
                              f"(operator tables for {', '.join(known)})")
    below = [v for v in same_major if parse_version(v) <= target]
    return below[-1] if below else same_major[0]


def _opsets(imports) -> dict[str, int]:
    return {("" if o.domain == "ai.onnx" else o.domain): o.version for o in imports}


def _check_version(proto: onnx.ModelProto, version: str, table: str,
                   plugins_loaded: bool) -> VersionVerdict:
    entry = load_table()["versions"][table]
    opsets = _opsets(proto.opset_import)
    opset = opsets.get("")
    model_reasons = []
    if opset is not None and not entry["opset_min"] <= opset <= entry["opset_max"]:
        model_reasons.append(f"opset {opset} outside TensorRT {version}'s range "
                             f"{entry['opset_min']}-{entry['opset_max']}")
    for value in proto.graph.input:
        if value.name in {i.name for i in proto.graph.initializer}:
            continue
        if not value.type.tensor_type.HasField("shape"):
            model_reasons.append(f"input {value.name!r} has no shape: TensorRT's parser needs "
                                 "each input's rank")
    facts = graph_facts(proto.graph, GraphFacts())
    for value in list(proto.graph.input) + list(proto.graph.output):
        t = doc_type(value.type.tensor_type.elem_type or None)
        if t is not None and t not in entry["data_types"] and t != "DOUBLE":
            model_reasons.append(f"graph input/output {value.name!r} has type {t}; TensorRT "
                                 f"{version} supports {entry['data_types']}")
    functions = {(f.domain, f.name): f for f in proto.functions}
    ctx = _Context(entry, version, functions, set(), plugins_loaded)
    nodes = ctx.check_graph(proto.graph.node, facts, opsets, "graph")
    _check_qdq(proto, version, nodes, model_reasons)
    return VersionVerdict(version, opset, model_reasons, nodes, table)


def _check_qdq(proto: onnx.ModelProto, version: str, nodes: list[NodeVerdict],
               model_reasons: list[str]) -> None:
    """Q/DQ placement rules (attn_deploy.quantize.placement_rules) for a quantized model: each
    issue fails the Q/DQ (or custom) node it names."""
    qdq = ("QuantizeLinear", "DequantizeLinear")
    if not any(n.op_type in qdq for n in proto.graph.node) and not any(
            n.op_type in qdq for f in proto.functions for n in f.node):
        return
    from attn_deploy.quantize.placement_rules import check_qdq_placement

    by_name = {n.node: n for n in nodes if n.where == "graph"}
    for issue in check_qdq_placement(proto, version):
        verdict = by_name.get(issue.node)
        if verdict is None:
            model_reasons.append(f"Q/DQ placement: {issue}")
            continue
        verdict.reasons.append(f"Q/DQ placement: {issue.reason}")
        verdict.supported, verdict.via = False, ""


@dataclass
class _Context:
    entry: dict
    version: str
    functions: dict
    functions_checked: set
    plugins_loaded: bool = True

    def check_graph(self, nodes, facts: GraphFacts, opsets: dict, where: str) -> list[NodeVerdict]:
        out = []
        for i, node in enumerate(nodes):
            verdict = self.check_node(node, i, facts, opsets, where)
            out.append(verdict)
            for attr in node.attribute:
                for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    out += self.check_graph(g.node, graph_facts(g, facts), opsets,
                                            f"{where}/{verdict.node}.{attr.name}")
            if verdict.via == "function":
                out += self.check_function(node, opsets)
        return out

    def check_function(self, node, opsets) -> list[NodeVerdict]:
        key = (node.domain, node.op_type)
        if key in self.functions_checked:
            return []
        self.functions_checked.add(key)
        f = self.functions[key]
        fopsets = {**opsets, **_opsets(f.opset_import)}
        # Shape inference does not annotate function bodies; types there stay unknown.
        return self.check_graph(f.node, GraphFacts(constants=graph_constants(f.node, {})), fopsets,
                                f"function {node.domain}::{node.op_type}")

    def check_node(self, node, index, facts: GraphFacts, opsets, where) -> NodeVerdict:
        domain = "" if node.domain == "ai.onnx" else node.domain
        v = NodeVerdict(node.name or f"{node.op_type}_{index}", node.op_type, domain,
                        opsets.get(domain, 0), True, "native", where)
        has_function = (node.domain, node.op_type) in self.functions
        if domain == DOMAIN:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            namespace = attrs.get("plugin_namespace")
            binding = parser_binding(
                parse_version(self.version), has_function=has_function,
                namespace_attr=namespace.decode() if isinstance(namespace, bytes) else namespace,
                domain=node.domain, library_loaded=self.plugins_loaded)
            v.via = binding.via
            v.notes.append(binding.why)
            if binding.via == "function":
                v.notes.append("attn-deploy build-engine binds it to the plugin when the "
                               "library is loaded")
                return v
            v.reasons = ([binding.why] if binding.via == "" else []) + \
                check_plugin_node(node, facts)
            if binding.via == "plugin":
                v.notes.append(f"needs libattn_deploy_plugins.so ({node.op_type} "
                               f"v{PLUGIN_VERSION}, namespace {PLUGIN_NAMESPACE}) loaded")
        elif domain != "":
            if has_function:
                v.via = "function"
                return v
            v.reasons.append(f"domain {domain!r} is neither ONNX nor attn_deploy's, and the model "
                             "has no local function for it")
        else:
            self._check_standard(node, facts, v)
        v.supported = not v.reasons
        if not v.supported:
            v.via = ""
        return v

    def _check_standard(self, node, facts: GraphFacts, v: NodeVerdict) -> None:
        op = self.entry["ops"].get(node.op_type)
        if op is None:
            v.reasons.append(f"{node.op_type} is not in TensorRT {self.version}'s operator list")
            return
        if not op["supported"]:
            v.reasons.append(f"{node.op_type} is not supported by TensorRT {self.version}'s "
                             "ONNX parser" + (f" ({op['restrictions']})" if op["restrictions"]
                                               else ""))
            return
        typed = node.output[0] if node.op_type in _TYPED_BY_OUTPUT or not node.input \
            else node.input[0]
        t = doc_type(facts.types.get(typed))
        if t is not None and t not in op["types"]:
            if t == "DOUBLE" and "FP32" in op["types"]:
                v.notes.append("DOUBLE is cast down to FP32 by TensorRT (limited support)")
            else:
                v.reasons.append(f"type {t} of {typed!r} not supported; TensorRT {self.version} "
                                 f"lists {', '.join(op['types'])} for {node.op_type}")
        for check in op["checks"]:
            reason = evaluate_check(check, node, facts)
            if reason:
                v.reasons.append(reason)
        if op.get("unchecked"):
            v.notes.append(f"not checked statically: {op['unchecked']}")
