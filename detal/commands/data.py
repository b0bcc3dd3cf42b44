"""``detal data digits``: build the digits-det benchmark dataset."""

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
    d.add_argument("--out", default="data/digits-det", help="output folder (default: data/digits-det)")
    d.add_argument("--pool", type=int, default=2000, help="pool (train) images (default: 2000)")
    d.add_argument("--val", type=int, default=400, help="validation images (default: 400)")
    d.add_argument("--imgsz", type=int, default=128, help="canvas size in pixels (default: 128)")
    d.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    d.set_defaults(func=run_digits)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_digits(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    from detal.digits import DigitsSpec, build_digits  # cv2 and sklearn: load only when used

    spec = DigitsSpec(pool=args.pool, val=args.val, imgsz=args.imgsz, seed=args.seed)
    path = build_digits(args.out, spec)
    print(f"wrote {args.pool} pool + {args.val} val images ({args.imgsz}px) in {time.perf_counter() - t0:.1f}s: {path}")
    return 0
