"""``coco``: a COCO instances JSON, in the layout CVAT and datumaro read.

::

    coco/
      annotations/instances_default.json
      images/<image>     (unless copy_images=False)

Ids:

* category ids start at 1: detal's class ``k`` is category ``k + 1`` (COCO
  reserves 0 for background in many tools), named after the project's class;
* image ids and annotation ids start at 1, in input order.

``bbox`` is ``[x, y, w, h]`` in absolute pixels, computed from the same
normalised 6-decimal box as the YOLO formats and rounded to 6 decimals, so
importing it back gives the YOLO text exactly. Every annotation carries
``area`` (``w * h``), ``iscrowd = 0``, an empty ``segmentation`` and ``score``,
the box's confidence.

:func:`read_coco` maps categories to project classes by name (a vendor's
category ids need not match ours).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from detal.errors import DataError
from detal.export.common import ImageLabels, format_line
from detal.labels import LabelProblem, parse_yolo_line

__all__ = ["CATEGORY_ID_BASE", "coco_document", "read_coco"]

CATEGORY_ID_BASE = 1
"""COCO category id of detal's class 0."""


def _r(v: float) -> float:
    return round(float(v), 6) + 0.0  # + 0.0 turns -0.0 into 0.0


def coco_document(
    images: Sequence[ImageLabels],
    names: Sequence[str],
    *,
    description: str = "detal pre-labels",
    image_prefix: str = "",
) -> dict[str, Any]:
    """The instances document, a plain dict ready for ``json.dump``."""
    doc_images, annotations = [], []
    ann_id = 0
    for image_id, image in enumerate(images, start=1):
        doc_images.append(
            {
                "id": image_id,
                "file_name": f"{image_prefix}{image.name}",
                "width": int(image.width),
                "height": int(image.height),
            }
        )
        for box in image.boxes:
            ann_id += 1
            x, y, w, h = (_r(v) for v in box.xywh_px(image.width, image.height))
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": box.class_id + CATEGORY_ID_BASE,
                    "bbox": [x, y, w, h],
                    "area": _r(w * h),
                    "iscrowd": 0,
                    "segmentation": [],
                    "score": _r(box.confidence),
                }
            )
    categories = [
        {"id": k + CATEGORY_ID_BASE, "name": str(n), "supercategory": ""} for k, n in enumerate(names)
    ]
    return {
        "info": {"description": description},
        "licenses": [],
        "images": doc_images,
        "annotations": annotations,
        "categories": categories,
    }


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_coco(path: Path, names: Sequence[str]) -> tuple[dict[str, str], list[LabelProblem]]:
    """``image file name -> canonical YOLO text`` from a COCO JSON, and every problem.

    Every image listed gets an entry, so an image without annotations comes
    back as ``""`` (labeled, no objects).
    """
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise DataError(f"{path}: COCO file not found")
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    problems: list[LabelProblem] = []
    if not isinstance(doc, dict) or not all(
        isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise DataError(f"{path}: not a COCO instances file (needs images, annotations, categories lists)")

    index = {n: i for i, n in enumerate(names)}
    cat_class: dict[Any, int | None] = {}
    for c in doc["categories"]:
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            problems.append(LabelProblem(where, 0, f"category {c!r} lacks id or name"))
            continue
        cat_class[c["id"]] = index.get(str(c["name"]))

    images: dict[Any, tuple[str, int, int]] = {}
    out: dict[str, list[str]] = {}
    for im in doc["images"]:
        if not isinstance(im, dict) or not {"id", "file_name", "width", "height"} <= set(im):
            problems.append(LabelProblem(where, 0, f"image {im!r} lacks id, file_name, width or height"))
            continue
        key = PurePosixPath(str(im["file_name"]).replace("\\", "/")).name
        if not (_number(im["width"]) and _number(im["height"]) and im["width"] > 0 and im["height"] > 0):
            problems.append(LabelProblem(where, 0, f"image {key}: width/height must be positive numbers"))
            continue
        if key in out:
            problems.append(LabelProblem(where, 0, f"image file name {key!r} listed twice"))
            continue
        if im["id"] in images:
            problems.append(LabelProblem(where, 0, f"image id {im['id']!r} listed twice"))
            continue
        images[im["id"]] = (key, int(im["width"]), int(im["height"]))
        out[key] = []

    for number, ann in enumerate(doc["annotations"], start=1):
        label = f"annotation {ann.get('id', f'#{number}') if isinstance(ann, dict) else f'#{number}'}"
        if not isinstance(ann, dict):
            problems.append(LabelProblem(where, 0, f"{label}: not an object"))
            continue
        if ann.get("image_id") not in images:
            problems.append(LabelProblem(where, 0, f"{label}: unknown image_id {ann.get('image_id')!r}"))
            continue
        key, width, height = images[ann["image_id"]]
        if ann.get("category_id") not in cat_class:
            problems.append(LabelProblem(where, 0, f"{label} ({key}): unknown category_id {ann.get('category_id')!r}"))
            continue
        cls = cat_class[ann["category_id"]]
        if cls is None:
            problems.append(
                LabelProblem(where, 0, f"{label} ({key}): category {ann['category_id']!r} is not a project class")
            )
            continue
        if ann.get("iscrowd", 0):
            problems.append(LabelProblem(where, 0, f"{label} ({key}): iscrowd regions are not boxes"))
            continue
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_number(v) for v in bbox)):
            problems.append(LabelProblem(where, 0, f"{label} ({key}): bbox must be 4 numbers [x, y, w, h]"))
            continue
        x, y, w, h = (float(v) for v in bbox)
        line = format_line(cls, (x + w / 2) / width, (y + h / 2) / height, w / width, h / height)
        try:
            parse_yolo_line(line, len(names))
        except DataError as exc:
            problems.append(LabelProblem(where, 0, f"{label} ({key}): bbox {bbox}: {exc}"))
            continue
        out[key].append(line)
    return {k: "".join(line + "\n" for line in v) for k, v in out.items()}, problems
