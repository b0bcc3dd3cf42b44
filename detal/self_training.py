"""Self-training, the pure parts: which unlabeled images teach, with which boxes, and at what threshold.

The offline form (docs/method.md, "Self-training"): a teacher predicts the
unlabeled pool, its confident boxes become pseudo-labels, and a student
trains on the human labels and the pseudo-labels together. This module
holds the rules, as plain functions of arrays and ids, with no IO:

- :func:`pseudo_sample`: which unlabeled images the teacher predicts, a
  seeded random sample of at most ``max_images`` (a pool of a million images
  does not mean a million-image pass every cycle).
- :func:`pseudo_label`: one image's verdict. A box is kept when its
  confidence is ``>= t_high``. Ultralytics has no ignore regions, so an
  ambiguous box (confidence in ``[t_low, t_high)``) left unlabeled would be
  taught as background. ``ambiguous: drop`` leaves such an image out
  entirely (the method's rule); ``ambiguous: mask`` keeps it with the
  ambiguous boxes' pixels painted over (an ignore region made of pixels),
  unless a painted box would cover more than ``max_cover`` of a kept box,
  which would hide what it teaches. An image with no kept box is left out
  either way: it can only teach "nothing here", which is what a missed
  object would teach.
- :func:`calibrate_threshold`: ``t_high`` from the last batch that people
  corrected. Among the pre-label boxes shipped for that batch, each either
  matched a returned box of its class (correct) or not; the threshold is the
  lowest confidence ``t`` at which the shipped boxes with confidence
  ``>= t`` were at least ``target`` precise, clamped to ``[lo, hi]``. With
  too few boxes, or before any batch was corrected, a fixed conservative
  value. The validation split never enters: it would leak into training.
- :func:`repeat_for_share`: how many times the human images are listed so
  that they are at least ``real_share`` of every epoch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AMBIGUOUS_RULES",
    "Calibration",
    "PseudoVerdict",
    "calibrate_threshold",
    "cover",
    "pseudo_label",
    "pseudo_sample",
    "repeat_for_share",
]


def pseudo_sample(ids: Sequence[int], max_images: int | None, rng: np.random.Generator) -> list[int]:
    """At most ``max_images`` of ``ids``, drawn without replacement by ``rng``, in ascending order.

    ``None`` (or a cap at least as large as the pool) takes every id; the
    order of ``ids`` does not change the draw (they are sorted first).
    """
    pool = sorted(int(i) for i in ids)
    if max_images is None or max_images >= len(pool):
        return pool
    if max_images <= 0:
        return []
    picked = rng.choice(len(pool), size=int(max_images), replace=False)
    return sorted(pool[int(i)] for i in picked)


@dataclass(frozen=True)
class PseudoVerdict:
    """One image's pseudo-label verdict: the kept box indices, the masked ones, or why it is left out."""

    kept: tuple[int, ...]
    reason: str  # "kept" | "ambiguous" | "empty"
    masked: tuple[int, ...] = ()

    @property
    def used(self) -> bool:
        return self.reason == "kept"


AMBIGUOUS_RULES = ("drop", "mask")


def pseudo_label(confidence: np.ndarray, t_high: float, t_low: float, *, xyxy: np.ndarray | None = None,
                 ambiguous: str = "drop", max_cover: float = 0.2) -> PseudoVerdict:
    """Which boxes of one image become pseudo-labels, and which are masked (see the module docstring).

    ``confidence`` holds the confidences of the teacher's boxes on the image
    (after NMS); boxes below ``t_low`` are background to the teacher and
    ignored. ``ambiguous: mask`` needs the boxes (``xyxy``, pixels) to judge
    how much a masked box covers a kept one.
    """
    if not 0.0 <= t_low <= t_high <= 1.0:
        raise ValueError(f"need 0 <= t_low <= t_high <= 1, got t_low={t_low} t_high={t_high}")
    if ambiguous not in AMBIGUOUS_RULES:
        raise ValueError(f"ambiguous must be one of {', '.join(AMBIGUOUS_RULES)}, got {ambiguous!r}")
    conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
    kept = tuple(int(i) for i in np.flatnonzero(conf >= t_high))
    unsure = tuple(int(i) for i in np.flatnonzero((conf >= t_low) & (conf < t_high)))
    if unsure and (ambiguous == "drop" or not kept):
        return PseudoVerdict((), "ambiguous")
    if not kept:
        return PseudoVerdict((), "empty")
    if unsure:
        if xyxy is None:
            raise ValueError("ambiguous: mask needs the boxes (xyxy)")
        boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        if cover(boxes[list(unsure)], boxes[list(kept)]).max() > max_cover:
            return PseudoVerdict((), "ambiguous")
    return PseudoVerdict(kept, "kept", unsure)


def cover(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``out[j]``: the share of box ``b[j]``'s area that the boxes ``a`` cover, together (at most 1).

    Exact for the union of ``a``: computed on the grid of the boxes' edges.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    out = np.zeros(len(b))
    for j, (x1, y1, x2, y2) in enumerate(b):
        area = max(x2 - x1, 0.0) * max(y2 - y1, 0.0)
        if area <= 0 or not len(a):
            continue
        cx1, cy1 = np.clip(a[:, 0], x1, x2), np.clip(a[:, 1], y1, y2)
        cx2, cy2 = np.clip(a[:, 2], x1, x2), np.clip(a[:, 3], y1, y2)
        xs, ys = np.unique(np.r_[cx1, cx2]), np.unique(np.r_[cy1, cy2])
        covered = 0.0
        for xa, xb in itertools.pairwise(xs):
            for ya, yb in itertools.pairwise(ys):
                mx, my = (xa + xb) / 2, (ya + yb) / 2
                if np.any((cx1 <= mx) & (mx < cx2) & (cy1 <= my) & (my < cy2)):
                    covered += (xb - xa) * (yb - ya)
        out[j] = min(covered / area, 1.0)
    return out


@dataclass(frozen=True)
class Calibration:
    """The threshold chosen, how, and the precision the shipped boxes had at it.

    ``how`` is ``calibrated`` (the lowest confidence reaching the target,
    inside the clamp), ``clamped-low`` / ``clamped-high`` (the calibrated
    value lay outside ``[lo, hi]``), ``unreached`` (no confidence reached the
    target: the upper clamp), or ``fallback`` (too few boxes: the fixed
    value). ``precision`` is that of the boxes with confidence ``>=
    threshold`` (``None`` for the fallback), ``boxes`` how many were judged.
    """

    threshold: float
    how: str
    precision: float | None
    boxes: int


def calibrate_threshold(
    confidences: Sequence[float] | np.ndarray,
    correct: Sequence[bool] | np.ndarray,
    *,
    target: float = 0.95,
    lo: float = 0.5,
    hi: float = 0.9,
    fallback: float = 0.8,
    min_boxes: int = 20,
) -> Calibration:
    """``t_high`` from shipped pre-label boxes judged against the labels that came back.

    ``correct[i]``: box ``i`` matched a returned box of its own class (IoU
    >= the match threshold). The precision at ``t`` is the share of correct
    boxes among those with confidence ``>= t``; the lowest ``t`` (one of the
    boxes' confidences) whose precision is ``>= target`` is taken, then
    clamped to ``[lo, hi]``. Fewer than ``min_boxes`` boxes: ``fallback``.
    """
    conf = np.asarray(confidences, dtype=np.float64).reshape(-1)
    ok = np.asarray(correct, dtype=bool).reshape(-1)
    if conf.shape != ok.shape:
        raise ValueError(f"{conf.size} confidences but {ok.size} verdicts")
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"need 0 <= lo <= hi <= 1, got lo={lo} hi={hi}")
    if conf.size < max(1, min_boxes):
        return Calibration(float(fallback), "fallback", None, int(conf.size))
    order = np.argsort(-conf, kind="stable")
    conf, ok = conf[order], ok[order]
    # precision of "confidence >= conf[i]": ties share one threshold, so judge at the last of each run
    last_of_tie = np.r_[conf[1:] != conf[:-1], True]
    precision = np.cumsum(ok) / np.arange(1, conf.size + 1)
    good = np.flatnonzero(last_of_tie & (precision >= target))
    if good.size == 0:
        return Calibration(float(hi), "unreached", _precision_at(conf, ok, hi), int(conf.size))
    i = int(good[-1])  # the lowest confidence that still reaches the target
    t = float(conf[i])
    if t < lo:
        return Calibration(float(lo), "clamped-low", _precision_at(conf, ok, lo), int(conf.size))
    if t > hi:
        return Calibration(float(hi), "clamped-high", _precision_at(conf, ok, hi), int(conf.size))
    return Calibration(t, "calibrated", float(precision[i]), int(conf.size))


def _precision_at(conf: np.ndarray, ok: np.ndarray, t: float) -> float | None:
    mask = conf >= t
    return float(ok[mask].mean()) if mask.any() else None


@dataclass(frozen=True)
class StudentPlan:
    """How the student trains: ``epochs`` over the human images listed ``repeat`` times and
    ``n_pseudo`` of the pseudo-labeled images (the caller draws which, seeded)."""

    epochs: int
    repeat: int
    n_pseudo: int

    def steps(self, n_real: int, batch: int) -> int:
        return self.epochs * math.ceil((self.repeat * n_real + self.n_pseudo) / batch)


def plan_student(budget_steps: int, n_real: int, n_pseudo: int, real_share: float, batch: int) -> StudentPlan:
    """The student's epochs and list, held to ``budget_steps`` (what a plain cycle would train).

    Ultralytics trains whole epochs over a list, and the student's list (the human
    images repeated to ``real_share`` of it, plus the pseudo-labeled ones) is far
    longer than a plain cycle's, so the epochs a plain cycle would run cost many
    times its steps. Here the epochs are the fewest that reach the budget over the
    whole list (at least one), and when those overshoot it the list is cut to what
    they may hold: the human repeat chosen again for ``real_share`` of the shorter
    list, then as many pseudo-labeled images as fit. The result never trains more
    than ``budget_steps`` steps unless the human images alone, once each, need more
    (a plain cycle trains them at least once too).
    """
    if budget_steps < 1 or batch < 1:
        raise ValueError(f"budget_steps and batch must be positive, got {budget_steps} and {batch}")
    repeat = repeat_for_share(n_real, n_pseudo, real_share)
    n = repeat * n_real + n_pseudo
    if n_real <= 0 or n_pseudo <= 0:
        return StudentPlan(max(1, math.ceil(budget_steps / max(1, math.ceil(n / batch)))), repeat, n_pseudo)
    epochs = max(1, math.ceil(budget_steps / math.ceil(n / batch)))
    room = batch * (budget_steps // epochs)  # the most entries `epochs` epochs may hold within the budget
    if n <= room:
        return StudentPlan(epochs, repeat, n_pseudo)
    repeat = max(1, math.ceil(real_share * room / n_real))
    if repeat * n_real > room:
        repeat = max(1, room // n_real)
    human = repeat * n_real
    fit = room - human
    if real_share > 0:  # where the repeat had to come down, fewer pseudo images keep the share
        fit = min(fit, math.floor(human * (1.0 - real_share) / real_share + 1e-9))
    return StudentPlan(epochs, repeat, max(0, min(n_pseudo, fit)))


def repeat_for_share(n_real: int, n_pseudo: int, real_share: float) -> int:
    """How many times each human image is listed so that they are >= ``real_share`` of the list.

    The smallest ``r >= 1`` with ``r * n_real / (r * n_real + n_pseudo) >=
    real_share``; 1 when there are no pseudo images.
    """
    if not 0.0 <= real_share < 1.0:
        raise ValueError(f"real_share must lie in [0, 1), got {real_share}")
    if n_real <= 0 or n_pseudo <= 0:
        return 1
    def enough(r: int) -> bool:
        return r * n_real / (r * n_real + n_pseudo) >= real_share

    r = max(1, math.ceil(real_share * n_pseudo / ((1.0 - real_share) * n_real)))
    while not enough(r):  # the estimate's rounding, either way
        r += 1
    while r > 1 and enough(r - 1):
        r -= 1
    return r
