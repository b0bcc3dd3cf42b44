"""Pool images that changed under the project: found when next used, taken out of the pool.

Images are referenced, not copied (:mod:`detal.project.scan`), so a file may
be deleted or overwritten after ``init``. The store keeps each image's
sha256 for exactly that. Before the cycle uses an image (trains on it,
predicts it, copies it into the bundle), :func:`usable_rows` hashes its file
again:

- a file that is gone (or cannot be read) is ``missing``;
- a file whose content differs from the recorded hash is ``changed`` (its
  labels, and the scores of earlier cycles, belong to the old picture).

Either way the image is taken out of the pool for good
(:meth:`detal.store.Store.mark_problem`: its row, status and cycles stay
recorded, ``detal status`` counts it), one warning line names it, and the
cycle goes on without it. Each image is hashed at most once per run.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from detal.store import ImageRow, Store

__all__ = ["MAX_WARNINGS", "file_problem", "usable_rows"]

MAX_WARNINGS = 20
"""Warning lines printed per check; more dropped images are summed up in one more line."""

_CHUNK = 1 << 20


def file_problem(path: Path, sha256: str) -> str | None:
    """``None`` if ``path`` holds the content hashed as ``sha256``; else ``missing`` or ``changed``."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(_CHUNK):
                digest.update(block)
    except OSError:
        return "missing"
    return None if digest.hexdigest() == sha256 else "changed"


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


def usable_rows(
    project: Path,
    store: Store,
    rows: Sequence[ImageRow],
    checked: set[int],
    dropped: list[tuple[str, str]] | None = None,
    warn: Callable[[str], None] = _warn,
) -> list[ImageRow]:
    """The rows whose image file is still what init recorded; the others are taken out of the pool.

    ``checked`` holds the ids verified earlier in this run (updated here);
    every image dropped is appended to ``dropped`` as ``(relpath, problem)``
    and named by ``warn`` (at most :data:`MAX_WARNINGS` lines, then one
    line with the count).
    """
    keep: list[ImageRow] = []
    bad: dict[str, list[ImageRow]] = {}
    for row in rows:
        if row.problem is not None:
            continue
        if row.id not in checked:
            problem = file_problem(Path(project) / row.relpath, row.sha256)
            if problem is not None:
                bad.setdefault(problem, []).append(row)
                continue
            checked.add(row.id)
        keep.append(row)
    if not bad:
        return keep
    with store.transaction():
        for problem, group in bad.items():
            store.mark_problem([r.id for r in group], problem)
    found = [(r.relpath, problem) for problem, group in bad.items() for r in group]
    found.sort()
    if dropped is not None:
        dropped.extend(found)
    why = {"missing": "the file is gone or unreadable", "changed": "its content changed since init"}
    for relpath, problem in found[:MAX_WARNINGS]:
        warn(f"warning: {Path(project) / relpath}: {problem} ({why[problem]}); "
             "taken out of the pool, the cycle goes on without it")
    if len(found) > MAX_WARNINGS:
        warn(f"warning: {len(found)} images taken out of the pool in all "
             "(detal status counts them)")
    return keep
