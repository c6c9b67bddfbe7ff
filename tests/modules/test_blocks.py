"""Every registered block, parametrized over the registry: spec sanity, docstring, eager
forward, and one ONNX export validated on ONNX Runtime CPU and onnx.reference against PyTorch at
the default dims and at dims where every symbol differs (from the same file), then checked
statically against TensorRT's ONNX operator support."""
import sys

import onnx
import pytest
import torch

import attn_deploy as ad
from attn_deploy.harness.validate import validate_block
from attn_deploy.trt_check.model_check import check_model

KEYS = ad.list_modules()


@pytest.mark.parametrize("key", KEYS)
def test_spec_is_consistent(key):
    s = ad.spec(key)
    assert s.inputs and s.outputs
    assert set(s.symbols) <= set(s.dims), f"every symbol needs a default size: {s.symbols}"
    assert s.family in ("channel", "spatial", "sequence")
    for dims in (s.dims, s.alternate_dims()):
        s.check_dims(dims)
        shapes = s.shapes(**dims)
        xs = ad.example_inputs(key, seed=3, **dims)
        assert [tuple(x.shape) for x in xs] == list(shapes.values())
        assert [x.dtype for x in xs] == [s.dtype(n) for n in s.inputs]
    alt = s.alternate_dims()
    assert all(alt[d] != s.dims[d] for d in s.symbols), "alternate dims must all differ"


VENUES = ("arXiv", "CVPR", "ICCV", "ECCV", "NeurIPS", "AAAI", "EMNLP", "ICML", "BMVC",
          "Neural Computation")


@pytest.mark.parametrize("key", KEYS)
def test_docstring_names_the_paper_and_shapes(key):
    cls = type(ad.create(key))
    module_doc = sys.modules[cls.__module__].__doc__ or ""
    assert len(module_doc) > 200, f"{key}: module docstring too short"
    assert any(v in module_doc for v in VENUES), f"{key}: docstring must cite the paper"
    assert "[" in (cls.forward.__doc__ or ""), f"{key}: forward docstring must give shapes"


@pytest.mark.parametrize("key", KEYS)
def test_eager_forward_is_finite_and_batch_independent(key):
    model = ad.create(key)
    s = ad.spec(key)
    xs = ad.example_inputs(key, seed=5)
    with torch.no_grad():
        out = model(*xs)
    out = (out,) if isinstance(out, torch.Tensor) else tuple(out)
    assert len(out) == len(s.outputs)
    for o in out:
        assert torch.isfinite(o.float()).all(), f"{key}: non-finite output"
    if "N" in s.symbols:  # sample 0 must not depend on the rest of the batch
        first = tuple(x[:1] for x in xs)
        with torch.no_grad():
            solo = model(*first)
        solo = (solo,) if isinstance(solo, torch.Tensor) else tuple(solo)
        for a, b in zip(out, solo):
            # the batch axis is the one where the full run has N and the solo run 1
            axes = [i for i, (p, q) in enumerate(zip(a.shape, b.shape)) if p != q]
            assert len(axes) == 1 and b.shape[axes[0]] == 1, (a.shape, b.shape)
            torch.testing.assert_close(a.narrow(axes[0], 0, 1), b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("key", KEYS)
def test_export_and_parity_on_every_cpu_runtime(key, tmp_path, randomize_norms):
    torch.manual_seed(1)
    model = randomize_norms(ad.create(key), seed=1)
    v = validate_block(key, runtimes=["ort-cpu", "onnx-reference"], workdir=tmp_path,
                       model=model)
    assert v.export_ok, v.export_error
    failures = [f"{r.runtime} {r.shapes}: {r.message}" for r in v.results if not r.passed]
    assert not failures, "\n".join(failures)
    assert len(v.for_runtime("ort-cpu")) == 2 and len(v.for_runtime("onnx-reference")) == 2

    proto = onnx.load(v.onnx_path)
    s = ad.spec(key)
    by_name = {i.name: i for i in proto.graph.input}
    for name, template in s.inputs.items():
        dims = by_name[name].type.tensor_type.shape.dim
        got = tuple(d.dim_param if d.dim_param else d.dim_value for d in dims)
        assert got == tuple(template), f"{name}: {got} != {template}"
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["attn_deploy_block"] == key and meta["attn_deploy_version"] == ad.__version__

    # the same file, statically checked against TensorRT's ONNX parser support (10.3 and newest)
    result = check_model(v.onnx_path)
    assert result, f"{key}:\n{result.summary()}"


@pytest.mark.parametrize("key", KEYS)
def test_wrong_channel_count_is_a_clear_error(key):
    """Every input with a fixed channel axis (axis 1 of a rank 3+ template) is checked."""
    s = ad.spec(key)
    model = ad.create(key)
    xs = list(ad.example_inputs(key, seed=2))
    for i, (name, template) in enumerate(s.inputs.items()):
        if len(template) < 3 or not isinstance(template[1], int) or \
                not s.dtype(name).is_floating_point:
            continue
        bad = list(xs)
        shape = list(bad[i].shape)
        shape[1] += 1
        bad[i] = torch.randn(shape)
        with pytest.raises(ad.AttnDeployError):
            model(*bad)
