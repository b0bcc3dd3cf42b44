"""The one image check: will Ultralytics train on this file? Used by init, import and the cycle.

Ultralytics does not refuse an image it cannot use: its dataset check
(``ultralytics/data/utils.py``: ``verify_image_label`` -> ``check_image``)
leaves it out of training with one line in its log, and its loader
(``cv2.imread``) fails the whole training on a file that passed that check
but does not decode. So detal checks first, with the same rules, and says
why in one line (:func:`inspect_image`):

- the format is read from the content, not the suffix, and must be one
  Ultralytics trains on (:data:`TRAIN_FORMATS`): a GIF named ``.png`` is
  refused;
- both sides are at least :data:`MIN_SIDE` (10) pixels;
- the file passes PIL's ``verify`` (a PNG's chunks and checksums);
- a JPEG that does not end with its end marker must decode in full, as
  Ultralytics decodes it to "restore" it: a truncated JPEG is refused, one
  with bytes after its end is not;
- at most :data:`MAX_PIXELS` pixels, OpenCV's own decoding limit;
- with ``decode=True``, OpenCV decodes it, as Ultralytics' loader does.

Decoding is the costly part (a 12-megapixel JPEG takes about 20 ms even at
1/8 scale, against 0.03 ms for the rest), so it is done for the images
detal trains on or ships before anything has decoded them: images that come
with labels at ``init``, the initial batch, every label an import brings,
and the labeled and validation images before each training. The other pool
images get the rest of the check at ``init``; the cycle's predictor decodes
them before they can be picked, and one it cannot read never goes out
(:mod:`detal.project.readable`). ``benchmarks/image_check_cost.py`` prints
the cost per image.

A PNG laid out as signature, IHDR, IDAT ... IEND (what most tools write)
is checked without PIL, by exactly the checks PIL's ``open`` and ``verify``
make on that layout (:func:`_plain_png_size`); every other file goes to PIL.
On a pool of a million tiny images that is a quarter of ``init``'s time.

PIL refuses images over 179 megapixels as "decompression bombs" and warns
over 89. :func:`allow_large_images` raises that limit to :data:`MAX_PIXELS`
for the process, here and before Ultralytics trains, so a 200-megapixel
photo is used like any other and a 108-megapixel one prints no warning.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import re
import sys
import types
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from detal.errors import DataError
from detal.image_frame import displayed_size

__all__ = [
    "MAX_PIXELS", "MIN_SIDE", "TRAIN_FORMATS", "ImageFacts", "allow_large_images", "inspect_image",
    "why_unusable",
]

MAX_PIXELS = 1 << 30
"""The most pixels an image may have: 1,073,741,824 (32768 x 32768), OpenCV's
``CV_IO_MAX_IMAGE_PIXELS``, past which ``cv2.imread``, and so Ultralytics, fails."""

MIN_SIDE = 10
"""The fewest pixels a side may have: Ultralytics leaves smaller images out of training."""

TRAIN_FORMATS = frozenset({"AVIF", "BMP", "JPEG", "JPEG2000", "MPO", "PNG", "TIFF", "WEBP"})
"""PIL's names of the formats Ultralytics trains on (its ``IMG_FORMATS`` plus ``jpeg2000``)."""

_SHOWN_FORMATS = "AVIF, BMP, JPEG, JPEG 2000, MPO, PNG, TIFF and WebP"
_LEFT_OUT = "Ultralytics would leave it out of training"


@dataclass(frozen=True)
class ImageFacts:
    """What the check learnt about a usable image: its content hash, its size as displayed (EXIF
    orientation applied, :mod:`detal.image_frame`) and its format."""

    sha256: str
    width: int
    height: int
    format: str


@functools.cache
def _pil_image() -> types.ModuleType:
    """``PIL.Image``, imported once (a ``from PIL import Image`` an image costs a quarter of the PNG check)."""
    from PIL import Image

    return Image


def allow_large_images() -> None:
    """Raise PIL's decompression-bomb limit to :data:`MAX_PIXELS` (never lower one set higher)."""
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_PIXELS:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def inspect_image(path: str | Path, *, decode: bool = False) -> ImageFacts:
    """Check that Ultralytics will train on the image at ``path``; its facts, or one-line :class:`DataError`.

    ``decode`` also decodes it with OpenCV (see the module docstring).
    """
    try:
        data = _read_all(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read image ({exc.strerror})") from None
    if not data:
        raise DataError(f"{path}: corrupt image, empty file")
    width, height, fmt = _header(path, data)
    if fmt not in TRAIN_FORMATS:
        said = Path(path).suffix.lower() or "no suffix"
        article = "an" if fmt[:1] in "AEIOU" else "a"
        raise DataError(
            f"{path}: {article} {fmt} image by its content (its name says {said}); Ultralytics trains only on "
            f"{_SHOWN_FORMATS} images and would leave it out: convert it or remove it"
        )
    if width <= 0 or height <= 0:
        raise DataError(f"{path}: corrupt image, size {width}x{height}")
    if min(width, height) < MIN_SIDE:
        raise DataError(
            f"{path}: {width}x{height} pixels; {_LEFT_OUT} (it needs at least {MIN_SIDE} pixels a side)"
        )
    if width * height > MAX_PIXELS:
        raise DataError(_too_large(path, f"{width}x{height} = {width * height:,}"))
    if fmt == "JPEG" and not data.endswith(b"\xff\xd9"):
        _check_restorable(path, data)
    if decode:
        _check_decodes(path, data)
    return ImageFacts(hashlib.sha256(data).hexdigest(), width, height, fmt)


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


def _read_all(path: str | Path) -> bytes:
    """The file's bytes in four system calls (open, stat, read, close) where ``open().read()`` makes nine."""
    fd = os.open(path, _READ_FLAGS)
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1)
        if len(data) == size:  # all of it, as the file's size says
            return data
        parts = [data]  # a short read, or a file that grew: read on to the end
        while chunk := os.read(fd, 1 << 20):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def why_unusable(path: Path, *, decode: bool = True) -> str | None:
    """Why Ultralytics would not train on the image at ``path`` (:func:`inspect_image`'s message
    without the path), or ``None`` when it would."""
    try:
        inspect_image(path, decode=decode)
    except DataError as exc:
        return str(exc).removeprefix(f"{path}: ")
    return None


def _too_large(path: str | Path, pixels: str) -> str:
    return (f"{path}: {pixels} pixels, over the limit of {MAX_PIXELS:,} (OpenCV's, which Ultralytics "
            "reads images with); scale it down")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_MODES = frozenset({(1, 0), (2, 0), (4, 0), (8, 0), (16, 0), (8, 2), (16, 2), (1, 3), (2, 3), (4, 3), (8, 3),
                        (8, 4), (16, 4), (8, 6), (16, 6)})
"""PIL's ``PngImagePlugin._MODES``: the (bit depth, colour type) pairs it opens."""
_IS_CHUNK_TYPE = re.compile(rb"\w\w\w\w").match  # PIL's is_cid


def _plain_png_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG laid out as signature, IHDR, IDAT ... IEND that PIL accepts; else ``None``.

    On that layout these are exactly PIL's checks: ``open`` reads the chunks up
    to the first IDAT (here only IHDR: 13 bytes, a good CRC, a bit depth and
    colour type PIL knows, filter method 0, both sides above 0), and
    ``verify`` reads every chunk from the first IDAT to IEND, checking each
    chunk type's characters and each CRC; and the same decompression-bomb
    limit. ``None`` sends the file
    to PIL: any other layout (a palette or any chunk before IDAT), any other
    format, and any file that fails one of these checks, so that the answer
    and its message are always PIL's.
    """
    if len(data) < 41 or not data.startswith(_PNG_SIGNATURE) or data[8:16] != b"\x00\x00\x00\x0dIHDR":
        return None
    if zlib.crc32(data[12:29]) != int.from_bytes(data[29:33], "big") or data[37:41] != b"IDAT":
        return None
    if (data[24], data[25]) not in _PNG_MODES or data[27] != 0:
        return None
    pos, size = 33, len(data)
    while True:
        kind = data[pos + 4 : pos + 8]
        if pos + 8 > size or not _IS_CHUNK_TYPE(kind):
            return None
        if kind == b"IEND":
            break
        end = pos + 8 + int.from_bytes(data[pos : pos + 4], "big")
        if end + 4 > size or zlib.crc32(data[pos + 4 : end]) != int.from_bytes(data[end : end + 4], "big"):
            return None
        pos = end + 4
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    limit = _pil_image().MAX_IMAGE_PIXELS  # as allow_large_images() leaves it, without the import a file
    if limit is not None:
        limit = max(limit, MAX_PIXELS)
    if width <= 0 or height <= 0 or (limit is not None and width * height > limit):  # PIL refuses, or warns
        return None
    return width, height


def _header(path: Path, data: bytes) -> tuple[int, int, str]:
    """Width and height as displayed, and format, from the header, after PIL's ``verify``; no pixel is decoded."""
    plain = _plain_png_size(data) if b"eXIf" not in data else None  # no orientation to apply
    if plain is not None:
        return plain[0], plain[1], "PNG"
    from PIL import Image

    allow_large_images()
    try:
        with warnings.catch_warnings():
            # over MAX_PIXELS (PIL warns up to twice its limit): refused below, with the size
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = displayed_size(im)  # the one frame (detal.image_frame)
                fmt = im.format or "unknown"
                im.verify()
    except Image.DecompressionBombError:
        raise DataError(_too_large(path, f"more than {2 * MAX_PIXELS:,}")) from None
    except Exception as exc:  # noqa: BLE001 - decoders raise many types on bad bytes
        # (UnidentifiedImageError, OSError, SyntaxError, ValueError; and once Ultralytics has
        # patched Image.open, ModuleNotFoundError from its HEIF fallback)
        raise DataError(f"{path}: corrupt image, not a readable image ({_why(exc)})") from None
    return width, height, fmt


def _why(exc: BaseException) -> str:
    """The exception's class and its first line, unless that only names an in-memory file."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if not text or " object at 0x" in text:
        return exc.__class__.__name__
    return f"{exc.__class__.__name__}: {text[:120]}"


def _check_restorable(path: str | Path, data: bytes) -> None:
    """A JPEG without its end marker: Ultralytics re-saves it, which needs every pixel to decode."""
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as im:
            ImageOps.exif_transpose(im).load()
    except Exception as exc:  # noqa: BLE001 - as above
        raise DataError(f"{path}: truncated JPEG ({_why(exc)}); {_LEFT_OUT}") from None


def _check_decodes(path: str | Path, data: bytes) -> None:
    """Decode with OpenCV, as Ultralytics' loader does (silenced: the reason is the message)."""
    import cv2
    import numpy as np
    from cv2.utils import logging as cv_log

    level = cv_log.getLogLevel()
    cv_log.setLogLevel(cv_log.LOG_LEVEL_SILENT)
    try:
        with _quiet_stderr():
            # 1/8 scale: only whether the decoder gets through the file matters, and JPEG
            # then skips most of its inverse DCT; every other format decodes in full
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    except cv2.error as exc:
        image, why = None, f" ({_why(exc)})"
    else:
        why = ""
    finally:
        cv_log.setLogLevel(level)
    if image is None or image.size == 0:
        raise DataError(
            f"{path}: corrupt image, OpenCV cannot decode it{why}; Ultralytics reads images with OpenCV "
            "and would fail or leave it out"
        )


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 to the null device while a decoder runs.

    libjpeg writes its notes ("Corrupt JPEG data: 82 extraneous bytes before
    marker 0xd9", on a file OpenCV still decodes) straight to the descriptor,
    past OpenCV's log level and Python's ``sys.stderr``. Where the descriptor
    cannot be swapped, the decoder runs as it is.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
