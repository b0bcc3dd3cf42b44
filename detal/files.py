"""Small file helpers shared by the project store, the simulation, the adapter and the commands."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from detal.errors import DataError, DetalError

__all__ = ["IMAGE_SUFFIXES", "atomic_write", "list_images", "read_small_text", "removed_on_failure"]

IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
"""Image file suffixes detal scans for, trains on and predicts on (lower case)."""


@contextmanager
def removed_on_failure(path: Path) -> Iterator[Path]:
    """``path`` (a temporary file or folder being written), removed if the block fails.

    A write the disk has no room for leaves no half-written file behind to
    hold the space; the error goes on up.
    """
    try:
        yield path
    except BaseException:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        raise


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The bytes go to a hidden per-process temporary file beside ``path``, are
    flushed to disk, and then renamed over ``path``; a write that fails
    removes the temporary file. Text is written as UTF-8.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with removed_on_failure(tmp):
        with open(tmp, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


def read_small_text(
    path: Path, error: type[DetalError], what: str, *, max_bytes: int | None = None
) -> str:
    """The UTF-8 text of the small file ``path``, or ``error`` saying why it cannot be read.

    ``what`` names the file in the messages (``"config file"``): ``<path>:
    <what> not found``, ``<what> too large (N bytes; the limit is M MiB)``
    when ``max_bytes`` is given, ``<what> is not UTF-8 text``, ``cannot read
    <what> (<reason>)``.
    """
    path = Path(path)
    try:
        if max_bytes is not None and (size := path.stat().st_size) > max_bytes:
            raise error(f"{path}: {what} too large ({size} bytes; the limit is {max_bytes / 2**20:g} MiB)")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except UnicodeDecodeError:
        raise error(f"{path}: {what} is not UTF-8 text") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror})") from None


def list_images(folder: Path) -> list[Path]:
    """Every image file under ``folder`` (recursively), sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: image folder not found")
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return images
