"""``yolo``: the Ultralytics dataset layout.

::

    yolo/
      data.yaml        names (and train/val pointing at images/)
      images/<image>   the images (unless copy_images=False)
      labels/<stem>.txt

``data.yaml`` carries no ``path`` key, so Ultralytics resolves ``images``
against the folder of ``data.yaml`` wherever the bundle is unpacked. Train
and val both point at ``images``: the bundle is for labeling, not a split.

The optional confidence column (``with_confidence``) makes the labels
pre-labels only: Ultralytics and datumaro read exactly 5 fields a line, so
it is off by default.

Returned labels (:func:`read_yolo`) may be this layout, or any folder or zip
of ``.txt`` files; class names from ``data.yaml`` or ``classes.txt``, when
present, map the ids back to the project's classes by name. Every such file
is read: a repeated name, or two lists that disagree (a vendor reordered
``classes.txt`` but left ``data.yaml``), is a problem, never a guess.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import yaml

from detal.errors import DataError
from detal.export.common import (
    NOT_LABELS,
    Entry,
    ImageLabels,
    ReturnedLabels,
    collect_labels,
    label_entries,
    yolo_text,
)
from detal.export.keys import PoolNames
from detal.export.options import ReadOptions, WriteOptions
from detal.labels import LabelProblem, class_name_problems, parse_class_names, show_name
from detal.safeyaml import load_yaml

__all__ = ["data_yaml", "read", "read_yolo", "returned_names", "write", "write_yolo"]

_NAME_FILES = ("data.yaml", "data.yml", "classes.txt")

_NOT_LABELS = NOT_LABELS


def data_yaml(names: Sequence[str]) -> str:
    """The ``data.yaml`` of the bundle: names, and train/val pointing at ``images``."""
    body = {
        "train": "images",
        "val": "images",
        "nc": len(names),
        "names": {i: str(n) for i, n in enumerate(names)},
    }
    header = "# Written by detal: pre-labels for correction. Train and val both point at images/.\n"
    return header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True)


def write_yolo(
    root: Path,
    images: Sequence[ImageLabels],
    names: Sequence[str],
    *,
    with_confidence: bool = False,
    copy_images: bool = True,
) -> Path:
    """Write the layout under ``root`` (created); returns ``root``."""
    (root / "labels").mkdir(parents=True)
    (root / "data.yaml").write_text(data_yaml(names), encoding="utf-8")
    if copy_images:
        (root / "images").mkdir()
    for image in images:
        (root / "labels" / f"{image.stem}.txt").write_text(
            yolo_text(image, with_confidence), encoding="utf-8"
        )
        if copy_images:
            shutil.copyfile(image.path, root / "images" / image.name)
    return root


def _yaml_names(entry: Entry) -> tuple[list[str] | None, str | None]:
    """Class names of a returned ``data.yaml``, or what is wrong with it."""
    try:
        loaded = load_yaml(entry.read_text(), entry.where, DataError)
    except DataError as exc:
        return None, str(exc).removeprefix(f"{entry.where}: ")
    names = loaded.get("names") if isinstance(loaded, dict) else None
    out: list[str] | None = None
    if isinstance(names, list):
        out = [str(n) for n in names]
    elif isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            keys = []
        if keys == list(range(len(names))):
            out = [str(names[k] if k in names else names[str(k)]) for k in keys]
    if out is None:
        return None, "no usable 'names' list or {id: name} map"
    nc = loaded.get("nc")
    if nc is not None and nc != len(out):
        return None, f"nc is {nc!r} but names lists {len(out)} classes"
    return out, None


def _first_difference(a: Sequence[str], b: Sequence[str]) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"class id {i} is {show_name(x)} here but {show_name(y)}"
    return f"{len(a)} classes here but {len(b)}"


def returned_names(entries: Sequence[Entry]) -> tuple[list[str] | None, list[LabelProblem]]:
    """Class names from a returned ``data.yaml`` or ``classes.txt``; ``None`` if there is none.

    Every such file is read, wherever it lies. Each must list its names
    unambiguously (no repeats), and all must agree: two lists in a
    different order would make the class ids mean two things, so that is a
    problem, not a guess.
    """
    found: list[tuple[Entry, list[str]]] = []
    problems: list[LabelProblem] = []
    for entry in sorted(entries, key=lambda e: (e.relpath.count("/"), e.relpath)):
        kind = entry.name.lower()
        if kind not in _NAME_FILES:
            continue
        if kind == "classes.txt":
            try:
                file_names: list[str] | None = parse_class_names(entry.read_text())
            except DataError as exc:
                problems.append(LabelProblem(entry.where, 0, str(exc)))
                continue
        else:
            file_names, why = _yaml_names(entry)
            if file_names is None:
                problems.append(LabelProblem(entry.where, 0, str(why)))
                continue
        if not file_names:
            problems.append(LabelProblem(entry.where, 0, "lists no class names"))
            continue
        problems += [LabelProblem(entry.where, 0, p) for p in class_name_problems(file_names)]
        found.append((entry, file_names))
    if problems or not found:
        return None, problems
    first_entry, first = found[0]
    for entry, other in found[1:]:
        if other != first:
            problems.append(LabelProblem(
                entry.where, 0,
                f"its class list disagrees with {first_entry.where} "
                f"({_first_difference(other, first)} there), so the class ids are ambiguous",
            ))
    return (None if problems else first), problems


def read_yolo(path: Path, names: Sequence[str], *, allow_confidence: bool = True,
              pool: PoolNames | None = None) -> ReturnedLabels:
    """``image key -> canonical YOLO text`` from a returned folder or zip, and every problem.

    Label files are the ``.txt`` files under a ``labels/`` folder if there is
    one, else every ``.txt`` (except lists such as ``classes.txt``); each
    names its image by its path below ``labels/`` (or ``obj_<subset>_data/``,
    or the return's root), as :func:`~detal.export.common.collect_labels`
    matches it to ``pool``. Class
    ids are mapped by name through ``data.yaml``/``classes.txt`` when present
    (see :func:`returned_names`), else taken as the project's ids.
    """
    entries, problems = label_entries(path)
    file_names, name_problems = returned_names(entries)
    problems += name_problems
    txts = [
        e
        for e in entries
        if e.relpath.lower().endswith(".txt") and e.name.lower() not in _NOT_LABELS
    ]
    under_labels = [e for e in txts if "labels" in PurePosixPath(e.relpath).parts[:-1]]
    if name_problems:  # ids mean nothing without unambiguous names: do not parse them
        return ReturnedLabels(problems=problems)
    file_names = file_names if file_names is not None else list(names)
    out = collect_labels(under_labels or txts, file_names, names, allow_confidence=allow_confidence,
                         pool=pool)
    out.problems[:0] = problems
    return out


def write(target: Path, images: Sequence[ImageLabels], names: Sequence[str], options: WriteOptions) -> None:
    """The registry's writer (:mod:`detal.export.registry`): :func:`write_yolo`."""
    write_yolo(target, images, names, with_confidence=options.with_confidence, copy_images=options.copy_images)


def read(path: Path, names: Sequence[str], options: ReadOptions) -> ReturnedLabels:
    """The registry's reader (:mod:`detal.export.registry`): :func:`read_yolo`."""
    return read_yolo(path, names, allow_confidence=options.allow_confidence, pool=options.pool)
