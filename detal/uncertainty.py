"""Per-box uncertainty measures and per-image aggregation.

Pure numpy. A measure maps an ``(n_boxes, n_classes)`` array of class scores to
an ``(n_boxes,)`` array of uncertainties, higher meaning more uncertain. YOLO
heads give an independent sigmoid per class, so every row is first rescaled to
sum to 1; a row with no mass at all (all zeros) carries no class evidence and is
treated as uniform.

Measures (see METHOD.md):

- ``entropy``: ``-sum_c p_c ln p_c``, in ``[0, ln C]``; with ``normalize=True``
  divided by ``ln C`` so it lies in ``[0, 1]``.
- ``least_confidence``: ``1 - p_top1``, in ``[0, 1 - 1/C]``.
- ``margin``: ``1 - (p_top1 - p_top2)``, in ``[0, 1]``.

Aggregations reduce one image's box scores to one number: ``max``, ``mean`` or
``sum``. The score of an image with no boxes is always an explicit argument.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from detal.errors import ConfigError, DataError

__all__ = [
    "AGGREGATIONS",
    "MEASURES",
    "aggregate",
    "aggregate_groups",
    "box_scores",
    "entropy",
    "least_confidence",
    "margin",
    "normalize_probs",
]

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


MEASURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "entropy": entropy,
    "least_confidence": least_confidence,
    "margin": margin,
}


def box_scores(probs: np.ndarray, measure: str = "entropy", normalize: bool = False) -> np.ndarray:
    """Uncertainty of every box: ``(n_boxes, n_classes) -> (n_boxes,)``.

    ``normalize`` applies to entropy only (divides by ``ln C``); the other two
    measures already lie in ``[0, 1]``.
    """
    if measure not in MEASURES:
        raise ConfigError(f"unknown measure {measure!r}; expected one of {', '.join(MEASURES)}")
    if measure == "entropy":
        return entropy(probs, normalize=normalize)
    return MEASURES[measure](probs)


AGGREGATIONS = ("max", "mean", "sum")


def aggregate(scores: np.ndarray, how: str = "max", empty: float = 0.0) -> float:
    """Reduce one image's box scores to one number; ``empty`` if it has no boxes."""
    if how not in AGGREGATIONS:
        raise ConfigError(f"unknown aggregation {how!r}; expected one of {', '.join(AGGREGATIONS)}")
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
        raise ConfigError(f"unknown aggregation {how!r}; expected one of {', '.join(AGGREGATIONS)}")
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
