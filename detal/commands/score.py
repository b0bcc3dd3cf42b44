"""``detal score``: the uncertainty of every image in a folder, as a CSV.

The command parses arguments and prints; the Python API behind it is
:mod:`detal.score_images` (:func:`~detal.score_images.score_images`, then
:func:`~detal.score_images.write_scores_csv`), where the CSV's columns are
described. ``--embeddings FILE.npz`` also saves each image's embedding, read
in the same forward pass. Images that cannot be read are left out of the CSV
and reported on stderr.

``class_weighting: difficulty`` needs per-class AP from an evaluation, which
``detal score`` does not run: every class weight is then 1 (a note says so).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detal.commands.common import add_config_args, config_from_args
from detal.errors import DataError, ModelError
from detal.files import check_out_file, list_images
from detal.score_images import score_images, write_embeddings, write_scores_csv
from detal.uncertainty import AGGREGATIONS, MEASURES, measure_label, parse_measure

__all__ = ["register", "run"]


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
    check_out_file(args.out, "CSV file")  # before the model runs, not after
    if args.embeddings is not None:
        check_out_file(args.embeddings, "embeddings file")
    if cfg.class_weighting == "difficulty":
        print("detal: note: detal score runs no evaluation, so class_weighting has no per-class AP; "
              "every class weight is 1", file=sys.stderr)
    scores, failed = score_images(
        args.weights, images, cfg, progress=not args.quiet, embeddings=args.embeddings is not None
    )
    if not scores:
        raise DataError(f"{args.images}: none of the {len(images)} images could be read")
    new_csv = not Path(args.out).exists()
    write_scores_csv(scores, args.out, cfg.measure)
    if args.embeddings is not None:
        try:
            write_embeddings(scores, args.embeddings)
        except BaseException:  # a full disk: no scores file without its embeddings
            if new_csv:
                Path(args.out).unlink(missing_ok=True)
            raise
    for path, reason in failed:
        print(f"detal: skipped {path}: {reason}", file=sys.stderr)
    print(f"scored {len(scores)} images ({measure_label(cfg.measure)}, {cfg.aggregate}) -> {args.out}")
    return 0
