"""The ``corrections`` and ``shipped_boxes`` tables: what correcting each returned image took.

Every import (:mod:`detal.project.label_import`) writes, in the transaction
that marks the images labeled, one :class:`CorrectionRow` per image whose
labels came in: the cycle that selected it (whose pre-labels were shipped),
whether pre-labels were shipped for it at all, the boxes shipped and
returned, and the five action counts of :func:`detal.effort.diff_boxes`;
and one :class:`ShippedBoxRow` per shipped box: its class, its confidence,
its outcome and the IoU of its match. Writing an image's rows again (a
re-import with ``--overwrite``) replaces them, so nothing is counted twice.

A database made before these tables existed gains them when first opened for
writing; opened read-only, it reads as having no rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from detal.effort import ACTIONS
from detal.store.connection import StoreConnection
from detal.store.images import ImageRow

__all__ = ["CorrectionRow", "CorrectionTable", "ShippedBoxRow"]

_CORRECTION_COLS = "image_id, cycle, prelabeled, shipped, returned, " + ", ".join(ACTIONS)


@dataclass(frozen=True)
class CorrectionRow:
    """One returned image: its shipped and returned box counts, and what the annotator did."""

    image_id: int
    cycle: int  # the cycle that selected the image and shipped its pre-labels
    prelabeled: bool  # False: no pre-label was shipped (the initial batch): every box was drawn
    shipped: int
    returned: int
    verified: int
    adjusted: int
    relabeled: int
    deleted: int
    drawn: int

    def counts(self) -> dict[str, int]:
        """``action -> count`` over :data:`detal.effort.ACTIONS`."""
        return {a: getattr(self, a) for a in ACTIONS}


class ShippedBoxRow(NamedTuple):
    """One shipped pre-label box and its outcome (``verified | adjusted | relabeled | deleted``)."""

    image_id: int
    box: int  # its index among the image's shipped boxes
    class_id: int
    confidence: float | None
    outcome: str
    iou: float


class CorrectionTable(StoreConnection):
    """Reading and writing correction rows (part of :class:`detal.store.Store`)."""

    def record_corrections(self, rows: Sequence[CorrectionRow], boxes: Sequence[ShippedBoxRow]) -> None:
        """Write the rows of some images, replacing any they had. Call inside a transaction.

        ``boxes`` are the shipped boxes of exactly these images.
        """
        ids = [(r.image_id,) for r in rows]
        self._conn.executemany("DELETE FROM shipped_boxes WHERE image_id = ?", ids)
        self._conn.executemany(
            f"INSERT OR REPLACE INTO corrections ({_CORRECTION_COLS}) VALUES ({', '.join('?' * 10)})",
            [(r.image_id, r.cycle, int(r.prelabeled), r.shipped, r.returned, *r.counts().values()) for r in rows],
        )
        self._conn.executemany(
            "INSERT INTO shipped_boxes (image_id, box, class_id, confidence, outcome, iou) VALUES (?, ?, ?, ?, ?, ?)",
            [tuple(b) for b in boxes],
        )

    def corrections(self, cycle: int | None = None) -> list[CorrectionRow]:
        """The rows of every returned image, or of those ``cycle`` selected; by image id."""
        if not self._has_corrections:
            return []
        where, params = ("WHERE cycle = ?", (cycle,)) if cycle is not None else ("", ())
        cur = self._conn.execute(f"SELECT {_CORRECTION_COLS} FROM corrections {where} ORDER BY image_id", params)
        return [CorrectionRow(r[0], r[1], bool(r[2]), *r[3:]) for r in cur]

    def shipped_boxes(self, cycle: int) -> list[ShippedBoxRow]:
        """The shipped boxes of the images ``cycle`` selected that came back, by image and box."""
        if not self._has_corrections:
            return []
        cur = self._conn.execute(
            "SELECT b.image_id, b.box, b.class_id, b.confidence, b.outcome, b.iou FROM shipped_boxes b "
            "JOIN corrections c ON c.image_id = b.image_id WHERE c.cycle = ? ORDER BY b.image_id, b.box",
            (cycle,),
        )
        return [ShippedBoxRow(*r) for r in cur]

    def uncorrected(self, exclude: Sequence[int] = ()) -> list[ImageRow]:
        """Labeled images that a batch brought in (``selected_cycle >= 0``) but that have no row yet.

        Those an older detal imported, before these tables existed; ``exclude``
        leaves out the ids given.
        """
        if not self._has_corrections:
            return []
        cur = self._conn.execute(
            f"SELECT {self._cols} FROM images WHERE status = 'labeled' AND selected_cycle >= 0 "
            f"AND {self._usable} AND id NOT IN (SELECT image_id FROM corrections) ORDER BY id"
        )
        skip = set(exclude)
        return [row for row in (ImageRow(*r) for r in cur) if row.id not in skip]
