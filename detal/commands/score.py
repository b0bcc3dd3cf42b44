"""``detal score``: the uncertainty of every image in a folder, as a CSV.

The Python API behind it is :func:`score_images` (predict + score) and
:func:`write_scores_csv`; the command only parses arguments. The CSV has one
row per readable image, in path order, with the columns ``path, score,
n_boxes, top_class``: ``n_boxes`` counts the boxes with confidence >=
``score_conf`` (the ones that make up the score), and ``top_class`` is the
class id of the most confident of them (empty when there is none). Images
that cannot be read are left out of the CSV and reported on stderr.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from detal.commands.common import add_config_args, config_from_args
from detal.config import Config
from detal.errors import DataError, ModelError
from detal.files import IMAGE_SUFFIXES, atomic_write
from detal.scoring import ImageScore, score_predictions
from detal.uncertainty import AGGREGATIONS, MEASURES

__all__ = ["check_out_file", "list_images", "register", "run", "score_images", "write_scores_csv"]

CSV_COLUMNS = ("path", "score", "n_boxes", "top_class")


def list_images(folder: Path) -> list[Path]:
    """Every image file under ``folder`` (recursively), sorted by path."""

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: image folder not found")
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return images


def score_images(
    weights: Path, images: Sequence[Path], cfg: Config, *, progress: bool = True
) -> tuple[list[ImageScore], list[tuple[Path, str]]]:
    """Predict with ``weights`` and score each image with ``cfg``'s measure and aggregation.

    Boxes are predicted at ``cfg.score_conf`` (lower ones would not count),
    NMS at ``cfg.iou``, ``cfg.predict_batch`` images per forward pass.
    Returns the scores in input order and the images that could not be read.
    """
    from detal.ultra import UltralyticsAdapter

    weights = Path(weights)
    if not weights.is_file():
        raise ModelError(f"{weights}: weights file not found")
    adapter = UltralyticsAdapter(cfg)
    result = adapter.predict(
        weights, images, conf=cfg.score_conf, iou=cfg.iou, batch=cfg.predict_batch, progress=progress
    )
    return score_predictions(result.predictions, cfg), result.failed


def check_out_file(out: Path) -> Path:
    """``out`` if a file can be written there; :class:`DataError` naming why not."""
    out = Path(out)
    if out.is_dir():
        raise DataError(f"{out}: is a directory, expected the path of the CSV file to write")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise DataError(f"{out}: cannot write there, {parent} is a file, not a folder")
            break
    return out


def write_scores_csv(scores: Sequence[ImageScore], out: Path) -> Path:
    """Write ``scores`` as CSV (``path, score, n_boxes, top_class``) to ``out``."""
    out = check_out_file(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{out}: cannot create its folder ({exc.strerror})") from None
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for s in scores:
        writer.writerow([str(s.path), f"{s.score:.6f}", s.n_boxes, "" if s.top_class is None else s.top_class])
    try:
        atomic_write(out, buf.getvalue())
    except OSError as exc:
        out.with_name(f".{out.name}.tmp-{os.getpid()}").unlink(missing_ok=True)  # atomic_write's temp
        raise DataError(f"{out}: cannot write ({exc.strerror})") from None
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score",
        help="score every image in a folder by uncertainty (CSV: path, score, n_boxes, top_class)",
        description=(
            "Run the detector on every image under --images and write one uncertainty score per "
            "image. Boxes with confidence below score_conf do not count; an image with none gets "
            "empty_image_score."
        ),
    )
    p.add_argument("--weights", required=True, type=Path, help="trained YOLO weights (.pt)")
    p.add_argument("--images", required=True, type=Path, help="folder of images (searched recursively)")
    p.add_argument("--measure", choices=tuple(MEASURES), help="per-box measure (default: config)")
    p.add_argument("--aggregate", choices=AGGREGATIONS, help="per-image reduction (default: config)")
    p.add_argument("--out", required=True, type=Path, help="CSV file to write")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    changes = {k: getattr(args, k) for k in ("measure", "aggregate") if getattr(args, k)}
    if changes:
        cfg = cfg.replace(**changes)
    if not Path(args.weights).is_file():
        raise ModelError(f"{args.weights}: weights file not found")
    images = list_images(args.images)
    check_out_file(args.out)  # before the model runs, not after
    scores, failed = score_images(args.weights, images, cfg, progress=not args.quiet)
    if not scores:
        raise DataError(f"{args.images}: none of the {len(images)} images could be read")
    write_scores_csv(scores, args.out)
    for path, reason in failed:
        print(f"detal: skipped {path}: {reason}", file=sys.stderr)
    print(f"scored {len(scores)} images ({cfg.measure}, {cfg.aggregate}) -> {args.out}")
    return 0
