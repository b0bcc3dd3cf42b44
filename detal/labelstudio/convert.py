"""Between detal's YOLO labels and Label Studio's regions: pure functions, no IO.

Labels are matched by class **name**, never by index (Label Studio's own YOLO
export sorts classes alphabetically). Coordinates: Label Studio keeps a box
as ``x``, ``y`` (top-left corner), ``width``, ``height`` in percent of the
image; YOLO as centre and size in ``[0, 1]``, written with 6 decimals.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from detal.errors import DataError
from detal.image_frame import size_problem
from detal.labels import YoloBox, parse_label_text, returned_line, show_number

__all__ = [
    "FROM_NAME",
    "TO_NAME",
    "annotation_to_yolo",
    "attach_scores",
    "box_regions",
    "chosen_annotation",
    "config_classes",
    "prediction_regions",
]

FROM_NAME = "label"
TO_NAME = "image"


def config_classes(label_config: str) -> list[str] | None:
    """The label values of the config's one ``RectangleLabels`` control, in order (None: none)."""
    try:
        root = ET.fromstring(label_config)
    except ET.ParseError:
        return None
    controls = [el for el in root.iter() if el.tag == "RectangleLabels"]
    if len(controls) != 1:
        return None
    return [str(el.get("value")) for el in controls[0] if el.tag == "Label"]


def _pct(v: float) -> float:
    return round(v * 100.0, 6) + 0.0


def prediction_regions(text: str, names: Sequence[str], width: int, height: int,
                       where: str) -> list[dict]:
    """Label Studio regions (percent, top-left origin) of a pre-label file's text."""
    boxes, problems = parse_label_text(text, len(names), where, allow_confidence=True)
    if problems:
        first = problems[0]
        raise DataError(f"{first.path}: line {first.line}: {first.message}")
    return box_regions(boxes, names, width, height)


def box_regions(boxes: Sequence[YoloBox], names: Sequence[str], width: int, height: int) -> list[dict]:
    """Label Studio regions of YOLO boxes whose class ids index ``names``; a confidence becomes ``score``."""
    regions = []
    for k, b in enumerate(boxes):
        region: dict[str, Any] = {
            "id": f"p{k}",
            "type": "rectanglelabels",
            "from_name": FROM_NAME,
            "to_name": TO_NAME,
            "original_width": int(width),
            "original_height": int(height),
            "image_rotation": 0,
            "value": {
                "x": _pct(b.cx - b.w / 2), "y": _pct(b.cy - b.h / 2),
                "width": _pct(b.w), "height": _pct(b.h), "rotation": 0,
                "rectanglelabels": [str(names[b.class_id])],
            },
        }
        if b.confidence is not None:
            region["score"] = round(float(b.confidence), 6)
        regions.append(region)
    return regions


def attach_scores(regions: Sequence[dict], scored: Sequence[Mapping]) -> list[dict]:
    """Give each region without a ``score`` the one of a ``scored`` region with its label and box.

    Boxes match when every percent coordinate agrees to 1e-3 (both sides come
    from the same 6-decimal YOLO numbers); each scored region is used once.
    """
    pool = []
    for r in scored:
        try:
            v = r["value"]
            pool.append((str(v["rectanglelabels"][0]),
                         tuple(float(v[k]) for k in ("x", "y", "width", "height")), float(r["score"])))
        except (KeyError, IndexError, TypeError, ValueError):
            continue
    out = []
    for region in regions:
        if "score" not in region:
            v = region["value"]
            box = tuple(float(v[k]) for k in ("x", "y", "width", "height"))
            for n, (label, other, score) in enumerate(pool):
                if label == v["rectanglelabels"][0] and all(
                        abs(a - b) <= 1e-3 for a, b in zip(box, other)):
                    region = {**region, "score": round(score, 6)}
                    del pool[n]
                    break
        out.append(region)
    return out


def _when(annotation: Mapping) -> datetime:
    for key in ("updated_at", "created_at"):
        value = annotation.get(key)
        if isinstance(value, str):
            try:
                when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return datetime.min.replace(tzinfo=timezone.utc)


def chosen_annotation(annotations: Sequence[Mapping]) -> Mapping | None:
    """The annotation that counts for a task (see the module doc), or None if there is none."""
    submitted = [a for a in annotations if isinstance(a, Mapping) and not a.get("was_cancelled")]
    if not submitted:
        return None
    pool = [a for a in submitted if a.get("ground_truth")] or submitted
    return max(pool, key=lambda a: (_when(a), int(a.get("id") or 0)))


def _given_size(region: Mapping) -> tuple[int, int] | None:
    """The ``original_width`` x ``original_height`` a region gives, when it gives whole numbers."""
    w, h = region.get("original_width"), region.get("original_height")
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and float(v).is_integer()
             for v in (w, h))
    return (int(w), int(h)) if ok else None


def annotation_to_yolo(result: Sequence[Mapping], names: Sequence[str],
                       where: str, size: tuple[int, int] | None = None) -> tuple[str, list[str]]:
    """YOLO label text of one annotation's ``result``, and the problems found (label by name).

    ``size`` is the image's stored size, as displayed (:mod:`detal.image_frame`): a region whose
    ``original_width`` / ``original_height`` differ was drawn in another frame, and is a problem.
    """
    index = {n: i for i, n in enumerate(names)}
    lines, problems = [], []
    for k, region in enumerate(result):
        kind = region.get("type")
        if kind not in ("rectanglelabels", "rectangle"):
            continue  # other controls (choices, text) carry no box
        value = region.get("value") or {}
        at = f"{where}, region {region.get('id', k)}"
        given = _given_size(region) if size is not None else None
        wrong = size_problem(given, size) if given is not None and size is not None else None
        if wrong is not None:
            problems.append(f"{at}: Label Studio {wrong}")
            continue
        labels = value.get("rectanglelabels") or []
        if len(labels) != 1:
            problems.append(f"{at}: a box needs exactly one label, it has {len(labels)}")
            continue
        label = str(labels[0])
        if label not in index:
            problems.append(f"{at}: label {label!r} is not one of the project's classes "
                            f"({', '.join(names)})")
            continue
        try:
            x, y, w, h = (float(value[key]) for key in ("x", "y", "width", "height"))
            rotation = float(value.get("rotation") or 0.0)
        except (KeyError, TypeError, ValueError):
            problems.append(f"{at}: box without numeric x, y, width, height")
            continue
        if not all(math.isfinite(v) for v in (x, y, w, h, rotation)):
            problems.append(f"{at}: box coordinates are not finite")
            continue
        if abs(rotation) > 1e-6 and abs(rotation - 360.0) > 1e-6:
            problems.append(f"{at}: box is rotated by {rotation:g} degrees; YOLO boxes are axis-aligned")
            continue
        x1, y1 = max(0.0, x / 100.0), max(0.0, y / 100.0)
        x2, y2 = min(1.0, (x + w) / 100.0), min(1.0, (y + h) / 100.0)
        if x2 <= x1 or y2 <= y1:
            problems.append(f"{at}: box [{', '.join(map(show_number, (x, y, w, h)))}]% has no area inside the image")
            continue
        try:
            lines.append(returned_line(index[label], (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, len(names)))
        except DataError as exc:
            problems.append(f"{at}: box [{', '.join(map(show_number, (x, y, w, h)))}]%: {exc}")
    return "".join(line + "\n" for line in lines), problems
