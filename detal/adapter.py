"""The model adapter interface: what detal needs of a detector, and the one place adapters are built.

:class:`ModelAdapter` names three operations (``train``, ``predict``,
``evaluate``) and two services (``class_names``, read from weights, and
``log_to``, which routes the framework's log to a file). Only
:mod:`detal.ultra` implements it with Ultralytics (and only that package
imports ``ultralytics``). Selection, scheduling, the project store and the
simulation are written against :class:`ModelAdapter`, so their tests run
against :class:`detal.fake.FakeAdapter`, which returns canned probabilities.

:func:`make_adapter` is the one factory every command uses: the Ultralytics
adapter (imported only then), or the fake one when the environment sets
``DETAL_FAKE_ADAPTER=1`` (for dry runs and subprocess tests).

Training data is passed as explicit ``(image, label)`` pairs, never as a
folder to glob: unlabeled images sit beside labeled ones in a pool.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO, runtime_checkable

from detal.detections import Prediction

if TYPE_CHECKING:
    from detal.config import Config

__all__ = [
    "FAKE_ADAPTER_ENV",
    "LabeledImage",
    "Metrics",
    "ModelAdapter",
    "PredictResult",
    "TrainResult",
    "fake_adapter_requested",
    "make_adapter",
]

FAKE_ADAPTER_ENV = "DETAL_FAKE_ADAPTER"
"""Set to ``1`` in the environment, :func:`make_adapter` builds the fake adapter."""

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

    def class_names(self, weights: Path) -> list[str]:
        """The class names stored in ``weights``, in class-id order; empty when it stores none."""
        ...

    def log_to(
        self,
        path: Path,
        *,
        echo: TextIO | None = None,
        on_epoch: Callable[[int, int], None] | None = None,
    ) -> contextlib.AbstractContextManager:
        """A context inside which the adapter's own log is appended to ``path``, not the terminal.

        ``echo``, when given, sees it too. ``on_epoch(epoch, epochs)`` is
        called with the epochs done: 0 when training starts, then after each
        finished epoch.
        """
        ...


def fake_adapter_requested() -> bool:
    """True when the environment asks for the fake adapter (``DETAL_FAKE_ADAPTER=1``)."""
    return os.environ.get(FAKE_ADAPTER_ENV) == "1"


def make_adapter(cfg: Config, *, n_classes: int | None = None) -> ModelAdapter:
    """The adapter for ``cfg``: Ultralytics, or the fake one if :func:`fake_adapter_requested`.

    ``n_classes`` sizes the fake adapter's predictions (the Ultralytics adapter
    reads the class count from its weights); ``None`` lets the fake take it from
    the class names it trains with and the weights it predicts with.
    ``ultralytics`` is imported only here, lazily, and only for the real adapter.
    A module-level function of ``cfg`` alone, so it also serves as a picklable
    adapter factory (``simulate --jobs``).
    """
    if fake_adapter_requested():
        from detal.fake import FakeAdapter

        return FakeAdapter(n_classes, seed=cfg.seed)
    from detal.ultra import UltralyticsAdapter

    return UltralyticsAdapter(cfg)
