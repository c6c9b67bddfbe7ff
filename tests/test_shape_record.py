"""The sizes an exported block records for the runtime side (``attn_deploy_shapes``): written
once per symbol, shapes and profile ranges derived when read, on the graph's own axes; files of
the first layout (derived values) still load as they did."""
import json
import subprocess
import sys

import onnx
import pytest

import attn_deploy as ad
from attn_deploy.backends.tensorrt.profiles import profile_for_model, symbol_ranges
from attn_deploy.cli import main
from attn_deploy.cli.block_commands import _block_shapes_from_metadata
from attn_deploy.errors import AttnDeployError
from attn_deploy.shape_record import SHAPES_KEY, ShapeRecord, read_shape_record

NO_TORCH = ("import sys; sys.modules['torch'] = None\n"
            "from attn_deploy.cli import main; sys.exit(main(sys.argv[1:]))")
# what the previous version wrote for non_local (attn_deploy_shapes, first layout), verbatim
FIRST_LAYOUT = ('{"alternate": {"x": [3, 32, 13, 15]}, "default": {"x": [2, 32, 12, 12]}, '
                '"inputs": {"x": ["N", 32, "H", "W"]}, '
                '"ranges": {"H": [2, 12, 24], "N": [1, 2, 6], "W": [2, 12, 24]}}')


@pytest.fixture(scope="module")
def non_local(tmp_path_factory):
    return ad.export_block("non_local", tmp_path_factory.mktemp("rec") / "non_local.onnx")


def _with_record(src, dst, value: str):
    proto = onnx.load(str(src))
    next(p for p in proto.metadata_props if p.key == SHAPES_KEY).value = value
    onnx.save(proto, str(dst))
    return dst


def _profile(spec, ranges):
    """The profile the spec's ranges give its templates (written out here, not by profiles)."""
    return {n: tuple(tuple(ranges[d][k] if isinstance(d, str) else d for d in t)
                     for k in range(3)) for n, t in spec.inputs.items()}


def test_the_record_holds_each_size_once_and_readers_derive_the_rest(non_local):
    spec = ad.spec("non_local")
    proto = onnx.load(str(non_local))
    stored = json.loads({p.key: p.value for p in proto.metadata_props}[SHAPES_KEY])
    assert stored == {"dims": {"N": 2, "H": 12, "W": 12}, "multiples": {},
                      "min_dims": {"H": 2, "W": 2}, "max_dims": {}}
    assert read_shape_record(proto) == ShapeRecord.of_spec(spec)
    alternate = spec.alternate_dims()
    assert _block_shapes_from_metadata(str(non_local)) == [spec.shapes(),
                                                           spec.shapes(**alternate)]
    ranges = symbol_ranges(spec)
    assert ranges["H"][0] == 2 and ranges["N"] == (1, 2, 6)
    assert profile_for_model(proto) == _profile(spec, ranges)


def test_a_file_of_the_first_layout_loads_as_before(non_local, tmp_path):
    old = _with_record(non_local, tmp_path / "old.onnx", FIRST_LAYOUT)
    proto = onnx.load(str(old))
    assert _block_shapes_from_metadata(str(old)) == [{"x": (2, 32, 12, 12)},
                                                     {"x": (3, 32, 13, 15)}]
    assert profile_for_model(proto) == {"x": ((1, 32, 2, 2), (2, 32, 12, 12), (6, 32, 24, 24))}
    # its recorded alternate sizes are kept, not derived again (an older policy's sizes)
    older = json.loads(FIRST_LAYOUT)
    older["alternate"] = {"x": [3, 32, 14, 14]}
    older_file = _with_record(non_local, tmp_path / "older.onnx", json.dumps(older))
    assert _block_shapes_from_metadata(str(older_file))[1] == {"x": (3, 32, 14, 14)}
    # the runtime side (no PyTorch, no registry) validates it at those two shapes
    run = subprocess.run([sys.executable, "-c", NO_TORCH, "validate", str(old),
                          "--runtimes", "ort-cpu", "onnx-reference"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "x:2x32x12x12" in run.stdout and "x:3x32x13x15" in run.stdout


def test_a_static_export_is_read_as_static(tmp_path, capsys):
    """Which axes are dynamic is the graph's: the record of a --static file has sizes for
    symbols its graph no longer has, and validate/build-engine must not vary them."""
    path = ad.export_block("se", tmp_path / "se.onnx", static=True)
    shape = ad.spec("se").shapes()["x"]
    assert _block_shapes_from_metadata(str(path)) == [{"x": shape}]
    assert profile_for_model(onnx.load(str(path))) == {"x": (shape, shape, shape)}
    assert main(["validate", str(path), "--runtimes", "onnx-reference"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("PASS")


@pytest.mark.parametrize("value, match", [
    ("{not json", "unreadable attn_deploy_shapes"),
    ('["dims"]', "expected a JSON object"),
    ('{"dims": {"N": 0, "H": 12, "W": 12}}', "size of N must be an int >= 1, got 0"),
    ('{"dims": {"N": 2, "H": 12, "W": 12}, "max_dims": [16]}', "max_dims: expected an object"),
    ('{"inputs": {}, "default": {}, "alternate": {}, "ranges": {"N": [1, 2]}}',
     r"ranges: expected \[min, opt, max\]"),
    (FIRST_LAYOUT.replace('["N", 32, "H", "W"]', '["N", 32, "H", 8]'),
     r"alternate: sizes for \['H', 'N'\], ranges for \['H', 'N', 'W'\]"),
    ('{"dims": {"N": 2}}', r"dynamic dims \['H', 'W'\] of its inputs have no recorded size"),
])
def test_an_unusable_record_is_named(non_local, tmp_path, value, match):
    bad = _with_record(non_local, tmp_path / "bad.onnx", value)
    with pytest.raises(AttnDeployError, match=match) as err:
        _block_shapes_from_metadata(str(bad))
    assert str(bad) in str(err.value) and "give --shapes" in str(err.value)
