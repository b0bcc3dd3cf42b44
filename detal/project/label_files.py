"""The one reader of label files that come into a project (at ``init`` and at ``import``).

Both a folder and a zip go through the same rules:

- only ``*.txt`` files are read; hidden files and folders (``.name``) and
  anything under ``__MACOSX/`` are skipped;
- a file larger than 4 MiB, or not UTF-8, is a problem, not a crash;
- files that are not labels (``classes.txt``, ``readme.txt``, split lists
  like ``train.txt`` ...; :data:`NOT_LABELS`) are ignored, but only when the
  project has no image of that name, which the caller decides with
  :func:`is_not_a_label`;
- in a returned bundle, absolute paths, ``..``, and symbolic links are
  problems (a label must not point outside what was returned).

The YOLO rules inside a file (5 fields, class range, box inside the image)
are :func:`detal.labels.parse_label_text`'s, applied by the callers.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path, PurePosixPath

from detal.errors import DataError
from detal.labels import LabelProblem

__all__ = ["MAX_LABEL_BYTES", "NOT_LABELS", "is_not_a_label", "label_folder", "returned_labels"]

MAX_LABEL_BYTES = 4 * 1024 * 1024
NOT_LABELS = frozenset({
    "classes.txt", "obj.names", "train.txt", "val.txt", "valid.txt", "test.txt",
    "readme.txt", "license.txt", "notes.txt",
})
"""File names (compared in lower case) that bundles and datasets carry beside their labels."""


def is_not_a_label(file_name: str) -> bool:
    """Whether a ``.txt`` that matches no image is one of the known non-label files."""
    return PurePosixPath(file_name).name.lower() in NOT_LABELS


def _skipped(parts: tuple[str, ...]) -> bool:
    return not parts or "__MACOSX" in parts or any(p.startswith(".") for p in parts) \
        or not parts[-1].endswith(".txt")


def _read_text(path: Path, display: str, problems: list) -> str | None:
    try:
        if path.stat().st_size > MAX_LABEL_BYTES:
            problems.append(LabelProblem(display, 0, "label file too large"))
            return None
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        problems.append(LabelProblem(display, 0, "not UTF-8 text"))
    except OSError as exc:
        problems.append(LabelProblem(display, 0, f"cannot read ({exc.strerror})"))
    return None


def _walk(root: Path, links_ok: bool, problems: list) -> list[tuple[str, Path]]:
    """``(relpath, file)`` of every label file under ``root``, sorted."""
    out = []
    for dirpath, dirs, files in os.walk(root):  # linked folders are never entered
        rel_dir = Path(dirpath).relative_to(root)
        dirs[:] = sorted(d for d in dirs if not _skipped((*rel_dir.parts, d, "x.txt")))
        if not links_ok:
            for name in list(dirs):
                if os.path.islink(os.path.join(dirpath, name)):
                    problems.append(LabelProblem(os.path.join(dirpath, name), 0, "symbolic link not allowed"))
                    dirs.remove(name)
        for name in sorted(files):
            full = Path(dirpath) / name
            rel = (rel_dir / name).as_posix()
            if _skipped(PurePosixPath(rel).parts):
                continue
            if not links_ok and full.is_symlink():
                problems.append(LabelProblem(str(full), 0, "symbolic link not allowed"))
                continue
            out.append((rel, full))
    return out


def label_folder(root: Path, problems: list) -> dict[str, tuple[Path, str]]:
    """``relpath without .txt -> (file, text)`` for a folder of labels laid out like the images.

    For ``init --labels`` / ``--val-labels`` (the user's own folders, so
    linked files are read; linked folders are not entered). Unreadable files are added to ``problems``.
    """
    out = {}
    for rel, full in _walk(root, True, problems):
        text = _read_text(full, str(full), problems)
        if text is not None:
            out[rel[: -len(".txt")]] = (full, text)
    return out


def _zip_entries(path: Path, problems: list) -> list[tuple[str, str]]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: not a readable zip file ({exc})") from None
    entries = []
    with zf:
        for info in zf.infolist():
            name = info.filename
            where = f"{path}!{name}"
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
                problems.append(LabelProblem(where, 0, "absolute path in zip"))
                continue
            if ".." in parts:
                problems.append(LabelProblem(where, 0, "path escapes the target folder (..)"))
                continue
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                problems.append(LabelProblem(where, 0, "symbolic link in zip"))
                continue
            if info.is_dir() or _skipped(parts):
                continue
            if info.file_size > MAX_LABEL_BYTES:
                problems.append(LabelProblem(where, 0, "label file too large"))
                continue
            try:
                entries.append((where, zf.read(info).decode("utf-8-sig")))
            except UnicodeDecodeError:
                problems.append(LabelProblem(where, 0, "not UTF-8 text"))
            except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
                problems.append(LabelProblem(where, 0, f"cannot read from zip ({exc})"))
    return entries


def returned_labels(path: Path, fmt: str, names: list[str], problems: list) -> list[tuple[str, str, str]]:
    """``(display name, image key, label text)`` for every label file in a returned ``path``.

    ``fmt`` ``yolo``: a folder or a zip of ``<key>.txt`` files, in any
    sub-folder. Other formats are read by :func:`detal.export.read_returned_labels`.
    """
    if fmt != "yolo":
        from detal.export import read_returned_labels  # only for the vendor formats

        return [(f"{path}!{n}", n, t) for n, t in sorted(read_returned_labels(path, fmt, names).items())]
    if path.is_dir():
        out = []
        for _rel, full in _walk(path, False, problems):
            text = _read_text(full, str(full), problems)
            if text is not None:
                out.append((str(full), full.name[: -len(".txt")], text))
        return out
    if path.is_file() and zipfile.is_zipfile(path):
        inner = len(f"{path}!")
        return [(where, PurePosixPath(where[inner:].replace("\\", "/")).name[: -len(".txt")], text)
                for where, text in _zip_entries(path, problems)]
    if not path.exists():
        raise DataError(f"{path}: not found")
    raise DataError(f"{path}: expected a folder or a .zip of YOLO .txt label files")
