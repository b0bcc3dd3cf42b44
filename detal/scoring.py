"""From predictions to one uncertainty per image.

Glue between :mod:`detal.uncertainty` (pure math over arrays) and the
:class:`~detal.detections.Prediction` records an adapter returns. Which boxes
count (``score_conf``) and the score of an image with no counted box
(``empty``) are explicit arguments, as ``docs/method.md`` asks.

A box's score is the measure spec's (weighted, normalised) mix of per-box
measures, times its class-difficulty weight ``w[class_id]`` when weights are
given; the image's score is the aggregation (``max``/``mean``/``sum``) of
those box scores. ``components`` keeps, per measure of the spec, the same
aggregation of that measure alone (times the same class weights), so a mix can
be taken apart afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detal.config import Config
from detal.detections import Prediction
from detal.errors import DataError, ModelError
from detal.uncertainty import (
    MeasureSpec,
    aggregate,
    class_weights,
    measure_components,
    measure_weights,
)

__all__ = ["ImageScore", "ScoreTable", "score_prediction", "score_predictions"]


@dataclass(frozen=True)
class ImageScore:
    """One image's uncertainty, the boxes it counted, and its most confident class.

    ``components`` maps each measure of the spec to its own aggregated score;
    ``embedding`` is the prediction's image embedding (``None`` if it had none).
    """

    path: Path
    score: float
    n_boxes: int
    top_class: int | None
    components: dict[str, float] = field(default_factory=dict, compare=False)
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)


def score_prediction(
    pred: Prediction,
    *,
    measure: MeasureSpec = "entropy",
    how: str = "max",
    score_conf: float = 0.25,
    empty: float = 0.0,
    normalize: bool = True,
    weights: np.ndarray | None = None,
) -> ImageScore:
    """Score one prediction. ``weights`` is ``(n_classes,)`` class weights (``None``: all 1)."""
    mix = measure_weights(measure)
    det = pred.detections.above(score_conf)
    if len(det) == 0:
        return ImageScore(
            pred.path, float(empty), 0, None, {name: float(empty) for name in mix}, pred.embedding
        )
    parts = measure_components(det.class_probs, measure, normalize=normalize, dfl=det.dfl)
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (det.n_classes,):
            n_w = w.shape[0] if w.ndim else 0
            raise DataError(f"{pred.path}: {n_w} class weights for {det.n_classes} classes")
        box_w = w[det.class_id]
        parts = {name: values * box_w for name, values in parts.items()}
    scores = next(iter(parts.values())) if len(parts) == 1 else sum(mix[n] * parts[n] for n in mix)
    top = int(det.class_id[int(np.argmax(det.confidence))])
    components = {name: aggregate(values, how=how, empty=empty) for name, values in parts.items()}
    return ImageScore(
        pred.path, aggregate(scores, how=how, empty=empty), len(det), top, components, pred.embedding
    )


def score_predictions(
    preds: Iterable[Prediction], cfg: Config, class_ap: Sequence[float | None] | None = None
) -> list[ImageScore]:
    """Score every prediction with the measure, aggregation and thresholds of ``cfg``.

    With ``cfg.class_weighting == "difficulty"``, boxes are weighted by
    :func:`~detal.uncertainty.class_weights` of ``class_ap`` (the per-class
    mAP50-95 of the last evaluation, :attr:`detal.adapter.Metrics.per_class`)
    and ``cfg.difficulty_beta``; ``class_ap=None`` (no evaluation yet) means
    weight 1 for every class. ``class_ap`` is ignored when weighting is ``none``.
    """
    cache: dict[int, np.ndarray | None] = {}
    out = []
    for p in preds:
        n_classes = p.detections.n_classes
        if n_classes not in cache:
            cache[n_classes] = (
                class_weights(class_ap, n_classes, cfg.difficulty_beta)
                if cfg.class_weighting == "difficulty"
                else None
            )
        out.append(
            score_prediction(
                p,
                measure=cfg.measure,
                how=cfg.aggregate,
                score_conf=cfg.score_conf,
                empty=cfg.empty_image_score,
                normalize=cfg.normalize_entropy,
                weights=cache[n_classes],
            )
        )
    return out


class ScoreTable(Sequence[ImageScore]):
    """The scores of a whole pass in compact arrays, filled one chunk of predictions at a time.

    What :func:`detal.score_images.score_images` keeps of a pass once its
    predictions are dropped: per image the path, the score, the counted
    boxes, the top class (``-1`` for none in :attr:`top_class`), each
    measure's component and, when asked, the embedding (one float16
    ``(n, d)`` array). Indexing gives the same :class:`ImageScore` that
    :func:`score_predictions` returns, so a table reads as a sequence of them.
    """

    def __init__(self, capacity: int, measures: Sequence[str], *, embeddings: bool = False) -> None:
        self.paths: list[Path] = []
        self.score = np.empty(capacity, dtype=np.float64)
        self.n_boxes = np.empty(capacity, dtype=np.int64)
        self.top_class = np.empty(capacity, dtype=np.int64)
        self.components = {name: np.empty(capacity, dtype=np.float64) for name in measures}
        self.embeddings: np.ndarray | None = None
        self._want_embeddings = embeddings

    def add(self, scores: Sequence[ImageScore]) -> None:
        """Append one chunk's scores (their embeddings copied into the table's array)."""
        start = len(self.paths)
        end = start + len(scores)
        if end > len(self.score):
            raise ValueError(f"{end} scores for a table of {len(self.score)}")
        for i, s in enumerate(scores, start):
            self.score[i] = s.score
            self.n_boxes[i] = s.n_boxes
            self.top_class[i] = -1 if s.top_class is None else s.top_class
            for name, values in self.components.items():
                values[i] = s.components[name]
            if self._want_embeddings:
                if s.embedding is None:
                    raise ModelError(f"{s.path}: no embedding was computed")
                if self.embeddings is None:
                    self.embeddings = np.empty((len(self.score), s.embedding.shape[0]), dtype=np.float16)
                self.embeddings[i] = s.embedding
        self.paths.extend(s.path for s in scores)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(i)
        i %= n
        top = int(self.top_class[i])
        return ImageScore(
            self.paths[i],
            float(self.score[i]),
            int(self.n_boxes[i]),
            None if top < 0 else top,
            {name: float(values[i]) for name, values in self.components.items()},
            None if self.embeddings is None else self.embeddings[i],
        )

    def __iter__(self) -> Iterator[ImageScore]:
        return (self[i] for i in range(len(self)))
