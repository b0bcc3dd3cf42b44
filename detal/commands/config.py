"""``detal config``: print the resolved configuration, or the documented defaults."""

from __future__ import annotations

import argparse
import sys

import yaml

from detal.commands.common import add_config_args, config_from_args
from detal.config import defaults_text
from detal.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "config",
        help="print the resolved config (defaults, then --config, then --set), or --defaults",
        description=(
            "Load a config, apply overrides, validate it and print the result as YAML. "
            "With --defaults, print the commented defaults file shipped with detal instead "
            "(every key, its default and its meaning)."
        ),
    )
    add_config_args(p)
    p.add_argument(
        "--defaults",
        action="store_true",
        help="print the packaged, commented defaults file (detal/defaults.yaml) verbatim",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "defaults", False):
        if getattr(args, "config", None) or getattr(args, "overrides", None):
            raise ConfigError("--defaults prints the packaged defaults; it takes no --config or --set")
        sys.stdout.write(defaults_text())
        return 0
    cfg = config_from_args(args)
    sys.stdout.write(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return 0
