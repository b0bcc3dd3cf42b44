"""The model adapter interface: the three operations detal needs of a detector.

Only :mod:`detal.ultra` implements it with Ultralytics (and only it imports
``ultralytics``). Selection, scheduling, the project store and the simulation
are written against :class:`ModelAdapter`, so their tests run against
:class:`detal.fake.FakeAdapter`, which returns canned probabilities.

Training data is passed as explicit ``(image, label)`` pairs, never as a
folder to glob: unlabeled images sit beside labeled ones in a pool.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from detal.detections import Prediction

__all__ = ["LabeledImage", "Metrics", "ModelAdapter", "PredictResult", "TrainResult"]

LabeledImage = tuple[Path, Path]
"""An image file and its YOLO label file (which may be empty: no objects)."""


@dataclass(frozen=True)
class Metrics:
    """Detection quality on a validation set, from Ultralytics' validator.

    ``per_class[c]`` is class c's mAP50-95, or ``None`` when the validation
    set holds no instance of class c (its AP is undefined: Ultralytics'
    ``maps`` would report the overall mAP there). ``per_class`` is ``None``
    when the evaluation did not give per-class figures. A list (as read back
    from JSON) is turned into a tuple.
    """

    map50: float
    map50_95: float
    per_class: tuple[float | None, ...] | None = None

    def __post_init__(self) -> None:
        if self.per_class is not None:
            values = tuple(None if v is None else float(v) for v in self.per_class)
            object.__setattr__(self, "per_class", values)


@dataclass(frozen=True)
class TrainResult:
    weights: Path
    metrics: Metrics | None
    seconds: float
    epochs: int


@dataclass(frozen=True)
class PredictResult:
    """Predictions in input order, and the images that could not be read."""

    predictions: list[Prediction]
    failed: list[tuple[Path, str]] = field(default_factory=list)


@runtime_checkable
class ModelAdapter(Protocol):
    def train(
        self,
        train_items: Sequence[LabeledImage],
        val_items: Sequence[LabeledImage],
        names: Sequence[str],
        out_dir: Path,
        *,
        epochs: int,
        init_weights: Path | None = None,
    ) -> TrainResult:
        """Train on exactly ``train_items``; validate on ``val_items`` (may be empty)."""
        ...

    def predict(
        self,
        weights: Path,
        images: Iterable[Path],
        *,
        conf: float,
        iou: float = 0.7,
        batch: int = 32,
        progress: bool = True,
        with_dfl: bool | None = None,
        with_embeddings: bool = False,
    ) -> PredictResult:
        """Boxes, confidences, class ids and full class-probability vectors per image.

        ``with_dfl``: also the DFL logits ``(n, 4, reg_max)`` of every kept box
        (:attr:`Detections.dfl`; a :class:`~detal.errors.ModelError` if the
        model has no DFL head); ``None`` lets the adapter decide (the
        Ultralytics adapter reads them when its config's measure needs them). ``with_embeddings``: also each image's
        embedding (:attr:`Prediction.embedding`). Both come from the same
        forward pass; without them, neither is computed.
        """
        ...

    def evaluate(
        self, weights: Path, val_items: Sequence[LabeledImage], names: Sequence[str], out_dir: Path
    ) -> Metrics:
        """mAP50, mAP50-95 and per-class mAP50-95 on ``val_items``."""
        ...
