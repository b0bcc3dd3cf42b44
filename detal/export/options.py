"""What the export registry hands each format's writer and reader, and the file helpers writers share.

See :mod:`detal.export.registry` for the signatures a format module defines.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from detal.export.common import ImageLabels
from detal.export.keys import PoolNames

__all__ = ["ReadOptions", "WriteOptions", "copy_images", "write_json"]


@dataclass(frozen=True)
class WriteOptions:
    """What :func:`detal.export.export_predictions` hands every format's writer; each reads what it needs.

    ``with_confidence`` is for ``yolo`` only; ``model_version``, ``scores``
    (image file name -> normalised uncertainty), ``from_name`` and
    ``to_name`` are for ``label-studio``.
    """

    copy_images: bool = True
    with_confidence: bool = False
    model_version: str = "prelabel"
    scores: Mapping[str, float] | None = None
    from_name: str = "label"
    to_name: str = "image"


@dataclass(frozen=True)
class ReadOptions:
    """What :func:`detal.export.read_returned` hands every format's reader; each reads what it needs.

    ``sizes`` and ``allow_no_annotations`` are for ``coco``
    (:func:`detal.export.coco.read_coco`). ``pool`` names the project's
    images: every reader keys its labels by :meth:`PoolNames.match
    <detal.export.keys.PoolNames.match>`, the one key rule.
    """

    pool: PoolNames | None = None
    sizes: Mapping[str, tuple[int, int]] | None = None
    allow_no_annotations: bool = False
    allow_confidence: bool = True


def write_json(path: Path, obj: object) -> None:
    """``obj`` as indented UTF-8 JSON at ``path`` (its folder is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def copy_images(images: Sequence[ImageLabels], folder: Path) -> None:
    """Copy every image into ``folder`` (created) under its file name."""
    folder.mkdir(parents=True, exist_ok=True)
    for im in images:
        shutil.copyfile(im.path, folder / im.name)
