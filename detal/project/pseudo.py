"""Self-training in the cycle engine: the teacher, the pseudo-labels, the student.

Called from the train step of :class:`detal.project.cycle.CycleRun` when
``self_training.enabled`` (the rules themselves are pure functions in
:mod:`detal.self_training`). In cycle ``k``:

1. **teacher**: ``teacher: supervised`` trains this cycle's model on the
   human labels only (``cycles/<k>/teacher``, evaluated on val for the
   record; a train cache makes it free where a plain run trained the same
   labels); ``teacher: previous`` takes the previous cycle's student (no
   second training; the first trained cycle is then supervised only).
2. **threshold**: ``t_high`` from the config, or calibrated on the last batch
   people corrected (:func:`last_corrected`: the shipped pre-label boxes with
   their confidences, ``cycles/<j>/shipped.json``, against the labels that
   came back, as ``import`` recorded them in the store,
   :mod:`detal.project.corrections`), or the fixed fallback before any
   corrected batch.
3. **pseudo-labels**: the teacher predicts a seeded sample (``(seed, k)``) of
   at most ``max_pseudo_images`` unlabeled images; the images the rule keeps
   get their confident boxes written to ``cycles/<k>/pseudo/labels/<id>.txt``
   (never ``labels/``: they are not labels, not counted, not exported, and
   ``import`` never reads a cycle folder), with ``cycles/<k>/pseudo/summary.json``.
4. **student**: trained like a plain cycle (same start, same step budget) on
   the human images, listed enough times to be ``real_share`` of the list,
   plus the pseudo-labeled ones. It is the cycle's model: it is evaluated,
   scores the pool and writes the pre-labels.

Crash safety: nothing here moves the cycle's state; the train step ends in
the one transaction that records the student as the cycle's weights. A kill
anywhere before it leaves the cycle ``started``, and the rerun repeats every
step with the same seeds, so it writes the same pseudo-labels.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from detal.adapter import Metrics, ModelAdapter
from detal.config import Config, cycle_epochs
from detal.files import atomic_write
from detal.labels import YoloBox, normalized_box
from detal.project.paths import PSEUDO_DIR, SHIPPED_FILE, TEACHER_DIR, ProjectPaths
from detal.project.train_cache import TrainCache
from detal.project.training import train_and_evaluate
from detal.self_training import (
    Calibration,
    calibrate_threshold,
    plan_student,
    pseudo_label,
    pseudo_sample,
)
from detal.store import Store

__all__ = [
    "PSEUDO_DIR",
    "SHIPPED_FILE",
    "SelfTrainResult",
    "last_corrected",
    "read_shipped",
    "read_summary",
    "self_train",
    "write_shipped",
]

_SUMMARY = "summary.json"
_MASKS = "masks.json"  # ambiguous: mask: image id -> the rectangles painted over, in pixels
MASK_FILL = 114  # the grey Ultralytics pads with: no object, no edge
MASK_GROW = 0.1  # a painted box is the teacher's box grown by this share of its size a side (>= 2 px)
MAX_COVER = 0.2  # an image is left out when its painted boxes would cover more of a kept box than this


# -- what was shipped, and what came back ---------------------------------------------------
def write_shipped(cycle_dir: Path, rows: Sequence, preds: dict, conf: float) -> Path:
    """``cycles/<k>/shipped.json``: per batch image, the pre-label boxes shipped, with confidences.

    The same boxes as the 5-field pre-label files (confidence >= ``conf``,
    boxes that clip to nothing dropped), as ``[class, cx, cy, w, h, conf]``.
    """
    out: dict[str, list] = {}
    for r in rows:
        p = preds.get(r.id)
        boxes = []
        if p is not None:
            det = p.detections.above(conf)
            for box, cls, c in zip(det.xyxy, det.class_id, det.confidence):
                cx, cy, w, h = normalized_box(box, p.width, p.height)
                if w > 0 and h > 0:
                    boxes.append([int(cls), round(cx, 6), round(cy, 6), round(w, 6), round(h, 6), round(float(c), 4)])
        out[r.key] = boxes
    path = cycle_dir / SHIPPED_FILE
    atomic_write(path, json.dumps({"conf": conf, "images": out}, sort_keys=True))
    return path


def read_shipped(project: Path, k: int) -> dict[str, list[YoloBox]]:
    """``image key -> shipped pre-label boxes with their confidences`` of cycle ``k``; ``{}`` without the file.

    The file is written by detal itself (:func:`write_shipped`); an unreadable
    one costs only the confidences, so it reads as absent.
    """
    try:
        images = json.loads(ProjectPaths(project).shipped(k).read_text(encoding="utf-8"))["images"]
        return {str(key): [YoloBox(int(b[0]), float(b[1]), float(b[2]), float(b[3]), float(b[4]), float(b[5]))
                           for b in boxes] for key, boxes in images.items()}
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return {}


def last_corrected(store: Store, k: int) -> tuple[int | None, list[float], list[bool]]:
    """The latest cycle before ``k`` whose shipped batch came back labeled, and its boxes' verdicts.

    Returns ``(cycle, confidences, correct)``: one entry per shipped box (with
    a confidence) of the batch's images that came back, as ``import``
    recorded them (:mod:`detal.project.corrections`: matched to a returned
    box of its class, verified or adjusted, with the config's ``effort_iou``).
    The validation split is never read. ``(None, [], [])`` when no batch with
    shipped pre-labels has come back.
    """
    for c in sorted((c.id for c in store.cycles() if c.id < k), reverse=True):
        boxes = [b for b in store.shipped_boxes(c) if b.confidence is not None]
        if any(r.prelabeled for r in store.corrections(c)):
            return c, [float(b.confidence) for b in boxes], [b.outcome in ("verified", "adjusted") for b in boxes]
    return None, [], []


# -- the step ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SelfTrainResult:
    """What self-training did in one cycle (``summary.json``; ``detal status`` shows it)."""

    teacher: str  # supervised | previous | none (first cycle with teacher: previous)
    threshold: float | None
    how: str  # calibrated | clamped-low | clamped-high | unreached | fallback | config | none
    calibrated_on: int | None  # the cycle whose corrected batch set the threshold
    precision_target: float
    precision: float | None  # of the shipped boxes at the threshold, in that batch
    judged_boxes: int
    predicted: int  # unlabeled images the teacher predicted
    pseudo_images: int
    pseudo_boxes: int
    ambiguous: int
    empty: int
    repeat: int  # times each human image is listed
    teacher_metrics: dict | None
    masked_boxes: int = 0  # ambiguous boxes painted over (ambiguous: mask) on the kept images
    over_budget: int = 0  # pseudo-labeled images left out so the student trains no more than a plain cycle


def read_summary(cycle_dir: Path) -> dict | None:
    """A cycle's ``pseudo/summary.json``, or ``None`` (no self-training that cycle)."""
    path = cycle_dir / PSEUDO_DIR / _SUMMARY
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def self_train(
    adapter: ModelAdapter, project: Path, store: Store, names: list[str], cfg: Config, k: int,
    cycle_dir: Path, labeled: Sequence, val_rows: Sequence, init_weights: Path | None,
    previous_weights: Path | None, first: bool, cache: TrainCache | None, on_stage: Callable[..., None],
    emit: Callable[..., None] = lambda event, **info: None,
) -> tuple[Path, Metrics | None, dict, SelfTrainResult]:
    """Teacher, pseudo-labels and student of cycle ``k``; returns the student's weights, metrics, timings."""
    st = cfg.self_training
    pseudo_dir = cycle_dir / PSEUDO_DIR
    for stale in (pseudo_dir, cycle_dir / TEACHER_DIR, cycle_dir / f"{TEACHER_DIR}-val"):  # a killed run's
        if stale.exists():
            shutil.rmtree(stale)
    timings: dict = {}
    teacher_metrics: Metrics | None = None
    if st["teacher"] == "previous":
        teacher, teacher_kind = previous_weights, "previous" if previous_weights is not None else "none"
    else:
        epochs = cycle_epochs(cfg, 0 if first else k, len(labeled))
        teacher, teacher_metrics, t = train_and_evaluate(
            adapter, project, names, cfg, labeled, val_rows, k, epochs, init_weights, cache,
            lambda stage, seconds, **f: on_stage(f"teacher_{stage}", seconds, **f), name=TEACHER_DIR)
        timings.update({"teacher_train_s": t["train_s"], "teacher_eval_s": t["eval_s"]})
        teacher_kind = "supervised"
        emit("on_teacher_trained", cycle=k, metrics=teacher_metrics)
    if teacher is None:  # teacher: previous, and nothing before: a plain cycle this time
        epochs = cycle_epochs(cfg, 0 if first else k, len(labeled))
        weights, metrics, t = train_and_evaluate(adapter, project, names, cfg, labeled, val_rows, k,
                                                 epochs, init_weights, cache, on_stage)
        result = SelfTrainResult("none", None, "none", None, st["precision"], None, 0, 0, 0, 0, 0, 0, 1, None)
        _write_summary(pseudo_dir, result)
        return weights, metrics, {**timings, **t}, result

    calibration, on = _threshold(store, cfg, k)
    t_high = calibration.threshold
    rng = np.random.default_rng([cfg.seed, k, 7])
    pool = store.load_pool()
    sample = pseudo_sample(pool.unlabeled_ids().tolist(), st["max_pseudo_images"], rng)
    rows = {r.id: r for r in store.images(sample)}
    rows = {i: r for i, r in rows.items() if not r.problem}
    paths = {i: project / r.relpath for i, r in rows.items()}
    t0 = time.perf_counter()
    result_pred = adapter.predict(teacher, list(paths.values()), conf=st["t_low"], iou=cfg.iou,
                                  batch=cfg.predict_batch, progress=False, with_embeddings=False) if paths else None
    by_path = {str(p): i for i, p in paths.items()}
    labels_dir = pseudo_dir / "labels"
    labels_dir.mkdir(parents=True)
    extra = []
    masks: dict[str, list[list[int]]] = {}
    n_boxes = ambiguous = empty = n_masked = 0
    for p in (result_pred.predictions if result_pred is not None else []):
        i = by_path.get(str(p.path))
        if i is None:
            continue
        grown = _grown(p.detections.xyxy, p.width, p.height)
        verdict = pseudo_label(p.detections.confidence, t_high, st["t_low"], xyxy=grown,
                               ambiguous=st["ambiguous"], max_cover=MAX_COVER)
        if not verdict.used:
            ambiguous += verdict.reason == "ambiguous"
            empty += verdict.reason == "empty"
            continue
        kept = p.detections.filter(np.isin(np.arange(len(p.detections)), verdict.kept))
        lines = []
        for box, cls in zip(kept.xyxy, kept.class_id):
            cx, cy, w, h = normalized_box(box, p.width, p.height)
            if w > 0 and h > 0:
                lines.append(f"{int(cls)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
        if not lines:
            empty += 1
            continue
        text = "\n".join(lines) + "\n"
        image, digest = paths[i], rows[i].sha256
        if verdict.masked:
            rects = [[int(v) for v in grown[j]] for j in verdict.masked]
            image = _masked_copy(paths[i], rects, pseudo_dir / "images" / f"{i}.png")
            if image is None:  # unreadable now: leave it out, as the predictor would
                empty += 1
                continue
            digest = hashlib.sha256(image.read_bytes()).hexdigest()
            masks[str(i)] = rects
            n_masked += len(rects)
        label = labels_dir / f"{i}.txt"
        label.write_text(text, encoding="utf-8")
        extra.append(((image, label), (digest, text)))
        n_boxes += len(lines)
    # The student trains the steps a plain cycle would (the same epochs over its far longer list
    # would cost many times them): whole epochs, the list cut to what they hold (plan_student), the
    # pseudo-labeled images that do not fit left out by a seeded draw, their files removed.
    plain = cycle_epochs(cfg, 0 if first else k, len(labeled))
    plan = plan_student(plain * math.ceil(len(labeled) / cfg.batch), len(labeled), len(extra),
                        st["real_share"], cfg.batch)
    over_budget = len(extra) - plan.n_pseudo
    if over_budget:
        keep = set(rng.choice(len(extra), size=plan.n_pseudo, replace=False).tolist())
        for j, ((_, label), _) in enumerate(extra):
            if j not in keep:
                label.unlink()
                masks.pop(label.stem, None)
        extra = [e for j, e in enumerate(extra) if j in keep]
        n_boxes = sum(text.count("\n") for _, (_, text) in extra)
        n_masked = sum(len(masks.get(label.stem, ())) for (_, label), _ in extra)
    timings["pseudo_s"] = round(time.perf_counter() - t0, 3)  # the teacher's pass and the files
    emit("on_pseudo_written", cycle=k, images=len(extra), boxes=n_boxes, path=labels_dir)
    repeat, epochs = plan.repeat, plan.epochs
    weights, metrics, t = train_and_evaluate(adapter, project, names, cfg, labeled, val_rows, k, epochs,
                                             init_weights, cache, on_stage, extra=extra, repeat=repeat)
    timings.update(t)
    if masks:  # the painted copies were for training only: keep the rectangles, not the pixels
        atomic_write(pseudo_dir / _MASKS, json.dumps(masks, sort_keys=True))
    if (pseudo_dir / "images").exists():  # (also when every painted image was left out for the budget)
        shutil.rmtree(pseudo_dir / "images")
    result = SelfTrainResult(
        teacher=teacher_kind, threshold=t_high, how=calibration.how, calibrated_on=on,
        precision_target=st["precision"], precision=calibration.precision, judged_boxes=calibration.boxes,
        predicted=len(paths), pseudo_images=len(extra), pseudo_boxes=n_boxes, ambiguous=ambiguous, empty=empty,
        masked_boxes=n_masked, over_budget=over_budget,
        repeat=repeat, teacher_metrics=asdict(teacher_metrics) if teacher_metrics is not None else None,
    )
    _write_summary(pseudo_dir, result)
    return weights, metrics, timings, result


def _threshold(store: Store, cfg: Config, k: int) -> tuple[Calibration, int | None]:
    st = cfg.self_training
    if st["t_high"] is not None:
        return Calibration(float(st["t_high"]), "config", None, 0), None
    on, confs, correct = last_corrected(store, k)
    cal = calibrate_threshold(confs, correct, target=st["precision"], lo=st["t_min"], hi=st["t_max"],
                              fallback=st["t_fallback"], min_boxes=st["min_boxes"])
    return cal, (on if cal.how != "fallback" else None)


def _write_summary(pseudo_dir: Path, result: SelfTrainResult) -> None:
    pseudo_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(pseudo_dir / _SUMMARY, json.dumps(asdict(result), sort_keys=True))


def _grown(xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
    """The teacher's boxes grown by :data:`MASK_GROW` a side (at least 2 px), clipped to the image."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    dx = np.maximum((b[:, 2] - b[:, 0]) * MASK_GROW, 2.0)
    dy = np.maximum((b[:, 3] - b[:, 1]) * MASK_GROW, 2.0)
    out = np.stack([b[:, 0] - dx, b[:, 1] - dy, b[:, 2] + dx, b[:, 3] + dy], axis=1)
    return np.clip(np.rint(out), 0, [width, height, width, height])


def _masked_copy(src: Path, rects: Sequence[Sequence[int]], dst: Path) -> Path | None:
    """``src`` with ``rects`` filled with :data:`MASK_FILL`, written losslessly to ``dst``."""
    import cv2

    img = cv2.imread(str(src), cv2.IMREAD_COLOR)  # the frame the predictor saw (EXIF applied)
    if img is None:
        return None
    for x1, y1, x2, y2 in rects:
        img[y1:y2, x1:x2] = MASK_FILL
    dst.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        return None
    dst.write_bytes(buf.tobytes())
    return dst
