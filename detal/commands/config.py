"""``detal config``: print the resolved configuration."""

from __future__ import annotations

import argparse
import sys

import yaml

from detal.commands.common import add_config_args, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "config",
        help="print the resolved config (defaults, then --config, then --set)",
        description="Load a config, apply overrides, validate it and print the result as YAML.",
    )
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    sys.stdout.write(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return 0
