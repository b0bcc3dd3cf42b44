"""Image files for the image-check tests: good ones, and ones Ultralytics would leave out.

Every builder returns bytes. :func:`flat_jpeg` writes a valid baseline JPEG of
any size without encoding pixels (one mid-grey block repeated, two bits a
block), so a 200-megapixel photo costs 0.8 MB and a millisecond.
"""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image


def encoded(fmt: str, size: tuple[int, int] = (40, 30), seed: int = 0, **options) -> bytes:
    """A noisy RGB image of ``size`` in PIL format ``fmt`` (noise: no format compresses it away)."""
    rng = np.random.default_rng(seed)
    pixels = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    if fmt in ("GIF", "ICO", "PPM", "TGA", "PCX"):
        image = image.convert("P") if fmt == "GIF" else image
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def cut(data: bytes, keep: int) -> bytes:
    """The first ``keep`` bytes of ``data`` (``keep`` < 0: all but the last ``-keep``)."""
    return data[:keep]


def half(data: bytes) -> bytes:
    """The first half of ``data``."""
    return data[: len(data) // 2]


def png_bad_crc(size: tuple[int, int] = (40, 30)) -> bytes:
    """A PNG whose image data chunk fails its checksum (one byte flipped inside it)."""
    data = bytearray(encoded("PNG", size))
    at = data.index(b"IDAT") + 20
    data[at] ^= 0xFF
    return bytes(data)


def flat_jpeg(width: int, height: int) -> bytes:
    """A valid baseline greyscale JPEG of ``width`` x ``height``, mid-grey, in about w*h/256 bytes.

    Both Huffman tables hold one symbol (DC difference 0, AC end-of-block),
    each coded as the single bit ``0``, so every 8x8 block is two zero bits.
    """

    def segment(marker: int, body: bytes) -> bytes:
        return b"\xff" + bytes([marker]) + struct.pack(">H", len(body) + 2) + body

    one_symbol = b"\x01" + b"\x00" * 15 + b"\x00"  # one code of length 1, for symbol 0x00
    header = (
        b"\xff\xd8"
        + segment(0xDB, b"\x00" + b"\x01" * 64)  # quantisation table 0: all ones
        + segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
        + segment(0xC4, b"\x00" + one_symbol)  # DC table 0
        + segment(0xC4, b"\x10" + one_symbol)  # AC table 0
        + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    )
    blocks = -(-width // 8) * -(-height // 8)
    scan = b"\x00" * (blocks // 4)
    if blocks % 4:  # the last byte: the remaining blocks' zero bits, padded with ones
        scan += bytes([0xFF >> (2 * (blocks % 4))])
    return header + scan + b"\xff\xd9"
