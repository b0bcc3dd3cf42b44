"""``cvat-yolo``: CVAT's "YOLO 1.1" (Darknet) layout, zipped from inside.

::

    cvat-yolo.zip
      obj.data                   classes, train list, names, backup
      obj.names                  one class a line, in the project's order
      train.txt                  data/obj_train_data/<image>, one a line
      obj_train_data/<stem>.txt  YOLO labels (always 5 fields)
      obj_train_data/<image>     the images (unless copy_images=False)

There is no wrapping folder, and paths inside ``obj.data`` and ``train.txt``
carry the ``data/`` prefix that CVAT writes itself and that CVAT and datumaro
strip on import. Without images, the zip is exactly what CVAT's "Upload
annotations" for a task expects. Every entry gets a fixed timestamp, so the
same batch gives the same bytes.

:func:`read_cvat` reads such a zip (or an unpacked folder) back, from any
``obj_<subset>_data/`` folder, mapping ids by name through ``obj.names`` and
every other names file present (:mod:`detal.export.names`: all must agree).
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from detal.export.common import (
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
from detal.labels import LabelProblem

__all__ = ["obj_data", "obj_names", "read", "read_cvat", "train_list", "write", "write_cvat_zip"]

_EPOCH = (1980, 1, 1, 0, 0, 0)
_SUBSET_DIR = "obj_train_data"


def obj_names(names: Sequence[str]) -> str:
    return "".join(f"{n}\n" for n in names)


def obj_data(n_classes: int) -> str:
    return (
        f"classes = {n_classes}\n"
        "train = data/train.txt\n"
        "names = data/obj.names\n"
        "backup = backup/\n"
    )


def train_list(images: Sequence[ImageLabels]) -> str:
    return "".join(f"data/{_SUBSET_DIR}/{image.name}\n" for image in images)


def _add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def write_cvat_zip(
    zip_path: Path, images: Sequence[ImageLabels], names: Sequence[str], *, copy_images: bool = True
) -> Path:
    """Write the zip at ``zip_path``; returns ``zip_path``."""
    with zipfile.ZipFile(zip_path, "w") as zf:
        _add(zf, "obj.data", obj_data(len(names)).encode())
        _add(zf, "obj.names", obj_names(names).encode())
        _add(zf, "train.txt", train_list(images).encode())
        for image in images:
            _add(zf, f"{_SUBSET_DIR}/{image.stem}.txt", yolo_text(image).encode())
            if copy_images:
                _add(zf, f"{_SUBSET_DIR}/{image.name}", image.path.read_bytes())
    return zip_path


def read_cvat(path: Path, names: Sequence[str], *, allow_confidence: bool = True,
              pool: PoolNames | None = None) -> ReturnedLabels:
    """``image key -> canonical YOLO text`` from a returned YOLO 1.1 zip or folder, and every problem.

    Each label names its image by its path below ``obj_<subset>_data/``
    (``obj_train_data/sub/a.txt``: ``sub/a``), as
    :func:`~detal.export.common.collect_labels` matches it to ``pool``.

    Ids are mapped by name through ``obj.names`` and any other names file
    present (:func:`detal.export.names.returned_names`); one that lists no
    class, repeats one, holds two names that differ only in Unicode
    normalisation, or disagrees with another is refused (the ids would be ambiguous).
    """
    entries, problems = label_entries(path)
    if not any(e.name == "obj.names" for e in entries):
        if not any(p.message.startswith("file too large") and p.path.endswith("obj.names") for p in problems):
            problems.append(LabelProblem(str(path), 0, "no obj.names: not a CVAT YOLO 1.1 export"))
        return ReturnedLabels(problems=problems)
    carried = returned_names(entries)
    problems += carried.problems
    if carried.names is None:
        return ReturnedLabels(problems=problems)
    files = [
        e
        for e in entries
        if e.relpath.lower().endswith(".txt")
        and any(p.startswith("obj_") and p.endswith("_data") for p in PurePosixPath(e.relpath).parts[:-1])
    ]
    problems += outside_label_folder(entries, files, "obj_*_data/")
    out = collect_labels(files, carried.names, names, allow_confidence=allow_confidence,
                         names_source=carried.source, pool=pool)
    out.problems[:0] = problems
    return out


def write(target: Path, images: Sequence[ImageLabels], names: Sequence[str], options: WriteOptions) -> None:
    """The registry's writer (:mod:`detal.export.registry`): :func:`write_cvat_zip`."""
    write_cvat_zip(target, images, names, copy_images=options.copy_images)


def read(path: Path, names: Sequence[str], options: ReadOptions) -> ReturnedLabels:
    """The registry's reader (:mod:`detal.export.registry`): :func:`read_cvat`."""
    return read_cvat(path, names, allow_confidence=options.allow_confidence, pool=options.pool)
