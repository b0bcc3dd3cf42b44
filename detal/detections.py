"""The one validated detection record, and the prediction of one image.

:class:`Detections` holds the boxes of one image after NMS: ``xyxy (n, 4)`` in
original pixel coordinates, ``class_id (n,)``, ``confidence (n,)`` and the full
class-probability vector of every box, ``class_probs (n, C)``, and optionally
the raw DFL logits of every box, ``dfl (n, 4, reg_max)`` (``None`` when the
adapter did not read them). Shapes and dtypes are checked on construction, so
code downstream can trust them.

:class:`Prediction` may carry an image ``embedding``: a 1-D float16 vector of
unit L2 norm (``None`` when not computed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detal.errors import DataError

__all__ = ["Detections", "Prediction"]


@dataclass(frozen=True)
class Detections:
    xyxy: np.ndarray
    class_id: np.ndarray
    confidence: np.ndarray
    class_probs: np.ndarray
    dfl: np.ndarray | None = None

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float64)
        if xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        class_id = np.asarray(self.class_id).reshape(-1)
        is_int = np.issubdtype(class_id.dtype, np.integer)
        if class_id.size and not is_int and not np.all(np.equal(np.mod(class_id, 1), 0)):
            raise DataError("Detections.class_id must hold integers")
        class_id = class_id.astype(np.int64)
        confidence = np.asarray(self.confidence, dtype=np.float64).reshape(-1)
        probs = np.asarray(self.class_probs, dtype=np.float64)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise DataError(f"Detections.xyxy must have shape (n, 4), got {xyxy.shape}")
        n = xyxy.shape[0]
        if class_id.shape != (n,) or confidence.shape != (n,):
            raise DataError(
                f"Detections: {n} boxes but class_id {class_id.shape} and confidence {confidence.shape}"
            )
        if probs.ndim != 2 or probs.shape[0] != n:
            raise DataError(f"Detections.class_probs must have shape ({n}, C), got {probs.shape}")
        if n and probs.shape[1] and (class_id.min() < 0 or class_id.max() >= probs.shape[1]):
            raise DataError(f"Detections.class_id out of range for {probs.shape[1]} classes")
        if self.dfl is not None:
            dfl = np.asarray(self.dfl, dtype=np.float32)
            if dfl.ndim != 3 or dfl.shape[0] != n or dfl.shape[1] != 4 or dfl.shape[2] < 2:
                raise DataError(f"Detections.dfl must have shape ({n}, 4, reg_max >= 2), got {dfl.shape}")
            if dfl.size and not np.all(np.isfinite(dfl)):
                raise DataError("Detections.dfl must be finite")
            object.__setattr__(self, "dfl", dfl)
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "class_id", class_id)
        object.__setattr__(self, "confidence", confidence)
        object.__setattr__(self, "class_probs", probs)

    @classmethod
    def empty(cls, n_classes: int, reg_max: int | None = None) -> Detections:
        """No boxes; with ``reg_max``, an empty ``dfl`` array too (the adapter read DFL logits)."""
        dfl = None if reg_max is None else np.zeros((0, 4, reg_max), np.float32)
        return cls(np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0), np.zeros((0, n_classes)), dfl)

    @property
    def n_classes(self) -> int:
        return int(self.class_probs.shape[1])

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def filter(self, mask: np.ndarray) -> Detections:
        """The boxes where ``mask`` is true."""
        mask = np.asarray(mask, dtype=bool).reshape(-1)
        if mask.shape != (len(self),):
            raise DataError(f"mask has shape {mask.shape}, expected ({len(self)},)")
        dfl = None if self.dfl is None else self.dfl[mask]
        return Detections(
            self.xyxy[mask], self.class_id[mask], self.confidence[mask], self.class_probs[mask], dfl
        )

    def above(self, conf: float) -> Detections:
        """The boxes with confidence >= ``conf``."""
        return self.filter(self.confidence >= conf)


@dataclass(frozen=True)
class Prediction:
    """The detections of one image, with the image's size in pixels.

    ``embedding`` is the image's feature vector from the same forward pass
    (1-D float16, unit L2 norm), or ``None`` when it was not computed.
    """

    path: Path
    width: int
    height: int
    detections: Detections
    embedding: np.ndarray | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise DataError(f"{self.path}: image size must be positive, got {self.width}x{self.height}")
        if self.embedding is not None:
            emb = np.asarray(self.embedding, dtype=np.float16)
            if emb.ndim != 1 or emb.size == 0 or not np.all(np.isfinite(emb)):
                raise DataError(f"{self.path}: embedding must be a non-empty, finite 1-D vector, got {emb.shape}")
            object.__setattr__(self, "embedding", emb)
        object.__setattr__(self, "path", Path(self.path))
