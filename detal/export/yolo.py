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
present, map the ids back to the project's classes by name.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import yaml

from detal.errors import DataError
from detal.export.common import (
    Entry,
    ImageLabels,
    collect_labels,
    label_entries,
    yolo_text,
)
from detal.labels import LabelProblem, parse_class_names

__all__ = ["data_yaml", "read_yolo", "write_yolo"]

_NOT_LABELS = {"classes.txt", "train.txt", "val.txt", "valid.txt", "test.txt", "notes.txt", "readme.txt"}


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


def _returned_names(entries: Sequence[Entry]) -> tuple[list[str] | None, list[LabelProblem]]:
    """Class names from a returned ``data.yaml`` or ``classes.txt`` (shallowest first)."""
    for entry in sorted(entries, key=lambda e: (e.relpath.count("/"), e.relpath)):
        name = entry.name.lower()
        if name not in ("data.yaml", "data.yml", "classes.txt"):
            continue
        try:
            text = entry.read_text()
        except DataError as exc:
            return None, [LabelProblem(entry.where, 0, str(exc))]
        if name == "classes.txt":
            return parse_class_names(text), []
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError:
            return None, [LabelProblem(entry.where, 0, "not valid YAML")]
        names = loaded.get("names") if isinstance(loaded, dict) else None
        if isinstance(names, list):
            return [str(n) for n in names], []
        if isinstance(names, dict):
            try:
                keys = sorted(int(k) for k in names)
            except (TypeError, ValueError):
                keys = []
            if keys == list(range(len(names))):
                return [str(names[k] if k in names else names[str(k)]) for k in keys], []
        return None, [LabelProblem(entry.where, 0, "no usable 'names' list or {id: name} map")]
    return None, []


def read_yolo(path: Path, names: Sequence[str]) -> tuple[dict[str, str], list[LabelProblem]]:
    """``stem -> canonical YOLO text`` from a returned folder or zip, and every problem.

    Label files are the ``.txt`` files under a ``labels/`` folder if there is
    one, else every ``.txt`` (except lists such as ``classes.txt``).
    """
    entries, problems = label_entries(path)
    file_names, name_problems = _returned_names(entries)
    problems += name_problems
    txts = [
        e
        for e in entries
        if e.relpath.lower().endswith(".txt") and e.name.lower() not in _NOT_LABELS
    ]
    under_labels = [e for e in txts if "labels" in PurePosixPath(e.relpath).parts[:-1]]
    labels, label_problems = collect_labels(
        under_labels or txts, file_names if file_names is not None else list(names), names
    )
    return labels, problems + label_problems
