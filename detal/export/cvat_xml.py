"""``cvat-xml``: CVAT's "CVAT for images 1.1" XML, the format CVAT exports a task's annotations in.

::

    cvat-xml/
      annotations.xml    <annotations><version>1.1</version><meta>... labels ...</meta>
                         <image id name width height><box label xtl ytl xbr ybr .../></image> ...
      images/<image>     (unless copy_images=False)

Boxes are in absolute pixels (top-left and bottom-right corners), computed
from the same normalised 6-decimal box as the YOLO formats and written with
6 decimals, so importing the file back gives the YOLO text exactly. CVAT's
"Upload annotations" takes ``annotations.xml`` (or this folder zipped).

:func:`read_cvat_xml` reads a returned XML (the file, a folder holding one
``*.xml``, or CVAT's export zip holding ``annotations.xml``): every
``<image>`` names its image by ``name`` (``sub/a.png``, a folder and all),
matched to the pool by the one key rule (:mod:`detal.export.keys`), and
gets an entry (``""``: no objects); boxes map to project classes by
``label`` name. Refused, each a problem naming the image: a shape that is
not a box (polygon, points, polyline, mask, ellipse, cuboid, skeleton), a
rotated box, a label that is no project class, a box outside the image, a
``width``/``height`` unlike the image's displayed size (when the caller
passes ``sizes``), video tracks, a file with no boxes at all (unless
allowed), a DOCTYPE (entity declarations are never expanded), and a file
over :data:`MAX_XML_BYTES`.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from detal.errors import DataError
from detal.export.common import ImageLabels, ReturnedLabels
from detal.export.keys import PoolNames, spelled_path
from detal.export.options import ReadOptions, WriteOptions, copy_images
from detal.image_frame import size_problem
from detal.labels import LabelProblem, returned_line, show_name, show_number

__all__ = ["CVAT_XML", "MAX_XML_BYTES", "cvat_document", "read", "read_cvat_xml", "write"]

CVAT_XML = "annotations.xml"
"""The annotations file, as CVAT names it in its export zip."""

MAX_XML_BYTES = 256 * 1024 * 1024
"""The largest XML :func:`read_cvat_xml` reads: 256 MiB."""

_NOT_BOXES = ("polygon", "polyline", "points", "mask", "ellipse", "cuboid", "skeleton")


def _px(v: float) -> str:
    return f"{round(float(v), 6) + 0.0:.6f}"


def cvat_document(images: Sequence[ImageLabels], names: Sequence[str], *, task: str = "detal pre-labels") -> str:
    """The ``annotations.xml`` text: a task's labels and every image with its boxes."""
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    meta = ET.SubElement(ET.SubElement(root, "meta"), "task")
    ET.SubElement(meta, "name").text = task
    ET.SubElement(meta, "size").text = str(len(images))
    ET.SubElement(meta, "mode").text = "annotation"
    labels = ET.SubElement(meta, "labels")
    for n in names:
        label = ET.SubElement(labels, "label")
        ET.SubElement(label, "name").text = str(n)
        ET.SubElement(label, "type").text = "rectangle"
        ET.SubElement(label, "attributes")
    for image_id, image in enumerate(images):
        el = ET.SubElement(root, "image", {"id": str(image_id), "name": image.name,
                                           "width": str(int(image.width)), "height": str(int(image.height))})
        for box in image.boxes:
            x, y, w, h = box.xywh_px(image.width, image.height)
            ET.SubElement(el, "box", {"label": str(names[box.class_id]), "source": "auto", "occluded": "0",
                                      "xtl": _px(x), "ytl": _px(y), "xbr": _px(x + w), "ybr": _px(y + h),
                                      "z_order": "0"})
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _xml_bytes(path: Path) -> tuple[bytes, str]:
    """The XML's bytes and where they were read (``export.zip!annotations.xml``)."""
    if path.is_dir():
        found = sorted(path.glob(CVAT_XML)) or sorted(path.glob("*.xml"))
        if len(found) != 1:
            raise DataError(f"{path}: expected one CVAT XML ({CVAT_XML}), found {len(found)}")
        path = found[0]
    if not path.is_file():
        raise DataError(f"{path}: CVAT XML not found")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                members = [i for i in zf.infolist() if PurePosixPath(i.filename).name == CVAT_XML]
                if len(members) != 1:
                    raise DataError(f"{path}: expected one {CVAT_XML} in the zip, found {len(members)}")
                if members[0].file_size > MAX_XML_BYTES:
                    raise DataError(f"{path}!{members[0].filename}: CVAT XML too large "
                                    f"({members[0].file_size} bytes; the limit is {MAX_XML_BYTES // 2**20} MiB)")
                return zf.read(members[0]), f"{path}!{members[0].filename}"
        except (zipfile.BadZipFile, OSError, RuntimeError, EOFError) as exc:
            raise DataError(f"{path}: not a readable zip ({exc})") from None
    size = path.stat().st_size
    if size > MAX_XML_BYTES:
        raise DataError(f"{path}: CVAT XML too large ({size} bytes; the limit is {MAX_XML_BYTES // 2**20} MiB)")
    return path.read_bytes(), str(path)


def _parse(data: bytes, where: str) -> ET.Element:
    head = data[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in data.lower():
        raise DataError(f"{where}: XML with a DOCTYPE or entities is not read (CVAT writes none)")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise DataError(f"{where}: not valid XML ({exc})") from None
    if root.tag != "annotations":
        raise DataError(f"{where}: not a CVAT for images XML (the root is <{root.tag}>, not <annotations>)")
    return root


def _number(text: str | None) -> float | None:
    try:
        v = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _size(text: str | None) -> int | None:
    v = _number(text)
    return int(v) if v is not None and v > 0 and v.is_integer() else None


def read_cvat_xml(
    path: Path,
    names: Sequence[str],
    *,
    pool: PoolNames | None = None,
    sizes: Mapping[str, tuple[int, int]] | None = None,
    allow_no_annotations: bool = False,
) -> ReturnedLabels:
    """``image key -> canonical YOLO text`` from a CVAT for images XML, and every problem (see the module doc).

    ``pool`` and ``sizes`` as for :func:`detal.export.coco.read_coco`: each
    ``name`` is matched by the one key rule, and a size unlike the
    displayed one is a problem. Without ``pool`` the key is the name.
    """
    data, where = _xml_bytes(Path(path))
    root = _parse(data, where)
    problems: list[LabelProblem] = []

    def problem(message: str) -> None:
        problems.append(LabelProblem(where, 0, message))

    if root.find("track") is not None:
        problem("holds <track> elements (video annotations); export the task as images (CVAT for images 1.1)")
    index = {n: i for i, n in enumerate(names)}
    out: dict[str, list[str]] = {}
    spelled: dict[str, str] = {}
    n_boxes = 0
    for number, image in enumerate(root.findall("image"), start=1):
        name = image.get("name")
        if not name or not name.strip():
            problem(f"image #{number}: no name")
            continue
        width, height = _size(image.get("width")), _size(image.get("height"))
        if width is None or height is None:
            problem(f"image {show_name(name)}: width/height must be positive whole numbers")
            continue
        if pool is None:
            key = "/".join(spelled_path(name))
        else:
            match = pool.match(name, file_name=True)
            if match.key is None:
                problem(str(match.problem))
                continue
            key = match.key
        if key in out:
            first = spelled[key]
            also = "" if first == name else f" (as {show_name(first)} too)"
            problem(f"image {show_name(name)} listed twice{also}")
            continue
        if sizes is not None:
            base = PurePosixPath(key)
            real = sizes.get(key) or sizes.get(base.name) or sizes.get(base.stem)
            wrong = size_problem((width, height), (int(real[0]), int(real[1]))) if real is not None else None
            if wrong is not None:
                problem(f"image {show_name(name)}: CVAT {wrong}")
        lines: list[str] = []
        for shape in image:
            label = f"image {show_name(name)}: {shape.tag} {show_name(shape.get('label') or '')}"
            if shape.tag in _NOT_BOXES:
                problem(f"{label} is not a box; only boxes are imported (convert it, or delete it)")
                continue
            if shape.tag != "box":
                continue  # <tag> and <attribute>: no box
            n_boxes += 1
            cls = index.get(shape.get("label") or "")
            if cls is None:
                problem(f"{label}: label is not a project class ({', '.join(names)})")
                continue
            rotation = _number(shape.get("rotation") or "0")
            if rotation is None or (abs(rotation) > 1e-6 and abs(rotation - 360.0) > 1e-6):
                problem(f"{label}: rotated by {shape.get('rotation')} degrees; YOLO boxes are axis-aligned")
                continue
            corners = [_number(shape.get(k)) for k in ("xtl", "ytl", "xbr", "ybr")]
            if any(v is None for v in corners):
                problem(f"{label}: xtl, ytl, xbr, ybr must be finite numbers")
                continue
            x1, y1, x2, y2 = (float(v) for v in corners)  # type: ignore[arg-type]
            try:
                line = returned_line(cls, (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width,
                                     (y2 - y1) / height, len(names))
            except DataError as exc:
                problem(f"{label}: box [{', '.join(map(show_number, (x1, y1, x2, y2)))}]: {exc}")
                continue
            lines.append(line)
        out[key] = lines
        spelled[key] = name
    if out and not n_boxes and not allow_no_annotations:
        problem(f"no boxes at all: all {len(out)} listed image(s) would be imported as having no objects; "
                "refused unless images without objects are explicitly allowed")
    return ReturnedLabels(
        labels={k: "".join(line + "\n" for line in v) for k, v in out.items()},
        sources={k: f"{where}: image {spelled[k]}" for k in out},
        problems=problems,
    )


def write(target: Path, images: Sequence[ImageLabels], names: Sequence[str], options: WriteOptions) -> None:
    """The registry's writer (:mod:`detal.export.registry`): :data:`CVAT_XML` and the images beside it."""
    target.mkdir(parents=True)
    (target / CVAT_XML).write_text(cvat_document(images, names), encoding="utf-8")
    if options.copy_images:
        copy_images(images, target / "images")


def read(path: Path, names: Sequence[str], options: ReadOptions) -> ReturnedLabels:
    """The registry's reader (:mod:`detal.export.registry`): :func:`read_cvat_xml`."""
    return read_cvat_xml(path, names, pool=options.pool, sizes=options.sizes,
                         allow_no_annotations=options.allow_no_annotations)
