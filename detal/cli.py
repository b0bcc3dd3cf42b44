"""The ``detal`` command line: a thin layer over the Python API.

Every subcommand lives in ``detal.commands.<name>`` and registers itself. A
:class:`~detal.errors.DetalError` raised anywhere below is printed as one line
on stderr (``detal: error: ...``) and the process exits with status 1; no
traceback is shown for input errors. ``main(argv)`` returns the exit code, so
tests call it in-process.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from detal import __version__
from detal.errors import DetalError

# Order is the order in `detal --help`.
COMMANDS = (
    "config",
    "project",
    "data",
    "simulate",
    "score",
    "prelabel",
    "review",
    "push",  # push and pull (Label Studio)
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="detal",
        description="Active-learning pre-labeling for object detection (Ultralytics YOLO).",
    )
    parser.add_argument("--version", action="version", version=f"detal {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"detal.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except DetalError as exc:
        message = " ".join(str(exc).split("\n"))
        print(f"detal: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("detal: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
