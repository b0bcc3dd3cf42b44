"""Training data laid out for Ultralytics: exact image lists and a ``data.yaml``.

The pool directory is never globbed: :func:`stage_split` stages exactly the
given ``(image, label)`` pairs, each under a unique name, and
:func:`write_data_yaml` points Ultralytics at the list files it wrote.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import yaml

from detal.adapter import LabeledImage
from detal.errors import DataError
from detal.files import IMAGE_SUFFIXES, short_name

__all__ = ["stage_split", "write_data_yaml"]


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        dst.symlink_to(src)
    except OSError:
        shutil.copy2(src, dst)


def stage_split(items: Sequence[LabeledImage], root: Path) -> Path:
    """Lay ``items`` out as ``root/images`` + ``root/labels`` and write ``root.txt``.

    Images are symlinked (copied where links are not possible) and labels
    copied, each under a unique name ``<index>_<stem><suffix>`` (bounded by
    :func:`~detal.files.short_name`), so two images with the same file name in
    different folders do not collide. Returns the
    list file, which holds the staged image paths, one a line.
    """
    if root.exists():
        shutil.rmtree(root)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir(parents=True)
    lines = []
    for index, (image, label) in enumerate(items):
        image, label = Path(image), Path(label)
        if not image.is_file():
            raise DataError(f"{image}: image file not found")
        if image.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{image}: not an image file ({', '.join(IMAGE_SUFFIXES)})")
        if not label.is_file():
            raise DataError(f"{label}: label file not found (for image {image})")
        stem = short_name(f"{index:06d}_{image.stem}")
        staged = root / "images" / f"{stem}{image.suffix}"
        _link_or_copy(image.resolve(), staged)
        shutil.copyfile(label, root / "labels" / f"{stem}.txt")
        lines.append(str(staged))
    list_file = root.with_suffix(".txt")
    list_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return list_file


def write_data_yaml(path: Path, train_list: Path, val_list: Path, names: Sequence[str]) -> Path:
    """A ``data.yaml`` for Ultralytics, with absolute paths and the project's class names."""
    names = [str(n) for n in names]
    if not names:
        raise DataError(f"{path}: no class names given")
    data = {
        "path": str(path.parent.resolve()),
        "train": str(train_list.resolve()),
        "val": str(val_list.resolve()),
        "nc": len(names),
        "names": dict(enumerate(names)),
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
