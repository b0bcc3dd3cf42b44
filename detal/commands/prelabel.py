"""``detal prelabel``: pre-label any folder of images with trained weights, no project needed.

The command parses arguments, builds the adapter with :func:`make_adapter`
(:func:`detal.adapter.make_adapter`), calls :func:`detal.prelabel.prelabel` and
prints where each format went. Images that cannot be read are reported on
stderr and left out; if none can be read, it fails.

Class names come from ``--classes FILE`` (one a line), or else from the
weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detal.adapter import ModelAdapter
from detal.adapter import make_adapter as adapter_factory
from detal.commands.common import add_config_args, config_from_args
from detal.config import Config
from detal.errors import ConfigError, ModelError
from detal.export.registry import format_list
from detal.files import check_out_dir, list_images
from detal.labels import read_classes
from detal.prelabel import names_from_weights, prelabel

__all__ = ["make_adapter", "register", "run"]


def make_adapter(cfg: Config) -> ModelAdapter:
    """:func:`detal.adapter.make_adapter` (tests replace this function with a fake)."""
    return adapter_factory(cfg)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prelabel",
        help="pre-label a folder of images with trained weights (no project needed)",
        description=(
            "Run the detector on every image under --images and write pre-labels in the "
            f"formats asked for: {format_list(described=True, last=' and ')}. "
            "Boxes with confidence >= prelabel_conf are written."
        ),
    )
    p.add_argument("--weights", required=True, type=Path, help="trained YOLO weights (.pt)")
    p.add_argument("--images", required=True, type=Path, help="folder of images (searched recursively)")
    p.add_argument("--out", required=True, type=Path, help="folder to write the formats into")
    p.add_argument(
        "--format",
        dest="formats",
        action="append",
        metavar="FMT[,FMT]",
        help=f"{format_list()}; comma-separated or repeated (default: yolo)",
    )
    p.add_argument("--classes", type=Path, help="class names, one a line (default: from the weights)")
    p.add_argument(
        "--with-confidence",
        action="store_true",
        help="add a confidence column to the yolo labels (pre-labels only: trainers read 5 fields)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from detal.export import parse_formats

    cfg = config_from_args(args)
    formats = parse_formats(",".join(args.formats or ["yolo"]))
    weights = Path(args.weights)
    if not weights.is_file():
        raise ModelError(f"{weights}: weights file not found")
    images = list_images(args.images)
    check_out_dir(args.out)  # before the model runs, not after
    names = read_classes(args.classes) if args.classes else None
    adapter = make_adapter(cfg)
    if names is None:
        names = names_from_weights(adapter, weights)
        if not names:
            raise ConfigError(f"{weights}: no class names in the weights; pass --classes FILE")
    written, failed = prelabel(
        adapter, weights, images, args.out, names, cfg, formats,
        with_confidence=args.with_confidence, progress=not args.quiet,
    )
    for path, reason in failed:
        print(f"detal: skipped {path}: {reason}", file=sys.stderr)
    print(f"prelabeled {len(images) - len(failed)} images (conf >= {cfg.prelabel_conf:g})")
    for fmt, path in written.items():
        print(f"{fmt}: {path}")
    return 0
