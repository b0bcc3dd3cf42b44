"""The thumbnails beside the page: ``thumbs/<image id>.jpg``, longest side at most 256 px."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

__all__ = ["THUMBS_DIR", "make_thumbnail", "thumb_relpath"]

THUMBS_DIR = "thumbs"


def thumb_relpath(image_id: int) -> str:
    """Where the thumbnail of an image lies, relative to the page: ``thumbs/<id>.jpg``."""
    return f"{THUMBS_DIR}/{image_id}.jpg"


def make_thumbnail(src: Path, dst: Path, max_side: int = 256, *, size_hint: tuple[int, int] | None = None,
                   quality: int = 82) -> tuple[int, int] | None:
    """Write a JPEG of ``src`` whose longest side is at most ``max_side``; its size, or None.

    None means the image could not be read. Images are never enlarged. With
    ``size_hint`` (the stored width, height) a large JPEG is decoded at 1/2,
    1/4 or 1/8 scale directly, which is several times faster than a full decode.
    """
    try:
        data = np.fromfile(str(src), dtype=np.uint8)
    except OSError:
        return None
    flag = cv2.IMREAD_COLOR
    if size_hint is not None:
        for factor, reduced in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                                (2, cv2.IMREAD_REDUCED_COLOR_2)):
            if max(size_hint) // factor >= max_side:
                flag = reduced
                break
    img = cv2.imdecode(data, flag) if data.size else None
    if img is None:
        return None
    h, w = img.shape[:2]
    full_w, full_h = w, h
    if flag != cv2.IMREAD_COLOR:  # the reduced decode rounds; scale from the stored size
        full_w, full_h = size_hint if (w >= h) == (size_hint[0] >= size_hint[1]) else size_hint[::-1]
    scale = max_side / max(full_w, full_h)
    if scale < 1.0:
        w, h = max(1, round(full_w * scale)), max(1, round(full_h * scale))
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        return None
    dst.write_bytes(buf.tobytes())
    return w, h
