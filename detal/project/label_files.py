"""Label files that come into a project: one set of rules, one reader per source.

Returned labels (``detal import``) are read by :func:`detal.export.read_returned`,
the one reader of what a vendor sends back (a YOLO folder or zip, CVAT
YOLO 1.1, COCO), which maps class ids by name whenever the source carries
names. :func:`label_folder` reads a person's own label folder at ``init``
(``--labels``, ``--val-labels``). Both apply the same rules, defined once in
:mod:`detal.export.common`:

- hidden files and folders (``.name``) and anything under ``__MACOSX/`` are
  skipped (:func:`~detal.export.common.skipped_path`);
- a file larger than :data:`MAX_LABEL_BYTES` (4 MiB), not UTF-8, or not a
  regular file (a FIFO would block) is a problem, not a crash;
- files that are not labels (:data:`NOT_LABELS`: ``classes.txt``,
  ``readme.txt``, split lists like ``train.txt`` ...) are ignored.

Differences, on purpose: returned labels are only what was returned, so
symbolic links there are problems; a person's own folder may link files
in (linked folders are never entered, so no walk can loop). At ``init`` a
non-label name is only ignored when the project has no image of that name,
which the caller decides with :func:`is_not_a_label`.

The YOLO rules inside a file (5 fields, class range, box inside the image)
are :func:`detal.labels.parse_label_text`'s, applied by the callers.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from detal.export.common import MAX_LABEL_BYTES, NOT_LABELS, skipped_path
from detal.labels import LabelProblem

__all__ = ["MAX_LABEL_BYTES", "NOT_LABELS", "is_not_a_label", "label_folder"]


def is_not_a_label(file_name: str) -> bool:
    """Whether a ``.txt`` that matches no image is one of the known non-label files."""
    return PurePosixPath(file_name).name.lower() in NOT_LABELS


def _read_text(path: Path, problems: list) -> str | None:
    try:
        if not path.is_file():
            problems.append(LabelProblem(str(path), 0, "not a regular file"))
            return None
        if path.stat().st_size > MAX_LABEL_BYTES:
            problems.append(LabelProblem(str(path), 0, "label file too large (the limit is 4 MiB)"))
            return None
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        problems.append(LabelProblem(str(path), 0, "not UTF-8 text"))
    except OSError as exc:
        problems.append(LabelProblem(str(path), 0, f"cannot read ({exc.strerror})"))
    return None


def label_folder(root: Path, problems: list) -> dict[str, tuple[Path, str]]:
    """``relpath without .txt -> (file, text)`` for a folder of labels laid out like the images.

    For ``init --labels`` / ``--val-labels``: linked files are read, linked
    folders are not entered. Unreadable files are added to ``problems``.
    """
    out = {}
    for dirpath, dirs, files in os.walk(root):  # followlinks=False: linked folders are never entered
        rel_dir = Path(dirpath).relative_to(root)
        dirs[:] = sorted(d for d in dirs if not skipped_path((rel_dir / d).as_posix()))
        for name in sorted(files):
            rel = (rel_dir / name).as_posix()
            if skipped_path(rel) or not name.endswith(".txt"):
                continue
            text = _read_text(Path(dirpath) / name, problems)
            if text is not None:
                out[rel[: -len(".txt")]] = (Path(dirpath) / name, text)
    return out
