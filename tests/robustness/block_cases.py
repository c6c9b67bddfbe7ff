"""Bad block configurations and zero-size block inputs, as data: case -> expected outcome.

Two categories:
- ``block config``: ``ad.create(key, **kwargs)`` with a value no block can take (0 or a
  negative size, a string, a float or a bool where an int is meant, a ratio outside (0, 1], a
  non-finite float, an unknown name, a width the reduction settings make 0, a divisor that
  does not divide). Expected: AttnDeployError whose message names the argument.
- ``block zero-size input``: the block's default config, called on inputs where one dim
  symbol of its spec is 0. Expected: AttnDeployError naming an input that has that dim.

Most config cases are derived from the constructors' signatures (every parameter annotated
``int``, ``float``, ``bool``, ``str`` or a tuple gets the bad values of its kind); the rest
are listed by hand. :func:`outcome` runs one case and says what happened; :func:`counts`
tallies every case per category, for the README's reliability table.
"""
from __future__ import annotations

import inspect
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch

import attn_deploy as ad
from attn_deploy.errors import AttnDeployError
from attn_deploy.modules.registry import _entry

CONFIG = "block config"
ZERO_SIZE = "block zero-size input"

# Outcomes. "clear error" is the only expected one for every case below.
CLEAR = "clear error"              # AttnDeployError naming the argument / input
UNNAMED = "error without the name"  # AttnDeployError, but the message misses the name
TRACEBACK = "traceback"            # any other exception type
ACCEPTED = "accepted"              # no error at all


@dataclass(frozen=True)
class Case:
    category: str
    key: str
    what: str                       # short label: "channels='8'", "N=0"
    names: tuple[str, ...]          # the message must contain one of these
    kwargs: dict[str, Any] = field(default_factory=dict)
    zero_dim: str | None = None     # ZERO_SIZE: the dim symbol set to 0

    @property
    def id(self) -> str:
        return f"{self.key}:{self.what}"


# Bad values per kind of parameter, by the annotation written in the constructor.
_BAD_INT = (0, -1, "8", 8.5, True)
_BAD_FLOAT = ("0.5", True, math.nan, math.inf)
_BAD_BOOL = ("yes", 1, None)
_BAD_CHOICE = ("no-such-choice", 3, None)
_BAD_INT_TUPLE = ((), (0,), ("2",), (2.5,), 3, "12")
_BAD_LAYER = ("no_such_layer", 3)
_BAD_RATIO = (0, -0.25, 1.5)
_BAD_RATE = (1.0, -0.1)

# Parameters whose kind the annotation does not tell (no annotation, or a wider range).
_KIND_BY_NAME = {"act_layer": "layer", "gate_layer": "layer", "pool_scales": "int_tuple",
                 "psp_sizes": "int_tuple", "rd_ratio": "ratio", "value_ratio": "ratio",
                 "dropout": "rate", "attn_drop": "rate", "modalities": "str_tuple",
                 "dense_factors": "int_tuple"}
_KIND_BY_ANNOTATION = {"int": "int", "int | None": "int", "float": "float", "bool": "bool",
                       "str": "choice", "tuple[int, ...]": "int_tuple",
                       "tuple[int, int] | None": "int_tuple", "tuple[str, ...]": "str_tuple"}
# Parameters that take 0 (an int >= 0), or any string (no fixed choices).
_ZERO_OK = {("bam", "num_dilated")}
_FREE_STRINGS = {("generalized_attention", "attention_type"), ("synthesizer", "mode")}

# Hand-listed: bad combinations and the block-specific rules.
_SPECIFIC = [
    ("se", {"rd_channels": 0}, "rd_channels"),
    ("cbam", {"spatial_kernel_size": 4}, "spatial_kernel_size"),
    ("carafe", {"up_kernel": 4}, "up_kernel"),
    ("carafe", {"channels": 6, "up_group": 4}, "up_group"),
    ("cgnl", {"channels": 1}, "channels"),                  # planes = channels // 2 = 0
    ("cgnl", {"groups": 5}, "groups"),
    ("cgnl", {"kernel": "rbf", "gamma": 0.0}, "gamma"),
    ("mha", {"num_heads": 5}, "num_heads"),
    ("synthesizer", {"num_heads": 3}, "num_heads"),
    ("synthesizer", {"mode": "dense+nope"}, "mode"),
    ("synthesizer", {"mode": "factorized_dense", "dense_factors": (3, 5)}, "dense_factors"),
    ("actor_transformer", {"in_dims": (8, 8)}, "in_dims"),  # two sizes, one modality
    ("actor_transformer", {"num_heads": 5}, "num_heads"),
    ("generalized_attention", {"attention_type": "0000"}, "attention_type"),
    ("generalized_attention", {"attention_type": 1111}, "attention_type"),
    ("generalized_attention", {"num_heads": 5}, "num_heads"),
    ("generalized_attention", {"position_embedding_dim": 6}, "position_embedding_dim"),
    ("local_relation", {"channel_sharing": 5}, "channel_sharing"),
    ("dgmn", {"weight_groups": 5}, "weight_groups"),
    ("dgmn", {"kernel_size": 4}, "kernel_size"),
    ("san", {"share_planes": 5}, "share_planes"),
    ("sasa", {"num_heads": 3}, "num_heads"),
    ("scconv", {"channels": 7}, "channels"),
    ("scconv", {"groups": 3}, "groups"),
    ("sk", {"groups": 5}, "groups"),
    ("split_attn", {"radix": 3}, "channels"),
    ("eca", {"kernel_size": 4}, "kernel_size"),
    ("eca", {"gamma": 0}, "gamma"),
    ("can_cross_attention", {"temperature": 0}, "temperature"),
    ("luong", {"attention": "local-m", "with_source_mask": False}, "with_source_mask"),
    ("danet_cam", {"channels": "C"}, "channels"),           # a string never becomes a dim
    ("can_cross_attention", {"channels": "C"}, "channels"),
    ("can_cross_attention", {"height": -6}, "height"),
]


def _kind(key: str, name: str, param: inspect.Parameter) -> str | None:
    if name in _KIND_BY_NAME:
        return _KIND_BY_NAME[name]
    if (key, name) in _FREE_STRINGS:
        return None
    return _KIND_BY_ANNOTATION.get(str(param.annotation))


def _bad_values(key: str, name: str, kind: str) -> tuple:
    if kind == "int":
        return tuple(v for v in _BAD_INT if not (v == 0 and (key, name) in _ZERO_OK))
    return {"float": _BAD_FLOAT, "bool": _BAD_BOOL, "choice": _BAD_CHOICE,
            "int_tuple": _BAD_INT_TUPLE, "str_tuple": ((), 3, (1,)), "layer": _BAD_LAYER,
            "ratio": _BAD_RATIO + _BAD_FLOAT, "rate": _BAD_RATE + _BAD_FLOAT}[kind]


def config_cases() -> list[Case]:
    """Every bad-config case: derived per parameter kind, then the hand-listed ones."""
    cases = []
    for key in ad.list_modules():
        params = inspect.signature(_entry(key).factory).parameters
        for name, param in params.items():
            kind = _kind(key, name, param)
            if kind is None:
                continue
            for v in _bad_values(key, name, kind):
                cases.append(Case(CONFIG, key, f"{name}={v!r}", (name,), {name: v}))
    for key, kwargs, name in _SPECIFIC:
        what = ",".join(f"{k}={v!r}" for k, v in kwargs.items())
        cases.append(Case(CONFIG, key, what, (name,), dict(kwargs)))
    return cases


def zero_size_cases() -> list[Case]:
    """For every block and every dim symbol of its default spec: that symbol set to 0."""
    cases = []
    for key in ad.list_modules():
        s = ad.spec(key)
        for sym in s.symbols:
            names = tuple(n for n, t in s.inputs.items() if sym in t)
            cases.append(Case(ZERO_SIZE, key, f"{sym}=0", names, zero_dim=sym))
    return cases


def all_cases() -> list[Case]:
    return config_cases() + zero_size_cases()


def _zero_inputs(key: str, sym: str) -> tuple[torch.Tensor, ...]:
    """The default example inputs of ``key`` with every axis of symbol ``sym`` cut to 0."""
    s = ad.spec(key)
    out = []
    for t, x in zip(s.inputs.values(), ad.example_inputs(key)):
        index = tuple(slice(0, 0) if d == sym else slice(None) for d in t)
        out.append(x[index])
    return tuple(out)


def outcome(case: Case) -> tuple[str, str]:
    """Run ``case``; returns (outcome, message or exception type)."""
    try:
        if case.category == CONFIG:
            ad.create(case.key, **case.kwargs)
        else:
            model = ad.create(case.key)
            inputs = _zero_inputs(case.key, case.zero_dim)
            with torch.no_grad():
                model(*inputs)
    except AttnDeployError as exc:
        msg = str(exc)
        named = any(f"{n}:" in msg for n in case.names)
        return (CLEAR if named else UNNAMED), msg
    except Exception as exc:  # noqa: BLE001 - any other type is the finding
        return TRACEBACK, f"{type(exc).__name__}: {exc}"
    return ACCEPTED, ""


def counts(cases: list[Case] | None = None) -> dict[str, dict[str, int]]:
    """{category: {"tried": n, outcome: count, ...}}, measured by running ``cases`` (default:
    every case, ~1,200, a few seconds)."""
    tally: dict[str, Counter] = {CONFIG: Counter(), ZERO_SIZE: Counter()}
    for case in all_cases() if cases is None else cases:
        tally[case.category]["tried"] += 1
        tally[case.category][outcome(case)[0]] += 1
    return {cat: dict(c) for cat, c in tally.items()}
