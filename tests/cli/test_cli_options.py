"""The options of the commands whose option groups live in ``cli/result_options.py``: flags,
defaults, choices, metavars, help text and the ``--help`` section each sits in, against the
table recorded before the groups were folded (``data/cli_options.json``).

A deliberate change of one of these options updates the table:
``python tests/cli/test_cli_options.py --write``.
"""
import argparse
import json
import sys
from pathlib import Path

import pytest

from attn_deploy.cli import build_parser

TABLE = Path(__file__).with_name("data") / "cli_options.json"
COMMANDS = ("export", "validate", "report", "bench")


def _subparser(command: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def _plain(value):
    """JSON's view of a default or choices (tuples become lists, types their names)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return getattr(value, "__name__", repr(value))


def option_table(command: str) -> list[dict]:
    """Every argument of ``attn-deploy COMMAND`` in ``--help`` order, with its section."""
    parser = _subparser(command)
    # argparse's own two sections are named by the Python version ("optional arguments")
    own = {id(parser._positionals): "positionals", id(parser._optionals): "options"}
    section = {id(a): own.get(id(g), g.title) for g in parser._action_groups
               for a in g._group_actions}
    return [{"flags": a.option_strings or [a.dest], "dest": a.dest, "section": section[id(a)],
             "action": type(a).__name__, "nargs": _plain(a.nargs),
             "default": _plain(a.default), "choices": _plain(a.choices),
             "metavar": _plain(a.metavar), "type": _plain(a.type),
             "required": a.required, "help": a.help}
            for a in parser._actions]


@pytest.mark.parametrize("command", COMMANDS)
def test_options_are_those_recorded(command):
    recorded = json.loads(TABLE.read_text())[command]
    now = option_table(command)
    assert [o["flags"] for o in now] == [o["flags"] for o in recorded]
    for mine, before in zip(now, recorded):
        assert mine == before, mine["flags"]
    assert _subparser(command).epilog == json.loads(TABLE.read_text())["epilog"][command]


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    TABLE.write_text(json.dumps({**{c: option_table(c) for c in COMMANDS},
                                 "epilog": {c: _subparser(c).epilog for c in COMMANDS}},
                                indent=1) + "\n")
