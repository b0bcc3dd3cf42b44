"""The review page's data: plain frozen records, no IO (filled by :mod:`.collect`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detal.labels import YoloBox

__all__ = ["BatchEffort", "CyclePoint", "ReviewImage", "ReviewPage", "ReviewResult"]


@dataclass(frozen=True)
class ReviewImage:
    """One card. ``boxes`` is None when the image has no pre-label file at all."""

    image_id: int
    name: str
    relpath: str
    width: int
    height: int
    score: float | None
    top_class: int | None
    boxes: tuple[YoloBox, ...] | None
    thumb: str | None = None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class CyclePoint:
    cycle: int
    n_train: int
    map50_95: float | None


@dataclass(frozen=True)
class BatchEffort:
    """What correcting the last batch that came back took: ``detal status``'s ``effort`` of its cycle."""

    cycle: int
    figures: dict[str, Any]  # the keys of detal.project.status.EFFORT_KEYS


@dataclass(frozen=True)
class ReviewPage:
    """Everything :func:`~detal.review.render_page` shows; plain data, no IO."""

    project: str
    cycle: int
    names: tuple[str, ...]
    pool: int
    labeled: int
    selected: int
    max_labeled_fraction: float
    cycles: tuple[CyclePoint, ...]
    class_counts: tuple[int, ...]
    images: tuple[ReviewImage, ...]
    confidence_source: str = "none"  # "pre-labels" | "shipped predictions" | "coco export" | "none"
    notes: tuple[str, ...] = ()
    generated: str = ""
    effort: BatchEffort | None = None  # None: no batch has come back yet

    @property
    def n_boxes(self) -> int:
        return sum(len(i.boxes or ()) for i in self.images)


@dataclass(frozen=True)
class ReviewResult:
    path: Path
    cycle: int
    n_images: int
    n_boxes: int
    n_unreadable: int
    confidence_source: str
    problems: tuple[str, ...]
    seconds: float
