"""The ``attn-deploy`` command line.

Commands live in the ``*_commands.py`` modules of this package; each defines
``add_commands(subparsers)`` and sets ``func(args) -> exit code`` on its parsers. Optional
runtimes are imported inside the commands, so the CLI works without them.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback

from attn_deploy.errors import AttnDeployError, UserCodeError


def build_parser() -> argparse.ArgumentParser:
    from attn_deploy.version import __version__

    parser = argparse.ArgumentParser(
        prog="attn-deploy",
        description="Export attention blocks to ONNX, validate them on every runtime present, "
                    "build TensorRT engines and write compatibility reports.")
    parser.add_argument("--version", action="version", version=f"attn_deploy {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="on an error, print the traceback (of your code, for errors "
                             "raised by your model module, factory or forward)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.endswith("_commands"):
            importlib.import_module(f"{__name__}.{info.name}").add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except AttnDeployError as exc:
        if args.debug:
            traceback.print_exception(exc, file=sys.stderr)
        hint = " (run with --debug for the traceback)" if isinstance(exc, UserCodeError) and \
            not args.debug else ""
        print(f"attn-deploy: error: {exc}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("attn-deploy: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
