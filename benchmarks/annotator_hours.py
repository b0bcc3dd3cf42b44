"""Annotator time of a finished simulation, from its projects' stores: what correcting each batch cost.

    python benchmarks/annotator_hours.py RUN_DIR [--out OUT_DIR]

For every project ``RUN_DIR/<strategy>/seed-<k>/`` and every batch it had
labeled, the pre-labels shipped for that batch (``cycles/<j>/prelabels/``,
what the vendor got) are matched to the labels that came back (the ground
truth, in a simulation) by :func:`detal.effort.diff_boxes`, and the time is
costed with :class:`detal.effort.Effort` under two profiles: the default
seconds (draw 7 s, extreme clicking) and draw = 25 s (a classic two-click
box with checks). The initial random batch had no pre-labels: all drawn.

Writes ``OUT_DIR/results.csv`` (the run's rows plus cumulative
``annotator_s`` and ``annotator_s_draw25`` at every trained cycle, the time
spent on the labels that cycle trained on) and ``OUT_DIR/hours.md``: the
saving in annotator time along the curve next to images and boxes (the
headline of :mod:`detal.report`), and each arm's time per image.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from detal.effort import Effort, diff_boxes, from_yolo
from detal.labels import parse_label_text
from detal.pool import Status
from detal.project.folder import open_store
from detal.project.paths import ProjectPaths
from detal.report import load_results, saving_along_curve, strategies_of

PROFILES = {"annotator_s": Effort(), "annotator_s_draw25": Effort(draw=25.0)}


def _boxes(path: Path, n_classes: int) -> tuple[list, list]:
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    boxes, _ = parse_label_text(text, n_classes, str(path), allow_confidence=True)
    return from_yolo([(b.cx, b.cy, b.w, b.h) for b in boxes]), [b.class_id for b in boxes]


def batch_seconds(project: Path) -> dict[int, dict[str, float]]:
    """Per batch cycle ``j`` (0 = initial): the seconds each profile spent on its labeled images."""
    paths = ProjectPaths(project)
    store = open_store(project, readonly=True)
    try:
        n_classes = len(store.get_meta("classes"))
        out: dict[int, dict[str, float]] = {}
        for row in store.images(status=Status.LABELED.value):
            j = row.selected_cycle if row.selected_cycle is not None and row.selected_cycle >= 0 else 0
            returned = _boxes(paths.label(row.relpath), n_classes)
            shipped = _boxes(paths.prelabel(j, row.key), n_classes) if j > 0 else ([], [])
            d = diff_boxes(shipped[0], shipped[1], returned[0], returned[1])
            for name, effort in PROFILES.items():
                out.setdefault(j, dict.fromkeys(PROFILES, 0.0))[name] += effort.seconds(d.counts())
        return out
    finally:
        store.close()


def _per_image(rows: list[dict], strategy: str) -> list[float]:
    """Seconds per labeled image at each seed's last cycle, mean over seeds, per profile."""
    mine = [r for r in rows if r["strategy"] == strategy]
    last = [max((r for r in mine if r["seed"] == k), key=lambda r: r["cycle"]) for k in {r["seed"] for r in mine}]
    return [sum(r[n] / r["n_labeled"] for r in last) / len(last) for n in PROFILES]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    run = Path(args.run)
    out = Path(args.out or run / "hours")
    out.mkdir(parents=True, exist_ok=True)
    rows = load_results(run / "results.csv")
    seconds = {}
    for s in strategies_of(rows):
        for seed in sorted({r["seed"] for r in rows if r["strategy"] == s}):
            seconds[(s, seed)] = batch_seconds(run / s / f"seed-{seed}")
    for r in rows:
        per = seconds[(r["strategy"], r["seed"])]
        # cycle c (0-based, trained) trained on the batches of project cycles 0..c
        for name in PROFILES:
            r[name] = sum(v[name] for j, v in per.items() if j <= r["cycle"])
    fields = list(rows[0])
    with (out / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    intro = ("Saving against random along the whole curve (the mean over random's levels after the "
             "initial set of the fewer labels, or seconds, needed to reach each), mean curves over seeds:")
    head = ("| strategy | fewer images | fewer boxes | less time (draw 7 s) | less time (draw 25 s) "
            "| seconds per image (7 s / 25 s) |")
    lines = [f"# Annotator time of `{run}`", "", intro, "", head, "|---|---|---|---|---|---|"]
    for s in strategies_of(rows):
        if s == "random":
            continue
        cells = [s]
        for x in ("labeled_fraction", "n_boxes", *PROFILES):
            a = saving_along_curve(rows, s, "random", x=x)
            cells.append("—" if a.mean is None else ("< " if a.bound else "") + f"{a.mean:+.0%}")
        per_img = _per_image(rows, s)
        cells.append(" / ".join(f"{v:.1f}" for v in per_img))
        lines.append("| " + " | ".join(cells) + " |")
    per_img = _per_image(rows, "random")
    lines += ["", (f"random: {per_img[0]:.1f} / {per_img[1]:.1f} seconds per labeled image "
              "(at the last cycle, mean over seeds).")]
    (out / "hours.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
