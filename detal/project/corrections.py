"""What correcting the pre-labels took: the shipped boxes of each returned image against its labels.

Called by ``import`` (:mod:`detal.project.label_import`) for every image
whose labels come in. The shipped boxes are those of the cycle that selected
the image, read from ``cycles/<k>/shipped.json`` (the boxes detal actually
sent, with their confidences; :func:`detal.project.pseudo.write_shipped`).
A cycle run before that file existed falls back to its pre-label files,
without confidences. An image with no pre-label shipped (the initial random
batch) has every returned box drawn. The match is
:func:`detal.effort.diff_boxes` with the project's ``effort_iou``; the rows
go to the store (:mod:`detal.store.corrections`) in the transaction that
marks the images labeled.

Images that an older detal imported, before the store kept these rows, get
theirs at the next import, from the label files as they are then
(:func:`uncorrected_rows`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from detal.effort import diff_boxes, from_yolo
from detal.labels import YoloBox, read_label_file
from detal.project.paths import ProjectPaths
from detal.project.pseudo import read_shipped
from detal.store import CorrectionRow, ImageRow, ShippedBoxRow, Store

__all__ = ["correction_rows", "diff_image", "shipped_of", "uncorrected_rows"]


def shipped_of(project: Path, cycle: int, keys: Sequence[str], n_classes: int) -> dict[str, list[YoloBox]]:
    """``key -> the pre-label boxes cycle shipped`` for those of ``keys`` it shipped any file for.

    From ``shipped.json``; a cycle without one (run by an older detal) from
    its ``prelabels/<key>.txt`` files. A key left out got no pre-label.
    """
    shipped = read_shipped(project, cycle)
    if shipped:
        return {k: shipped[k] for k in keys if k in shipped}
    paths = ProjectPaths(project)
    out = {}
    for key in keys:
        parsed = read_label_file(paths.prelabel(cycle, key), n_classes, allow_confidence=True)
        if parsed and not parsed[1]:
            out[key] = parsed[0]
    return out


def diff_image(row: ImageRow, shipped: Sequence[YoloBox] | None, returned: Sequence[YoloBox],
               iou: Mapping[str, float]) -> tuple[CorrectionRow, list[ShippedBoxRow]]:
    """One returned image's rows: its shipped boxes (``None``: none were shipped) against its labels."""
    boxes = list(shipped or ())
    d = diff_boxes(
        from_yolo([(b.cx, b.cy, b.w, b.h) for b in boxes]), [b.class_id for b in boxes],
        from_yolo([(b.cx, b.cy, b.w, b.h) for b in returned]), [b.class_id for b in returned],
        shipped_conf=[b.confidence or 0.0 for b in boxes], iou_match=iou["match"], iou_verify=iou["verify"],
    )
    c = d.counts()
    correction = CorrectionRow(row.id, row.selected_cycle, shipped is not None, d.shipped, d.returned,
                               c["verified"], c["adjusted"], c["relabeled"], c["deleted"], c["drawn"])
    per_box = [ShippedBoxRow(row.id, j, b.class_id, b.confidence, outcome, round(v, 6))
               for j, (b, outcome, v) in enumerate(zip(boxes, d.outcome, d.iou))]
    return correction, per_box


def correction_rows(project: Path, items: Sequence[tuple[ImageRow, Sequence[YoloBox]]], n_classes: int,
                    iou: Mapping[str, float]) -> tuple[list[CorrectionRow], list[ShippedBoxRow]]:
    """The rows of returned images ``(image row, returned boxes)``; images no batch brought are skipped.

    (An image labeled at ``init`` was never in a batch: nothing was shipped
    for it, and correcting its label is no correction of pre-labels.)
    """
    by_cycle: dict[int, list[tuple[ImageRow, Sequence[YoloBox]]]] = {}
    for row, boxes in items:
        if row.selected_cycle >= 0:
            by_cycle.setdefault(row.selected_cycle, []).append((row, boxes))
    rows: list[CorrectionRow] = []
    per_box: list[ShippedBoxRow] = []
    for cycle, group in sorted(by_cycle.items()):
        shipped = shipped_of(project, cycle, [r.key for r, _ in group], n_classes)
        for row, boxes in group:
            correction, b = diff_image(row, shipped.get(row.key), boxes, iou)
            rows.append(correction)
            per_box += b
    return rows, per_box


def uncorrected_rows(project: Path, store: Store, n_classes: int, iou: Mapping[str, float],
                     exclude: Sequence[int] = ()) -> tuple[list[CorrectionRow], list[ShippedBoxRow]]:
    """Rows for the labeled batch images that have none yet (imported by an older detal).

    From their label files as they are now; an image whose file is missing
    or does not parse is left for a later import.
    """
    paths = ProjectPaths(project)
    items = []
    for row in store.uncorrected(exclude):
        parsed = read_label_file(paths.label(row.relpath), n_classes)
        if parsed and not parsed[1]:
            items.append((row, parsed[0]))
    return correction_rows(project, items, n_classes, iou)
