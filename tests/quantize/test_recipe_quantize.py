"""A recipe's [quantize] table: export, validate, quantize and validate the int8 file."""
import pytest

from attn_deploy.cli import main
from attn_deploy.deploy.recipe import load_recipe
from attn_deploy.errors import AttnDeployError

RECIPE = """
[model]
factory = "attn_deploy.modules.registry:create"
kwargs = {{ key = "cca", channels = 16 }}

[inputs]
x = ["N", 16, "H", "W"]

[export]
output = "{out}/cca.onnx"
outputs = ["y"]
dims = {{ N = 2, H = 12, W = 12 }}

[validate]
shapes = [{{ N = 2, H = 12, W = 12 }}, {{ N = 1, H = 9, W = 14 }}]
runtimes = ["ort-cpu"]
{quantize}
"""


def test_recipe_quantize_table(tmp_path, capsys):
    quantize = (f'[quantize]\noutput = "{tmp_path}/cca.int8.onnx"\ncalibration = "random"\n'
                'samples = 4\nruntimes = ["ort-cpu", "onnx-reference"]\n')
    recipe = tmp_path / "cca.toml"
    recipe.write_text(RECIPE.format(out=tmp_path, quantize=quantize))
    assert main(["export", "--recipe", str(recipe)]) == 0
    out = capsys.readouterr().out
    assert "cca.int8.onnx: 6 node(s) in int8" in out and "4 sample(s)" in out
    assert "SQNR dB" in out and out.count("pass") == 6  # 2 fp32 + 4 int8 rows
    assert (tmp_path / "cca.int8.onnx").exists()


@pytest.mark.parametrize("table,match", [
    ('[quantize]\noutput = "a.onnx"\n', r"\[quantize\] calibration"),
    ('[quantize]\ncalibration = "random"\n', r"\[quantize\] output"),
    ('[quantize]\noutput = "a"\ncalibration = "random"\nsamples = 0\n', "positive integer"),
    ('[quantize]\noutput = "a"\ncalibration = "random"\nbits = 4\n',
     r"unknown key\(s\) \['bits'\]"),
])
def test_bad_quantize_tables(tmp_path, table, match):
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.format(out=tmp_path, quantize=table))
    with pytest.raises(AttnDeployError, match=match):
        load_recipe(recipe)
