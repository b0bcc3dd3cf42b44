"""The one frame for image sizes and boxes: the image as displayed, its EXIF orientation applied.

A phone photo is often stored sideways with an EXIF ``Orientation`` tag
that says how to turn it (5 to 8: a quarter turn, so width and height
swap). Everything that shows or reads the photo applies the tag: OpenCV's
``imread`` (and so Ultralytics, which trains and predicts on it and checks
labels against ``exif_size``), browsers (Label Studio), CVAT, PIL's
``exif_transpose``. So detal keeps one frame everywhere, the displayed one:
``init`` stores the displayed size, the exports write it (``width`` /
``height`` in COCO, ``original_width`` / ``original_height`` for Label
Studio), ``push`` sends it, and the importers check returned sizes against
it (:func:`size_problem`). Boxes in normalised YOLO coordinates are in that
frame too. Projects made before stored the header's size; the cycle, import
and push correct the stored sizes once (:mod:`detal.project.sizes`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["ORIENTATION_TAG", "QUARTER_TURNS", "displayed_size", "orientation", "size_problem"]

ORIENTATION_TAG = 0x0112
"""EXIF ``Orientation`` (274)."""

QUARTER_TURNS = frozenset({5, 6, 7, 8})
"""Orientations that turn the image by a quarter, so that its width and height swap."""


def orientation(im: Image) -> int:
    """The image's EXIF orientation, 1 (as stored) when it has none or it cannot be read.

    Read from the EXIF block the header holds, as OpenCV reads it: no pixel is
    decoded (PIL's ``getexif`` decodes a whole PNG to look for a late block), and
    an orientation given only in XMP, which OpenCV ignores, does not count.
    """
    from PIL import Image as PILImage

    try:
        if im.format == "TIFF":
            value = im.tag_v2.get(ORIENTATION_TAG, 1)  # type: ignore[attr-defined]
        else:
            raw = im.info.get("exif")
            if not raw:
                return 1
            exif = PILImage.Exif()
            exif.load(raw)
            value = exif.get(ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block leaves the image as stored, as OpenCV does
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def displayed_size(im: Image) -> tuple[int, int]:
    """``(width, height)`` of the image as displayed (read from the header; nothing is decoded)."""
    width, height = im.size
    if im.format == "TIFF":  # Pillow turns a TIFF's size by its orientation itself (tested against OpenCV)
        return width, height
    return (height, width) if orientation(im) in QUARTER_TURNS else (width, height)


def size_problem(given: tuple[int, int], real: tuple[int, int]) -> str | None:
    """Why a size a return gives for an image is not the image's displayed size; ``None`` if it is."""
    if tuple(given) == tuple(real):
        return None
    swapped = (
        "; its width and height are swapped: it is the size before the photo's EXIF orientation turns it, "
        "so its boxes are in the unturned frame"
        if tuple(given) == tuple(real)[::-1] else ""
    )
    return (f"gives its size as {given[0]}x{given[1]} but the image is {real[0]}x{real[1]} as displayed"
            f"{swapped}; every box would be scaled wrongly")
