"""``detal score``: the uncertainty of every image in a folder, as a CSV.

The Python API behind it is :func:`score_images` (predict + score) and
:func:`write_scores_csv`; the command only parses arguments. The CSV has one
row per readable image, in path order, with the columns ``path, score,
n_boxes, top_class``: ``n_boxes`` counts the boxes with confidence >=
``score_conf`` (the ones that make up the score), and ``top_class`` is the
class id of the most confident of them (empty when there is none). When the
measure is a weighted mix (``--measure binary_entropy=1,localization=1``), one
column ``score_<measure>`` per measure follows: that measure alone, aggregated
the same way. ``--embeddings FILE.npz`` also saves each image's embedding
(``paths``, ``embeddings`` float16 ``(n, d)``), read in the same forward pass.
Images that cannot be read are left out of the CSV and reported on stderr.

``class_weighting: difficulty`` needs per-class AP from an evaluation, which
``detal score`` does not run: every class weight is then 1 (a note says so).
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
from detal.uncertainty import (
    AGGREGATIONS,
    MEASURES,
    measure_label,
    measure_weights,
    needs_dfl,
    parse_measure,
)

__all__ = [
    "check_out_file", "list_images", "register", "run", "score_images", "write_embeddings",
    "write_scores_csv",
]

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
    weights: Path,
    images: Sequence[Path],
    cfg: Config,
    *,
    progress: bool = True,
    embeddings: bool = False,
    class_ap: Sequence[float | None] | None = None,
) -> tuple[list[ImageScore], list[tuple[Path, str]]]:
    """Predict with ``weights`` and score each image with ``cfg``'s measure and aggregation.

    Boxes are predicted at ``cfg.score_conf`` (lower ones would not count),
    NMS at ``cfg.iou``, ``cfg.predict_batch`` images per forward pass. DFL
    logits are read when the measure needs them; ``embeddings`` fills
    :attr:`ImageScore.embedding`. ``class_ap`` feeds ``class_weighting``.
    Returns the scores in input order and the images that could not be read.
    """
    from detal.adapter import make_adapter

    weights = Path(weights)
    if not weights.is_file():
        raise ModelError(f"{weights}: weights file not found")
    adapter = make_adapter(cfg)
    result = adapter.predict(
        weights,
        images,
        conf=cfg.score_conf,
        iou=cfg.iou,
        batch=cfg.predict_batch,
        progress=progress,
        with_dfl=needs_dfl(cfg.measure),
        with_embeddings=embeddings,
    )
    return score_predictions(result.predictions, cfg, class_ap=class_ap), result.failed


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


def write_scores_csv(scores: Sequence[ImageScore], out: Path, measure: object = None) -> Path:
    """Write ``scores`` as CSV (``path, score, n_boxes, top_class``) to ``out``.

    With a mix as ``measure``, a ``score_<name>`` column per measure follows.
    """
    out = check_out_file(out)
    parts = list(measure_weights(measure)) if isinstance(measure, dict) else []
    if len(parts) < 2:
        parts = []
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{out}: cannot create its folder ({exc.strerror})") from None
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow([*CSV_COLUMNS, *(f"score_{name}" for name in parts)])
    for s in scores:
        top = "" if s.top_class is None else s.top_class
        columns = (f"{s.components[n]:.6f}" for n in parts)
        writer.writerow([str(s.path), f"{s.score:.6f}", s.n_boxes, top, *columns])
    try:
        atomic_write(out, buf.getvalue())
    except OSError as exc:
        out.with_name(f".{out.name}.tmp-{os.getpid()}").unlink(missing_ok=True)  # atomic_write's temp
        raise DataError(f"{out}: cannot write ({exc.strerror})") from None
    return out


def write_embeddings(scores: Sequence[ImageScore], out: Path) -> Path:
    """Save the images' embeddings as ``.npz``: ``paths`` (str) and ``embeddings`` float16 ``(n, d)``."""
    import numpy as np

    out = Path(out)
    if out.suffix != ".npz":
        raise DataError(f"{out}: the embeddings file must end in .npz")
    missing = [str(s.path) for s in scores if s.embedding is None]
    if missing:
        raise ModelError(f"{missing[0]}: no embedding was computed")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    paths = np.array([str(s.path) for s in scores])
    np.savez(tmp, paths=paths, embeddings=np.stack([s.embedding for s in scores]))
    tmp.replace(out)
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
    p.add_argument(
        "--measure",
        help=f"per-box measure ({', '.join(MEASURES)}) or a weighted mix such as "
        "binary_entropy=1,localization=1 (weights normalised to sum 1; default: config)",
    )
    p.add_argument("--aggregate", choices=AGGREGATIONS, help="per-image reduction (default: config)")
    p.add_argument("--out", required=True, type=Path, help="CSV file to write")
    p.add_argument("--embeddings", type=Path, help="also save the image embeddings to this .npz file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    changes = {k: getattr(args, k) for k in ("measure", "aggregate") if getattr(args, k)}
    if args.measure:
        changes["measure"] = parse_measure(args.measure)
    if changes:
        cfg = cfg.replace(**changes)
    if args.embeddings is not None and Path(args.embeddings).suffix != ".npz":
        raise DataError(f"{args.embeddings}: the embeddings file must end in .npz")
    if not Path(args.weights).is_file():
        raise ModelError(f"{args.weights}: weights file not found")
    images = list_images(args.images)
    check_out_file(args.out)  # before the model runs, not after
    if cfg.class_weighting == "difficulty":
        print("detal: note: detal score runs no evaluation, so class_weighting has no per-class AP; "
              "every class weight is 1", file=sys.stderr)
    scores, failed = score_images(
        args.weights, images, cfg, progress=not args.quiet, embeddings=args.embeddings is not None
    )
    if not scores:
        raise DataError(f"{args.images}: none of the {len(images)} images could be read")
    write_scores_csv(scores, args.out, cfg.measure)
    if args.embeddings is not None:
        write_embeddings(scores, args.embeddings)
    for path, reason in failed:
        print(f"detal: skipped {path}: {reason}", file=sys.stderr)
    print(f"scored {len(scores)} images ({measure_label(cfg.measure)}, {cfg.aggregate}) -> {args.out}")
    return 0
