"""The user's mistakes on the command line (their factory raising, a syntax error or relative
import in their module, a forward failing on the example, a text checkpoint, a file where a
folder is meant): one ``attn-deploy: error:`` line with the cause, exit 2; ``--debug`` adds the
traceback of the user's code."""
import sys
from pathlib import Path

import pytest

# the case table is a plain module beside this file (see test_block_args.py)
sys.path.insert(0, str(Path(__file__).resolve().parent))
import cli_cases  # noqa: E402
from cli_cases import CASES, CLEAR, outcome, run  # noqa: E402


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_mistake_is_one_clear_line(case, tmp_path):
    result, err = outcome(case, tmp_path)
    assert result == CLEAR, f"{case.name}: {result}: {err}"


def test_user_code_errors_point_to_debug(tmp_path):
    case = next(c for c in CASES if c.name == "factory raises ValueError")
    code, err, _ = run(case, tmp_path)
    assert code == 2 and err.strip().endswith("(run with --debug for the traceback)")


def test_debug_shows_the_users_traceback(tmp_path):
    case = next(c for c in CASES if c.name == "factory raises ValueError")
    code, err, _ = run(case, tmp_path, debug=True)
    assert code == 2 and "Traceback (most recent call last)" in err
    assert "cm_raise.py" in err and "raise ValueError('bad width')" in err  # the user's frame
    assert err.strip().splitlines()[-1].startswith("attn-deploy: error: ")
    assert "--debug for the traceback" not in err


def test_counts_cover_every_case(monkeypatch):
    monkeypatch.setattr(cli_cases, "outcome", lambda case, root: ("accepted", ""))
    assert cli_cases.counts() == {cli_cases.CATEGORY: {"tried": len(CASES),
                                                       "accepted": len(CASES)}}
