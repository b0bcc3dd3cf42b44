"""Small file helpers shared by the project store, the simulation, the adapter and the commands."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from detal.errors import DataError, DetalError

__all__ = [
    "IMAGE_SUFFIXES", "NAME_BYTES", "atomic_write", "check_can_write", "check_out_dir", "check_out_file",
    "fold_name", "list_images", "name_clash", "read_small_text", "removed_on_failure", "short_name",
]

IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
"""Image file suffixes detal scans for, trains on and predicts on (lower case)."""

NAME_BYTES = 200
"""The longest file name (UTF-8 bytes, before a suffix) detal derives from an image's path.

File systems hold 255 bytes a name (``NAME_MAX``); the margin leaves room for
a suffix (``.txt``, ``.png``) and for the ``.<name>.tmp-<pid>`` names files
are written under before they are renamed into place.
"""

_HASH_HEX = 12  # hex digits of the hash that ends a shortened name: 48 bits


def short_name(name: str) -> str:
    """``name`` as a file name of at most :data:`NAME_BYTES` UTF-8 bytes, the same every time.

    A name that fits is itself. A longer one (an image deep in folders,
    flattened into its bundle name ``a__b__...__photo``) keeps its start, cut
    at a character, then ``~`` and 12 hex digits of the SHA-256 of the whole
    name: two names never share a shortened form unless they share that hash,
    and the same name always gets the same one, so a label returned under it
    finds its image again (:class:`detal.export.keys.PoolNames`).
    """
    data = name.encode("utf-8", "surrogatepass")
    if len(data) <= NAME_BYTES:
        return name
    digest = hashlib.sha256(data).hexdigest()[:_HASH_HEX]
    head = data[: NAME_BYTES - _HASH_HEX - 1].decode("utf-8", "ignore")  # a character cut in two is dropped
    return f"{head}~{digest}"


def fold_name(name: str) -> str:
    """What two names that one file system may take for one file share: NFC, lower case."""
    return unicodedata.normalize("NFC", name).lower()


def name_clash(name: str, other: str) -> str | None:
    """Why two names with one :func:`fold_name` would be one file, said after "have names that";
    ``None`` for two equal names.

    Init refuses such names and the old-project check refuses a project made
    before init did: both say it in these words.
    """
    if unicodedata.normalize("NFC", name) != unicodedata.normalize("NFC", other):
        return ("differ only in case (Windows and macOS take them for one file, so a vendor unzipping "
                "the bundle would keep one)")
    if name != other:
        return "differ only in Unicode normalisation (many systems take them for one file)"
    return None


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


def check_can_write(folder: Path, subject: Path) -> None:
    """Create and remove a file in ``folder``; :class:`DataError` naming ``subject`` if that fails.

    Permission bits alone do not tell (root writes past them, a read-only
    mount or an immutable folder refuses root too), so a file is made.
    """
    try:
        fd, probe = tempfile.mkstemp(prefix=".detal-write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DataError(f"{subject}: cannot write in {folder} ({exc.strerror})") from None


def _existing_parent(path: Path, subject: Path) -> Path:
    """The nearest folder above ``path`` that exists; :class:`DataError` if it is a file."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise DataError(f"{subject}: is under {parent}, which is a file, not a folder")
            return parent
    return Path(path.absolute().anchor)


def check_out_dir(out: Path) -> Path:
    """``out`` if an output folder can be made there, or written into; :class:`DataError` why not.

    For every command's ``--out DIR``, before any work is done: ``out`` must
    not be a file nor lie under one, and the folders the output is built in
    (the nearest existing one above ``out``, and ``out`` itself if it exists)
    must take a new file. Missing folders are made later, by the writer.
    """
    out = Path(out)
    if (out.exists() or out.is_symlink()) and not out.is_dir():
        raise DataError(f"{out}: is a file, not a folder; give a folder for the output")
    check_can_write(_existing_parent(out, out), out)
    if out.is_dir():
        check_can_write(out, out)
    return out


def check_out_file(out: Path, what: str = "file") -> Path:
    """``out`` if the file ``what`` can be written there; :class:`DataError` naming why not."""
    out = Path(out)
    if out.is_dir():
        raise DataError(f"{out}: is a directory, expected the path of the {what} to write")
    check_can_write(_existing_parent(out, out), out)
    return out


def list_images(folder: Path) -> list[Path]:
    """Every image file under ``folder`` (recursively), sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: image folder not found")
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return images
