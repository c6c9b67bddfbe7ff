"""ONNX export of the custom ops: one attn_deploy node per call with a standard-op local function
(ONNX Runtime and onnx.reference run it), the plain and tensorrt flavors, and the function
bodies themselves against the PyTorch references over many attribute sets and shapes (fresh
random inputs each run), on ONNX Runtime and onnx.reference."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator
from torch import nn

import attn_deploy as ad
from attn_deploy.export.flavors import apply_flavor
from attn_deploy.ops import (carafe, carafe_reference, criss_cross_attention,
                             criss_cross_attention_reference)
from attn_deploy.ops.onnx_carafe import BODIES, body_kind, carafe_function
from attn_deploy.ops.onnx_criss_cross import criss_cross_function
from attn_deploy.ops.onnx_functions import single_node_model

DOMAIN = "attn_deploy"


class TwoOps(nn.Module):
    """x [N, 8, H, W] -> one CARAFE output per (k, G, s) config and one criss-cross output."""

    def __init__(self, configs):
        super().__init__()
        self.configs = configs
        self.encoders = nn.ModuleList(nn.Conv2d(8, g * k * k * s * s, 3, padding=1)
                                      for k, g, s in configs)
        self.qkv = nn.Conv2d(8, 2 + 2 + 6, 1)

    def forward(self, x):
        outs = []
        for (k, g, s), enc in zip(self.configs, self.encoders):
            m = F.pixel_shuffle(enc(x), s)
            m = m.reshape(m.shape[0], g, k * k, m.shape[2], m.shape[3]).softmax(2)
            outs.append(carafe(x, m.flatten(1, 2), k, g, s))
        q, k, v = self.qkv(x).split([2, 2, 6], dim=1)
        return (*outs, criss_cross_attention(q, k, v))


def export(model, flavor, path):
    torch.manual_seed(0)
    names = [f"y{i}" for i in range(len(model.configs) + 1)]
    return onnx.load(str(ad.export_onnx(
        model, (torch.randn(2, 8, 6, 7),), path, input_names=["x"], output_names=names,
        dynamic_axes={"x": {0: "N", 2: "H", 3: "W"}}, flavor=flavor)))


def rel_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def check_parity(proto, model, runners=("ort", "reference")):
    """Every output within 1e-5 relative L2 of eager PyTorch, at two sizes from one file."""
    for n, h, w in ((2, 6, 7), (3, 9, 5)):
        x = torch.randn(n, 8, h, w, generator=torch.Generator().manual_seed(h))
        with torch.no_grad():
            expected = [t.numpy() for t in model(x)]
        for runner in runners:
            if runner == "ort":
                got = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": x.numpy()})
            else:
                got = ReferenceEvaluator(proto).run(None, {"x": x.numpy()})
            for g, e in zip(got, expected):
                assert g.shape == e.shape and rel_l2(g, e) <= 1e-5, (runner, n, h, w)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    torch.manual_seed(0)
    model = TwoOps([(5, 1, 2)]).eval()
    return model, export(model, "default", tmp_path_factory.mktemp("onnx") / "single.onnx")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    torch.manual_seed(1)
    model = TwoOps([(3, 2, 2), (5, 1, 2), (1, 4, 3)]).eval()
    return model, export(model, "default", tmp_path_factory.mktemp("onnx") / "mixed.onnx")


def custom(proto):
    return [n for n in proto.graph.node if n.domain == DOMAIN]


def test_default_has_one_node_per_call_with_local_functions(single, mixed):
    for (model, proto), n_carafe in ((single, 1), (mixed, 3)):
        nodes = custom(proto)
        assert sorted(n.op_type for n in nodes) == ["CARAFE"] * n_carafe + ["CrissCrossAttention"]
        carafe_attrs = [{a.name: a.i for a in n.attribute} for n in nodes if n.op_type == "CARAFE"]
        assert carafe_attrs == [dict(kernel_size=k, group_size=g, scale_factor=s)
                                for k, g, s in model.configs]
        functions = {(f.domain, f.name): f for f in proto.functions}
        assert set(functions) == {(DOMAIN, "CARAFE"), (DOMAIN, "CrissCrossAttention")}
        assert list(functions[DOMAIN, "CARAFE"].attribute) == ["kernel_size", "group_size",
                                                               "scale_factor"]
        for f in functions.values():  # bodies: standard ops only
            assert {n.domain for n in f.node} <= {""}
        assert (DOMAIN, 1) in {(o.domain, o.version) for o in proto.opset_import}
        dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
                for i in proto.graph.input]
        assert dims == [["N", 8, "H", "W"]]
        onnx.checker.check_model(proto, full_check=True)
    # three configurations share one CARAFE function that dispatches on the attributes
    assert "If" in {n.op_type for n in next(f for f in mixed[1].functions
                                            if f.name == "CARAFE").node}


def test_default_runs_in_ort_and_onnx_reference(single, mixed):
    check_parity(single[1], single[0])
    check_parity(mixed[1], mixed[0])


def test_plain_flavor_is_the_inlined_decomposition(single, mixed, tmp_path):
    model, _ = single
    plain = export(model, "plain", tmp_path / "plain.onnx")
    from_default = apply_flavor(onnx.ModelProto.FromString(mixed[1].SerializeToString()), "plain")
    for proto, m in ((plain, model), (from_default, mixed[0])):
        assert not custom(proto) and not proto.functions
        assert DOMAIN not in {o.domain for o in proto.opset_import}
        # one body per node: no If dispatching on the attributes, only the band bodies' own
        ifs = [n for n in proto.graph.node if n.op_type == "If"]
        assert all({a.g.name for a in n.attribute} == {"whole_tiles", "padded_tiles"}
                   for n in ifs)
        onnx.checker.check_model(proto, full_check=True)
        check_parity(proto, m, runners=("ort",))


def test_tensorrt_flavor_binds_nodes_to_the_plugins(single, mixed, tmp_path):
    trt = export(single[0], "tensorrt", tmp_path / "trt.onnx")
    from_default = apply_flavor(onnx.ModelProto.FromString(mixed[1].SerializeToString()),
                                "tensorrt")
    for proto, model in ((trt, single[0]), (from_default, mixed[0])):
        assert not proto.functions
        nodes = custom(proto)
        assert len(nodes) == len(model.configs) + 1
        for node in nodes:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            assert attrs["plugin_namespace"] == b"attn_deploy"
        assert [sorted(helper.get_attribute_value(a) for a in n.attribute
                       if a.type == onnx.AttributeProto.INT) for n in nodes[:-1]] == \
            [sorted(c) for c in model.configs]
        assert (DOMAIN, 1) in {(o.domain, o.version) for o in proto.opset_import}
        onnx.checker.check_model(proto, full_check=True)
    with pytest.raises(Exception):  # without the functions only a plugin runtime can run it
        ort.InferenceSession(trt.SerializeToString())


def carafe_model(cfg, kind=None, dtype=TensorProto.FLOAT):
    k, g, s = cfg
    return single_node_model(carafe_function([cfg], 18, kind=kind),
                             dict(kernel_size=k, group_size=g, scale_factor=s), dtype)


# (k, G, s): k = 1, 3, 5, 7, 9 (9: a tile wider than the default 8 columns), G = 1, 2, 4,
# s = 1 to 4
CARAFE_CONFIGS = [(1, 1, 1), (1, 2, 3), (3, 1, 2), (3, 2, 3), (5, 1, 2), (5, 4, 1), (7, 1, 2),
                  (5, 2, 4), (9, 1, 2)]
# (N, C, H, W): one tile and several (W up to 19, a partial last tile; W = 16, whole tiles: the
# band body's If skips its Slice), 1x1, batch 2, odd sizes
CARAFE_SHAPES = [(2, 8, 5, 6), (1, 4, 1, 1), (1, 4, 2, 9), (2, 8, 7, 19), (1, 4, 3, 16)]


def carafe_inputs(n, c, h, w, cfg):
    k, g, s = cfg
    return torch.randn(n, c, h, w), torch.rand(n, g * k * k, s * h, s * w)


@pytest.mark.parametrize("kind", sorted(BODIES))
@pytest.mark.parametrize("cfg", CARAFE_CONFIGS)
def test_carafe_bodies_match_the_reference(kind, cfg):
    session = ort.InferenceSession(carafe_model(cfg, kind).SerializeToString())
    for shape in CARAFE_SHAPES:
        f, m = carafe_inputs(*shape, cfg)
        (y,) = session.run(None, {"features": f.numpy(), "masks": m.numpy()})
        expected = carafe_reference(f, m, *cfg).numpy()
        assert y.shape == expected.shape and rel_l2(y, expected) <= 1e-6, shape


def test_default_carafe_body_is_the_band_except_for_k1():
    """The body measured fastest (module docstring of onnx_carafe): banded MatMuls for k >= 3,
    the shifted multiply-add (one Resize and one Mul) for k = 1."""
    assert [body_kind(*cfg) for cfg in [(5, 1, 2), (3, 4, 1), (1, 1, 2), (1, 2, 3)]] == \
        ["band", "band", "shift", "shift"]
    assert "MatMul" in {n.op_type for n in carafe_function([(5, 1, 2)], 18).node}
    assert {"Resize", "MatMul"} & {n.op_type for n in carafe_function([(1, 1, 2)], 18).node} \
        == {"Resize"}


@pytest.mark.parametrize("cfg", [(5, 1, 2), (3, 2, 3), (1, 1, 2), (7, 2, 1)])
def test_default_carafe_body_runs_in_onnx_reference(cfg):
    """onnx.reference evaluates the chosen body op by op (its own kernels, not ORT's)."""
    run = ReferenceEvaluator(carafe_model(cfg)).run
    for shape in CARAFE_SHAPES[::2] + [(1, 4, 3, 11)]:
        f, m = carafe_inputs(*shape, cfg)
        (y,) = run(None, {"features": f.numpy(), "masks": m.numpy()})
        assert rel_l2(y, carafe_reference(f, m, *cfg).numpy()) <= 1e-6, shape


@pytest.mark.parametrize("cfg", [(5, 1, 2), (3, 1, 3)])
def test_band_body_with_static_shapes_matches_the_reference(cfg):
    """Shapes known when the session is made: ONNX Runtime folds the If that skips the Slice
    (W a multiple of the tile) or keeps it (W = 13) and inlines the chosen branch."""
    k, g, s = cfg
    for n, c, h, w in [(1, 4, 3, 16), (1, 4, 3, 13)]:
        model = carafe_model(cfg)
        for value, dims in zip(list(model.graph.input) + list(model.graph.output),
                               [(n, c, h, w), (n, g * k * k, s * h, s * w), (n, c, s * h, s * w)]):
            for dim, size in zip(value.type.tensor_type.shape.dim, dims):
                dim.dim_value = size
        f, m = carafe_inputs(n, c, h, w, cfg)
        (y,) = ort.InferenceSession(model.SerializeToString()).run(
            None, {"features": f.numpy(), "masks": m.numpy()})
        assert rel_l2(y, carafe_reference(f, m, *cfg).numpy()) <= 1e-6, (n, c, h, w)


def test_mixed_carafe_configs_match_the_reference():
    """A model mixing configurations dispatches with an If on the attributes; the band bodies
    in its branches keep their Slice (no If inside an If: see onnx_carafe._channels_first)."""
    configs = [(5, 1, 2), (3, 1, 2)]
    for cfg in configs:
        k, g, s = cfg
        model = single_node_model(carafe_function(configs, 18),
                                  dict(kernel_size=k, group_size=g, scale_factor=s))
        session = ort.InferenceSession(model.SerializeToString())
        for shape in [(1, 4, 3, 16), (1, 4, 2, 9)]:
            f, m = carafe_inputs(*shape, cfg)
            (y,) = session.run(None, {"features": f.numpy(), "masks": m.numpy()})
            assert rel_l2(y, carafe_reference(f, m, *cfg).numpy()) <= 1e-6, (cfg, shape)


def test_carafe_band_body_in_float16():
    cfg = (5, 1, 2)
    session = ort.InferenceSession(carafe_model(cfg, "band", TensorProto.FLOAT16)
                                   .SerializeToString())
    f, m = carafe_inputs(1, 8, 6, 13, cfg)
    (y,) = session.run(None, {"features": f.half().numpy(), "masks": m.half().numpy()})
    assert y.dtype == np.float16
    expected = carafe_reference(f.half().float(), m.half().float(), *cfg).numpy()
    assert rel_l2(y.astype(np.float32), expected) <= 5e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_criss_cross_body_matches_the_reference(dtype):
    onnx_dtype = TensorProto.FLOAT if dtype == torch.float32 else TensorProto.FLOAT16
    proto = single_node_model(criss_cross_function(18), elem_type=onnx_dtype)
    runners = [ort.InferenceSession(proto.SerializeToString()).run,
               ReferenceEvaluator(proto).run]
    for n, cq, c, h, w in ((2, 3, 5, 4, 6), (1, 2, 3, 1, 5), (1, 2, 3, 6, 1), (2, 4, 4, 7, 7),
                           (1, 1, 2, 1, 1), (1, 3, 6, 5, 9)):
        q, k, v = (torch.randn(n, ch, h, w).to(dtype) for ch in (cq, cq, c))
        expected = criss_cross_attention_reference(q.float(), k.float(), v.float()).numpy()
        feed = {"query": q.numpy(), "key": k.numpy(), "value": v.numpy()}
        for run in runners:
            (y,) = run(None, feed)
            assert y.dtype == q.numpy().dtype
            assert rel_l2(y.astype(np.float32), expected) <= (1e-6 if dtype == torch.float32
                                                              else 5e-3)


def test_criss_cross_body_softmax_is_stable_for_large_energies():
    """Energies in the thousands: exp would overflow without subtracting the per-pixel max."""
    run = ort.InferenceSession(single_node_model(criss_cross_function(18))
                               .SerializeToString()).run
    q, k, v = torch.randn(1, 4, 5, 6) * 40, torch.randn(1, 4, 5, 6) * 40, torch.randn(1, 3, 5, 6)
    (y,) = run(None, {"query": q.numpy(), "key": k.numpy(), "value": v.numpy()})
    expected = criss_cross_attention_reference(q, k, v).numpy()
    assert np.isfinite(y).all() and rel_l2(y, expected) <= 1e-5


def _op_types(nodes):
    return sorted(n.op_type for n in nodes)


@pytest.mark.parametrize("cfg", [(5, 1, 2), (1, 1, 2)])
def test_plain_flavor_inlines_the_same_bodies(cfg):
    """The plain flavor is the default flavor's function bodies, inlined: the same nodes."""
    carafe = carafe_model(cfg)
    plain = apply_flavor(onnx.ModelProto.FromString(carafe.SerializeToString()), "plain")
    assert _op_types(plain.graph.node) == _op_types(carafe.functions[0].node)
    cca = single_node_model(criss_cross_function(18))
    plain = apply_flavor(onnx.ModelProto.FromString(cca.SerializeToString()), "plain")
    assert _op_types(plain.graph.node) == _op_types(cca.functions[0].node)


@pytest.mark.parametrize("cfg", [(5, 1, 2), (9, 4, 3)])
def test_bodies_stay_within_tensorrt_limits(cfg):
    """Every intermediate tensor has rank <= 8 (TensorRT's Dims::MAX_DIMS), and the static
    TensorRT check passes the bodies on every TensorRT version it knows."""
    from attn_deploy.trt_check.model_check import check_model

    k, g, s = cfg
    for model, shapes in (
            (carafe_model(cfg),
             {"features": [2, 8, 5, 11], "masks": [2, g * k * k, 5 * s, 11 * s]}),
            (single_node_model(criss_cross_function(18)),
             {"query": [2, 3, 5, 7], "key": [2, 3, 5, 7], "value": [2, 4, 5, 7]})):
        plain = apply_flavor(onnx.ModelProto.FromString(model.SerializeToString()), "plain")
        for i in plain.graph.input:
            dims = i.type.tensor_type.shape.dim
            for d, size in zip(dims, shapes[i.name]):
                d.Clear()
                d.dim_value = size
        inferred = onnx.shape_inference.infer_shapes(plain, strict_mode=True, data_prop=True)
        ranks = [len(v.type.tensor_type.shape.dim) for v in inferred.graph.value_info
                 if v.type.tensor_type.HasField("shape")]
        assert len(ranks) > 10 and max(ranks) <= 8
        assert check_model(model), check_model(model).summary()
        assert check_model(plain), check_model(plain).summary()


class References(nn.Module):
    def forward(self, x, m, q, v):
        return carafe_reference(x, m, 3, 2, 2), criss_cross_attention_reference(q, q, v)


def test_references_export_to_standard_onnx(tmp_path):
    """The references are the export-friendly twins: standard ops, dynamic N/H/W."""
    def inputs(n, h, w, seed):
        g = torch.Generator().manual_seed(seed)
        return (torch.randn(n, 4, h, w, generator=g), torch.rand(n, 18, 2 * h, 2 * w, generator=g),
                torch.randn(n, 2, h, w, generator=g), torch.randn(n, 3, h, w, generator=g))
    n, h, w = (torch.export.Dim(d) for d in "NHW")
    program = torch.onnx.export(
        References().eval(), inputs(2, 5, 6, 0), dynamo=True, verbose=False,
        dynamic_shapes=({0: n, 2: h, 3: w}, {0: n, 2: 2 * h, 3: 2 * w}, {0: n, 2: h, 3: w},
                        {0: n, 2: h, 3: w}))
    proto = program.model_proto
    assert {node.domain for node in proto.graph.node} <= {""}
    session = ort.InferenceSession(proto.SerializeToString())
    for args in (inputs(2, 5, 6, 1), inputs(3, 4, 9, 2)):
        got = session.run(None, dict(zip([i.name for i in proto.graph.input],
                                         (a.numpy() for a in args))))
        for g, e in zip(got, References()(*args)):
            assert rel_l2(g, e.numpy()) <= 1e-5
