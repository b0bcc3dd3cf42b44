"""Pool images Ultralytics cannot use, found by the cycle: taken out of the pool as ``unreadable``.

``init`` and ``import`` refuse such images (:mod:`detal.image_check`), but a
project made before that check can hold one, and most pool images are first
decoded by the cycle's predictor. So the cycle applies the same check:

- before it trains, to every labeled and validation image (decoded), so the
  count it reports is the count Ultralytics trains on, and no training fails
  on a file its loader cannot read;
- before it writes the batch, to every picked image, and it takes out the
  images the predictor could not read: no bundle holds an image that nobody
  can train on, with a blank row in its manifest.

An image found is taken out of the pool for good (problem ``unreadable``:
its row, status and cycles stay recorded, ``detal status`` counts it), one
warning line names it with the reason, and the cycle goes on without it, as
it does for a file that is gone or changed (:mod:`detal.project.verify`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from detal.image_check import why_unusable
from detal.project.verify import MAX_WARNINGS
from detal.store import ImageRow, Store

__all__ = ["readable_rows"]


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


def readable_rows(
    project: Path,
    store: Store,
    rows: Sequence[ImageRow],
    *,
    decode: bool,
    failed: Mapping[int, str] | None = None,
    dropped: list[tuple[str, str]] | None = None,
    warn: Callable[[str], None] = _warn,
) -> list[ImageRow]:
    """The rows whose image Ultralytics can use; the others are taken out of the pool.

    ``failed`` maps the ids the predictor could not read to its reason (they
    are taken out unchecked); ``decode`` as in :func:`detal.image_check.inspect_image`.
    Every image taken out is appended to ``dropped`` as ``(relpath, "unreadable")``.
    """
    failed = failed or {}
    keep: list[ImageRow] = []
    bad: list[tuple[ImageRow, str]] = []
    for row in rows:
        if row.problem is not None:  # out of the pool already
            continue
        why = failed.get(row.id)
        if why is not None:
            why = f"the predictor could not read it: {why}"
        else:
            why = why_unusable(Path(project) / row.relpath, decode=decode)
        if why is None:
            keep.append(row)
        else:
            bad.append((row, why))
    if not bad:
        return keep
    with store.transaction():
        store.mark_problem([r.id for r, _ in bad], "unreadable")
    bad.sort(key=lambda pair: pair[0].relpath)
    if dropped is not None:
        dropped.extend((r.relpath, "unreadable") for r, _ in bad)
    for row, why in bad[:MAX_WARNINGS]:
        warn(f"warning: {Path(project) / row.relpath}: unreadable ({why}); "
             "taken out of the pool, the cycle goes on without it")
    if len(bad) > MAX_WARNINGS:
        warn(f"warning: {len(bad)} unreadable images taken out of the pool in all (detal status counts them)")
    return keep
