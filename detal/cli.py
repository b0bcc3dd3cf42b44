"""The ``detal`` command line: a thin layer over the Python API.

Every subcommand lives in ``detal.commands.<name>`` and registers itself. A
:class:`~detal.errors.DetalError` raised anywhere below is printed as one line
on stderr (``detal: error: ...``) and the process exits with status 1; no
traceback is shown for input errors. A write refused because the disk is full
(an ``OSError`` or ``sqlite3.Error`` that :func:`detal.errors.disk_full`
recognises) is printed the same way, naming the file, or else the command's
project or ``--out``; any other such error is a bug and keeps its traceback.
``main(argv)`` returns the exit code, so tests call it in-process.
"""

from __future__ import annotations

import argparse
import importlib
import sqlite3
import sys
from collections.abc import Sequence

from detal import __version__
from detal.errors import DetalError, disk_full

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
        return _error(exc)
    except (OSError, sqlite3.Error) as exc:
        error = disk_full(exc, _written_path(args))
        if error is None:
            raise
        return _error(error)
    except KeyboardInterrupt:
        print("detal: interrupted", file=sys.stderr)
        return 130


def _error(exc: DetalError) -> int:
    message = " ".join(str(exc).split("\n"))
    print(f"detal: error: {message}", file=sys.stderr)
    return 1


def _written_path(args: argparse.Namespace) -> str | None:
    """What a command writes into, for an error that names no file: its project, else its ``--out``."""
    for name in ("project", "out"):
        value = getattr(args, name, None)
        if value is not None:
            return str(value)
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
