"""``bench --sizes``: the deployment-size preset (what each block gets) and its CLI parsing. No
timing here: the speed goals are checked by ``python -m attn_deploy.ops.benchmark``."""
import argparse

import pytest

from attn_deploy.cli import bench_commands
from attn_deploy.errors import AttnDeployError
from attn_deploy.harness.bench_sizes import DEPLOY_BLOCKS, bench_size
from attn_deploy.modules.registry import example_inputs, list_modules, spec


def test_deploy_sizes_of_carafe_and_cca_are_the_issue_15_cases():
    carafe = bench_size("carafe", "deploy")
    assert carafe.kwargs == {"channels": 256} and carafe.dims == {"N": 1, "H": 64, "W": 64}
    assert spec("carafe", **carafe.kwargs).shapes(**carafe.dims) == {"x": (1, 256, 64, 64)}
    cca = bench_size("cca", "deploy")
    assert spec("cca", **cca.kwargs).shapes(**cca.dims) == {"x": (1, 512, 64, 64)}


def test_every_block_gets_valid_deploy_dims_within_its_bounds():
    for key in list_modules():
        size = bench_size(key, "deploy")
        s = spec(key, **size.kwargs)
        assert set(size.dims) == set(s.symbols), key
        assert s.check_dims(size.dims) == size.dims, key     # bounds and multiples hold
        assert size.dims.get("N", 1) == 1, key
        if key not in DEPLOY_BLOCKS:                          # small blocks keep their channels
            assert size.kwargs == {} and s.inputs == spec(key).inputs, key
    assert bench_size("synthesizer", "deploy").dims["L"] == spec("synthesizer").max_dims["L"]
    assert bench_size("se", "deploy").dims == {"N": 1, "H": 32, "W": 32}


def test_default_sizes_are_the_spec_dims():
    for key in ("se", "cca", "mha"):
        size = bench_size(key)
        assert size.kwargs == {} and size.dims == dict(spec(key).dims)


def test_deploy_inputs_can_be_made_for_a_preset_with_constructor_arguments():
    size = bench_size("cca", "deploy")
    (x,) = example_inputs("cca", config=size.kwargs, **{**size.dims, "H": 3, "W": 5})
    assert tuple(x.shape) == (1, 512, 3, 5)


def test_unknown_preset_is_refused():
    with pytest.raises(AttnDeployError, match="sizes: expected one of"):
        bench_size("se", "huge")


def _bench_parser():
    parser = argparse.ArgumentParser()
    bench_commands.add_commands(parser.add_subparsers(dest="cmd"))
    return parser


def test_bench_cli_parses_sizes_and_refuses_it_with_shapes():
    parser = _bench_parser()
    args = parser.parse_args(["bench", "--all", "--sizes", "deploy", "--no-floors"])
    assert args.sizes == "deploy" and args.all and args.no_floors
    assert parser.parse_args(["bench", "se"]).sizes == "default"
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "se", "--sizes", "big"])
    both = parser.parse_args(["bench", "se", "--sizes", "deploy", "--shapes", "x:1x64x8x8"])
    with pytest.raises(AttnDeployError, match="--shapes or --sizes"):
        bench_commands.cmd_bench(both)
