"""``detal review``: an HTML page of a cycle's batch, to look at before it goes out."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "review",
        help="write an HTML page of a batch (thumbnails, pre-label boxes, scores) and print its path",
        description=(
            "Write PROJECT/cycles/<k>/review/index.html with its thumbnails beside it: the "
            "project at a glance (labeled fraction, mAP50-95 per cycle, class counts of the "
            "labeled set) and the batch of cycle K, most uncertain first, each image with its "
            "pre-label boxes, score and box count, a class filter and a confidence slider. "
            "The page needs no network; open it from disk in any browser."
        ),
    )
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("--cycle", metavar="K",
                   help="the cycle whose batch to show (default: the latest cycle that selected images)")
    p.add_argument("--out", metavar="DIR",
                   help="folder for the page and thumbs/ (default: PROJECT/cycles/<k>/review)")
    p.add_argument("--max-side", type=int, default=256, metavar="PX",
                   help="longest side of a thumbnail in pixels (default: 256)")
    p.set_defaults(func=run_review)


def run_review(args: argparse.Namespace) -> int:
    from detal.review import write_review

    result = write_review(args.project, args.cycle, out=args.out, max_side=args.max_side)
    if result.n_unreadable:
        print(f"warning: {result.n_unreadable} image(s) could not be read; their cards show no "
              "thumbnail", file=sys.stderr)
    if result.problems:
        print(f"warning: {len(result.problems)} bad pre-label line(s), first: {result.problems[0]}",
              file=sys.stderr)
    print(result.path)
    return 0
