"""Post-training int8 quantization of an ONNX file into TensorRT's explicit-quantization form.

ONNX Runtime's static quantizer (``onnxruntime.quantization.quantize_static``) calibrates the
activation ranges by running the model on the user's feeds and writes QuantizeLinear /
DequantizeLinear pairs (QDQ format), configured for TensorRT: signed int8 with zero point 0 for
activations and weights (``ActivationSymmetric``, ``WeightSymmetric``), weights per output
channel (``per_channel``; ONNX Runtime's default axes are the output-channel axes TensorRT
wants), activations per tensor, biases left in float (TensorRT has no int32 DQ for biases:
``QuantizeBias=False``), one Q/DQ pair per consumer (``DedicatedQDQPair``) so that excluding
a node never leaves it fed by a shared pair, and only the layers TensorRT runs in int8 with the
DQ fused (Conv, ConvTranspose, MatMul, Gemm). ``placement_rules.float_only_nodes`` keeps the
ones fed by softmax, normalisations, exponentials and attn_deploy's custom nodes in float; the
custom nodes and their model-local functions are left as they are (the quantizer does not
enter function bodies), which :func:`quantize_model` checks on the result, together with the
placement rules and that ONNX Runtime runs the file.

    result = quantize_model("cbam.onnx", "cbam.int8.onnx", "calib/")   # folder of .npz
    print(result.summary())
"""
from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import onnx

from attn_deploy.errors import AttnDeployError
from attn_deploy.export.flavors import apply_flavor
from attn_deploy.quantize.calibration_data import (Feed, FeedReader, callable_feeds, check_feeds,
                                                   folder_feeds)
from attn_deploy.quantize.placement_rules import (PLUGIN_DOMAIN, WEIGHTED_OPS, PlacementIssue,
                                                  check_qdq_placement, float_only_nodes,
                                                  qdq_counts)

METHODS = ("minmax", "entropy", "percentile")
Calibration = str | Path | Sequence[Feed]


@dataclass
class QuantizeResult:
    """What :func:`quantize_model` wrote and why it looks as it does."""

    path: Path
    method: str
    calibration_samples: int
    quantized_nodes: list[str] = field(default_factory=list)
    float_nodes: dict[str, str] = field(default_factory=dict)  # weighted node -> why float
    custom_nodes: list[str] = field(default_factory=list)  # domain::op kept in float
    plugin_flavor: bool = False  # custom nodes without local functions (TensorRT plugins)
    qdq: dict[str, int] = field(default_factory=dict)
    placement_issues: list[PlacementIssue] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"{self.path}: {len(self.quantized_nodes)} node(s) in int8, "
                 f"{self.qdq.get('quantize', 0)} Q / {self.qdq.get('dequantize', 0)} DQ "
                 f"({self.qdq.get('weights', 0)} weights per channel), calibrated ({self.method}) "
                 f"on {self.calibration_samples} sample(s) in {self.seconds:.1f} s"]
        if not self.quantized_nodes:
            lines.append("  no Conv/ConvTranspose/MatMul/Gemm to quantize: the file stays fp32")
        lines += [f"  kept float: {n} ({why})" for n, why in self.float_nodes.items()]
        if self.custom_nodes:
            how = "as TensorRT plugin nodes" if self.plugin_flavor else "with their functions"
            lines.append(f"  custom nodes kept float {how}: {', '.join(self.custom_nodes)}")
        lines += [f"  placement: {i}" for i in self.placement_issues]
        return "\n".join(lines)


def resolve_calibration(calibration: Calibration, metas, limit: int | None = None) -> list[Feed]:
    """Feeds from a folder, a ``package.module:function`` reference or a list of feeds."""
    if isinstance(calibration, (str, Path)):
        text = str(calibration)
        if Path(text).is_dir() or ":" not in text or Path(text).exists():
            feeds = folder_feeds(text, metas)
        else:
            feeds = callable_feeds(text, metas, limit)
    else:
        feeds = check_feeds([dict(f) for f in calibration], metas, "(feeds given)")
    return feeds[:limit] if limit else feeds


def _load(path: Path) -> onnx.ModelProto:
    from attn_deploy.onnx_file import read_onnx_file

    return read_onnx_file(path)  # a missing or broken file: one error naming it


@contextlib.contextmanager
def _quiet_root_logger():
    # ONNX Runtime's quantizer advises pre-processing through the root logger on every call;
    # the advice does not apply (shapes are inferred already) and would bury our summary.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _custom_nodes(proto: onnx.ModelProto) -> tuple[list[str], set[tuple[str, str]]]:
    nodes = sorted(f"{n.domain}::{n.op_type}" for n in proto.graph.node
                   if n.domain not in ("", "ai.onnx"))
    return nodes, {(f.domain, f.name) for f in proto.functions}


def quantize_model(model: str | Path, output: str | Path, calibration: Calibration, *,
                   method: str = "minmax", per_channel: bool = True,
                   exclude: Sequence[str] = (), samples: int | None = None,
                   tensorrt: str | None = None) -> QuantizeResult:
    """Quantize ``model`` to int8 Q/DQ, calibrated on ``calibration`` (a folder of .npz/.npy,
    ``"package.module:function"``, or a list of feeds), and write it atomically to ``output``.

    ``exclude``: node names to keep in float besides those the placement rules keep.
    ``samples``: use at most this many calibration feeds. ``tensorrt``: the TensorRT version
    whose placement rules the result is checked against (default: the newest known).
    """
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    from attn_deploy.backends.base import metadata_from_proto
    from attn_deploy.atomic_write import atomic_write_bytes

    start = time.perf_counter()
    model, output = Path(model), Path(output)
    if method not in METHODS:
        raise AttnDeployError(f"quantize: method {method!r}; expected one of {list(METHODS)}")
    if output.resolve() == model.resolve():
        raise AttnDeployError(f"quantize: output {str(output)!r} is the input file; write the "
                              "int8 model beside it (e.g. FILE.int8.onnx)")
    proto = _load(model)
    metas = metadata_from_proto(proto)
    feeds = resolve_calibration(calibration, metas, samples)
    for i, node in enumerate(proto.graph.node):  # exclusion and reports go by node name
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    names = {n.name for n in proto.graph.node}
    unknown = [n for n in exclude if n not in names]
    if unknown:
        raise AttnDeployError(f"quantize: --exclude names no node of {model.name}: {unknown}")
    keep = float_only_nodes(proto)
    keep.update({n: "excluded by the caller" for n in exclude if n not in keep})
    custom_before, functions_before = _custom_nodes(proto)
    # A TensorRT-flavor file has plugin nodes without local functions, which ONNX Runtime
    # cannot run for calibration: calibrate on the default flavor, write the TensorRT one.
    plugin_flavor = any((n.domain, n.op_type) not in functions_before
                        for n in proto.graph.node if n.domain == PLUGIN_DOMAIN)
    if plugin_flavor:
        proto = apply_flavor(proto, "default")
    calibrate = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                 "percentile": CalibrationMethod.Percentile}[method]
    with tempfile.TemporaryDirectory(prefix="attn_deploy_quantize_") as tmp:
        out_tmp = Path(tmp) / "model.int8.onnx"
        try:
            with _quiet_root_logger():
                quantize_static(
                    proto, out_tmp, FeedReader(feeds), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=list(WEIGHTED_OPS), per_channel=per_channel,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    nodes_to_exclude=sorted(keep), calibrate_method=calibrate,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                   "QuantizeBias": False, "DedicatedQDQPair": True,
                                   "OpTypesToExcludeOutputQuantization": list(WEIGHTED_OPS)})
        except AttnDeployError:
            raise
        except Exception as exc:
            raise AttnDeployError(f"quantize {model.name}: ONNX Runtime's quantizer failed: "
                                  f"{type(exc).__name__}: {str(exc)[:500]}") from exc
        q = onnx.load(str(out_tmp))
    _unquantize_other_consumers(q)
    _opset_18_to_19(q)
    _check_runs(q, feeds[0], model.name)
    if plugin_flavor:
        q = apply_flavor(q, "tensorrt")
    custom_after, functions_after = _custom_nodes(q)
    # Internal invariants: the quantizer must leave custom nodes and their bodies alone.
    assert custom_after == custom_before, (custom_before, custom_after)
    assert functions_before <= functions_after, (functions_before, functions_after)
    onnx.helper.set_model_props(q, {**{p.key: p.value for p in proto.metadata_props},
                                    "attn_deploy_precision": "int8",
                                    "attn_deploy_calibration": f"{method}, {len(feeds)} samples"})
    dequantized = {o for n in q.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    quantized = sorted(n.name for n in q.graph.node
                       if n.op_type in WEIGHTED_OPS and dequantized & set(n.input))
    result = QuantizeResult(output, method, len(feeds), quantized, keep,
                            sorted(set(custom_after)), plugin_flavor, qdq_counts(q),
                            check_qdq_placement(q, tensorrt))
    atomic_write_bytes(output, q.SerializeToString())
    result.seconds = time.perf_counter() - start
    return result


def _unquantize_other_consumers(q: onnx.ModelProto) -> None:
    """Give back the float tensor to the consumers ONNX Runtime rewired to a DQ output.

    With one quantized consumer, ONNX Runtime's QDQ quantizer points every consumer of the
    tensor at the DQ output (its ``DedicatedQDQPair`` only splits tensors with several
    quantized consumers), so a custom node or a Shape beside a Conv would read int8-rounded
    values. Only the weighted layers the DQ was made for keep it."""
    producer = {o: n for n in q.graph.node for o in n.output}
    for node in q.graph.node:
        if node.op_type in WEIGHTED_OPS and node.domain in ("", "ai.onnx"):
            continue
        for i, name in enumerate(node.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            qn = producer.get(dq.input[0])
            if qn is not None and qn.op_type == "QuantizeLinear":
                node.input[i] = qn.input[0]


def _opset_18_to_19(q: onnx.ModelProto) -> None:
    """Declare opset 19 in a model (and its functions) written for 18.

    ``onnx.reference``, the project's independent runtime, implements DequantizeLinear from
    opset 19 on only. Opset 19 changed no op's meaning for what an 18 model can hold (it added
    types and attributes with defaults: FP8 in Cast/Q/DQ, Pad's wrap mode, AveragePool's
    dilations, a Resize mode), and TensorRT 10.3 parses opsets up to 20. Other opsets stay
    as they are."""
    imports = list(q.opset_import) + [o for f in q.functions for o in f.opset_import]
    default = [o for o in imports if o.domain in ("", "ai.onnx")]
    if default and all(o.version == 18 for o in default):
        for o in default:
            o.version = 19


def ort_session(model: str | Path | onnx.ModelProto):
    """An ONNX Runtime CPU session on ``model``; a TensorRT-flavor model (plugin nodes without
    local functions) runs with the functions of the default flavor added."""
    import onnxruntime as ort

    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    functions = {(f.domain, f.name) for f in proto.functions}
    if any((n.domain, n.op_type) not in functions
           for n in proto.graph.node if n.domain == PLUGIN_DOMAIN):
        copy = onnx.ModelProto()
        copy.CopyFrom(proto)
        proto = apply_flavor(copy, "default")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(proto.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def _check_runs(q: onnx.ModelProto, feed: Feed, name: str) -> None:
    """ONNX Runtime must build and run the quantized model (custom nodes through their
    functions); a file that does not is never written."""
    try:
        ort_session(q).run(None, feed)
    except Exception as exc:
        raise AttnDeployError(f"quantize {name}: the int8 model does not run on ONNX Runtime: "
                              f"{type(exc).__name__}: {str(exc)[:500]}") from exc


__all__ = ["METHODS", "QuantizeResult", "ort_session", "quantize_model", "resolve_calibration"]
