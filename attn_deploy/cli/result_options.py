"""The options every validating command shares, one function per group: which runtimes run
(``--runtimes``), what passes (``--allow-nonfinite``), the results for CI (``--json``,
``--junit-xml``, ``--require``, golden outputs); and the end of such a command: write the result
files, say which required runtime is absent, return the exit code (documented in
:mod:`attn_deploy.harness.result_files`)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from attn_deploy.errors import AttnDeployError

EXIT_CODES = ("exit codes: 0 every runtime that ran passed; 1 a parity failure (or a failed "
              "export, or no runtime ran); 2 bad input or usage; 3 a runtime named by "
              "--require is absent")


ALLOW_NONFINITE_HELP = ("accept NaN/Inf in outputs where the reference has the same ones "
                        "(default: any NaN or Inf fails, as Polygraphy's --validate does)")


def add_runtimes_option(parser, help: str | None = None, default=None) -> None:
    """``--runtimes RUNTIME [...]`` on ``parser`` (or an argument group), any runtime of
    :data:`attn_deploy.backends.RUNTIMES`; ``help`` and ``default`` say what the command does
    with them (default None: every runtime present)."""
    from attn_deploy.backends import RUNTIMES

    parser.add_argument("--runtimes", nargs="+", choices=RUNTIMES, default=default,
                        metavar="RUNTIME", help=help)


def add_allow_nonfinite_option(parser) -> None:
    """``--allow-nonfinite``: the verdict's one switch on NaN/Inf (see harness.compare)."""
    parser.add_argument("--allow-nonfinite", action="store_true", help=ALLOW_NONFINITE_HELP)


def add_result_options(parser, golden: bool = False) -> None:
    from attn_deploy.backends import ONNX_RUNTIMES

    g = parser.add_argument_group("results for CI")
    g.add_argument("--json", metavar="FILE",
                   help="write every row (runtime, shapes, status, errors, tolerance, "
                        "versions) as JSON")
    g.add_argument("--junit-xml", metavar="FILE",
                   help="write a JUnit XML report: one test case per runtime x shape")
    g.add_argument("--require", nargs="+", action="extend", choices=ONNX_RUNTIMES,
                   metavar="RUNTIME",
                   help="fail with exit code 3 when this runtime is absent (it is run even "
                        "if --runtimes leaves it out)")
    if golden:
        g.add_argument("--save-outputs", metavar="FILE.npz",
                       help="save the inputs and the reference's outputs (golden outputs)")
        g.add_argument("--load-outputs", metavar="FILE.npz",
                       help="compare against golden outputs saved by --save-outputs instead "
                            "of a fresh reference (the file fixes inputs and shapes)")
    parser.epilog = EXIT_CODES


def check_result_paths(args) -> None:
    """Refuse result files in folders that do not exist before any work is done."""
    for option in ("json", "junit_xml", "save_outputs"):
        value = getattr(args, option, None)
        if value and not Path(value).parent.is_dir():
            raise AttnDeployError(f"--{option.replace('_', '-')} {value}: folder "
                                  f"{str(Path(value).parent)!r} does not exist")


def with_required(runtimes: Sequence[str] | None, require: Sequence[str] | None):
    """``--runtimes`` plus every ``--require``d runtime it leaves out (None: all present,
    which includes every runtime that can be required)."""
    if runtimes is None or not require:
        return runtimes
    return list(runtimes) + [r for r in require if r not in runtimes]


def finish(validations: Sequence, args, command: str) -> int:
    """Write ``--json`` / ``--junit-xml``, report absent required runtimes, return the code."""
    from attn_deploy.harness.result_files import (exit_code, missing_required, write_json,
                                                  write_junit_xml)

    require = args.require or ()
    if args.json:
        write_json(args.json, validations, command=command, require=require)
    if args.junit_xml:
        write_junit_xml(args.junit_xml, validations, command=command, require=require)
    for runtime, why in missing_required(validations, require):
        print(f"required runtime {runtime} is absent: {why}", file=sys.stderr)
    return exit_code(validations, require)


def verdict(code: int, validations: Sequence) -> str:
    """The last line a validating command prints."""
    if code == 0:
        return "PASS"
    if code == 3:
        return "FAIL: a required runtime is absent"
    if any(not v.export_ok for v in validations):
        return "FAIL: export failed"
    ran = any(r.status != "unavailable" for v in validations for r in v.results)
    return "FAIL" if ran else "FAIL: no runtime ran"
