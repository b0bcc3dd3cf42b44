"""Stored image sizes in the displayed frame (:mod:`detal.image_frame`), for projects made before.

``init`` stores every image's size as displayed, EXIF orientation applied,
and marks the store (meta ``size_frame: displayed``). A project made before
stored the header's size, which for a photo turned by a quarter has width
and height swapped: its COCO import would refuse detal's own export of the
photo and accept one in the wrong frame, and ``push`` would send Label Studio
the wrong size.

:func:`store_displayed_sizes` is that project's migration, run once by the
commands that use the sizes (``cycle``, ``import``, ``push``) under the
project's lock: it reads the header of every image that is not square (no
pixel is decoded), corrects a size that is the header's but not the
displayed one, and marks the store. An image that cannot be read then (an
unmounted disk) leaves the mark unset, so the next command tries again; the
correction is idempotent. Images already taken out of the pool are skipped;
one that comes back gets its size measured again
(:func:`detal.project.verify.restore_returned`).
"""

from __future__ import annotations

from pathlib import Path

from detal.image_frame import displayed_size
from detal.store import Store

__all__ = ["DISPLAYED", "SIZE_FRAME_KEY", "displayed_size_of", "store_displayed_sizes"]

SIZE_FRAME_KEY = "size_frame"
DISPLAYED = "displayed"
"""The value of meta ``size_frame`` once every stored size is the displayed one."""


def header_sizes(path: Path) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """``(header size, displayed size)`` of the image at ``path``; ``None`` if it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size, displayed_size(im)
    except Exception:  # noqa: BLE001 - not there, or not an image any more: the caller decides
        return None


def displayed_size_of(path: Path) -> tuple[int, int] | None:
    """The displayed ``(width, height)`` of the image at ``path``; ``None`` if it cannot be read."""
    sizes = header_sizes(path)
    return None if sizes is None else sizes[1]


def store_displayed_sizes(project: Path, store: Store) -> int:
    """Correct the stored sizes of a project made before the displayed frame; how many changed."""
    if store.get_meta(SIZE_FRAME_KEY) == DISPLAYED:
        return 0
    fixes: list[tuple[int, int, int]] = []
    complete = True
    for row in store.images():
        if row.width == row.height or row.problem is not None:
            continue
        sizes = header_sizes(Path(project) / row.relpath)
        if sizes is None:
            complete = False
            continue
        header, shown = sizes
        if shown != header and (row.width, row.height) == header:
            fixes.append((shown[0], shown[1], row.id))
    with store.transaction():
        if fixes:
            store.set_sizes(fixes)
        if complete:
            store.set_meta(SIZE_FRAME_KEY, DISPLAYED)
    return len(fixes)
