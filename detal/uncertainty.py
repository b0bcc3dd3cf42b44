"""Per-box uncertainty measures, measure mixes, class weights and per-image aggregation.

Pure numpy. A class measure maps an ``(n_boxes, n_classes)`` array of class
scores to an ``(n_boxes,)`` array of uncertainties, higher meaning more
uncertain. The seeds' three measures first rescale every row to sum to 1 (a
row with no mass at all carries no class evidence and is treated as uniform):

- ``entropy``: ``-sum_c p_c ln p_c``, in ``[0, ln C]``; with ``normalize=True``
  divided by ``ln C`` so it lies in ``[0, 1]``.
- ``least_confidence``: ``1 - p_top1``, in ``[0, 1 - 1/C]``.
- ``margin``: ``1 - (p_top1 - p_top2)``, in ``[0, 1]``.

YOLOv5u/v8/11 heads give C independent sigmoids, and renormalising them throws
away how large they are (``docs/method.md``, "One score per box"). Three measures read the head as it is, each in ``[0, 1]``:

- ``binary_entropy``: ``H_b(s_top) / ln 2`` on the RAW top sigmoid score.
- ``multilabel_entropy``: ``sum_c H_b(s_c) / (C ln 2)`` on the RAW scores.
- ``localization``: from the box head's DFL logits ``(n_boxes, 4, reg_max)``,
  the mean over the 4 sides of the softmax entropy divided by ``ln reg_max``.

A *measure spec* is a name or a mapping ``{name: weight}``. A mapping is a
weighted mix; :func:`measure_weights` normalises its weights to sum to 1, so a
mix of ``[0, 1]`` measures stays in ``[0, 1]`` and mixes are comparable with
each other and with a single measure. Inside a mapping ``entropy`` is always
divided by ``ln C`` (whatever ``normalize`` says), so every part lies in
``[0, 1]``.

Class difficulty (:func:`class_weights`): a box's score may be multiplied by
``w_c = 1 + beta * (1 - AP_c)`` for its top class ``c``.

Aggregations reduce one image's box scores to one number: ``max``, ``mean`` or
``sum``. The score of an image with no boxes is always an explicit argument.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from detal.errors import ConfigError, DataError, ModelError, did_you_mean, unknown

__all__ = [
    "AGGREGATIONS",
    "BOX_MEASURES",
    "CLASS_MEASURES",
    "CLASS_WEIGHTINGS",
    "MEASURES",
    "MeasureSpec",
    "aggregate",
    "aggregate_groups",
    "binary_entropy",
    "box_scores",
    "class_weights",
    "entropy",
    "least_confidence",
    "localization",
    "margin",
    "measure_components",
    "measure_label",
    "measure_weights",
    "multilabel_entropy",
    "needs_dfl",
    "normalize_probs",
    "parse_measure",
]

MeasureSpec = str | Mapping[str, float]
"""A measure name, or a mapping ``{name: weight}`` (a weighted mix)."""

_TINY = np.finfo(np.float64).tiny


def _as_probs(probs: np.ndarray) -> np.ndarray:
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != 2:
        raise DataError(f"class scores must be a 2-D (n_boxes, n_classes) array, got shape {arr.shape}")
    if arr.shape[1] < 1:
        raise DataError("class scores need at least one class column")
    if arr.size and (not np.all(np.isfinite(arr)) or arr.min() < 0):
        raise DataError("class scores must be finite and non-negative")
    return arr


def normalize_probs(probs: np.ndarray) -> np.ndarray:
    """Rescale each row to sum to 1. All-zero rows become uniform."""
    arr = _as_probs(probs)
    totals = arr.sum(axis=1, keepdims=True)
    zero = totals[:, 0] <= 0
    out = np.divide(arr, totals, out=np.zeros_like(arr), where=totals > 0)
    if zero.any():
        out[zero] = 1.0 / arr.shape[1]
    return out


def entropy(probs: np.ndarray, normalize: bool = False) -> np.ndarray:
    """Shannon entropy (natural log) of each normalised row."""
    p = normalize_probs(probs)
    h = -(p * np.log(np.maximum(p, _TINY))).sum(axis=1)
    np.maximum(h, 0.0, out=h)  # rounding can give -0.0 or -1e-17 for one-hot rows
    if normalize:
        n_classes = p.shape[1]
        if n_classes == 1:
            return np.zeros_like(h)
        h /= np.log(n_classes)
        np.minimum(h, 1.0, out=h)
    return h


def least_confidence(probs: np.ndarray) -> np.ndarray:
    """``1 - max_c p_c`` of each normalised row."""
    p = normalize_probs(probs)
    return 1.0 - p.max(axis=1)


def margin(probs: np.ndarray) -> np.ndarray:
    """``1 - (p_top1 - p_top2)`` of each normalised row; higher is more uncertain."""
    p = normalize_probs(probs)
    if p.shape[1] == 1:
        return np.zeros(p.shape[0])
    top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def _as_sigmoid(probs: np.ndarray) -> np.ndarray:
    arr = _as_probs(probs)
    if arr.size and arr.max() > 1:
        raise DataError("sigmoid class scores must lie in [0, 1]")
    return arr


def _binary_entropy_bits(s: np.ndarray) -> np.ndarray:
    """``H_b(s) / ln 2`` elementwise, exactly 0 at s = 0 and s = 1."""
    q = 1.0 - s
    h = -(s * np.log(np.maximum(s, _TINY)) + q * np.log(np.maximum(q, _TINY))) / math.log(2)
    return np.clip(h, 0.0, 1.0)


def binary_entropy(probs: np.ndarray) -> np.ndarray:
    """``H_b(max_c s_c) / ln 2`` of each row of RAW sigmoid scores (never renormalised).

    "Is this box really an object of its top class?" (PPAL). 1 at a top score
    of 0.5, 0 at 0 or 1; symmetric around 0.5.
    """
    s = _as_sigmoid(probs)
    return _binary_entropy_bits(s.max(axis=1)) if s.shape[0] else np.zeros(0)


def multilabel_entropy(probs: np.ndarray) -> np.ndarray:
    """``sum_c H_b(s_c) / (C ln 2)``: the entropy of C independent Bernoullis, in bits per class."""
    s = _as_sigmoid(probs)
    return _binary_entropy_bits(s).mean(axis=1) if s.shape[0] else np.zeros(0)


def localization(dfl_logits: np.ndarray) -> np.ndarray:
    """Box-edge uncertainty from DFL logits ``(n_boxes, 4, reg_max) -> (n_boxes,)``.

    For each side, the entropy of ``softmax`` over its ``reg_max`` distance
    bins divided by ``ln reg_max``; the mean over the 4 sides. 0 when every
    side puts all its mass in one bin, 1 when every side is uniform.
    """
    x = np.asarray(dfl_logits, dtype=np.float64)
    if x.ndim != 3 or x.shape[1] != 4:
        raise DataError(f"DFL logits must have shape (n_boxes, 4, reg_max), got {x.shape}")
    if x.shape[2] < 2:
        raise ModelError(f"localization needs at least 2 DFL bins per side, got reg_max {x.shape[2]}")
    if x.size and not np.all(np.isfinite(x)):
        raise DataError("DFL logits must be finite")
    z = x - x.max(axis=2, keepdims=True)
    e = np.exp(z)
    total = e.sum(axis=2, keepdims=True)
    p = e / total
    # H = log(sum e^z) - sum p z, stable for very peaked sides.
    h = np.log(total[..., 0]) - (p * z).sum(axis=2)
    h = np.clip(h / math.log(x.shape[2]), 0.0, 1.0)
    return h.mean(axis=1)


CLASS_MEASURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "entropy": entropy,
    "least_confidence": least_confidence,
    "margin": margin,
    "binary_entropy": binary_entropy,
    "multilabel_entropy": multilabel_entropy,
}
"""Measures of a box's class-score vector ``(n_boxes, n_classes)``."""

BOX_MEASURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"localization": localization}
"""Measures of a box's DFL logits ``(n_boxes, 4, reg_max)``."""

MEASURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {**CLASS_MEASURES, **BOX_MEASURES}
"""Every measure by name (a spec's keys must be among these)."""


def _unknown(name: Any) -> ConfigError:
    return ConfigError(f"measure must be one of {', '.join(MEASURES)}, got {name!r}{did_you_mean(name, MEASURES)}")


def measure_weights(spec: MeasureSpec) -> dict[str, float]:
    """The spec as ``{name: weight}`` with weights normalised to sum to 1.

    A name is ``{name: 1.0}``. In a mapping every weight must be a finite
    number >= 0 and at least one must be > 0; measures of weight 0 are dropped.
    """
    if isinstance(spec, str):
        if spec not in MEASURES:
            raise _unknown(spec)
        return {spec: 1.0}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"measure must be a name or a mapping of name: weight, got {spec!r}")
    if not spec:
        raise ConfigError("measure: an empty mapping names no measure")
    weights: dict[str, float] = {}
    for name, weight in spec.items():
        if name not in MEASURES:
            raise _unknown(name)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise ConfigError(f"measure {name}: weight must be a finite number, got {weight!r}")
        if weight < 0:
            raise ConfigError(f"measure {name}: weight must be >= 0, got {weight!r}")
        if weight > 0:
            weights[str(name)] = float(weight)
    total = sum(weights.values())
    if total <= 0:
        raise ConfigError(f"measure {dict(spec)!r}: at least one weight must be > 0")
    return {name: w / total for name, w in weights.items()}


def parse_measure(text: str) -> MeasureSpec:
    """A spec from command-line text: ``binary_entropy`` or ``binary_entropy=1,localization=0.5``."""
    text = str(text).strip()
    if "=" not in text and "," not in text:
        measure_weights(text)
        return text
    spec: dict[str, float] = {}
    for part in text.split(","):
        name, sep, raw = part.partition("=")
        name = name.strip()
        if not name:
            raise ConfigError(f"--measure {text!r}: empty measure name")
        if name in spec:
            raise ConfigError(f"--measure {text!r}: {name} given twice")
        try:
            spec[name] = float(raw) if sep else 1.0
        except ValueError:
            raise ConfigError(f"--measure {text!r}: weight of {name} is not a number ({raw!r})") from None
    measure_weights(spec)
    return spec


def measure_label(spec: MeasureSpec) -> str:
    """A short text for the spec: the name, or ``name=w,name=w`` with normalised weights."""
    if isinstance(spec, str):
        return spec
    return ",".join(f"{n}={w:.4g}" for n, w in measure_weights(spec).items())


def needs_dfl(spec: MeasureSpec) -> bool:
    """True when the spec uses a measure of the DFL logits (``localization``)."""
    return any(name in BOX_MEASURES for name in measure_weights(spec))


def _one_measure(name: str, probs: np.ndarray, dfl: np.ndarray | None, normalize: bool) -> np.ndarray:
    if name in BOX_MEASURES:
        if dfl is None:
            raise ModelError(
                f"measure {name} needs the DFL logits of every box, and these detections have none "
                "(a model without a DFL head, reg_max 1, or predictions made without with_dfl)"
            )
        out = BOX_MEASURES[name](dfl)
        if out.shape[0] != np.asarray(probs).shape[0]:
            raise DataError(f"DFL logits for {out.shape[0]} boxes, class scores for {np.asarray(probs).shape[0]}")
        return out
    if name == "entropy":
        return entropy(probs, normalize=normalize)
    return CLASS_MEASURES[name](probs)


def measure_components(
    probs: np.ndarray, spec: MeasureSpec = "entropy", *, normalize: bool = False, dfl: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Each measure of ``spec`` per box, unweighted: ``{name: (n_boxes,)}``.

    Entropy is divided by ``ln C`` when ``normalize`` or when the spec is a mapping.
    """
    weights = measure_weights(spec)
    normalize = normalize or not isinstance(spec, str)
    return {name: _one_measure(name, probs, dfl, normalize) for name in weights}


def box_scores(
    probs: np.ndarray,
    measure: MeasureSpec = "entropy",
    normalize: bool = False,
    *,
    dfl: np.ndarray | None = None,
) -> np.ndarray:
    """Uncertainty of every box: ``(n_boxes, n_classes) -> (n_boxes,)``.

    ``measure`` is a name or a ``{name: weight}`` mix (weights normalised to
    sum to 1, see :func:`measure_weights`). ``dfl`` holds the boxes' DFL
    logits ``(n_boxes, 4, reg_max)``, needed by ``localization`` only (a
    :class:`~detal.errors.ModelError` without them). ``normalize`` divides a
    lone ``entropy`` by ``ln C``; the other measures already lie in ``[0, 1]``.
    """
    weights = measure_weights(measure)
    parts = measure_components(probs, measure, normalize=normalize, dfl=dfl)
    if len(parts) == 1:
        return next(iter(parts.values()))
    return sum(weights[name] * parts[name] for name in weights)


CLASS_WEIGHTINGS = ("none", "difficulty")


def class_weights(
    per_class_ap: Sequence[float | None] | None, n_classes: int, beta: float = 1.0
) -> np.ndarray:
    """Class-difficulty weights ``w_c = 1 + beta * (1 - AP_c)``, shape ``(n_classes,)``.

    ``per_class_ap[c]`` is class c's mAP50-95 from the last evaluation, or
    ``None`` when the validation set had no instance of c. Such a class gets
    ``w = 1 + beta``, the weight of AP 0: nothing shows the model can detect
    it, so it is treated as the hardest. ``per_class_ap=None`` (no evaluation
    yet) gives every class weight 1: there is nothing to calibrate against.
    """
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta < 0:
        raise ConfigError(f"difficulty_beta must be a finite number >= 0, got {beta!r}")
    if n_classes < 1:
        raise DataError(f"class weights need at least one class, got {n_classes}")
    if per_class_ap is None:
        return np.ones(n_classes)
    aps = list(per_class_ap)
    if len(aps) != n_classes:
        raise DataError(f"per-class AP has {len(aps)} entries for {n_classes} classes")
    out = np.empty(n_classes)
    for c, ap in enumerate(aps):
        if ap is None:
            out[c] = 1.0 + beta
            continue
        ap = float(ap)
        if not 0.0 <= ap <= 1.0:
            raise DataError(f"per-class AP of class {c} must lie in [0, 1], got {ap!r}")
        out[c] = 1.0 + beta * (1.0 - ap)
    return out


AGGREGATIONS = ("max", "mean", "sum")


def aggregate(scores: np.ndarray, how: str = "max", empty: float = 0.0) -> float:
    """Reduce one image's box scores to one number; ``empty`` if it has no boxes."""
    if how not in AGGREGATIONS:
        raise ConfigError(unknown("aggregation", how, AGGREGATIONS))
    arr = np.asarray(scores, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        return float(empty)
    if how == "max":
        return float(arr.max())
    if how == "mean":
        return float(arr.mean())
    return float(arr.sum())


def aggregate_groups(
    scores: np.ndarray, image_index: np.ndarray, n_images: int, how: str = "max", empty: float = 0.0
) -> np.ndarray:
    """Vectorised :func:`aggregate` over many images at once.

    ``image_index[i]`` is the image (``0 <= j < n_images``) that box ``i``
    belongs to. Returns ``(n_images,)``; images with no boxes get ``empty``.
    """
    if how not in AGGREGATIONS:
        raise ConfigError(unknown("aggregation", how, AGGREGATIONS))
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    idx = np.asarray(image_index, dtype=np.intp).reshape(-1)
    if s.shape != idx.shape:
        raise DataError(f"scores {s.shape} and image_index {idx.shape} differ in length")
    if idx.size and (idx.min() < 0 or idx.max() >= n_images):
        raise DataError(f"image_index must lie in [0, {n_images})")
    counts = np.bincount(idx, minlength=n_images)
    if how == "max":
        out = np.full(n_images, -np.inf)
        np.maximum.at(out, idx, s) if s.size < 4096 else _group_max(out, idx, s)
    else:
        out = np.bincount(idx, weights=s, minlength=n_images).astype(np.float64)
        if how == "mean":
            np.divide(out, counts, out=out, where=counts > 0)
    out[counts == 0] = empty
    return out


def _group_max(out: np.ndarray, idx: np.ndarray, s: np.ndarray) -> None:
    if np.all(idx[1:] >= idx[:-1]):
        # Boxes already grouped by image (the usual case): one linear pass.
        starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
        out[idx[starts]] = np.maximum.reduceat(s, starts)
        return
    # Otherwise sort by (image, score) once; the last entry of each image is its
    # max. Much faster than ufunc.at for millions of boxes.
    order = np.lexsort((s, idx))
    sorted_idx = idx[order]
    last = np.r_[sorted_idx[1:] != sorted_idx[:-1], True]
    out[sorted_idx[last]] = s[order][last]
