"""``detal prelabel``: pre-label any folder of images with trained weights, no project needed.

The Python API behind it is :func:`prelabel`: predict with a
:class:`~detal.adapter.ModelAdapter`, score every image (for Label Studio's
prediction score), and write the formats asked for with
:func:`detal.export.export_predictions`. The command parses arguments,
builds the adapter with :func:`make_adapter` (Ultralytics, imported only
then) and prints where each format went. Images that cannot be read are
reported on stderr and left out; if none can be read, it fails.

Class names come from ``--classes FILE`` (one a line), or else from the
weights, when the adapter can tell them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from detal.adapter import ModelAdapter
from detal.adapter import make_adapter as adapter_factory
from detal.commands.common import add_config_args, config_from_args
from detal.config import Config
from detal.errors import ConfigError, DataError, ModelError
from detal.export.registry import format_list
from detal.labels import read_classes
from detal.scoring import score_predictions

__all__ = ["make_adapter", "prelabel", "register", "run"]


def make_adapter(cfg: Config) -> ModelAdapter:
    """:func:`detal.adapter.make_adapter` (tests replace this function with a fake)."""
    return adapter_factory(cfg)


def names_from_weights(adapter: ModelAdapter, weights: Path) -> list[str]:
    """The class names stored in ``weights`` (empty if it stores none)."""
    return [str(n) for n in adapter.class_names(weights)]


def prelabel(
    adapter: ModelAdapter,
    weights: Path,
    images: Sequence[Path],
    out_dir: Path,
    names: Sequence[str],
    cfg: Config,
    formats: Sequence[str] = ("yolo",),
    *,
    with_confidence: bool = False,
    progress: bool = True,
) -> tuple[dict[str, Path], list[tuple[Path, str]]]:
    """Predict, score and export; returns ``format -> path`` and the unreadable images.

    Boxes with confidence >= ``cfg.prelabel_conf`` become pre-labels; the
    image uncertainty (``cfg.measure``/``cfg.aggregate`` over boxes >=
    ``cfg.score_conf``) sets Label Studio's prediction score.
    """
    from detal.export import export_predictions, normalise_uncertainty, parse_formats

    formats = parse_formats(formats)
    result = adapter.predict(
        Path(weights),
        list(images),
        conf=min(cfg.prelabel_conf, cfg.score_conf),
        iou=cfg.iou,
        batch=cfg.predict_batch,
        progress=progress,
    )
    preds = result.predictions
    if not preds:
        raise DataError(f"none of the {len(images)} images could be read")
    # Every prediction knows the model's class count, boxes or not (0: the adapter cannot tell).
    widths = {p.detections.n_classes for p in preds} - {0}
    if widths and widths != {len(names)}:
        raise DataError(
            f"{weights}: the model predicts {', '.join(map(str, sorted(widths)))} classes "
            f"but {len(names)} class names were given"
        )
    scores = normalise_uncertainty({s.path.name: s.score for s in score_predictions(preds, cfg)})
    written = export_predictions(
        preds,
        names,
        out_dir,
        formats,
        scores=scores,
        with_confidence=with_confidence,
        conf=cfg.prelabel_conf,
    )
    return written, result.failed


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
    from detal.commands.score import list_images
    from detal.export import parse_formats

    cfg = config_from_args(args)
    formats = parse_formats(",".join(args.formats or ["yolo"]))
    weights = Path(args.weights)
    if not weights.is_file():
        raise ModelError(f"{weights}: weights file not found")
    images = list_images(args.images)
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
