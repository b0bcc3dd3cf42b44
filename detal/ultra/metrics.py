"""Detection quality as detal records it, read from Ultralytics' validator and trainer."""

from __future__ import annotations

from typing import Any

import numpy as np

from detal.adapter import Metrics

__all__ = ["metrics_from", "per_class_ap"]


def metrics_from(metrics: Any, validator: Any = None, n_classes: int = 0) -> Metrics | None:
    """mAP50 and mAP50-95 from the dict Ultralytics' trainer keeps after its final validation.

    Per-class figures come from the validator's last ``DetMetrics`` (the same
    final validation), when it has them.
    """
    if not isinstance(metrics, dict):
        return None
    box = getattr(getattr(validator, "metrics", None), "box", None)
    try:
        return Metrics(
            map50=float(metrics["metrics/mAP50(B)"]),
            map50_95=float(metrics["metrics/mAP50-95(B)"]),
            per_class=per_class_ap(box, n_classes) if box is not None and n_classes else None,
        )
    except (KeyError, TypeError, ValueError):
        return None


def per_class_ap(box: Any, n_classes: int) -> tuple[float | None, ...] | None:
    """Per-class mAP50-95 from an Ultralytics box ``Metric``; ``None`` for classes without instances.

    ``box.ap`` holds one mAP50-95 per class listed in ``box.ap_class_index``,
    the classes with at least one ground-truth instance. (``box.maps`` fills
    the other classes with the overall mAP, which would hide that they were
    never measured.)
    """
    try:
        index = [int(c) for c in np.asarray(box.ap_class_index).reshape(-1)]
        ap = np.asarray(box.ap, dtype=np.float64).reshape(-1)
    except (AttributeError, TypeError, ValueError):
        return None
    if len(index) != ap.size:
        return None
    out: list[float | None] = [None] * n_classes
    for c, value in zip(index, ap.tolist()):
        if 0 <= c < n_classes:
            out[c] = float(value)
    return tuple(out)
