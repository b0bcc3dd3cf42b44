"""Does a measure rank the images the model gets wrong? A diagnostic that trains nothing.

    python benchmarks/ranking.py runs/simulate/al/random/seed-{0,1,2} --data data/digits-150 \
        --cycles 1,2,3 [--draws 2000] [--set score_conf=0.25 ...] [--quiet]

For each cycle of one ``detal simulate`` project, the weights that cycle trained
predict every pool image not yet labeled at that cycle. Each image's errors
against its ground truth are counted at IoU 0.5 (a prediction with confidence
>= 0.25 and the right class matches one unmatched ground-truth box; errors =
missed boxes + false boxes). Every measure then scores the same predictions
with the project's other scoring settings (score_conf, aggregate, empty score).

The selection is simulated as the schedule does it: ``--draws`` random subsets
of subset_fraction * T unlabeled images, the k = round(uncertain_share *
batch_fraction * T) highest scores of each taken (ties to the smaller id), and
the mean errors and ground-truth boxes of the taken images reported, next to
the same means over the pool (what a random pick gets in expectation). A
measure that helps picks images with more errors than random; one that only
finds crowded images shows more boxes too (errors per box says which).
Spearman's rho of score against errors over all unlabeled images is printed
as well, and an "oracle" row that ranks by the errors themselves (the best any
measure could do).

"saving if" is a model, not a measurement: if an image's worth to training
were proportional to its errors, a batch of B images of which k are picked
this way is worth B - k + k * x (x = errors/pick over the pool mean) random
images, so the labels saved against random are 1 - B / (B - k + k * x). It
shows how far the ranking alone can carry the DataHunt shape (half of every
batch random): a 30 % saving needs x >= 1.8 at k = B / 2.

With several projects, a last table gives each measure's mean, smallest and
largest "x random" over every (project, cycle) model, and the mean ratio of
ground-truth boxes per pick to the pool's mean (the labeling cost).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from detal.config import load_config
from detal.labels import parse_label_text
from detal.project.paths import ProjectPaths
from detal.scoring import score_predictions
from detal.store import DB_NAME, Store
from detal.ultra import UltralyticsAdapter

MEASURES = {
    "entropy": "entropy",
    "binary_entropy": "binary_entropy",
    "multilabel_entropy": "multilabel_entropy",
    "localization": "localization",
    "be+loc": {"binary_entropy": 1.0, "localization": 1.0},
}
MATCH_CONF = 0.25
MATCH_IOU = 0.5


def _ground_truth(path: Path, n_classes: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Class ids and pixel xyxy boxes of a YOLO label file (detal.labels' validated reader)."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    boxes, problems = parse_label_text(text, n_classes, str(path))
    if problems:
        raise SystemExit(f"{problems[0].path}:{problems[0].line}: {problems[0].message}")
    if not boxes:
        return np.zeros(0, np.int64), np.zeros((0, 4))
    cx, cy, w, h = (np.asarray([getattr(b, f) for b in boxes]) for f in ("cx", "cy", "w", "h"))
    cx, cy, w, h = cx * width, cy * height, w * width, h * height
    return (np.asarray([b.class_id for b in boxes], np.int64),
            np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def count_errors(det, gt_cls: np.ndarray, gt_box: np.ndarray) -> int:
    """Missed ground-truth boxes + false predictions, greedy by confidence at IoU 0.5."""
    keep = det.confidence >= MATCH_CONF
    boxes, classes, conf = det.xyxy[keep], det.class_id[keep], det.confidence[keep]
    order = np.argsort(-conf, kind="stable")
    free = np.ones(len(gt_cls), bool)
    ious = _iou(boxes, gt_box) if len(boxes) and len(gt_box) else np.zeros((len(boxes), len(gt_box)))
    tp = 0
    for i in order:
        cand = np.where(free & (gt_cls == classes[i]) & (ious[i] >= MATCH_IOU))[0]
        if cand.size:
            free[cand[np.argmax(ious[i, cand])]] = False
            tp += 1
    return int((len(boxes) - tp) + (len(gt_cls) - tp))


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx = np.argsort(np.argsort(x, kind="stable"), kind="stable").astype(float)
    ry = np.argsort(np.argsort(y, kind="stable"), kind="stable").astype(float)
    return float(np.corrcoef(rx, ry)[0, 1])


def rank_project(project: Path, data: Path, cycles: list[int], draws: int, overrides: list[str],
                 quiet: bool = False) -> list[tuple[str, float, float]]:
    """Print one project's table per cycle; return ``(measure, errors ratio, boxes ratio)`` per cycle."""
    cfg = load_config(project / "config.yaml", overrides)
    adapter = UltralyticsAdapter(cfg)
    with Store.open(project / DB_NAME) as store:
        rows = [r for r in store.images() if r.status != "val"]
        n_classes = len(store.get_meta("classes"))
    pool_size = len(rows)
    n_subset = round(cfg.subset_fraction * pool_size)
    batch = round(cfg.batch_fraction * pool_size)
    k = round(cfg.uncertain_share * batch)
    say = (lambda *a: None) if quiet else print
    say(f"{project}: pool {pool_size}, subset {n_subset}, uncertain picks k = {k}, {draws} draws")
    out = []
    for cycle in cycles:
        weights = sorted(ProjectPaths(project).cycle_dir(cycle + 1).rglob("last.pt"))
        if not weights:
            raise SystemExit(f"{project}: no weights for cycle {cycle}")
        todo = [r for r in rows if r.status != "labeled" or r.labeled_cycle > cycle]
        labeled = pool_size - len(todo)
        paths = [project / r.relpath for r in todo]
        result = adapter.predict(weights[0], paths, conf=cfg.score_conf, iou=cfg.iou, progress=False, with_dfl=True)
        preds = {str(p.path): p for p in result.predictions}
        if len(preds) != len(paths):
            raise SystemExit(f"{project}: {len(paths) - len(preds)} image(s) could not be predicted")
        ids, errors, boxes, scores = [], [], [], {m: [] for m in MEASURES}
        per_measure = {m: score_predictions([preds[str(p)] for p in paths], cfg.replace(measure=spec))
                       for m, spec in MEASURES.items()}
        for j, (r, p) in enumerate(zip(todo, paths)):
            pred = preds[str(p)]
            gt_cls, gt_box = _ground_truth(data / "labels" / "pool" / (Path(r.relpath).stem + ".txt"),
                                           n_classes, pred.width, pred.height)
            ids.append(r.id)
            errors.append(count_errors(pred.detections, gt_cls, gt_box))
            boxes.append(len(gt_cls))
            for m in MEASURES:
                scores[m].append(per_measure[m][j].score)
        ids, errors, boxes = np.asarray(ids), np.asarray(errors, float), np.asarray(boxes, float)
        rng = np.random.default_rng(cycle)
        subsets = [rng.choice(len(ids), size=min(n_subset, len(ids)), replace=False) for _ in range(draws)]
        say(f"\ncycle {cycle} (model of {labeled} labeled images; {len(ids)} unlabeled): "
            f"pool mean {errors.mean():.2f} errors, {boxes.mean():.2f} boxes, "
            f"{errors.sum() / boxes.sum():.3f} errors per box")
        say(f"  {'measure':<20} {'errors/pick':>11} {'boxes/pick':>10} {'err/box':>8} {'x random':>8} {'rho':>6} "
            f"{'saving if':>9}")
        scores["oracle: errors"] = errors  # the ceiling: ranks by the errors themselves
        for m, values in scores.items():
            s = np.asarray(values, dtype=float)
            picked = np.concatenate([d[np.lexsort((ids[d], -s[d]))[:k]] for d in subsets])  # ties: smaller id
            e, b = errors[picked].mean(), boxes[picked].mean()
            ratio = e / errors.mean()
            out.append((m, ratio, b / boxes.mean()))
            say(f"  {m:<20} {e:>11.2f} {b:>10.2f} {e / b:>8.3f} {ratio:>8.2f} "
                f"{_spearman(s, errors):>6.2f} {_saving(ratio, batch, k):>9.0%}")
    return out


def _saving(ratio: float, batch: int, k: int) -> float:
    return 1 - batch / (batch - k + k * ratio)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("projects", type=Path, nargs="+")
    ap.add_argument("--data", type=Path, required=True, help="the dataset folder (labels/pool holds the ground truth)")
    ap.add_argument("--cycles", default="1,2,3")
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a scoring setting of the projects' config (e.g. score_conf=0.25)")
    ap.add_argument("--quiet", action="store_true", help="print only the mean over every project and cycle")
    args = ap.parse_args()
    cycles = [int(c) for c in args.cycles.split(",")]
    found: dict[str, list[tuple[float, float]]] = {}
    for project in args.projects:
        for m, ratio, box_ratio in rank_project(project, args.data, cycles, args.draws, args.set, args.quiet):
            found.setdefault(m, []).append((ratio, box_ratio))
    cfg = load_config(args.projects[0] / "config.yaml", args.set)
    n = len(next(iter(found.values())))
    print(f"\nmean over {n} models ({len(args.projects)} projects x cycles {args.cycles}), "
          f"score_conf {cfg.score_conf}, aggregate {cfg.aggregate}:")
    print(f"  {'measure':<20} {'x random':>8} {'min':>6} {'max':>6} {'boxes x':>8}")
    for m, values in found.items():
        r = np.asarray(values)
        print(f"  {m:<20} {r[:, 0].mean():>8.2f} {r[:, 0].min():>6.2f} {r[:, 0].max():>6.2f} {r[:, 1].mean():>8.2f}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
