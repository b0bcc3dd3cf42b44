"""Where a cycle's mAP50-95 comes from: AP at each IoU threshold, per cycle of finished projects.

    .venv/bin/python benchmarks/ap_by_iou.py DATA_YAML PROJECT [PROJECT ...]

Each PROJECT is one ``detal simulate`` project folder (``runs/simulate/<name>/<arm>/seed-<k>``,
the one holding ``detal.db``). Every finished training of it (``cycles.weights``)
is validated again by Ultralytics on DATA_YAML's val split, at the project's
``imgsz``, and its AP averaged over classes is printed at IoU 0.50, 0.75 and
0.90, beside mAP50-95 (the mean of the ten thresholds 0.50-0.95) and the
mAP50-95 the project recorded (the two agree when the val split is the one the
project was scored on).

It answers one question: does a strategy's gain or loss lie in finding and
naming the objects (AP at 0.50) or in fitting their edges (AP at 0.90)?
Self-training's pseudo boxes are the teacher's boxes, whose edges are looser
than a person's (``benchmarks/pseudo_quality.py``: mean IoU with the truth).
Nothing is trained; the project folders are only read (the validator writes
into a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

THRESHOLDS = (0.50, 0.75, 0.90)  # among Ultralytics' ten, 0.50:0.05:0.95


def finished_trainings(project: Path) -> list[tuple[int, Path, float | None]]:
    """``(cycle id, weights, recorded mAP50-95)`` of every cycle with weights, in order."""
    with sqlite3.connect(f"file:{project / 'detal.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT id, weights, metrics FROM cycles WHERE weights IS NOT NULL ORDER BY id").fetchall()
    out = []
    for cycle, weights, metrics in rows:
        recorded = json.loads(metrics).get("map50_95") if metrics else None
        out.append((int(cycle), project / weights, recorded))
    return out


def ap_by_iou(weights: Path, data_yaml: Path, imgsz: int, batch: int) -> np.ndarray:
    """AP per IoU threshold (0.50 ... 0.95), averaged over the classes with val instances.

    Call ``detal.ultra.setup.prepare_ultralytics()`` once before (``main`` does).
    """
    from ultralytics import YOLO

    from detal.ultra.setup import offline

    with tempfile.TemporaryDirectory() as tmp, offline():
        result = YOLO(str(weights)).val(data=str(data_yaml), split="val", imgsz=imgsz, batch=batch, workers=0,
                                        device="cpu", project=tmp, name="val", plots=False, verbose=False)
    return np.asarray(result.box.all_ap, dtype=np.float64).mean(axis=0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="the dataset's data.yaml (its val split is what is measured)")
    ap.add_argument("projects", nargs="+", type=Path, help="detal simulate project folders")
    args = ap.parse_args(argv)
    from ultralytics.utils import LOGGER

    from detal.config import load_config
    from detal.ultra.setup import prepare_ultralytics

    prepare_ultralytics()  # once, before the first validation
    LOGGER.setLevel(logging.WARNING)  # the table is the output, not the validator's progress

    print("| project | cycle | AP50 | AP75 | AP90 | mAP50-95 | recorded mAP50-95 |")
    print("|---|---|---|---|---|---|---|")
    for project in args.projects:
        cfg = load_config(project / "config.yaml")
        name = "/".join(project.parts[-3:])
        for cycle, weights, recorded in finished_trainings(project):
            per_iou = ap_by_iou(weights, args.data, cfg.imgsz, cfg.batch)
            at = {round(t, 2): float(v) for t, v in zip(np.linspace(0.5, 0.95, 10), per_iou)}
            rec = "–" if recorded is None else f"{recorded:.3f}"
            print(f"| {name} | {cycle} | " + " | ".join(f"{at[t]:.3f}" for t in THRESHOLDS)
                  + f" | {per_iou.mean():.3f} | {rec} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
