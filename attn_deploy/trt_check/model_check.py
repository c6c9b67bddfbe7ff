"""Static TensorRT compatibility check of an ONNX model: no TensorRT needed.

Every node is judged against TensorRT's ONNX parser support as onnx-tensorrt publishes it
(``support_table``), for each TensorRT version in the table (10.3 for JetPack 6, and the newest):
operator, opset range, the listed input types, and the restrictions the doc states that can be
decided from the file (constant inputs, attribute values, ranks). attn_deploy's custom nodes count
as supported through the plugins when their attributes and types are ones the plugins accept; a
custom node the parser would import as its model-local function instead is judged by that
function's body.

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
from attn_deploy.trt_check.support_table import load_table, table_versions

# Ops whose listed types describe their output (they have no data input).
_TYPED_BY_OUTPUT = {"Constant", "ConstantOfShape", "RandomNormal", "RandomUniform"}
# Since when a node with a plugin_namespace attribute goes to the plugin even when the model has a
# local function of the same name (before, the parser imported the function): onnx-tensorrt's
# ModelImporter, and attn_deploy/export/flavors.py.
_PLUGIN_BEFORE_FUNCTION_SINCE = (10, 7)


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
            n_plugin = sum(n.via == "plugin" for n in verdict.nodes)
            state = "PASS" if verdict else "FAIL"
            lines.append(f"TensorRT {v}: {state}  opset {verdict.opset}, "
                         f"{len(verdict.nodes)} nodes ({n_plugin} through attn_deploy plugins)")
            lines += [f"  model: {r}" for r in verdict.model_reasons]
            for n in verdict.nodes:
                if not n.supported:
                    where = "" if n.where == "graph" else f" in {n.where}"
                    lines.append(f"  {n.node} [{n.domain or 'ai.onnx'}::{n.op}]{where}: "
                                 + "; ".join(n.reasons))
                elif verbose and n.notes:
                    lines.append(f"  {n.node} [{n.op}] note: " + "; ".join(n.notes))
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"path": self.path, "passed": bool(self),
                "versions": {v: {**asdict(d), "passed": bool(d)} for v, d in self.versions.items()}}


def check_model(model: str | Path | onnx.ModelProto,
                versions: list[str] | None = None) -> CheckResult:
    """Check ``model`` (a path or a ModelProto) against TensorRT ``versions`` (default: all in
    the table)."""
    path = str(model) if not isinstance(model, onnx.ModelProto) else "<model>"
    if isinstance(model, onnx.ModelProto):
        proto = model
    else:
        if not Path(model).is_file():
            raise AttnDeployError(f"trt-check: {str(model)!r} is not a file")
        try:
            proto = onnx.load(str(model))
        except Exception as exc:
            raise AttnDeployError(f"trt-check: cannot read ONNX model {str(model)!r}: {exc}") \
                from exc
    known = table_versions()
    versions = list(versions or known)
    unknown = [v for v in versions if v not in known]
    if unknown:
        raise AttnDeployError(f"TensorRT version(s) {unknown} not in the support table; "
                              f"known: {known}")
    inferred = infer_types(proto)
    return CheckResult(path, {v: _check_version(inferred, v) for v in versions})


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


def _opsets(imports) -> dict[str, int]:
    return {("" if o.domain == "ai.onnx" else o.domain): o.version for o in imports}


def _check_version(proto: onnx.ModelProto, version: str) -> VersionVerdict:
    entry = load_table()["versions"][version]
    opsets = _opsets(proto.opset_import)
    opset = opsets.get("")
    model_reasons = []
    if opset is not None and not entry["opset_min"] <= opset <= entry["opset_max"]:
        model_reasons.append(f"opset {opset} outside TensorRT {version}'s range "
                             f"{entry['opset_min']}-{entry['opset_max']}")
    facts = graph_facts(proto.graph, GraphFacts())
    for value in list(proto.graph.input) + list(proto.graph.output):
        t = doc_type(value.type.tensor_type.elem_type or None)
        if t is not None and t not in entry["data_types"] and t != "DOUBLE":
            model_reasons.append(f"graph input/output {value.name!r} has type {t}; TensorRT "
                                 f"{version} supports {entry['data_types']}")
    functions = {(f.domain, f.name): f for f in proto.functions}
    ctx = _Context(entry, version, functions, set())
    nodes = ctx.check_graph(proto.graph.node, facts, opsets, "graph")
    return VersionVerdict(version, opset, model_reasons, nodes)


@dataclass
class _Context:
    entry: dict
    version: str
    functions: dict
    functions_checked: set

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
            plugin_first = (any(a.name == "plugin_namespace" for a in node.attribute)
                            and _version_tuple(self.version) >= _PLUGIN_BEFORE_FUNCTION_SINCE)
            if has_function and not plugin_first:
                v.via = "function"
                v.notes.append("TensorRT imports the model-local function here, not the plugin "
                               "(export with flavor='tensorrt' to use the plugin)")
                return v
            v.via = "plugin"
            v.reasons = check_plugin_node(node, facts)
            v.notes.append(f"needs libattn_deploy_plugins.so ({node.op_type} v{PLUGIN_VERSION}, "
                           f"namespace {PLUGIN_NAMESPACE}) loaded")
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
