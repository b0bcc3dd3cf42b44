"""``detal init | cycle | import | status``: the annotation loop on a project folder.

Thin wrappers over :mod:`detal.project`. The real model adapter
(:class:`detal.ultra.UltralyticsAdapter`) is imported only when ``cycle``
runs; setting ``DETAL_FAKE_ADAPTER=1`` swaps in :class:`detal.fake.FakeAdapter`
(canned predictions, no training) for dry runs and tests of the loop.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from detal.adapter import ModelAdapter
from detal.commands.common import add_config_args, config_from_args
from detal.config import Config
from detal.store import DB_NAME, Store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "init",
        help="create a project over an image folder and export the initial random batch",
        description=(
            "Record every image of DIR (id, path, hash, size), copy existing labels, and "
            "export the initial random batch for labeling as PROJECT/cycles/0/batch-0.zip."
        ),
    )
    p.add_argument("project", metavar="PROJECT", help="project folder to create")
    p.add_argument("--images", required=True, metavar="DIR", help="the pool's image folder (searched recursively)")
    p.add_argument("--classes", required=True, metavar="FILE", help="class names, one a line")
    p.add_argument("--labels", metavar="DIR", help="existing YOLO labels, laid out like the images")
    p.add_argument("--val-images", metavar="DIR", help="validation images (never selected)")
    p.add_argument("--val-labels", metavar="DIR", help="labels of the validation images")
    p.add_argument("--force", action="store_true",
                   help="start over where a project exists (the old one is moved to PROJECT/backup-*)")
    add_config_args(p)
    p.set_defaults(func=run_init)

    p = sub.add_parser(
        "cycle",
        help="train, select the next batch and export it with pre-labels",
        description=(
            "Run one active-learning cycle on PROJECT: train on every labeled image, evaluate, "
            "score a random subset, select the batch and write PROJECT/cycles/<k>/. "
            "An interrupted cycle is resumed."
        ),
    )
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("--force", action="store_true", help="run even while a batch is still out")
    p.add_argument("--format", dest="formats", action="append", default=[], metavar="FMT",
                   help="export format(s), repeatable or comma-separated (default: yolo)")
    p.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                   help="override one key of the project's config for this cycle; repeatable")
    p.set_defaults(func=run_cycle)

    p = sub.add_parser(
        "import",
        help="import corrected labels for the batch that is out (all or nothing)",
        description=(
            "Validate every label file in PATH (a folder or .zip of YOLO .txt files named "
            "like the bundle's images), then mark their images labeled. A subset of the "
            "batch may be imported; the rest stays out."
        ),
    )
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("path", metavar="PATH", help="folder or .zip of label files")
    p.add_argument("--format", dest="fmt", default="yolo", choices=("yolo", "cvat-yolo", "coco"),
                   help="layout of PATH (default: yolo)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace labels imported before (the old files are kept in labels/.replaced)")
    p.add_argument("--allow-empty", action="store_true",
                   help="accept a COCO file without any annotation (every image it lists has no objects)")
    p.add_argument("--accept-prelabels", action="store_true",
                   help="accept labels that are all detal's pre-labels unchanged (refused by default)")
    p.set_defaults(func=run_import)

    p = sub.add_parser(
        "status",
        help="show cycles, labeled counts, mAP per cycle and the batch that is out",
        description="Summarise the state of PROJECT.",
    )
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run_status)


def make_adapter(cfg: Config, project: Path) -> ModelAdapter:
    """The adapter a cycle trains with; imported lazily so other commands never load torch."""
    if os.environ.get("DETAL_FAKE_ADAPTER") == "1":
        from detal.fake import FakeAdapter

        with Store.open(project / DB_NAME) as store:
            n_classes = len(store.get_meta("classes"))
        return FakeAdapter(n_classes, seed=cfg.seed)
    from detal.ultra import UltralyticsAdapter

    return UltralyticsAdapter(cfg)


def run_init(args: argparse.Namespace) -> int:
    from detal.project import init_project

    cfg = config_from_args(args)
    report = init_project(
        args.project, args.images, args.classes, labels=args.labels,
        val_images=args.val_images, val_labels=args.val_labels, config=cfg, force=args.force,
    )
    print(f"created {report.project}: {report.n_images} images, {report.n_labeled} labeled, "
          f"{report.n_val} validation")
    for group in report.duplicates[:20]:
        print(f"warning: duplicate images (same content): {', '.join(group)}", file=sys.stderr)
    if len(report.duplicates) > 20:
        print(f"warning: {len(report.duplicates)} groups of duplicate images in all "
              "(detal status --json lists them)", file=sys.stderr)
    if report.bundle:
        print(f"initial batch: {report.n_selected} images to label in {report.bundle}")
    return 0


def run_cycle(args: argparse.Namespace) -> int:
    from detal.project import project_config
    from detal.project import run_cycle as api_run_cycle

    project = Path(args.project)
    cfg = project_config(project, args.overrides)
    adapter = make_adapter(cfg, project)
    report = api_run_cycle(project, adapter, force=args.force, formats=args.formats or ["yolo"],
                           overrides=args.overrides)
    if report.resumed_from:
        print(f"resumed cycle {report.cycle} from state {report.resumed_from!r}")
    m = report.metrics
    metrics = f", mAP50 {m['map50']:.4f}, mAP50-95 {m['map50_95']:.4f}" if m else ""
    print(f"cycle {report.cycle}: trained on {report.n_train} images{metrics}")
    if report.bundle is not None:
        print(f"selected {report.n_selected} images; bundle {report.bundle}")
    else:
        print(f"selected {report.n_selected} images; nothing sent out")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from detal.project import import_labels

    report = import_labels(args.project, args.path, fmt=args.fmt, overwrite=args.overwrite,
                           allow_empty=args.allow_empty, accept_prelabels=args.accept_prelabels)
    print(f"imported {report.n_labeled} labels ({report.n_unchanged} unchanged, "
          f"{report.n_overwritten} overwritten); {report.remaining} images still out")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from detal.project import project_status

    st = project_status(args.project)
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    img = st["images"]
    print(f"project {st['project']}: {img['pool']} pool images, {img['val']} validation")
    print(f"labeled {img['labeled']} ({st['labeled_fraction']:.1%}, budget "
          f"{st['max_labeled_fraction']:.0%}), selected {img['selected']}, unlabeled {img['unlabeled']}")
    print("cycle  state     train  selected  mAP50   mAP50-95")
    for c in st["cycles"]:
        m50 = "-" if c["map50"] is None else f"{c['map50']:.4f}"
        m95 = "-" if c["map50_95"] is None else f"{c['map50_95']:.4f}"
        print(f"{c['cycle']:>5}  {c['state']:<8}  {c['n_train']:>5}  {c['n_selected']:>8}  {m50:<6}  {m95}")
    last = st["cycles"][-1] if st["cycles"] else None
    if st["running"]:
        print("a detal cycle or import is running on this project now")
    elif last and last["state"] != "done":
        print(f"cycle {last['cycle']} was interrupted at state {last['state']!r}; "
              "run detal cycle to resume it")
    if st["batch_out"]:
        for b in st["batch_out"]:
            print(f"batch out: cycle {b['cycle']}, {b['remaining']} of {b['selected']} images "
                  f"still to label ({b['bundle']})")
    else:
        print("no batch out")
    if st["duplicates"]:
        print(f"{len(st['duplicates'])} group(s) of duplicate images")
    if img["missing"] or img["changed"]:
        print(f"out of the pool: {img['missing']} image(s) missing, {img['changed']} changed since init")
    return 0
