"""Every block refuses bad constructor arguments and zero-size inputs with an AttnDeployError
that names the argument or the input (the cases are data, in block_cases.py)."""
import math
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import attn_deploy as ad
from attn_deploy.errors import AttnDeployError
from attn_deploy.modules import arg_checks

# the case tables are a plain module beside this file (pytest runs with --import-mode=importlib,
# which puts no test folder on sys.path); the README's reliability table imports it the same way
sys.path.insert(0, str(Path(__file__).resolve().parent))
from block_cases import (ACCEPTED, CLEAR, CONFIG, UNNAMED, ZERO_SIZE, Case,  # noqa: E402
                         config_cases, counts, outcome, zero_size_cases)

KEYS = ad.list_modules()
_CONFIG_CASES = config_cases()
_ZERO_CASES = zero_size_cases()


def _failures(cases):
    results = [(c.id, *outcome(c)) for c in cases]
    return [r for r in results if r[1] != CLEAR]


@pytest.mark.parametrize("key", KEYS)
def test_bad_configs_are_refused_by_name(key):
    cases = [c for c in _CONFIG_CASES if c.key == key]
    assert len(cases) >= 5, f"{key}: too few bad configs tried ({len(cases)})"
    assert _failures(cases) == []


@pytest.mark.parametrize("key", KEYS)
def test_zero_size_inputs_are_refused_by_name(key):
    cases = [c for c in _ZERO_CASES if c.key == key]
    assert cases and "N" in {c.zero_dim for c in cases}
    assert _failures(cases) == []


def test_every_block_and_every_kind_is_covered():
    assert {c.key for c in _CONFIG_CASES} == set(KEYS) == {c.key for c in _ZERO_CASES}
    assert len(KEYS) == 39
    # the derived cases reach the parameters every block shares
    tried = {(c.key, n) for c in _CONFIG_CASES for n in c.kwargs}
    for key in KEYS:
        params = ad.spec(key).config
        for name in ("channels", "dim", "rd_ratio", "rd_channels", "act_layer", "dropout"):
            if name in params:
                assert (key, name) in tried, (key, name)


def test_outcome_tells_the_outcomes_apart():
    ok = Case(CONFIG, "se", "channels=8", ("channels",), {"channels": 8})
    wrong_name = Case(CONFIG, "se", "channels=0", ("rd_ratio",), {"channels": 0})
    assert outcome(ok)[0] == ACCEPTED
    assert outcome(wrong_name)[0] == UNNAMED
    sub = [ok, wrong_name, _CONFIG_CASES[0], _ZERO_CASES[0]]
    tally = counts(sub)
    assert tally[CONFIG] == {"tried": 3, ACCEPTED: 1, UNNAMED: 1, CLEAR: 1}
    assert tally[ZERO_SIZE] == {"tried": 1, CLEAR: 1}


# --- property: a string, a float or a bool never becomes a size or a dim symbol -------------

_INT_PARAMS = sorted({(c.key, n) for c in _CONFIG_CASES if c.what.endswith("=-1")
                      for n in c.kwargs})
_NOT_AN_INT = st.one_of(st.text(max_size=4), st.floats(), st.booleans(),
                        st.integers(max_value=-1))


@settings(derandomize=True, max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(param=st.sampled_from(_INT_PARAMS), value=_NOT_AN_INT)
def test_non_int_sizes_never_reach_a_spec_or_a_block(param, value):
    key, name = param
    default = ad.spec(key)
    try:
        s = ad.spec(key, **{name: value})
    except AttnDeployError as exc:
        assert f"{name}:" in str(exc) or f"{name}," in str(exc)
    else:   # the parameter is not a size in the input shapes: those must be untouched
        assert set(s.symbols) <= set(default.symbols)
        assert all(type(d) is int and d >= 1 for t in s.inputs.values() for d in t
                   if not isinstance(d, str))
    with pytest.raises(AttnDeployError, match=f"{key}: {name}:"):
        ad.create(key, **{name: value})


# --- the shared vocabulary itself ---------------------------------------------------------

@pytest.mark.parametrize("check, value, expected", [
    (lambda v: arg_checks.int_arg("k", v, odd=True), 4, "k: expected an odd int >= 1, got 4"),
    (lambda v: arg_checks.int_arg("k", v, max=3), 9, "k: expected an int >= 1 and <= 3"),
    (lambda v: arg_checks.float_arg("t", v, min=0, min_open=True), 0.0, "t: expected a finite "
                                                                         "number in (0, inf)"),
    (lambda v: arg_checks.rate_arg("p", v), 1.0, "p: expected a finite number in [0, 1)"),
    (lambda v: arg_checks.int_tuple_arg("f", v, length=2), (1, 2, 3), "f: expected 2 ints"),
    (lambda v: arg_checks.str_tuple_arg("m", v), "rgb", "m: expected a non-empty tuple of str"),
    (lambda v: arg_checks.divisor_arg("g", v, "channels", 10), 4, "g: expected a divisor of "
                                                                  "channels = 10, got 4"),
])
def test_arg_checks_messages(check, value, expected):
    with pytest.raises(AttnDeployError, match=expected.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[")):
        check(value)


def test_arg_checks_return_canonical_values():
    import numpy as np
    assert arg_checks.int_arg("c", np.int64(8)) == 8 and type(arg_checks.int_arg("c", 8)) is int
    assert arg_checks.float_arg("r", 1) == 1.0 and arg_checks.ratio_arg("r", 1) == 1.0
    assert arg_checks.int_tuple_arg("s", [1, 2]) == (1, 2)
    assert arg_checks.optional_int_arg("c", None) is None
    assert arg_checks.bool_arg("b", False) is False
    assert math.isclose(arg_checks.float_arg("g", -2.5), -2.5)


def test_valid_configs_still_build_the_same_blocks():
    """The checks change nothing for valid values: same parameter shapes as before."""
    m = ad.create("se", channels=48, rd_ratio=1 / 3, act_layer=torch.nn.GELU)
    assert m.fc1.out_channels == 16 and isinstance(m.act, torch.nn.GELU)
    m = ad.create("mha", dim=12, num_heads=3, head_dim=5)
    assert m.q.out_features == 15
    m = ad.create("carafe", channels=8, up_group=2, scale_factor=3)
    assert m.content_encoder.out_channels == 9 * 2 * 25
