"""What correcting a batch of pre-labels costs: the shipped boxes matched to the returned ones, and seconds.

For one image, the pre-label boxes that were shipped are matched one-to-one
to the boxes that came back, by IoU, greedily: every (shipped, returned) pair
with IoU >= ``iou_match`` is a candidate; pairs of the same class come first,
then higher IoU, then the shipped box's higher confidence, then the lower
index (so the result is deterministic); a pair is taken when neither box is
taken yet. Same-class first means that a box the annotator could keep (or
nudge) is credited before a class fix is. Greedy, not Hungarian: on boxes of
one image the two differ only where several boxes overlap each other at
similar IoU, and the greedy rule is the one an annotator follows.

Each shipped box then has one outcome:

- ``verified``: matched, same class, IoU >= ``iou_verify`` (kept as is or nearly);
- ``adjusted``: matched, same class, ``iou_match`` <= IoU < ``iou_verify``;
- ``relabeled``: matched, another class;
- ``deleted``: no match (a false pre-label, or a duplicate of a matched one);

and each returned box that no shipped box matched was ``drawn``. An image
returned with no pre-label shipped (the initial random batch) is all drawn.

Cost (:class:`Effort`): ``per_image + sum(count[a] * seconds[a])`` over the
five actions, and, for comparison, what the same returned boxes cost drawn
from scratch: ``per_image + returned * draw``. A batch (:func:`batch_cost`)
sums both over its returned images; its pre-label precision is the share of
shipped boxes that matched a returned box of their class (verified or
adjusted), its recall the share of returned boxes so matched, both over the
images that had pre-labels shipped (``None`` where there is nothing to
divide by). The default seconds and their
sources are in ``configs/default.yaml`` (``effort_seconds``) and docs/method.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Protocol

import numpy as np

from detal.errors import unknown

__all__ = [
    "ACTIONS",
    "OUTCOMES",
    "BatchCost",
    "Diff",
    "Effort",
    "ImageCounts",
    "batch_cost",
    "box_iou",
    "diff_boxes",
    "format_seconds",
    "from_yolo",
]

OUTCOMES = ("verified", "adjusted", "relabeled", "deleted")  # of a shipped box
ACTIONS = (*OUTCOMES, "drawn")  # what the annotator did, drawn for the returned boxes nobody shipped


def from_yolo(boxes: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Normalised ``(cx, cy, w, h)`` rows to ``(x1, y1, x2, y2)``, shape ``(n, 4)``."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    half = b[:, 2:] / 2.0
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (n, 4 xyxy) with every box of ``b`` (m, 4): ``(n, m)``."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0.0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0.0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0.0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


@dataclass(frozen=True)
class Diff:
    """One image's shipped pre-labels against its returned labels.

    ``outcome[i]`` and ``iou[i]`` belong to shipped box ``i`` (IoU 0 for a
    deleted box); ``drawn`` counts the returned boxes nothing matched.
    """

    outcome: tuple[str, ...]
    iou: tuple[float, ...]
    drawn: int
    returned: int

    @property
    def shipped(self) -> int:
        return len(self.outcome)

    def count(self, action: str) -> int:
        if action == "drawn":
            return self.drawn
        if action not in OUTCOMES:
            raise ValueError(unknown("action", action, ACTIONS))
        return sum(1 for o in self.outcome if o == action)

    def counts(self) -> dict[str, int]:
        return {a: self.count(a) for a in ACTIONS}

    @property
    def correct(self) -> tuple[bool, ...]:
        """Per shipped box: did it match a returned box of its own class (verified or adjusted)?"""
        return tuple(o in ("verified", "adjusted") for o in self.outcome)


def diff_boxes(
    shipped_xyxy: np.ndarray, shipped_cls: Sequence[int], returned_xyxy: np.ndarray, returned_cls: Sequence[int],
    *, shipped_conf: Sequence[float] | None = None, iou_match: float = 0.5, iou_verify: float = 0.7,
) -> Diff:
    """Match one image's shipped boxes to its returned boxes (see the module docstring)."""
    if not 0.0 < iou_match <= iou_verify <= 1.0:
        raise ValueError(f"need 0 < iou_match <= iou_verify <= 1, got {iou_match} and {iou_verify}")
    s = np.asarray(shipped_xyxy, dtype=np.float64).reshape(-1, 4)
    r = np.asarray(returned_xyxy, dtype=np.float64).reshape(-1, 4)
    sc, rc = np.asarray(shipped_cls, dtype=np.int64).reshape(-1), np.asarray(returned_cls, dtype=np.int64).reshape(-1)
    if sc.size != s.shape[0] or rc.size != r.shape[0]:
        raise ValueError("one class id per box is needed")
    conf = np.zeros(s.shape[0]) if shipped_conf is None else np.asarray(shipped_conf, dtype=np.float64).reshape(-1)
    outcome = ["deleted"] * s.shape[0]
    ious = [0.0] * s.shape[0]
    if s.shape[0] and r.shape[0]:
        iou = box_iou(s, r)
        si, ri = np.nonzero(iou >= iou_match)
        same = sc[si] == rc[ri]
        # lexsort: the last key is the primary one
        order = np.lexsort((ri, si, -conf[si], -iou[si, ri], ~same))
        taken_s, taken_r = set(), set()
        for k in order:
            i, j = int(si[k]), int(ri[k])
            if i in taken_s or j in taken_r:
                continue
            taken_s.add(i)
            taken_r.add(j)
            v = float(iou[i, j])
            ious[i] = v
            if not same[k]:
                outcome[i] = "relabeled"
            else:
                outcome[i] = "verified" if v >= iou_verify else "adjusted"
        matched = len(taken_r)
    else:
        matched = 0
    return Diff(tuple(outcome), tuple(ious), drawn=int(r.shape[0]) - matched, returned=int(r.shape[0]))


@dataclass(frozen=True)
class Effort:
    """Seconds an annotator spends per action, and per image (open, look, submit)."""

    verify: float = 1.6
    adjust: float = 4.0
    relabel: float = 3.0
    delete: float = 1.5
    draw: float = 7.0
    per_image: float = 3.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v) or v < 0:
                raise ValueError(f"effort_seconds.{f.name} must be a number >= 0, got {v!r}")

    def seconds(self, counts: dict[str, int]) -> float:
        """Time to correct one image with these action counts."""
        per = {"verified": self.verify, "adjusted": self.adjust, "relabeled": self.relabel,
               "deleted": self.delete, "drawn": self.draw}
        return self.per_image + sum(counts.get(a, 0) * per[a] for a in ACTIONS)

    def from_scratch(self, returned: int) -> float:
        """Time to draw the same ``returned`` boxes with no pre-labels."""
        return self.per_image + returned * self.draw


class ImageCounts(Protocol):
    """One returned image's figures (:class:`detal.store.CorrectionRow` is one)."""

    @property
    def prelabeled(self) -> bool: ...  # were pre-labels shipped for it?
    @property
    def shipped(self) -> int: ...
    @property
    def returned(self) -> int: ...
    def counts(self) -> dict[str, int]: ...


@dataclass(frozen=True)
class BatchCost:
    """What correcting a batch took, summed over its returned images (see the module docstring)."""

    images: int
    prelabeled_images: int
    shipped_boxes: int
    returned_boxes: int
    counts: dict[str, int]
    precision: float | None
    recall: float | None
    annotator_s: float
    from_scratch_s: float


def batch_cost(images: Iterable[ImageCounts], effort: Effort) -> BatchCost:
    """Sum the counts and the seconds of ``images``; precision and recall over the pre-labeled ones."""
    n = pre = shipped = returned = returned_pre = 0
    counts = dict.fromkeys(ACTIONS, 0)
    seconds = scratch = 0.0
    for im in images:
        c = im.counts()
        n += 1
        shipped += im.shipped
        returned += im.returned
        if im.prelabeled:
            pre += 1
            returned_pre += im.returned
        for a in ACTIONS:
            counts[a] += c[a]
        seconds += effort.seconds(c)
        scratch += effort.from_scratch(im.returned)
    matched = counts["verified"] + counts["adjusted"]
    return BatchCost(
        images=n, prelabeled_images=pre, shipped_boxes=shipped, returned_boxes=returned, counts=counts,
        precision=matched / shipped if shipped else None,
        recall=matched / returned_pre if returned_pre else None,
        annotator_s=seconds, from_scratch_s=scratch,
    )


def format_seconds(seconds: float) -> str:
    """Annotator time for people: ``45 s``, ``12.5 min``, ``3.2 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
