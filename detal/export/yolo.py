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
of ``.txt`` files (a CVAT YOLO 1.1 zip too); the class names of every names
file present (``data.yaml``, ``classes.txt``, ``obj.names``, a
``dataset.yaml`` ...: :mod:`detal.export.names`) map the ids back to the
project's classes by name. A repeated name, or two lists that disagree (a
vendor reordered ``classes.txt`` but left ``data.yaml``), is a problem,
never a guess.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import yaml

from detal.export.common import (
    NOT_LABELS,
    ImageLabels,
    ReturnedLabels,
    collect_labels,
    label_entries,
    outside_label_folder,
    yolo_text,
)
from detal.export.keys import PoolNames
from detal.export.names import returned_names
from detal.export.options import ReadOptions, WriteOptions

__all__ = ["data_yaml", "read", "read_yolo", "write", "write_yolo"]

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


def read_yolo(path: Path, names: Sequence[str], *, allow_confidence: bool = True,
              pool: PoolNames | None = None) -> ReturnedLabels:
    """``image key -> canonical YOLO text`` from a returned folder or zip, and every problem.

    Label files are the ``.txt`` files under a ``labels/`` folder if there is
    one (then a ``.txt`` beside it is a problem, never skipped), else every
    ``.txt`` (except lists such as ``classes.txt``); each names its image by
    its path below ``labels/`` (or ``obj_<subset>_data/``, or the return's
    root), as :func:`~detal.export.common.collect_labels` matches it to
    ``pool``. Class ids are mapped by name through every names file present
    (:func:`detal.export.names.returned_names`), else taken as the project's ids.
    """
    entries, problems = label_entries(path)
    carried = returned_names(entries)
    problems += carried.problems
    txts = [
        e
        for e in entries
        if e.relpath.lower().endswith(".txt") and e.name.lower() not in _NOT_LABELS
    ]
    under_labels = [e for e in txts
                    if any(part.lower() == "labels" for part in PurePosixPath(e.relpath).parts[:-1])]
    if carried.problems and carried.names is None:  # ids mean nothing without unambiguous names
        return ReturnedLabels(problems=problems)
    file_names = carried.names if carried.names is not None else list(names)
    if under_labels:
        problems += outside_label_folder(txts, under_labels, "labels/")
    out = collect_labels(under_labels or txts, file_names, names, allow_confidence=allow_confidence,
                         names_source=carried.source, pool=pool)
    out.problems[:0] = problems
    return out


def write(target: Path, images: Sequence[ImageLabels], names: Sequence[str], options: WriteOptions) -> None:
    """The registry's writer (:mod:`detal.export.registry`): :func:`write_yolo`."""
    write_yolo(target, images, names, with_confidence=options.with_confidence, copy_images=options.copy_images)


def read(path: Path, names: Sequence[str], options: ReadOptions) -> ReturnedLabels:
    """The registry's reader (:mod:`detal.export.registry`): :func:`read_yolo`."""
    return read_yolo(path, names, allow_confidence=options.allow_confidence, pool=options.pool)
