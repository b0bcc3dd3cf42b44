"""``detal data digits | shapes``: build a built-in benchmark dataset (digits-det, shapes-lt)."""

from __future__ import annotations

import argparse
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="build a built-in dataset (digits-det)",
        description="Build a built-in, fully labeled dataset in Ultralytics' YOLO layout.",
    )
    which = p.add_subparsers(dest="dataset", metavar="DATASET")
    d = which.add_parser(
        "digits",
        help="object detection from sklearn's UCI handwritten digits (offline, seconds)",
        description=(
            "Canvases of 1-6 real handwritten digits (sklearn load_digits) with noise and clutter, "
            "10 classes. Pool and val use disjoint source samples. Deterministic per seed."
        ),
    )
    _canvas_args(d, "data/digits-det", pool=2000)
    d.add_argument("--preset", choices=("standard", "hard"), default="standard",
                   help="standard: 1-6 digits of 14-40 px a canvas; hard: 3-10 digits of 9-24 px "
                        "(label-bound for longer; default: standard)")
    d.set_defaults(func=run_digits)
    sh = which.add_parser(
        "shapes",
        help="shapes-lt: small, dense, long-tailed geometric shapes (8 classes, offline, seconds)",
        description=(
            "Canvases of 4-12 small shapes (disc, ring, triangle, square, pentagon, hexagon, star, plus) "
            "with long-tailed class frequencies (Zipf), noise and clutter. Pool and val use disjoint "
            "shape variants. Deterministic per seed."
        ),
    )
    _canvas_args(sh, "data/shapes-lt", pool=1000)
    sh.add_argument("--zipf", type=float, default=1.2, help="class-frequency exponent (default: 1.2)")
    sh.set_defaults(func=run_shapes)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _canvas_args(p: argparse.ArgumentParser, out: str, pool: int) -> None:
    """The options every canvas dataset takes: where, how many, how large, which seed."""
    p.add_argument("--out", default=out, help=f"output folder (default: {out})")
    p.add_argument("--pool", type=int, default=pool, help=f"pool (train) images (default: {pool})")
    p.add_argument("--val", type=int, default=400, help="validation images (default: 400)")
    p.add_argument("--imgsz", type=int, default=128, help="canvas size in pixels (default: 128)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")


def run_digits(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    from detal.digits import (  # cv2 and sklearn: load only when used
        PRESETS,
        DigitsSpec,
        build_digits,
    )

    spec = DigitsSpec(pool=args.pool, val=args.val, imgsz=args.imgsz, seed=args.seed, **PRESETS[args.preset])
    path = build_digits(args.out, spec)
    print(f"wrote {args.pool} pool + {args.val} val images ({args.imgsz}px) in {time.perf_counter() - t0:.1f}s: {path}")
    return 0


def run_shapes(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    from detal.shapes import ShapesSpec, build_shapes  # cv2: load only when used

    spec = ShapesSpec(pool=args.pool, val=args.val, imgsz=args.imgsz, seed=args.seed, zipf=args.zipf)
    path = build_shapes(args.out, spec)
    print(f"wrote {args.pool} pool + {args.val} val images ({args.imgsz}px) in {time.perf_counter() - t0:.1f}s: {path}")
    return 0
