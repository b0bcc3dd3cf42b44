"""What every export format shares: one checked, canonical box list per image.

:func:`canonical_images` turns predictions into :class:`ImageLabels`, the one
record every format writer reads. Each box is the normalised YOLO box of
:func:`detal.labels.normalized_box` (6 decimals, as written), so all formats derive
from the same numbers and a round trip through any of them gives the same
YOLO text back. Pixel (COCO) and percent (Label Studio) coordinates are
computed from those normalised values.

Checks, all collected before one :class:`~detal.errors.DataError` is raised:

* a class id outside the project's classes;
* a coordinate that is not finite, an inverted box (``x2 < x1``), or a box
  that reaches outside the image by more than :data:`EDGE_TOLERANCE_PX`
  (less than that is rounding, and is clipped);
* two images with the same file name, or the same stem (their ``.txt`` labels
  would collide).

Boxes below ``conf`` are left out, and so are boxes that clip to zero width
or height (they carry no object), exactly as :func:`detal.labels.prediction_lines`.

The archive helpers (:func:`label_entries`) read a folder or a zip without
extracting it, for the readers of returned labels.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from detal.detections import Prediction
from detal.errors import DataError
from detal.labels import LabelProblem, format_line, normalized_box, parse_yolo_line

__all__ = [
    "EDGE_TOLERANCE_PX",
    "Box",
    "Entry",
    "ImageLabels",
    "canonical_images",
    "check_names",
    "collect_labels",
    "format_line",
    "label_entries",
    "parse_lines",
    "problems_error",
    "yolo_text",
]

EDGE_TOLERANCE_PX = 0.5
"""How far (pixels) a box may reach past the image border before it is an error."""


@dataclass(frozen=True)
class Box:
    """One box: class id, normalised centre and size (6 decimals), and confidence."""

    class_id: int
    cx: float
    cy: float
    w: float
    h: float
    confidence: float

    def xywh_px(self, width: int, height: int) -> tuple[float, float, float, float]:
        """Top-left corner and size in pixels (COCO's ``bbox``)."""
        return (
            (self.cx - self.w / 2) * width,
            (self.cy - self.h / 2) * height,
            self.w * width,
            self.h * height,
        )


@dataclass(frozen=True)
class ImageLabels:
    """The canonical boxes of one image, with the image's file and size."""

    path: Path
    width: int
    height: int
    boxes: tuple[Box, ...]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def stem(self) -> str:
        return self.path.stem


def yolo_text(image: ImageLabels, with_confidence: bool = False) -> str:
    """The YOLO label file of one image; empty for an image with no boxes."""
    lines = []
    for b in image.boxes:
        line = format_line(b.class_id, b.cx, b.cy, b.w, b.h)
        if with_confidence:
            line += f" {b.confidence:.4f}"
        lines.append(line)
    return "".join(line + "\n" for line in lines)


def check_names(names: Sequence[str]) -> list[str]:
    """The project's class names as a list; :class:`DataError` if unusable."""
    names = [str(n) for n in names]
    if not names:
        raise DataError("no class names given: a project needs at least one class")
    bad = [n for n in names if not n.strip() or "\n" in n or "\r" in n]
    if bad:
        raise DataError(f"class names must be non-empty single lines, got {bad!r}")
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"duplicate class names {', '.join(dupes)}")
    return names


def _image_boxes(pred: Prediction, n_classes: int, conf: float) -> tuple[list[Box], list[str]]:
    det = pred.detections.above(conf)
    boxes: list[Box] = []
    problems: list[str] = []
    w_img, h_img = pred.width, pred.height
    tol = EDGE_TOLERANCE_PX
    for k, (xyxy, cls, c) in enumerate(zip(det.xyxy, det.class_id, det.confidence)):
        where = f"{pred.path.name}: box {k}"
        x1, y1, x2, y2 = (float(v) for v in xyxy)
        if not np.all(np.isfinite([x1, y1, x2, y2, float(c)])):
            problems.append(f"{where}: coordinates or confidence not finite")
            continue
        if not 0 <= int(cls) < n_classes:
            problems.append(f"{where}: class id {int(cls)} is not one of the project's {n_classes} classes")
            continue
        if x2 < x1 or y2 < y1:
            problems.append(f"{where}: inverted box [{x1:g}, {y1:g}, {x2:g}, {y2:g}]")
            continue
        if x1 < -tol or y1 < -tol or x2 > w_img + tol or y2 > h_img + tol:
            problems.append(
                f"{where}: box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] outside the {w_img}x{h_img} image"
            )
            continue
        cx, cy, w, h = normalized_box((x1, y1, x2, y2), w_img, h_img)
        if w > 0 and h > 0:
            boxes.append(Box(int(cls), cx, cy, w, h, float(c)))
    return boxes, problems


def canonical_images(
    predictions: Sequence[Prediction], names: Sequence[str], conf: float = 0.0
) -> list[ImageLabels]:
    """Check every prediction and return the canonical boxes, in input order."""
    if not 0.0 <= float(conf) <= 1.0:
        raise DataError(f"conf must lie in [0, 1], got {conf!r}")
    n_classes = len(names)
    problems: list[str] = []
    seen_names: dict[str, Path] = {}
    seen_stems: dict[str, Path] = {}
    out: list[ImageLabels] = []
    for pred in predictions:
        if not isinstance(pred, Prediction):
            raise DataError(f"expected Prediction records, got {type(pred).__name__}")
        name, stem = pred.path.name, pred.path.stem
        if name in seen_names:
            problems.append(f"{pred.path}: file name {name!r} also used by {seen_names[name]}")
        elif stem in seen_stems:
            problems.append(
                f"{pred.path}: stem {stem!r} also used by {seen_stems[stem]} (labels would collide)"
            )
        seen_names.setdefault(name, pred.path)
        seen_stems.setdefault(stem, pred.path)
        boxes, box_problems = _image_boxes(pred, n_classes, conf)
        problems += box_problems
        out.append(ImageLabels(pred.path, pred.width, pred.height, tuple(boxes)))
    if problems:
        raise problems_error("cannot export predictions", problems)
    return out


def problems_error(what: str, problems: Sequence[object]) -> DataError:
    """One :class:`DataError` listing every problem; ``.problems`` keeps them."""
    n = len(problems)
    err = DataError(f"{what}: {n} problem{'s' if n != 1 else ''}: " + "; ".join(map(str, problems)))
    err.problems = list(problems)  # type: ignore[attr-defined]
    return err


# -- reading returned labels ---------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One text file of a returned folder or zip: its posix path inside, and its bytes."""

    relpath: str
    where: str
    data: bytes

    @property
    def name(self) -> str:
        return PurePosixPath(self.relpath).name

    def read_text(self) -> str:
        """The file as text; :class:`DataError` if it is not UTF-8."""
        try:
            return self.data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise DataError("not UTF-8 text") from None


TEXT_SUFFIXES = (".txt", ".names", ".data", ".yaml", ".yml", ".json")


def _unsafe(relpath: str) -> bool:
    p = PurePosixPath(relpath.replace("\\", "/"))
    return p.is_absolute() or ".." in p.parts or (len(relpath) > 1 and relpath[1] == ":")


def label_entries(path: Path) -> tuple[list[Entry], list[LabelProblem]]:
    """Every text file (labels, names, configs) of a folder or a zip, read into memory.

    Nothing is extracted. Entries that would escape the folder (absolute
    paths, ``..``) and symlinks are reported as problems and never read.
    Images and other binary files are skipped.
    """
    path = Path(path)
    entries: list[Entry] = []
    problems: list[LabelProblem] = []
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_symlink():
                problems.append(LabelProblem(str(p), 0, "symlinks are not accepted"))
            elif p.is_file() and p.suffix.lower() in TEXT_SUFFIXES:
                entries.append(Entry(p.relative_to(path).as_posix(), str(p), p.read_bytes()))
        return entries, problems
    if path.is_file() and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    name = info.filename
                    if info.is_dir():
                        continue
                    if _unsafe(name):
                        problems.append(LabelProblem(f"{path}:{name}", 0, "path escapes the archive"))
                    elif (info.external_attr >> 16) & 0o170000 == 0o120000:
                        problems.append(LabelProblem(f"{path}:{name}", 0, "symlinks are not accepted"))
                    elif PurePosixPath(name).suffix.lower() in TEXT_SUFFIXES:
                        rel = name.replace("\\", "/")
                        entries.append(Entry(rel, f"{path}:{rel}", zf.read(info)))
        except (zipfile.BadZipFile, OSError) as exc:
            raise DataError(f"{path}: not a readable zip ({exc})") from None
        return entries, problems
    if path.exists():
        raise DataError(f"{path}: expected a folder or a zip of labels")
    raise DataError(f"{path}: not found")


def parse_lines(
    text: str, where: str, file_names: Sequence[str], names: Sequence[str]
) -> tuple[str, list[LabelProblem]]:
    """Parse returned YOLO text whose class ids index ``file_names``.

    Ids are remapped to the project's ``names`` by class name, so a vendor
    that reordered the classes still gives the right labels. A confidence
    column, if left in, is dropped. Returns canonical text and the problems.
    """
    index = {n: i for i, n in enumerate(names)}
    lines: list[str] = []
    problems: list[LabelProblem] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            box = parse_yolo_line(raw, len(file_names), allow_confidence=True)
        except DataError as exc:
            problems.append(LabelProblem(where, number, str(exc)))
            continue
        name = file_names[box.class_id]
        if name not in index:
            problems.append(
                LabelProblem(where, number, f"class {name!r} (id {box.class_id}) is not a project class")
            )
            continue
        lines.append(format_line(index[name], box.cx, box.cy, box.w, box.h))
    return "".join(line + "\n" for line in lines), problems


def collect_labels(
    files: Sequence[Entry], file_names: Sequence[str], names: Sequence[str]
) -> tuple[dict[str, str], list[LabelProblem]]:
    """Parse returned ``.txt`` label files into ``stem -> canonical text``."""
    out: dict[str, str] = {}
    where_of: dict[str, str] = {}
    problems: list[LabelProblem] = []
    for e in files:
        stem = PurePosixPath(e.relpath).stem
        if stem in out:
            problems.append(LabelProblem(e.where, 0, f"stem {stem!r} also labeled by {where_of[stem]}"))
            continue
        try:
            text = e.read_text()
        except DataError as exc:
            problems.append(LabelProblem(e.where, 0, str(exc)))
            continue
        out[stem], file_problems = parse_lines(text, e.where, file_names, names)
        where_of[stem] = e.where
        problems += file_problems
    return out, problems
