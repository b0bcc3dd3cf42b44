"""From predictions to one uncertainty per image.

Glue between :mod:`detal.uncertainty` (pure math over arrays) and the
:class:`~detal.detections.Prediction` records an adapter returns. Which boxes
count (``score_conf``) and the score of an image with no counted box
(``empty``) are explicit arguments, as METHOD.md asks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detal.config import Config
from detal.detections import Prediction
from detal.uncertainty import aggregate, box_scores

__all__ = ["ImageScore", "score_prediction", "score_predictions"]


@dataclass(frozen=True)
class ImageScore:
    """One image's uncertainty, the boxes it counted, and its most confident class."""

    path: Path
    score: float
    n_boxes: int
    top_class: int | None


def score_prediction(
    pred: Prediction,
    *,
    measure: str = "entropy",
    how: str = "max",
    score_conf: float = 0.25,
    empty: float = 0.0,
    normalize: bool = True,
) -> ImageScore:
    det = pred.detections.above(score_conf)
    if len(det) == 0:
        return ImageScore(pred.path, float(empty), 0, None)
    scores = box_scores(det.class_probs, measure=measure, normalize=normalize)
    top = int(det.class_id[int(np.argmax(det.confidence))])
    return ImageScore(pred.path, aggregate(scores, how=how, empty=empty), len(det), top)


def score_predictions(preds: Iterable[Prediction], cfg: Config) -> list[ImageScore]:
    """Score every prediction with the measure, aggregation and thresholds of ``cfg``."""
    return [
        score_prediction(
            p,
            measure=cfg.measure,
            how=cfg.aggregate,
            score_conf=cfg.score_conf,
            empty=cfg.empty_image_score,
            normalize=cfg.normalize_entropy,
        )
        for p in preds
    ]
