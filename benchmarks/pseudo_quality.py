"""How good were the pseudo-labels a self-training run trained on? Read against the dataset's truth.

    .venv/bin/python benchmarks/pseudo_quality.py runs/simulate/st-digits-hard-random-stprev-s0 [...]

For every cycle of every project under the given ``detal simulate`` run folders
whose self-training step finished (``cycles/<k>/pseudo/summary.json``, written
last; beside it ``labels/``, one YOLO file per pseudo-labeled image, named by
image id, and ``masks.json``, the painted-over boxes in pixels),
each pseudo-labeled image's boxes are matched to its true boxes (the
dataset's own label file beside its image: ``.../images/pool/x.png`` has
``.../labels/pool/x.txt``) with :func:`detal.effort.diff_boxes` (IoU >= 0.5,
the class must agree), as a corrected batch is. Printed per cycle:

- pseudo boxes and their precision (matched to a true box of their class);
- how well the right ones sit: their mean IoU with the true box, and the share
  at IoU >= 0.75 (a human box is exact, and mAP50-95 counts IoU up to 0.95);
- the true objects in those images, split into taught right (a pseudo box of
  their class), hidden (not matched, its centre under a painted box: the
  student sees grey pixels there) and taught as background (neither: the
  student learns "no object here"); a pseudo box of the wrong class counts
  as a wrong box, and its object as taught as background.

With ``--teacher-conf C``, the cycle's teacher (the previous cycle's weights,
as ``teacher: previous`` takes them) predicts those images again at confidence
``C``, and the objects taught as background are split by the most confident
teacher box on them (IoU >= 0.5, any class): in ``[C, t_low)`` (a lower
``t_low`` would have painted them over) or none at all (the teacher did not
see them). That costs one prediction pass a cycle.

Nothing is trained; the run folders are only read. It measures the teacher's
pseudo-labels; it does not say what they did to the student.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detal.effort import box_iou, diff_boxes, from_yolo


def read_yolo(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Class ids and normalised ``xyxy`` of a YOLO label file (empty when there is none)."""
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    cls = np.array([int(r[0]) for r in rows], dtype=np.int64)
    xyxy = from_yolo([[float(v) for v in r[1:5]] for r in rows]) if rows else np.zeros((0, 4))
    return cls, xyxy


def truth_file(image: Path) -> Path:
    """The dataset's label file of ``image`` (YOLO layout: ``images/`` becomes ``labels/``)."""
    real = image.resolve()
    parts = list(real.parts)
    i = len(parts) - 1 - parts[::-1].index("images")
    return Path(*parts[:i], "labels", *parts[i + 1:]).with_suffix(".txt")


def _config(project: Path):
    from detal.config import load_config

    return load_config(project / "config.yaml")


def teacher_boxes(project: Path, cycle: Path, images: list[Path], conf: float) -> dict[str, tuple]:
    """The previous cycle's weights' boxes ``(xyxy, confidence)`` per image path, at ``conf``."""
    from detal.adapter import make_adapter

    with sqlite3.connect(f"file:{project / 'detal.db'}?mode=ro", uri=True) as db:
        (weights,) = db.execute("SELECT weights FROM cycles WHERE id = ?", (int(cycle.name) - 1,)).fetchone()
    cfg = _config(project)
    result = make_adapter(cfg).predict(project / weights, images, conf=conf, iou=cfg.iou,
                                       batch=cfg.predict_batch, progress=False)
    return {str(p.path): (p.detections.xyxy, p.detections.confidence) for p in result.predictions}


def cycle_quality(project: Path, cycle: Path, teacher_conf: float | None = None) -> dict:
    with sqlite3.connect(f"file:{project / 'detal.db'}?mode=ro", uri=True) as db:
        rows = {str(i): (rel, w, h) for i, rel, w, h in db.execute("SELECT id, relpath, width, height FROM images")}
    masks_file = cycle / "pseudo" / "masks.json"
    masks = json.loads(masks_file.read_text()) if masks_file.is_file() else {}
    totals = {k: 0 for k in ("images", "boxes", "correct", "objects", "right", "hidden", "background", "low",
                             "iou_sum", "tight")}
    summary = json.loads((cycle / "pseudo" / "summary.json").read_text())
    labels = sorted((cycle / "pseudo" / "labels").glob("*.txt"))
    seen = {}
    if teacher_conf is not None and labels:
        seen = teacher_boxes(project, cycle, [project / rows[f.stem][0] for f in labels], teacher_conf)
    t_low = _config(project).self_training["t_low"]
    for label in labels:
        rel, w, h = rows[label.stem]
        scale = np.array([w, h, w, h], dtype=np.float64)
        p_cls, p_xyxy = read_yolo(label)
        t_cls, t_xyxy = read_yolo(truth_file(project / rel))
        diff = diff_boxes(p_xyxy * scale, p_cls, t_xyxy * scale, t_cls)
        right_objects = _matched_truth(p_xyxy * scale, p_cls, t_xyxy * scale, t_cls)
        painted = np.asarray(masks.get(label.stem, []), dtype=np.float64).reshape(-1, 4)
        centres = (t_xyxy[:, :2] + t_xyxy[:, 2:]) / 2 * scale[:2]
        under = np.zeros(len(t_cls), dtype=bool)
        for x1, y1, x2, y2 in painted:
            under |= (centres[:, 0] >= x1) & (centres[:, 0] <= x2) & (centres[:, 1] >= y1) & (centres[:, 1] <= y2)
        missed = ~right_objects
        background = missed & ~under
        if teacher_conf is not None and background.any():
            xyxy, confidence = seen.get(str(project / rel), (np.zeros((0, 4)), np.zeros(0)))
            if len(confidence):
                best = np.where(box_iou(t_xyxy[background] * scale, xyxy) >= 0.5, confidence[None, :], 0).max(1)
                totals["low"] += int(((best >= teacher_conf) & (best < t_low)).sum())
        totals["images"] += 1
        totals["boxes"] += diff.shipped
        totals["correct"] += sum(diff.correct)
        right_ious = [v for v, ok in zip(diff.iou, diff.correct) if ok]
        totals["iou_sum"] += sum(right_ious)
        totals["tight"] += sum(v >= 0.75 for v in right_ious)
        totals["objects"] += len(t_cls)
        totals["right"] += int(right_objects.sum())
        totals["hidden"] += int((missed & under).sum())
        totals["background"] += int((missed & ~under).sum())
    totals["threshold"] = summary.get("threshold")
    return totals


def _matched_truth(p_xyxy, p_cls, t_xyxy, t_cls) -> np.ndarray:
    """Per true box: did a pseudo box of its class match it (the same matching, seen from the truth)?"""
    diff = diff_boxes(t_xyxy, t_cls, p_xyxy, p_cls)
    return np.array(diff.correct, dtype=bool)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="detal simulate run folders (runs/simulate/<name>)")
    ap.add_argument("--teacher-conf", type=float, default=None,
                    help="also predict with the teacher at this confidence (see the module doc)")
    args = ap.parse_args(argv)
    low = args.teacher_conf is not None
    print("| run | cycle | t_high | pseudo images | pseudo boxes | precision | true objects | "
          "taught right | hidden (painted) | taught as background | mean IoU of the right boxes | "
          "right boxes at IoU >= 0.75 |"
          + (f" of which a teacher box in [{args.teacher_conf}, t_low) |" if low else ""))
    print("|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if low else ""))
    for run in args.runs:
        for project in sorted(p.parent for p in run.glob("*/seed-*/detal.db")):
            for cycle in sorted((project / "cycles").iterdir(), key=lambda p: int(p.name)):
                if not (cycle / "pseudo" / "summary.json").is_file():
                    continue  # no self-training there, or a cycle still writing its pseudo-labels
                q = cycle_quality(project, cycle, args.teacher_conf)
                if not q["images"]:
                    continue
                obj = max(q["objects"], 1)
                t = "–" if q["threshold"] is None else f"{q['threshold']:.2f}"
                print(f"| {run.name} | {cycle.name} | {t} | {q['images']} | {q['boxes']} | "
                      f"{q['correct'] / max(q['boxes'], 1):.3f} | {q['objects']} | {q['right'] / obj:.1%} | "
                      f"{q['hidden'] / obj:.1%} | {q['background'] / obj:.1%} | "
                      f"{q['iou_sum'] / max(q['correct'], 1):.3f} | {q['tight'] / max(q['correct'], 1):.1%} |"
                      + (f" {q['low'] / obj:.1%} |" if low else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
