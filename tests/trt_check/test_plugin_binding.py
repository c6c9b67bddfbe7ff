"""Plugin or local function, per TensorRT version: trt-check's rules (plugin_binding) against the
TensorRT stand-in's parser (tests/backends/tensorrt/fake_tensorrt.py), which states the same
release-note facts independently, on real exports of each flavor; and the README's table."""
import sys
from pathlib import Path
from types import SimpleNamespace

import onnx
import pytest

import attn_deploy as ad
from attn_deploy.errors import AttnDeployError
from attn_deploy.trt_check import check_model
from attn_deploy.trt_check.model_check import table_for
from attn_deploy.trt_check.plugin_binding import binding_table

sys.path.insert(0, str(Path(__file__).parents[1] / "backends" / "tensorrt"))
import fake_tensorrt  # noqa: E402

VERSIONS = ["10.3", "10.7", "10.10", "10.14", "10.15", "11.1"]
README = Path(__file__).parents[2] / "README.md"


@pytest.fixture(scope="module")
def carafe_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("carafe")
    return {f: ad.export_block("carafe", folder / f"{f}.onnx", flavor=f)
            for f in ("default", "tensorrt")}


def _fake_parse(version, path, loaded):
    trt = fake_tensorrt.make(version)
    if loaded:
        trt.get_plugin_registry().all_creators.append(SimpleNamespace(
            name="CARAFE", plugin_version="1", plugin_namespace="attn_deploy"))
    trt.OnnxParser(None, None).parse(onnx.load(str(path)).SerializeToString())
    return set(trt.calls["imported"][-1].values())


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("flavor", ["default", "tensorrt"])
@pytest.mark.parametrize("loaded", [True, False])
def test_trt_check_binds_like_the_parser(carafe_files, version, flavor, loaded):
    result = check_model(carafe_files[flavor], [version], plugins_loaded=loaded)
    ours = [n for n in result.versions[version].nodes if n.domain == "attn_deploy"]
    expected = _fake_parse(version, carafe_files[flavor], loaded)
    assert {n.via or "missing" for n in ours} == expected
    assert all(n.notes for n in ours)  # every node says why
    assert bool(result) == (expected != {"missing"})


def test_summary_names_plugin_and_function_nodes(carafe_files):
    text = check_model(carafe_files["default"], ["10.3", "10.10"]).summary()
    assert "TensorRT 10.3: PASS" in text and "(0 through attn_deploy plugins, 1 as their local" in text
    assert "TensorRT 10.10: PASS" in text and "(1 through attn_deploy plugins, 0 as" in text
    assert "prefers a registered plugin" in text and "operator table 10.3" in text


def test_operator_table_per_target_version():
    assert table_for("10.3") == "10.3" and table_for("10.15") == "10.3"
    assert table_for("11.4") == "11.1" and table_for("11.0") == "11.1"
    for bad in ("9.2", "12.0", "x"):
        with pytest.raises(AttnDeployError):
            table_for(bad)


def test_readme_table_is_the_rules():
    assert binding_table() in README.read_text(), \
        "README's flavor x TensorRT table differs from trt_check.plugin_binding.binding_table()"
