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
extracting it, for the readers of returned labels. They share one skip list
and one set of caps with every reader:

* a text file (label, ``classes.txt``, ``obj.names``, ``data.yaml``) over
  :data:`MAX_LABEL_BYTES` (4 MiB) is a problem and is not read, and all text
  files together may not pass :data:`MAX_TOTAL_LABEL_BYTES`;
* ``__MACOSX/`` folders and hidden files (``._a.txt``, ``.DS_Store``) are skipped;
* absolute paths, ``..`` and symbolic links are problems and are never read;
* one error lists at most :data:`MAX_LISTED_PROBLEMS` problems, then
  "... and N more" (``.problems`` keeps them all).
"""

from __future__ import annotations

import os
import unicodedata
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from detal.detections import Prediction
from detal.errors import DataError
from detal.export.keys import Match, PoolNames, image_suffix
from detal.labels import (
    LabelProblem,
    format_line,
    normalized_box,
    parse_label_lines,
    returned_line,
    show_name,
    show_number,
)

__all__ = [
    "EDGE_TOLERANCE_PX",
    "MAX_LABEL_BYTES",
    "MAX_LISTED_PROBLEMS",
    "MAX_TOTAL_LABEL_BYTES",
    "NOT_LABELS",
    "Box",
    "Entry",
    "ImageLabels",
    "ReturnedLabels",
    "canonical_images",
    "check_names",
    "collect_labels",
    "format_line",
    "is_label_folder",
    "label_entries",
    "label_path",
    "normalisation_hint",
    "not_a_project_class",
    "outside_label_folder",
    "parse_lines",
    "problems_error",
    "skipped_path",
    "yolo_text",
]

EDGE_TOLERANCE_PX = 0.5
"""How far (pixels) a box may reach past the image border before it is an error."""

MAX_LABEL_BYTES = 4 * 1024 * 1024
"""The largest returned text file (label, names, ``data.yaml``) that is read: 4 MiB."""

MAX_TOTAL_LABEL_BYTES = 512 * 1024 * 1024
"""The most text all files of one returned folder or zip may hold together: 512 MiB."""

MAX_LISTED_PROBLEMS = 200
"""The most problems one error message lists; the rest are counted ("... and N more")."""

NOT_LABELS = frozenset({
    "classes.txt", "obj.names", "train.txt", "val.txt", "valid.txt", "test.txt",
    "readme.txt", "license.txt", "notes.txt",
})
"""File names (compared in lower case) that bundles and datasets carry beside their labels:
never read as labels, by any reader (returned labels here, ``init --labels`` in
:mod:`detal.project.label_files`)."""


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
            problems.append(f"{where}: inverted box [{', '.join(map(show_number, (x1, y1, x2, y2)))}]")
            continue
        if x1 < -tol or y1 < -tol or x2 > w_img + tol or y2 > h_img + tol:
            problems.append(
                f"{where}: box [{', '.join(map(show_number, (x1, y1, x2, y2)))}] outside the {w_img}x{h_img} image"
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
    """One :class:`DataError` listing the first :data:`MAX_LISTED_PROBLEMS` problems.

    ``.problems`` keeps every one of them.
    """
    n = len(problems)
    shown = "; ".join(map(str, problems[:MAX_LISTED_PROBLEMS]))
    more = f"; ... and {n - MAX_LISTED_PROBLEMS} more" if n > MAX_LISTED_PROBLEMS else ""
    return DataError(f"{what}: {n} problem{'s' if n != 1 else ''}: {shown}{more}", problems=problems)


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


TEXT_SUFFIXES = (".txt", ".names", ".labels", ".data", ".yaml", ".yml")


def _unsafe(relpath: str) -> bool:
    p = PurePosixPath(relpath.replace("\\", "/"))
    return ".." in p.parts


def _absolute(relpath: str) -> bool:
    return relpath.startswith(("/", "\\")) or (len(relpath) > 1 and relpath[1] == ":")


def _skipped(relpath: str) -> bool:
    """macOS resource forks and hidden files: never labels, never read."""
    parts = PurePosixPath(relpath.replace("\\", "/")).parts
    return "__MACOSX" in parts or any(p.startswith(".") for p in parts)


def skipped_path(relpath: str) -> bool:
    """Whether a reader skips ``relpath`` unread (under ``__MACOSX/``, or hidden): the one rule."""
    return _skipped(relpath)


def _too_large(size: int) -> str:
    return f"file too large ({size} bytes; the limit is {MAX_LABEL_BYTES // 2**20} MiB a file)"


class _Budget:
    """Counts the bytes read from one source; :class:`DataError` past :data:`MAX_TOTAL_LABEL_BYTES`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.left = MAX_TOTAL_LABEL_BYTES

    def take(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise DataError(
                f"{self.path}: the text files hold more than {MAX_TOTAL_LABEL_BYTES // 2**20} MiB "
                "together; split the labels into smaller parts"
            )


def _folder_entries(path: Path) -> tuple[list[Entry], list[LabelProblem]]:
    entries: list[Entry] = []
    problems: list[LabelProblem] = []
    budget = _Budget(path)
    for dirpath, dirs, files in os.walk(path, followlinks=False):
        dirs.sort()
        base = Path(dirpath)
        for name in list(dirs):
            rel = (base / name).relative_to(path).as_posix()
            if _skipped(rel):
                dirs.remove(name)
            elif (base / name).is_symlink():
                problems.append(LabelProblem(str(base / name), 0, "symbolic link not allowed"))
        for name in sorted(files):
            full = base / name
            rel = full.relative_to(path).as_posix()
            if _skipped(rel) or full.suffix.lower() not in TEXT_SUFFIXES:
                continue
            if full.is_symlink():
                problems.append(LabelProblem(str(full), 0, "symbolic link not allowed"))
                continue
            if not full.is_file():  # a FIFO or device would block or never end
                problems.append(LabelProblem(str(full), 0, "not a regular file"))
                continue
            try:
                size = full.stat().st_size
                if size > MAX_LABEL_BYTES:
                    problems.append(LabelProblem(str(full), 0, _too_large(size)))
                    continue
                budget.take(size)
                with open(full, "rb") as fh:
                    entries.append(Entry(rel, str(full), fh.read(MAX_LABEL_BYTES + 1)))
            except OSError as exc:
                problems.append(LabelProblem(str(full), 0, f"cannot read ({exc.strerror})"))
    return entries, problems


def _zip_entries(path: Path) -> tuple[list[Entry], list[LabelProblem]]:
    entries: list[Entry] = []
    problems: list[LabelProblem] = []
    budget = _Budget(path)
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = info.filename
                where = f"{path}!{name}"
                if info.is_dir():
                    continue
                if _absolute(name):
                    problems.append(LabelProblem(where, 0, "absolute path in zip"))
                elif _unsafe(name):
                    problems.append(LabelProblem(where, 0, "path escapes the archive (..)"))
                elif (info.external_attr >> 16) & 0o170000 == 0o120000:
                    problems.append(LabelProblem(where, 0, "symbolic link not allowed"))
                elif _skipped(name) or PurePosixPath(name).suffix.lower() not in TEXT_SUFFIXES:
                    continue
                elif info.file_size > MAX_LABEL_BYTES:
                    problems.append(LabelProblem(where, 0, _too_large(info.file_size)))
                else:
                    budget.take(info.file_size)
                    rel = name.replace("\\", "/")
                    try:
                        entries.append(Entry(rel, f"{path}!{rel}", zf.read(info)))
                    except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, zlib.error) as exc:
                        problems.append(LabelProblem(where, 0, f"cannot read from zip ({exc})"))
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: not a readable zip ({exc})") from None
    return entries, problems


def label_entries(path: Path) -> tuple[list[Entry], list[LabelProblem]]:
    """Every text file (labels, names, configs) of a folder or a zip, read into memory.

    Nothing is extracted. Entries that would escape the folder (absolute
    paths, ``..``) and symlinks are reported as problems and never read;
    so are text files over :data:`MAX_LABEL_BYTES`. Images and other binary
    files, ``__MACOSX/`` and hidden files are skipped.
    """
    path = Path(path)
    if path.is_dir():
        return _folder_entries(path)
    if path.is_file() and zipfile.is_zipfile(path):
        return _zip_entries(path)
    if path.exists():
        raise DataError(f"{path}: expected a folder or a .zip of label files")
    raise DataError(f"{path}: not found")


def normalisation_hint(name: str, names: Sequence[str]) -> str:
    """``"; it differs from 'café' only in Unicode normalisation"`` when it does, else ``""``."""
    nfc = unicodedata.normalize("NFC", name)
    alike = [n for n in names if n != name and unicodedata.normalize("NFC", n) == nfc]
    return f"; it differs from {show_name(alike[0])} only in Unicode normalisation" if alike else ""


def not_a_project_class(name: str, class_id: int, names: Sequence[str], source: str | None = None) -> str:
    """The message for a returned class ``name`` the project does not have (``source``: its names file)."""
    named = f" (named so in {source})" if source else ""
    return f"class {show_name(name)} (id {class_id}) is not a project class{named}{normalisation_hint(name, names)}"


def parse_lines(
    text: str,
    where: str,
    file_names: Sequence[str],
    names: Sequence[str],
    *,
    allow_confidence: bool = True,
    names_source: str | None = None,
) -> tuple[str, list[LabelProblem]]:
    """Parse returned YOLO text whose class ids index ``file_names`` (with :func:`detal.labels.parse_label_lines`).

    Ids are remapped to the project's ``names`` by class name, so a vendor
    that reordered the classes still gives the right labels. A confidence
    column, if left in, is dropped. Returns canonical text and the problems.
    ``names_source`` is the names file ``file_names`` come from, for messages.
    """
    index = {n: i for i, n in enumerate(names)}
    numbered, problems = parse_label_lines(text, len(file_names), where, allow_confidence=allow_confidence)
    lines: list[str] = []
    for number, box in numbered:
        name = file_names[box.class_id]
        if name not in index:
            problems.append(LabelProblem(where, number, not_a_project_class(name, box.class_id, names, names_source)))
            continue
        try:
            lines.append(returned_line(index[name], box.cx, box.cy, box.w, box.h, len(names)))
        except DataError as exc:  # a box too small for the 6 decimals it is kept with
            problems.append(LabelProblem(where, number, str(exc)))
    problems.sort(key=lambda p: p.line)  # in file order, as a reader goes through it
    return "".join(line + "\n" for line in lines), problems


@dataclass
class ReturnedLabels:
    """What a reader found in returned labels, before anything is applied.

    ``labels`` maps an image key (the pool image's key when the reader was
    given the pool's :class:`~detal.export.keys.PoolNames`, else the path as
    the return spells it: label path without ``.txt``, or COCO file name) to
    canonical YOLO text in the project's class ids; ``sources`` maps the same
    key to where it was read (``folder/a.txt``, ``batch.zip!labels/a.txt``,
    ``instances.json: image a.png``), for messages; ``problems`` lists
    everything wrong. Callers apply ``labels`` only when ``problems`` is empty.
    """

    labels: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    problems: list[LabelProblem] = field(default_factory=list)


def outside_label_folder(entries: Sequence[Entry], read: Sequence[Entry], folder: str) -> list[LabelProblem]:
    """A problem for each ``.txt`` in ``entries`` that ``read`` leaves out (not a :data:`NOT_LABELS`
    name): a return that has a label ``folder`` is read from there only, and a label beside it must
    not be skipped without a word."""
    inside = {e.relpath for e in read}
    return [
        LabelProblem(e.where, 0, f"label file outside {folder} (only the files in {folder} are read); "
                                 f"move it into {folder} or remove it")
        for e in entries
        if e.relpath.lower().endswith(".txt") and e.name.lower() not in NOT_LABELS and e.relpath not in inside
    ]


def is_label_folder(folder: str) -> bool:
    """Whether a folder of a return holds its labels laid out as the images are: ``labels`` in any
    case (Ultralytics; ``Labels`` as a folder renamed on Windows or macOS) or ``obj_<subset>_data``
    (CVAT YOLO 1.1, darknet, datumaro)."""
    return folder.lower() == "labels" or (folder.startswith("obj_") and folder.endswith("_data"))


def label_path(relpath: str) -> str:
    """How a returned label file spells its image: its path without ``.txt``, below its label folder.

    The path is taken below the first :func:`is_label_folder` among the
    folders of ``relpath`` (``batch/labels/sub/a.txt``: ``sub/a``), or from
    the return's root when there is none.
    """
    parts = PurePosixPath(relpath).parts
    for i, part in enumerate(parts[:-1]):
        if is_label_folder(part):
            parts = parts[i + 1:]
            break
    path = "/".join(parts)
    return path[: -len(".txt")] if path.lower().endswith(".txt") else path


def collect_labels(
    files: Sequence[Entry],
    file_names: Sequence[str],
    names: Sequence[str],
    *,
    allow_confidence: bool = True,
    pool: PoolNames | None = None,
    names_source: str | None = None,
) -> ReturnedLabels:
    """Parse returned ``.txt`` label files into ``image key -> canonical text``.

    Each file's image is found by :meth:`PoolNames.match <detal.export.keys.PoolNames.match>`
    from its :func:`label_path` (the one key rule); without a ``pool`` the key
    is the label path itself. The files are read as named after the image
    file (``x.png.txt``) too only when every one of them is named so. Two
    files for one image are a problem. With ``allow_confidence`` a sixth
    column (confidence) is accepted and dropped; ``names_source`` is where
    ``file_names`` were read (:mod:`detal.export.names`).
    """
    out = ReturnedLabels()
    spelled = [label_path(e.relpath) for e in files]
    file_name = None if spelled and all(image_suffix(s) for s in spelled) else False
    for e, path in zip(files, spelled):
        if pool is None:
            key = path
        else:
            match = pool.match(path, file_name=file_name)
            whole = e.relpath[: -len(".txt")] if e.relpath.lower().endswith(".txt") else e.relpath
            if match.key is not None and whole != path:  # a folder of the pool may be called labels/ too
                also = pool.match(whole, file_name=file_name, by_base=False).key
                if also is not None and also != match.key:
                    match = Match(None, pool.ambiguous(whole, {match.key, also}))
            if match.key is None:
                out.problems.append(LabelProblem(e.where, 0, str(match.problem)))
                continue
            key = match.key
        if key in out.labels:
            image = show_name(pool.path(key) if pool is not None else key)
            out.problems.append(LabelProblem(e.where, 0, f"second label for image {image} (first: {out.sources[key]})"))
            continue
        try:
            text = e.read_text()
        except DataError as exc:
            out.problems.append(LabelProblem(e.where, 0, str(exc)))
            continue
        out.labels[key], file_problems = parse_lines(
            text, e.where, file_names, names, allow_confidence=allow_confidence, names_source=names_source
        )
        out.sources[key] = e.where
        out.problems += file_problems
    return out
