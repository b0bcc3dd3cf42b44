"""Annotator time of a finished simulation, from its projects' stores: what correcting each batch cost.

    python benchmarks/annotator_hours.py RUN_DIR [--out OUT_DIR]

For runs made before ``detal simulate`` wrote annotator seconds into its
``results.csv``: for every project ``RUN_DIR/<strategy>/seed-<k>/`` and every
batch it had labeled, the pre-labels shipped for that batch
(``cycles/<j>/prelabels/``, what the vendor got) are matched to the labels
that came back (the ground truth, in a simulation) by
:func:`detal.effort.diff_boxes` with the project's ``effort_iou``, and costed
with :class:`detal.effort.Effort` under the two profiles of the report's time
columns (:data:`detal.report.HOURS`): the project's ``effort_seconds``, and
the same with draw = 25 s. The initial random batch had no pre-labels: all
drawn.

Writes ``OUT_DIR/results.csv`` (the run's rows plus the cumulative
``annotator_s`` and ``annotator_s_draw25`` at every trained cycle, the time
spent on the labels that cycle trained on), and the report of
:mod:`detal.report` over it (``summary.md``, ``curves.png``): the savings in
annotator hours beside those in images and boxes, and each arm's hours and
seconds per image at its last cycle. Prints the headline.
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import replace
from pathlib import Path

from detal.effort import Effort, diff_boxes, from_yolo
from detal.labels import parse_label_text
from detal.pool import Status
from detal.project import project_config
from detal.project.folder import open_store
from detal.project.paths import ProjectPaths
from detal.report import HOURS, load_results, strategies_of, write_report


def profiles(effort: Effort) -> dict[str, Effort]:
    """The report's time columns and the :class:`Effort` of each: ``effort``, or it with its own draw."""
    return {x: effort if draw is None else replace(effort, draw=draw) for x, draw in HOURS.items()}


def _boxes(path: Path, n_classes: int) -> tuple[list, list]:
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    boxes, _ = parse_label_text(text, n_classes, str(path), allow_confidence=True)
    return from_yolo([(b.cx, b.cy, b.w, b.h) for b in boxes]), [b.class_id for b in boxes]


def batch_seconds(project: Path) -> dict[int, dict[str, float]]:
    """Per batch cycle ``j`` (0 = initial): the seconds each profile spent on its labeled images."""
    paths = ProjectPaths(project)
    cfg = project_config(project)
    costs = profiles(Effort(**cfg.effort_seconds))
    store = open_store(project, readonly=True)
    try:
        n_classes = len(store.get_meta("classes"))
        out: dict[int, dict[str, float]] = {}
        for row in store.images(status=Status.LABELED.value):
            j = row.selected_cycle if row.selected_cycle is not None and row.selected_cycle >= 0 else 0
            returned = _boxes(paths.label(row.relpath), n_classes)
            shipped = _boxes(paths.prelabel(j, row.key), n_classes) if j > 0 else ([], [])
            d = diff_boxes(shipped[0], shipped[1], returned[0], returned[1],
                           iou_match=cfg.effort_iou["match"], iou_verify=cfg.effort_iou["verify"])
            for name, effort in costs.items():
                out.setdefault(j, dict.fromkeys(costs, 0.0))[name] += effort.seconds(d.counts())
        return out
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    run = Path(args.run)
    out = Path(args.out or run / "hours")
    out.mkdir(parents=True, exist_ok=True)
    rows = load_results(run / "results.csv")
    seconds, draws = {}, set()
    for s in strategies_of(rows):
        for seed in sorted({r["seed"] for r in rows if r["strategy"] == s}):
            project = run / s / f"seed-{seed}"
            seconds[(s, seed)] = batch_seconds(project)
            draws.add(project_config(project).effort_seconds["draw"])
    for r in rows:
        per = seconds[(r["strategy"], r["seed"])]
        # cycle c (0-based, trained) trained on the batches of project cycles 0..c
        for name in HOURS:
            r[name] = sum(v[name] for j, v in per.items() if j <= r["cycle"])
    with (out / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    # every project of a run has the run's config; a mixed run's time axis is left unnamed
    _, md = write_report(out / "results.csv", out, draw_s=draws.pop() if len(draws) == 1 else None)
    text = md.read_text(encoding="utf-8").split("\n## ")
    print("## " + next((part for part in text if part.startswith("Headline")), text[0]))
    print(f"(report: {md})")


if __name__ == "__main__":
    main()
