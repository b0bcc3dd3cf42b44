"""``detal init | cycle | import | status``: the annotation loop on a project folder.

Thin wrappers over :mod:`detal.project`. The model adapter comes from
:func:`detal.adapter.make_adapter` (Ultralytics, imported only when ``cycle``
runs; ``DETAL_FAKE_ADAPTER=1`` swaps in :class:`detal.fake.FakeAdapter`,
canned predictions and no training, for dry runs and tests of the loop).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from detal.adapter import ModelAdapter, fake_adapter_requested
from detal.adapter import make_adapter as adapter_factory
from detal.commands.common import add_config_args, config_from_args
from detal.config import Config
from detal.effort import format_seconds
from detal.errors import BatchOutError, BusyError
from detal.export.registry import IMPORT_FORMATS
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
            "An interrupted cycle is resumed. Prints one line per stage (train, evaluate, "
            "score, select, export), plain text unless stdout is a terminal (then an epoch "
            "bar too); the model's own training log goes to PROJECT/cycles/<k>/train.log."
        ),
        epilog=CYCLE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("--force", action="store_true", help="run even while a batch is still out")
    p.add_argument("--allow-missing", action="store_true",
                   help="take images whose files are gone or changed out of the pool even when many are "
                        "(by default that refuses: an unmounted disk or a re-pointed link looks like it)")
    p.add_argument("--if-ready", action="store_true",
                   help="a batch still out, or another detal command running, is not an error: "
                        "print one line and exit 0 (for cron)")
    p.add_argument("--verbose", action="store_true",
                   help="also show the model's training log live (it always goes to train.log)")
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
    p.add_argument("--format", dest="fmt", default="yolo", choices=IMPORT_FORMATS,
                   help="layout of PATH (default: yolo)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace labels imported before (the old files are kept in labels/.replaced)")
    p.add_argument("--allow-empty", action="store_true",
                   help="accept a COCO or CVAT XML file without any box (every image it lists has no objects)")
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


CYCLE_EPILOG = """\
exit status:
  0  the cycle ran (with --if-ready: also when there was nothing to do)
  1  an error (one line on stderr: detal: error: ...)
  3  nothing to do: a batch is still out (import its labels, or pass --force)
  4  nothing to do: another detal command is running on PROJECT

for cron, no wrapper needed (detal locks the project itself):
  0 2 * * *  detal cycle /data/myproj --if-ready >> /data/myproj/cron.log 2>&1
"""


def make_adapter(cfg: Config, project: Path) -> ModelAdapter:
    """The adapter a cycle trains with (:func:`detal.adapter.make_adapter`), a fake one sized to the project."""
    n_classes = None
    if fake_adapter_requested():
        with Store.open(project / DB_NAME, readonly=True) as store:
            n_classes = len(store.get_meta("classes"))
    return adapter_factory(cfg, n_classes=n_classes)


def run_init(args: argparse.Namespace) -> int:
    from detal.project import init_project

    cfg = config_from_args(args)
    report = init_project(
        args.project, args.images, args.classes, labels=args.labels,
        val_images=args.val_images, val_labels=args.val_labels, config=cfg, force=args.force,
    )
    print(f"created {report.project}: {report.n_images} images, {report.n_labeled} labeled, "
          f"{report.n_val} validation, {_classes(report.names)}")
    for group in report.duplicates[:20]:
        print(f"warning: duplicate images (same content): {', '.join(group)}", file=sys.stderr)
    if len(report.duplicates) > 20:
        print(f"warning: {len(report.duplicates)} groups of duplicate images in all "
              "(detal status --json lists them)", file=sys.stderr)
    if report.dead_links:
        shown = ", ".join(report.dead_links[:3]) + (", ..." if len(report.dead_links) > 3 else "")
        print(f"warning: {len(report.dead_links)} image link(s) lead nowhere (target gone or a loop) and "
              f"were skipped: {shown}", file=sys.stderr)
    if report.bundle:
        print(f"initial batch: {report.n_selected} images to label in {report.bundle}")
    return 0


def _classes(names: list[str], shown: int = 8) -> str:
    """``3 classes (cat, dog, bird)``; past ``shown`` names, the first ones and ``...``."""
    listed = ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")
    return f"{_count(len(names), 'class', 'classes')} ({listed})"


def run_cycle(args: argparse.Namespace) -> int:
    from detal.project import project_config
    from detal.project import run_cycle as api_run_cycle

    project = Path(args.project)
    cfg = project_config(project, args.overrides)
    adapter = make_adapter(cfg, project)
    out = sys.stdout  # the stage lines' stream, whatever the adapter redirects meanwhile
    printer = StagePrinter(out, bar=_isatty(out) and not args.verbose)
    try:
        report = api_run_cycle(project, adapter, force=args.force, formats=args.formats or ["yolo"],
                               overrides=args.overrides, hooks=printer.hooks(),
                               log_echo=out if args.verbose else None, allow_missing=args.allow_missing)
    except (BatchOutError, BusyError) as exc:
        return _nothing_to_do(project, exc, args.if_ready)
    finally:
        printer.close()
    if report.resumed_from:
        print(f"cycle {report.cycle}: resumed from state {report.resumed_from!r}", file=out)
    return 0


def _nothing_to_do(project: Path, exc: BatchOutError | BusyError, if_ready: bool) -> int:
    """One plain line for a cycle with nothing to do: stdout and 0 with --if-ready, else stderr
    and the error's exit status (3: a batch is out, 4: another command is running)."""
    if isinstance(exc, BatchOutError):
        batches = [f"batch {c} still out ({r} of {t} images unlabeled)" for c, (r, t) in sorted(exc.out.items())]
        what = f"{project}: {', '.join(batches)}"
        fix = "import its labels with detal import, or pass --force"
    else:
        what, fix = str(exc), "try again when it has finished"
    if if_ready:
        print(f"detal: cycle: {what}; nothing to do")
        return 0
    print(f"detal: cycle: {what}; {fix}", file=sys.stderr)
    return exc.exit_code


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 1 else f"{s:.0f} s"


def _count(n: int, word: str, plural: str = "") -> str:
    return f"{n} {word}" if n == 1 else f"{n} {plural or word + 's'}"


def stage_line(stage: str, seconds: float, **figures: Any) -> str:
    """The line ``detal cycle`` prints when a stage ends (see ``on_stage_end`` in :mod:`detal.project.cycle`)."""
    f = figures
    if stage == "train":
        what = f"{_count(f['images'], 'image')}, {_count(f['epochs'], 'epoch')}"
        if f.get("cached"):
            what += " (an identical earlier training, reused)"
    elif stage == "evaluate":
        m = f["metrics"]
        what = "no validation images" if m is None else f"mAP50 {m.map50:.3f} mAP50-95 {m.map50_95:.3f}"
    elif stage == "score":
        what = _count(f["images"], "image")
    elif stage == "select":
        what = f"{_count(f['images'], 'image')} ({f['uncertain']} uncertain, {f['random']} random)"
    elif stage == "export":
        what = f"{_count(f['prelabels'], 'pre-label')}, {_count(f['boxes'], 'box', 'boxes')}"
        what += f", bundle {f['bundle']}" if f["bundle"] is not None else ", nothing sent out"
        others = [x for x in f.get("exports", []) if x != "yolo"]
        if others:
            what += f", also {', '.join(others)}"
    else:
        what = ", ".join(f"{k} {v}" for k, v in figures.items())
    return f"{stage}: {what}, {_seconds(seconds)}"


class StagePrinter:
    """Hooks for ``detal cycle``: one plain line per stage, and an epoch bar when ``bar``.

    Writes to ``out`` (held here, so that the adapter redirecting ``sys.stdout``
    while it trains does not move the lines); the bar is tqdm's, drawn only
    on a terminal.
    """

    def __init__(self, out: TextIO, *, bar: bool) -> None:
        self.out = out
        self.bar_on = bar
        self._bar: Any = None

    def hooks(self) -> Any:
        from detal.project import Hooks

        hooks = Hooks()
        hooks.add("on_train_progress", self.epoch)
        hooks.add("on_stage_end", self.stage)
        return hooks

    def epoch(self, *, epoch: int, epochs: int, **_: Any) -> None:
        if not self.bar_on:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=epochs, desc="train", unit="epoch", file=self.out, leave=False,
                             dynamic_ncols=True)
        self._bar.update(epoch - self._bar.n)

    def stage(self, *, stage: str, seconds: float, cycle: int, **figures: Any) -> None:
        self.close()
        print(stage_line(stage, seconds, **figures), file=self.out, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def run_import(args: argparse.Namespace) -> int:
    from detal.project import import_labels

    report = import_labels(args.project, args.path, fmt=args.fmt, overwrite=args.overwrite,
                           allow_empty=args.allow_empty, accept_prelabels=args.accept_prelabels)
    print(f"imported {report.n_labeled} labels ({report.n_unchanged} unchanged, "
          f"{report.n_overwritten} overwritten); {report.remaining} images still out")
    return 0


def _self_training_line(s: dict | None) -> str:
    """One line of a cycle's self-training: pseudo-labels, the threshold and how it was chosen."""
    if not s:
        return ""
    if s["teacher"] == "none":
        return "self-training: no teacher yet (teacher: previous), trained on the human labels only"
    how = {"calibrated": f"calibrated on cycle {s['calibrated_on']}'s corrected batch",
           "clamped-low": f"calibrated on cycle {s['calibrated_on']}, raised to the lower clamp",
           "clamped-high": f"calibrated on cycle {s['calibrated_on']}, lowered to the upper clamp",
           "unreached": f"cycle {s['calibrated_on']}'s pre-labels never reached the target: the upper clamp",
           "fallback": "fixed fallback (no corrected batch with enough boxes yet)",
           "config": "fixed by the config"}.get(s["how"], s["how"])
    precision = "" if s["precision"] is None else f", precision {s['precision']:.2f}"
    return (f"self-training: {s['pseudo_images']} pseudo-labeled images, {s['pseudo_boxes']} boxes "
            f"(of {s['predicted']} predicted; {s['ambiguous']} ambiguous left out"
            + (f", {s['masked_boxes']} ambiguous boxes painted over" if s.get("masked_boxes") else "")
            + (f", {s['over_budget']} more left out to hold a plain cycle's steps" if s.get("over_budget") else "")
            + f"), t_high {s['threshold']:.2f} "
            f"({how}; target {s['precision_target']:.2f}{precision}), teacher {s['teacher']}")


def _effort_line(e: dict | None, n_selected: int) -> str:
    """What correcting a cycle's batch took, in one line ('' when none of it is back)."""
    if e is None:
        return ""
    if e["prelabeled_images"]:
        p = "-" if e["precision"] is None else f"{e['precision']:.2f}"
        r = "-" if e["recall"] is None else f"{e['recall']:.2f}"
        what = (f"pre-labels precision {p}, recall {r}; {e['verified']} verified, {e['adjusted']} adjusted, "
                f"{e['relabeled']} relabeled, {e['deleted']} deleted, {e['drawn']} drawn")
    else:
        what = f"no pre-labels, {e['drawn']} boxes drawn"
    return (f"batch back: {e['images']} of {n_selected} images; {what}; about {format_seconds(e['annotator_s'])} "
            f"of annotator time ({format_seconds(e['from_scratch_s'])} drawn from scratch)")


def run_status(args: argparse.Namespace) -> int:
    from detal.project import project_status

    st = project_status(args.project)
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    img = st["images"]
    print(f"project {st['project']}: {img['pool']} pool images, {img['val']} validation")
    for note in st["unreachable"]:
        print(f"warning: {note}")
    print(f"labeled {img['labeled']} ({st['labeled_fraction']:.1%}, budget "
          f"{st['max_labeled_fraction']:.0%}), selected {img['selected']}, unlabeled {img['unlabeled']}")
    print("cycle  state     train  selected  mAP50   mAP50-95")
    for c in st["cycles"]:
        m50 = "-" if c["map50"] is None else f"{c['map50']:.4f}"
        m95 = "-" if c["map50_95"] is None else f"{c['map50_95']:.4f}"
        print(f"{c['cycle']:>5}  {c['state']:<8}  {c['n_train']:>5}  {c['n_selected']:>8}  {m50:<6}  {m95}")
        for line in (_effort_line(c["effort"], c["n_selected"]), _self_training_line(c["self_training"])):
            if line:
                print(f"       {line}")
    last = st["cycles"][-1] if st["cycles"] else None
    if st["running"]:
        print("a detal cycle or import is running on this project now")
    elif last and last["state"] != "done":
        print(f"cycle {last['cycle']} was interrupted at state {last['state']!r}; "
              "run detal cycle to resume it")
    if st["batch_out"]:
        for b in st["batch_out"]:
            where = b["bundle"] if b["bundle"] is not None else f"no bundle: {b['no_bundle']}"
            print(f"batch out: cycle {b['cycle']}, {b['remaining']} of {b['selected']} images "
                  f"still to label ({where})")
    else:
        print("no batch out")
    total = st["effort_total"]
    if total is not None:

        saved = total["from_scratch_s"] - total["annotator_s"]
        print(f"annotator time so far: about {format_seconds(total['annotator_s'])} for {total['images']} images "
              f"({format_seconds(total['from_scratch_s'])} drawn from scratch, "
              + (f"{format_seconds(saved)} saved)" if saved >= 0 else f"{format_seconds(-saved)} more)"))
    if st["duplicates"]:
        print(f"{len(st['duplicates'])} group(s) of duplicate images")
    if img["missing"] or img["changed"] or img["unreadable"]:
        print(f"out of the pool: {img['missing']} image(s) missing, {img['changed']} changed since init, "
              f"{img['unreadable']} unreadable")
    return 0
