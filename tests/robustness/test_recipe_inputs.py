"""Bad recipes: every case of recipe_cases is a one-line AttnDeployError naming the key (or the
file's problem); the base recipe the cases start from loads with the values it says."""
import sys
from pathlib import Path

import pytest

from attn_deploy.deploy.recipe import load_recipe

# the case table is a plain module beside this file (see test_block_args.py)
sys.path.insert(0, str(Path(__file__).resolve().parent))
import recipe_cases  # noqa: E402
from recipe_cases import BASE, CASES, CLEAR, outcome  # noqa: E402


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_recipe_is_a_clear_error(case, tmp_path):
    result, message = outcome(case, tmp_path)
    assert result == CLEAR, f"{case.name}: {result}: {message}"


def test_base_recipe_loads_as_written(tmp_path):
    (tmp_path / "r.toml").write_text(BASE)
    r = load_recipe(tmp_path / "r.toml")
    assert (r.deployable, r.opset, r.flavor, r.precision, r.seed) == (True, 18, "default",
                                                                      "fp32", 0)
    assert r.multiples == {"H": 8, "W": 8} and r.tolerances == {"fp32": 1e-5}
    assert r.runtimes == ["ort-cpu"] and r.output_names == ["logits"]
    assert r.tensorrt["precision"] == "fp16"


def test_deployable_false_stays_false(tmp_path):
    (tmp_path / "r.toml").write_text(BASE.replace("deployable = true", "deployable = false"))
    assert load_recipe(tmp_path / "r.toml").deployable is False


def test_counts_cover_every_case(monkeypatch):
    monkeypatch.setattr(recipe_cases, "outcome", lambda case, root: ("accepted", ""))
    assert recipe_cases.counts() == {recipe_cases.CATEGORY: {"tried": len(CASES),
                                                            "accepted": len(CASES)}}
