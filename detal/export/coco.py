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
category ids need not match ours) and refuses what would import wrong
labels without a word: two categories sharing an id, ids that are not
integers (or strings), a ``width``/``height`` that disagrees with the real
image (when the caller passes the project's ``sizes``), a file with no
annotations at all (unless allowed), a zip where the JSON was expected, and
a file over :data:`MAX_COCO_BYTES`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from detal.errors import DataError
from detal.export.common import ImageLabels, ReturnedLabels, normalisation_hint
from detal.export.keys import PoolNames, spelled_path
from detal.export.options import ReadOptions, WriteOptions, copy_images, write_json
from detal.image_frame import size_problem
from detal.labels import LabelProblem, returned_line, show_name

__all__ = ["CATEGORY_ID_BASE", "COCO_JSON", "MAX_COCO_BYTES", "coco_document", "read", "read_coco", "write"]

COCO_JSON = "annotations/instances_default.json"
"""Where the instances file lies in the ``coco`` export folder (CVAT's COCO 1.0 layout)."""

MAX_COCO_BYTES = 256 * 1024 * 1024
"""The largest COCO JSON :func:`read_coco` reads: 256 MiB (about a million boxes)."""

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


def _is_id(v: Any) -> bool:
    """COCO ids are integers; strings are accepted too. Lists, dicts, floats, null are not."""
    return (isinstance(v, int) and not isinstance(v, bool)) or isinstance(v, str)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _size(v: Any) -> int | None:
    """A positive whole number of pixels, or ``None``."""
    if _number(v) and v > 0 and float(v).is_integer():
        return int(v)
    return None


def _load(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: COCO file not found")
    size = path.stat().st_size
    if size > MAX_COCO_BYTES:
        raise DataError(f"{path}: COCO file too large ({size} bytes; the limit is {MAX_COCO_BYTES // 2**20} MiB)")
    data = path.read_bytes()
    if data[:2] == b"PK":
        raise DataError(f"{path}: is a zip, expected a COCO JSON (unzip it and give its instances_*.json)")
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not valid JSON (not UTF-8 text)") from None
    except RecursionError:
        raise DataError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, and integers of more than 4300 digits
        raise DataError(f"{path}: not valid JSON ({str(exc).splitlines()[0][:120]})") from None


def read_coco(
    path: Path,
    names: Sequence[str],
    *,
    pool: PoolNames | None = None,
    sizes: Mapping[str, tuple[int, int]] | None = None,
    allow_no_annotations: bool = False,
) -> ReturnedLabels:
    """``image key -> canonical YOLO text`` from a COCO JSON, and every problem.

    Each ``file_name`` (``sub/a.png``: a folder is part of the name) is matched
    to the ``pool``'s images by :meth:`PoolNames.match
    <detal.export.keys.PoolNames.match>`, the one key rule; one that fits no
    image or two is a problem. Without ``pool`` the key is the file name.

    Every image listed gets an entry, so an image without annotations comes
    back as ``""`` (labeled, no objects). A file with no annotations at all
    is a problem unless ``allow_no_annotations``: it would otherwise mark
    every listed image as empty without a word.

    ``sizes`` holds the real ``(width, height)`` of the project's images as
    displayed (:mod:`detal.image_frame`), keyed by image key (without
    ``pool``: by file name, base name or its stem); an image whose COCO
    ``width``/``height`` disagree is a problem, since every box would be
    scaled wrongly (a photo's size before its EXIF orientation turns it too:
    its boxes are in the other frame). Categories map to project classes by name; two
    categories with one id are a problem. The file may be at most
    :data:`MAX_COCO_BYTES`.
    """
    path = Path(path)
    where = str(path)
    doc = _load(path)
    problems: list[LabelProblem] = []
    if not isinstance(doc, dict) or not all(
        isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise DataError(f"{path}: not a COCO instances file (needs images, annotations, categories lists)")

    def problem(message: str) -> None:
        problems.append(LabelProblem(where, 0, message))

    index = {n: i for i, n in enumerate(names)}
    cat_class: dict[Any, int | None] = {}
    cat_name: dict[Any, str] = {}
    ambiguous = -1
    for c in doc["categories"]:
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            problem(f"category {_short(c)} lacks id or name")
            continue
        cid, name = c["id"], c["name"]
        if not isinstance(name, str) or not name.strip():
            problem(f"category id {_short(cid)}: name must be a non-empty string, got {_short(name)}")
            continue
        if not _is_id(cid):
            problem(f"category {show_name(name)}: id {_short(cid)} is not an integer")
            continue
        if cid in cat_class:
            if cat_class[cid] != ambiguous:
                problem(
                    f"category id {cid!r} is used by both {show_name(cat_name[cid])} and "
                    f"{show_name(name)}, so its annotations are ambiguous"
                )
            cat_class[cid] = ambiguous
            continue
        cat_class[cid] = index.get(name)
        cat_name[cid] = name

    images: dict[Any, tuple[str, int, int]] = {}
    refused: set[Any] = set()  # images reported once; their annotations are not reported again
    out: dict[str, list[str]] = {}
    spelled: dict[str, str] = {}  # key -> the file_name that named it first
    for im in doc["images"]:
        if not isinstance(im, dict) or not {"id", "file_name", "width", "height"} <= set(im):
            problem(f"image {_short(im)} lacks id, file_name, width or height")
            continue
        iid, file_name = im["id"], im["file_name"]
        if not isinstance(file_name, str) or not file_name.strip():
            problem(f"image id {_short(iid)}: file_name must be a non-empty string, got {_short(file_name)}")
            continue
        if not _is_id(iid):
            problem(f"image {show_name(file_name)}: id {_short(iid)} is not an integer")
            continue
        width, height = _size(im["width"]), _size(im["height"])
        if width is None or height is None:
            problem(f"image {show_name(file_name)}: width/height must be positive whole numbers")
            continue
        if iid in images or iid in refused:
            problem(f"image id {iid!r} listed twice")
            continue
        if pool is None:
            key = "/".join(spelled_path(file_name))
        else:
            match = pool.match(file_name, file_name=True)
            if match.key is None:
                problem(str(match.problem))
                refused.add(iid)
                continue
            key = match.key
        if key in out:
            first = spelled[key]
            also = "" if first == file_name else f" (as {show_name(first)} too)"
            problem(f"image {show_name(file_name)} listed twice{also}")
            refused.add(iid)
            continue
        real = None
        if sizes is not None:
            base = PurePosixPath(key)
            real = sizes.get(key) or sizes.get(base.name) or sizes.get(base.stem)
        wrong = size_problem((width, height), (int(real[0]), int(real[1]))) if real is not None else None
        if wrong is not None:
            problem(f"image {show_name(file_name)}: COCO {wrong}")
        images[iid] = (key, width, height)
        out[key] = []
        spelled[key] = file_name

    if not doc["annotations"] and out and not allow_no_annotations:
        problem(
            f"no annotations at all: all {len(out)} listed image(s) would be imported as having "
            "no objects; refused unless images without objects are explicitly allowed"
        )

    for number, ann in enumerate(doc["annotations"], start=1):
        label = f"annotation {_short(ann.get('id', f'#{number}')) if isinstance(ann, dict) else f'#{number}'}"
        if not isinstance(ann, dict):
            problem(f"{label}: not an object")
            continue
        image_id = ann.get("image_id")
        if _is_id(image_id) and image_id in refused:
            continue  # its image is reported already
        if not _is_id(image_id) or image_id not in images:
            problem(f"{label}: unknown image_id {_short(image_id)}")
            continue
        key, width, height = images[image_id]
        shown = spelled[key]
        category_id = ann.get("category_id")
        if not _is_id(category_id) or category_id not in cat_class:
            problem(f"{label} ({shown}): unknown category_id {_short(category_id)}")
            continue
        cls = cat_class[category_id]
        if cls == ambiguous:
            continue  # reported once, with the category
        if cls is None:
            name = cat_name[category_id]
            problem(
                f"{label} ({shown}): category {category_id!r} is not a project class "
                f"(name {show_name(name)}{normalisation_hint(name, names)})"
            )
            continue
        if ann.get("iscrowd", 0):
            problem(f"{label} ({shown}): iscrowd regions are not boxes")
            continue
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_number(v) for v in bbox)):
            problem(f"{label} ({shown}): bbox must be 4 numbers [x, y, w, h]")
            continue
        x, y, w, h = (float(v) for v in bbox)
        try:
            line = returned_line(cls, (x + w / 2) / width, (y + h / 2) / height, w / width, h / height, len(names))
        except DataError as exc:
            problem(f"{label} ({shown}): bbox {bbox}: {exc}")
            continue
        out[key].append(line)
    return ReturnedLabels(
        labels={k: "".join(line + "\n" for line in v) for k, v in out.items()},
        sources={k: f"{where}: image {spelled[k]}" for k in out},
        problems=problems,
    )


def write(target: Path, images: Sequence[ImageLabels], names: Sequence[str], options: WriteOptions) -> None:
    """The registry's writer (:mod:`detal.export.registry`): :data:`COCO_JSON` and the images beside it."""
    write_json(target / COCO_JSON, coco_document(images, names))
    if options.copy_images:
        copy_images(images, target / "images")


def read(path: Path, names: Sequence[str], options: ReadOptions) -> ReturnedLabels:
    """The registry's reader (:mod:`detal.export.registry`): :func:`read_coco` of a file, or of the one
    ``annotations/instances_*.json`` (else the one ``*.json``) in a folder."""
    if path.is_dir():
        found = sorted(path.glob("annotations/instances_*.json")) or sorted(path.glob("*.json"))
        if len(found) != 1:
            raise DataError(
                f"{path}: expected one COCO file (annotations/instances_*.json), found {len(found)}"
            )
        path = found[0]
    return read_coco(path, names, pool=options.pool, sizes=options.sizes,
                     allow_no_annotations=options.allow_no_annotations)
