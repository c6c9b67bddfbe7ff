"""Export flavors for models that use attn_deploy's custom ops.

- ``default``: one ``attn_deploy::<Op>`` node per op call, carrying a model-local function of
  standard ops, so any ONNX runtime runs the model without our libraries.
- ``tensorrt``: the same custom nodes bound to the TensorRT plugins: local functions removed
  (TensorRT 10.0-10.6 would inline a local function instead of calling the plugin) and the string
  attribute ``plugin_namespace="attn_deploy"`` on each node (TensorRT 10.15+ and 11 use the
  plugin only then). Only a runtime with the plugins loaded can run it.
- ``plain``: the standard-op decomposition inlined, no custom nodes.

For models without custom ops the three flavors give the same graph.
"""
from __future__ import annotations

from typing import Callable, Iterator

import onnx
import onnx.inliner

from attn_deploy.errors import AttnDeployError
from attn_deploy.op_contract import (CARAFE, CRISS_CROSS_ATTENTION, DOMAIN, DOMAIN_VERSION,
                                     PLUGIN_NAMESPACE)

FLAVORS = ("default", "tensorrt", "plain")


def _check_flavor(flavor: str) -> None:
    if flavor not in FLAVORS:
        raise AttnDeployError(f"flavor: expected one of {list(FLAVORS)}, got {flavor!r}")


def custom_translation_table(flavor: str) -> dict[Callable, Callable]:
    """torch op -> onnxscript translation for the custom ops, for ``flavor``.

    Every flavor exports one custom node per op call; :func:`apply_flavor` then attaches the
    local functions, binds the nodes to the plugins, or inlines the decomposition."""
    _check_flavor(flavor)
    import torch

    import attn_deploy.ops  # noqa: F401  (registers torch.ops.attn_deploy.*)
    from attn_deploy.ops.onnx_carafe import carafe_translation
    from attn_deploy.ops.onnx_criss_cross import criss_cross_translation

    return {torch.ops.attn_deploy.carafe.default: carafe_translation,
            torch.ops.attn_deploy.criss_cross_attention.default: criss_cross_translation}


def _all_nodes(nodes) -> Iterator[onnx.NodeProto]:
    """Nodes of a graph or function, including those in subgraphs (If/Loop/Scan bodies)."""
    for node in nodes:
        yield node
        for attr in node.attribute:
            for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _all_nodes(g.node)


def custom_nodes(proto: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Every ``attn_deploy`` node of the model (main graph, subgraphs, other functions)."""
    nodes = list(_all_nodes(proto.graph.node))
    for f in proto.functions:
        if f.domain != DOMAIN:
            nodes.extend(_all_nodes(f.node))
    return [n for n in nodes if n.domain == DOMAIN]


def _default_opset(proto: onnx.ModelProto) -> int:
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def _set_domain_import(proto: onnx.ModelProto, present: bool) -> None:
    keep = [o for o in proto.opset_import if o.domain != DOMAIN]
    del proto.opset_import[:]
    proto.opset_import.extend(keep)
    if present:
        proto.opset_import.add(domain=DOMAIN, version=DOMAIN_VERSION)


def _local_functions(nodes: list[onnx.NodeProto], opset: int,
                     per_config: bool) -> list[onnx.FunctionProto]:
    """The functions the custom nodes call. ``per_config``: one CARAFE function per attribute
    set, each under its own name (the nodes are renamed), so that inlining leaves no If."""
    from attn_deploy.ops import onnx_carafe, onnx_criss_cross

    functions: dict[str, onnx.FunctionProto] = {}
    carafe_configs = set()
    for node in nodes:
        if node.op_type == CRISS_CROSS_ATTENTION.name:
            if node.op_type not in functions:
                functions[node.op_type] = onnx_criss_cross.criss_cross_function(opset)
            continue
        if node.op_type != CARAFE.name:
            raise AttnDeployError(f"unknown custom op {DOMAIN}::{node.op_type}; known: "
                                  f"{CARAFE.name}, {CRISS_CROSS_ATTENTION.name}")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        cfg = tuple(int(attrs[a]) for a in CARAFE.int_attributes)
        carafe_configs.add(cfg)
        if per_config:
            node.op_type = "{}_k{}_g{}_s{}".format(CARAFE.name, *cfg)
            if node.op_type not in functions:
                functions[node.op_type] = onnx_carafe.carafe_function([cfg], opset,
                                                                      name=node.op_type)
    if carafe_configs and not per_config:
        functions[CARAFE.name] = onnx_carafe.carafe_function(sorted(carafe_configs), opset)
    return list(functions.values())


def apply_flavor(proto: onnx.ModelProto, flavor: str) -> onnx.ModelProto:
    """Post-process an exported model for ``flavor`` (a no-op without custom nodes)."""
    _check_flavor(flavor)
    nodes = custom_nodes(proto)
    if not nodes:
        return proto
    others = [f for f in proto.functions if f.domain != DOMAIN]
    del proto.functions[:]
    proto.functions.extend(others)
    _set_domain_import(proto, present=True)
    if flavor == "tensorrt":
        for node in nodes:
            kept = [a for a in node.attribute if a.name != "plugin_namespace"]
            del node.attribute[:]
            node.attribute.extend(kept)
            node.attribute.append(onnx.helper.make_attribute("plugin_namespace",
                                                             PLUGIN_NAMESPACE))
        return proto
    functions = _local_functions(nodes, _default_opset(proto), per_config=flavor == "plain")
    proto.functions.extend(functions)
    if flavor == "plain":
        proto = onnx.inliner.inline_selected_functions(
            proto, [(f.domain, f.name) for f in functions])
        _set_domain_import(proto, present=False)
    return proto
