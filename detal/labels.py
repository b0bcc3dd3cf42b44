"""YOLO-format label lines: pure parse and format functions, thin file IO.

A label line is ``class cx cy w h`` with coordinates normalised to ``[0, 1]``;
pre-labels may add a sixth column, the confidence. An empty file means "this
image has no objects" and is valid.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detal.detections import Prediction
from detal.errors import DataError
from detal.files import read_small_text
from detal.safeyaml import load_yaml

__all__ = [
    "MAX_CLASSES_BYTES",
    "LabelProblem",
    "YoloBox",
    "class_name_problems",
    "format_line",
    "normalized_box",
    "parse_class_names",
    "parse_label_lines",
    "parse_label_text",
    "parse_yolo_line",
    "prediction_lines",
    "read_classes",
    "returned_line",
    "show_name",
    "show_number",
    "to_yolo_line",
    "yaml_class_names",
]

MAX_CLASSES_BYTES = 1024 * 1024
"""The largest classes file :func:`read_classes` reads: 1 MiB."""


@dataclass(frozen=True)
class YoloBox:
    class_id: int
    cx: float
    cy: float
    w: float
    h: float
    confidence: float | None = None


@dataclass(frozen=True)
class LabelProblem:
    """One thing wrong with a label file: where, and what."""

    path: str
    line: int  # 1-based; 0 for problems with the file as a whole
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


def format_line(class_id: int, cx: float, cy: float, w: float, h: float) -> str:
    """A 5-field YOLO line with 6 decimals, the form every detal writer uses."""
    return f"{int(class_id)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


def returned_line(class_id: int, cx: float, cy: float, w: float, h: float, n_classes: int) -> str:
    """:func:`format_line` of a box a return gave in other units, checked as a label line is.

    :class:`DataError` says what is wrong in the box's own numbers
    (``w=1.0000009 outside [0, 1]``), and names a box too small for the 6
    decimals of a YOLO line (``w=3e-07``), which would otherwise be written,
    and then refused, as ``w=0``.
    """
    line = format_line(class_id, cx, cy, w, h)
    try:
        parse_yolo_line(line, n_classes)
    except DataError as exc:  # told in the box's own numbers where they show it
        parse_yolo_line(f"{int(class_id)} {cx!r} {cy!r} {w!r} {h!r}", n_classes)
        if w < 5e-7 or h < 5e-7:
            raise DataError(
                f"box too small to write: w={show_number(w)} h={show_number(h)} of the image, "
                "under the 0.000001 a YOLO line can hold"
            ) from None
        raise DataError(f"{exc} once written with 6 decimals ({line})") from None
    return line


def normalized_box(xyxy: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """``(cx, cy, w, h)`` of a pixel-space ``xyxy`` box, normalised and rounded as written.

    The box is clipped to the image first, so a prediction that spills over
    the border still gives coordinates in ``[0, 1]``. Values are rounded to the
    6 decimals of :func:`format_line`, so every format built from them agrees
    with the YOLO text to the last digit.
    """
    if width <= 0 or height <= 0:
        raise DataError(f"image size must be positive, got {width}x{height}")
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
    y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
    values = ((x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height)
    cx, cy, w, h = (float(f"{v:.6f}") for v in values)
    return cx, cy, w, h


def to_yolo_line(
    class_id: int, xyxy: Sequence[float], width: int, height: int, confidence: float | None = None
) -> str:
    """Format one pixel-space ``xyxy`` box as a normalised YOLO line (clipped to the image)."""
    line = format_line(class_id, *normalized_box(xyxy, width, height))
    if confidence is not None:
        line += f" {float(confidence):.4f}"
    return line


def prediction_lines(pred: Prediction, conf: float = 0.0, with_confidence: bool = False) -> list[str]:
    """YOLO lines for every box of ``pred`` with confidence >= ``conf``.

    Boxes that clip to zero width or height are dropped: they carry no object.
    """
    det = pred.detections.above(conf)
    lines = []
    for box, cls, c in zip(det.xyxy, det.class_id, det.confidence):
        cx, cy, w, h = normalized_box(box, pred.width, pred.height)
        if w > 0 and h > 0:
            line = format_line(cls, cx, cy, w, h)
            lines.append(line + f" {float(c):.4f}" if with_confidence else line)
    return lines


def parse_yolo_line(
    line: str, n_classes: int, *, allow_confidence: bool = False
) -> YoloBox:
    """Parse one YOLO line, raising :class:`DataError` (message only) if it is bad."""
    fields = line.split()
    expected = "5 or 6" if allow_confidence else "5"
    if len(fields) != 5 and not (allow_confidence and len(fields) == 6):
        raise DataError(f"expected {expected} fields (class cx cy w h), got {len(fields)}")
    try:
        cls_f = float(fields[0])
    except ValueError:
        raise DataError(f"class id {fields[0]!r} is not a number") from None
    if not cls_f.is_integer():
        raise DataError(f"class id {fields[0]!r} is not an integer")
    cls = int(cls_f)
    if not 0 <= cls < n_classes:
        raise DataError(f"class id {cls} out of range [0, {n_classes - 1}]")
    try:
        values = [float(v) for v in fields[1:5]]
    except ValueError:
        raise DataError(f"non-numeric coordinate in {' '.join(fields[1:5])!r}") from None
    if not all(np.isfinite(values)):
        raise DataError("coordinates must be finite")
    if len(fields) == 6:
        try:
            values.append(float(fields[5]))
        except ValueError:
            raise DataError(f"sixth field (confidence) {fields[5][:40]!r} is not a number") from None
        if not np.isfinite(values[4]):
            raise DataError(f"sixth field (confidence) {fields[5][:40]!r} is not finite")
    cx, cy, w, h = values[:4]
    for name, v in (("cx", cx), ("cy", cy), ("w", w), ("h", h)):
        if not 0.0 <= v <= 1.0:
            raise DataError(f"{name}={show_number(v)} outside [0, 1]")
    if w <= 0 or h <= 0:
        raise DataError(f"box size must be positive, got w={show_number(w)} h={show_number(h)}")
    tol = 1e-6
    if cx - w / 2 < -tol or cx + w / 2 > 1 + tol or cy - h / 2 < -tol or cy + h / 2 > 1 + tol:
        raise DataError("box extends outside the image")
    conf = values[4] if len(values) == 5 else None
    if conf is not None and not 0.0 <= conf <= 1.0:
        raise DataError(f"sixth field (confidence) {show_number(conf)} outside [0, 1]")
    return YoloBox(cls, cx, cy, w, h, conf)


def parse_label_lines(
    text: str, n_classes: int, path: str, *, allow_confidence: bool = False
) -> tuple[list[tuple[int, YoloBox]], list[LabelProblem]]:
    """Parse a whole label file into ``(line number, box)`` pairs and every problem (blank lines skipped)."""
    boxes: list[tuple[int, YoloBox]] = []
    problems: list[LabelProblem] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            boxes.append((number, parse_yolo_line(raw, n_classes, allow_confidence=allow_confidence)))
        except DataError as exc:
            problems.append(LabelProblem(path, number, str(exc)))
    return boxes, problems


def parse_label_text(
    text: str, n_classes: int, path: str, *, allow_confidence: bool = False
) -> tuple[list[YoloBox], list[LabelProblem]]:
    """Parse a whole label file; collect every problem instead of stopping at the first."""
    numbered, problems = parse_label_lines(text, n_classes, path, allow_confidence=allow_confidence)
    return [box for _, box in numbered], problems


def read_label_file(
    path: Path, n_classes: int, *, allow_confidence: bool = False
) -> tuple[list[YoloBox], list[LabelProblem]] | None:
    """:func:`parse_label_text` of a file on disk; ``None`` where it cannot be read as UTF-8 text."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return parse_label_text(text, n_classes, str(path), allow_confidence=allow_confidence)


def parse_class_names(text: str) -> list[str]:
    """Class names from ``classes.txt``/``obj.names`` text: one a line, blank lines skipped.

    A UTF-8 byte-order mark (Windows Notepad writes one) is not part of the
    first name.
    """
    text = text.removeprefix("\ufeff")
    return [line.strip() for line in text.splitlines() if line.strip()]


def yaml_class_names(data: object) -> tuple[list[str] | None, str | None]:
    """Class names from a loaded ``data.yaml``: ``(names, None)``, or ``(None, why not)``.

    ``names`` is a list, or a map ``{id: name}`` whose ids are exactly
    ``0 .. n-1`` (as Ultralytics writes it); an ``nc`` given must match.
    The one rule for every ``data.yaml`` detal reads (``--classes``, a
    returned folder, ``detal simulate --data``).
    """
    names = data.get("names") if isinstance(data, dict) else None
    if names is None:
        return None, "no 'names' key (a list of class names, or a map of id: name)"
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            return None, "the keys of 'names' must be the class ids 0..n-1"
        if keys != list(range(len(names))):
            return None, f"the keys of 'names' must be the class ids 0..{len(names) - 1}"
        out = [str(names[k] if k in names else names[str(k)]) for k in keys]
    elif isinstance(names, list):
        out = [str(n) for n in names]
    else:
        return None, "'names' must be a list of class names or a map of id: name"
    nc = data.get("nc")
    if nc is not None and nc != len(out):
        return None, f"nc is {nc!r} but names lists {len(out)} classes"
    return out, None


_YAML_SUFFIXES = (".yaml", ".yml")
_YAML_NAMES_LINE = re.compile(r"^names\s*:")
_ID_AND_NAME = re.compile(r"^\s*\d+\s*(?::\s*|\s+)\S")


_SEPARATORS = {";": ("a semicolon", "semicolons"), "|": ("a '|'", "a '|'"), "\t": ("a tab", "tabs")}
"""Characters that part a list written on one line, besides the comma, and how a message names them."""

_OBJ_DATA_LINE = re.compile(r"^(classes|names|train|valid|test|backup|eval)\s*=")
_YAML_ITEM = re.compile(r"^-\s+(\S.*)$")


def _class_list_problem(lines: list[tuple[int, str]]) -> str | None:
    """What makes one-a-line text look like another kind of class list, or ``None``."""
    for number, line in lines:
        if "," in line:
            # Not split: a guess at where names end would be silent if wrong.
            return (f"line {number} {show_name(line)} holds a comma; a classes file lists one class name "
                    "a line (a comma-separated list is not split, and names may not hold commas)")
    if lines and all(_ID_AND_NAME.match(line) for _, line in lines):
        number, line = lines[0]
        name = re.sub(r"^\s*\d+\s*:?\s*", "", line)
        return (f"line {number} {show_name(line)} starts with a class id; a classes file lists the names "
                f"alone, one a line, in id order (write {show_name(name)})")
    if lines and all(_YAML_ITEM.match(line) for _, line in lines):
        number, line = lines[0]
        return (f"line {number} {show_name(line)} is a YAML list item; a classes file lists the names alone, "
                f"one a line (write {show_name(_YAML_ITEM.match(line).group(1))}), or pass a data.yaml")
    for number, line in lines:
        found = next((names for ch, names in _SEPARATORS.items() if ch in line), None)
        if found is not None:
            return (f"line {number} {show_name(line)} holds {found[0]}; a classes file lists one class name "
                    f"a line (a list on one line is not split, and names may not hold {found[1]})")
        control = next((c for c in line if unicodedata.category(c) == "Cc"), None)
        if control is not None:
            return (f"line {number} {show_name(line)} holds the control character U+{ord(control):04X}; "
                    "class names are printable text")
        if _OBJ_DATA_LINE.match(line):
            return (f"line {number} {show_name(line)} is a darknet obj.data line; pass the names file it "
                    "points at (obj.names), one class name a line")
    return None


def show_name(name: str) -> str:
    """A name quoted for a message, so that names that look alike read differently.

    Plain names are quoted as ``repr`` does (``'café'``). A name that is not in
    Unicode NFC form, or holds invisible or control characters, is shown with
    escapes (``'cafe\\u0301'``), so NFC and NFD spellings of one word differ
    on screen as they do to the computer. A name longer than 80 characters
    is shown by its first 38 and last 39, ``...`` between.
    """
    name = str(name)
    plain = unicodedata.is_normalized("NFC", name) and all(
        c.isprintable() and unicodedata.category(c) != "Cf" for c in name
    )
    text = repr(name) if plain else ascii(name)
    # a long name keeps both ends: deep paths and shortened bundle names differ at the end
    return text if len(text) <= 80 else text[:38] + "..." + text[-39:]


def show_number(value: float) -> str:
    """``value`` for a message with every digit that tells it from a bound.

    The shortest text that reads back as the same float: ``1.0000009`` (which
    ``:g`` shows as ``1``, inside ``[0, 1]``), ``1e-09`` (``:g`` would not show
    ``0``, but a width of 1e-09 is no box), ``0.5``; ``.0`` is left off.
    """
    text = repr(float(value))
    return text.removesuffix(".0")


def class_name_problems(names: Sequence[str]) -> list[str]:
    """What makes a list of class names ambiguous: repeats, and names equal once NFC-normalised."""
    problems = []
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        shown = (n if show_name(n) == repr(n) else show_name(n) for n in dupes)
        problems.append(f"duplicate class names {', '.join(shown)}")
    seen: dict[str, str] = {}
    for name in dict.fromkeys(names):
        key = unicodedata.normalize("NFC", name)
        if key in seen:
            problems.append(
                f"class names {show_name(seen[key])} and {show_name(name)} differ only in Unicode "
                "normalisation (NFC/NFD)"
            )
        seen.setdefault(key, name)
    return problems


def read_classes(path: str | Path) -> list[str]:
    """Read a classes file: one class name a line (``classes.txt``/``obj.names``), or a ``data.yaml``.

    A ``.yaml``/``.yml`` file, or one with a top-level ``names:`` line, is
    read as a ``data.yaml`` (:func:`yaml_class_names`). A leading byte-order
    mark is dropped; a folder, an empty file, a repeated name or two names
    that differ only in Unicode normalisation are refused, and so are lines
    that hold another kind of list: ``cat,dog,bird`` (not split; so too with
    ``;``, ``|`` or a tab), ``0 cat`` (an id before the name), ``- cat`` (a
    YAML list) and ``classes = 3`` (a darknet ``obj.data``), and names with
    a control character.
    """
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{p}: is a directory, expected a classes file (one class name a line)")
    if not p.exists():
        raise DataError(f"{p}: classes file not found")
    if not p.is_file():
        raise DataError(f"{p}: not a regular file, expected a classes file (one class name a line)")
    text = read_small_text(p, DataError, "classes file", max_bytes=MAX_CLASSES_BYTES).removeprefix("\ufeff")
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if p.suffix.lower() in _YAML_SUFFIXES or any(_YAML_NAMES_LINE.match(line) for line in text.splitlines()):
        names, why = yaml_class_names(load_yaml(text, str(p), DataError))
        if names is None:
            raise DataError(f"{p}: read as a data.yaml for its class names: {why}")
    else:
        problem = _class_list_problem(lines)
        if problem:
            raise DataError(f"{p}: {problem}")
        names = [line for _, line in lines]
    if not names:
        raise DataError(f"{p}: classes file is empty")
    problems = class_name_problems(names)
    if problems:
        raise DataError(f"{p}: " + "; ".join(problems))
    return names
