"""The class names a return carries: the one rule of every reader of returned YOLO text.

YOLO label files hold class ids, and ids mean nothing without the list they
index. A vendor's return names its classes in one of several files, and a
file that is present is never ignored (:func:`returned_names`): its names
map the ids to the project's classes by name, or the import is refused
naming it. Without any, the ids are taken as the project's own.

Names files, wherever they lie in the folder or zip:

- one name a line: ``classes.txt``, any ``*.names`` (``obj.names`` of CVAT's
  YOLO 1.1 and Darknet) and any ``*.labels`` (Roboflow's ``_darknet.labels``);
- YAML: ``data.yaml`` / ``data.yml``, which must list names, and any other
  ``*.yaml`` / ``*.yml`` with a top-level ``names`` key (``dataset.yaml``);
  one that does not parse is refused, since it may be the one that names them;
- Darknet's ``obj.data`` is not a names file but points at one
  (``names = data/obj.names``) and counts the classes (``classes = 3``):
  the file it names must be present, and the count must agree.

Every names file is read. Each must list its names unambiguously (no name
twice, none that differ only in Unicode normalisation), and all must agree:
two lists in different orders would make the ids mean two things, so that
is refused, never guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from detal.errors import DataError
from detal.export.common import Entry
from detal.labels import (
    LabelProblem,
    class_name_problems,
    parse_class_names,
    show_name,
    yaml_class_names,
)
from detal.safeyaml import load_yaml

__all__ = ["ReturnedNames", "names_kind", "returned_names"]

_LIST_SUFFIXES = (".names", ".labels")
_YAML_SUFFIXES = (".yaml", ".yml")
_DATA_YAML = ("data.yaml", "data.yml")


def names_kind(file_name: str) -> str | None:
    """How a file of a return names classes: ``"list"``, ``"yaml"`` (must list them),
    ``"other-yaml"`` (does if it has ``names``), ``"darknet-data"`` (``obj.data``), or ``None``."""
    name = PurePosixPath(file_name).name.lower()
    suffix = PurePosixPath(name).suffix
    if name == "classes.txt" or suffix in _LIST_SUFFIXES:
        return "list"
    if name in _DATA_YAML:
        return "yaml"
    if suffix in _YAML_SUFFIXES:
        return "other-yaml"
    if suffix == ".data":
        return "darknet-data"
    return None


@dataclass
class ReturnedNames:
    """What the names files of a return say.

    ``names``: the one class list they agree on (``None``: no names file, or
    none that can be used); ``source``: where it was read, for messages;
    ``problems``: everything wrong. With problems and ``names`` ``None`` the
    ids cannot be read at all; with ``names`` set they still can (to report
    every problem of the labels too).
    """

    names: list[str] | None = None
    source: str | None = None
    problems: list[LabelProblem] = field(default_factory=list)


def _yaml_names(entry: Entry, required: bool) -> tuple[list[str] | None, str | None]:
    """Class names of a returned YAML, or what is wrong with it; ``(None, None)``: it names none."""
    try:
        loaded = load_yaml(entry.read_text(), entry.where, DataError)
    except DataError as exc:
        why = str(exc).removeprefix(f"{entry.where}: ")
        return None, why if required else f"{why}; it may name the classes, so fix it or leave it out"
    if not required and not (isinstance(loaded, dict) and "names" in loaded):
        return None, None
    return yaml_class_names(loaded)


def _darknet_data(entry: Entry) -> dict[str, str]:
    """``key -> value`` of an ``obj.data`` (``classes = 3``, ``names = data/obj.names``)."""
    out = {}
    for line in entry.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


def _first_difference(a: Sequence[str], b: Sequence[str]) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"class id {i} is {show_name(x)} here but {show_name(y)}"
    return f"{len(a)} classes here but {len(b)}"


def returned_names(entries: Sequence[Entry]) -> ReturnedNames:
    """The class names of a return's names files (see the module docstring), and every problem."""
    found: list[tuple[Entry, list[str]]] = []
    darknet: list[Entry] = []
    problems: list[LabelProblem] = []
    for entry in sorted(entries, key=lambda e: (e.relpath.count("/"), e.relpath)):
        kind = names_kind(entry.name)
        if kind is None:
            continue
        if kind == "darknet-data":
            darknet.append(entry)
            continue
        if kind == "list":
            try:
                file_names: list[str] | None = parse_class_names(entry.read_text())
            except DataError as exc:
                problems.append(LabelProblem(entry.where, 0, str(exc)))
                continue
        else:
            file_names, why = _yaml_names(entry, required=kind == "yaml")
            if file_names is None:
                if why is not None:
                    problems.append(LabelProblem(entry.where, 0, why))
                continue
        if not file_names:
            problems.append(LabelProblem(entry.where, 0, "lists no class names"))
            continue
        problems += [LabelProblem(entry.where, 0, p) for p in class_name_problems(file_names)]
        found.append((entry, file_names))
    if found and not problems:
        first_entry, first = found[0]
        for entry, other in found[1:]:
            if other != first:
                problems.append(LabelProblem(
                    entry.where, 0,
                    f"its class list disagrees with {first_entry.where} "
                    f"({_first_difference(other, first)} there), so the class ids are ambiguous",
                ))
    present = {e.name.lower() for e, _ in found}
    for entry in darknet:
        try:
            data = _darknet_data(entry)
        except DataError:  # not text: not a Darknet obj.data
            continue
        named = PurePosixPath(data.get("names", "").replace("\\", "/")).name
        if named and named.lower() not in present and not problems:
            problems.append(LabelProblem(
                entry.where, 0,
                f"names the classes in {show_name(data['names'])}, which this return does not hold; "
                "without it the class ids cannot be mapped to the project's classes"))
        count = data.get("classes", "")
        if found and not problems and count.isdigit() and int(count) != len(found[0][1]):
            return ReturnedNames(found[0][1], found[0][0].where, [LabelProblem(
                entry.where, 0,
                f"says classes = {count} but {found[0][0].where} lists {len(found[0][1])}")])
    if problems or not found:
        return ReturnedNames(problems=problems)
    return ReturnedNames(found[0][1], found[0][0].where)
