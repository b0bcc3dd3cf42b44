"""Pool images that changed under the project: found when next used, taken out of the pool.

Images are referenced, not copied (:mod:`detal.project.scan`), so a file may
be deleted or overwritten after ``init``. The store keeps each image's
sha256 for exactly that. Before the cycle uses an image (trains on it,
predicts it, copies it into the bundle), :func:`usable_rows` hashes its file
again:

- a file that is gone (or cannot be read) is ``missing``;
- a file whose content differs from the recorded hash is ``changed`` (its
  labels, and the scores of earlier cycles, belong to the old picture).

Either way the image is taken out of the pool
(:meth:`detal.store.Store.mark_problem`: its row, status and cycles stay
recorded, ``detal status`` counts it), one warning line names it, and the
cycle goes on without it. Each image is hashed at most once per run.

A disk that is not mounted, or an ``images`` link pointed at the wrong
place, must not empty the project. So, before a command uses the files
(:func:`check_pool`, called by ``cycle``, ``import`` and ``push`` under the
project's lock):

- an image folder that cannot be reached (a broken link, a folder that is
  gone, cannot be listed, or is empty: an unmounted mount point) refuses the
  command with one line, and nothing is marked (:func:`check_reachable`;
  ``detal status``, which only reads, names it instead, :func:`unreachable_folders`);
- an image taken out as ``missing`` or ``changed`` whose file is back as
  init recorded it (same content hash) is usable again, with the status it
  had (:func:`restore_returned`);
- stored sizes are brought into the displayed frame once
  (:mod:`detal.project.sizes`);
- a project made before ``init`` refused names that differ only in case or
  in Unicode normalisation (``IMG_1.JPG`` and ``img_1.jpg``) is checked for
  such names once (:func:`check_folded_names`): a vendor on Windows or macOS
  would unzip its bundle into one file for two, so the command refuses,
  naming both images.

And a check that finds more than :data:`MAX_LOST_SHARE` of the images it
looks at missing or changed (at least :data:`MIN_LOST`) refuses too, before
marking any: that is a folder that went away or was replaced, not files
deleted one by one. ``allow_missing`` (``detal cycle --allow-missing``)
takes them out, for files deleted on purpose.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from detal.errors import StateError
from detal.files import fold_name, name_clash, short_name
from detal.labels import show_name
from detal.pool import Status
from detal.project.paths import ProjectPaths
from detal.store import ImageRow, Store

__all__ = [
    "FOLDED",
    "MAX_LOST_SHARE",
    "MAX_WARNINGS",
    "MIN_LOST",
    "NAME_RULE_KEY",
    "check_folded_names",
    "check_pool",
    "check_reachable",
    "file_problem",
    "restore_returned",
    "unreachable_folders",
    "unreachable_note",
    "usable_rows",
]

MAX_WARNINGS = 20
"""Warning lines printed per check; more dropped images are summed up in one more line."""

MAX_LOST_SHARE = 0.5
"""The largest share of the images one check looks at that may be missing or changed: past it,
the check refuses (unless ``allow_missing``) and takes none of them out."""

MIN_LOST = 3
"""A check refuses for the share only when at least this many images are missing or changed."""

_ROOT_KEYS = ("images_root", "val_root")
"""The store's meta keys of the project's image folders (``images``, ``val_images``)."""

_CHUNK = 1 << 20

NAME_RULE_KEY = "name_rule"
FOLDED = "folded"
"""The value of meta ``name_rule`` once no two image keys are one under case folding and NFC
(set by ``init``, whose scan refuses such names, and by :func:`check_folded_names`)."""


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


def _fix(root: Path) -> str:
    return (f"mount its disk, or if the images moved, point the link at them (ln -sfn NEW-FOLDER {root}), "
            "and run the command again")


def _unreachable(root: Path) -> str | None:
    """Why the image folder ``root`` cannot be used at all, or ``None``."""
    link = f" (a link to {os.readlink(root)})" if root.is_symlink() else ""
    if not root.exists():
        return f"the link points at {os.readlink(root)}, which does not exist" if link else "it does not exist"
    if not root.is_dir():
        return f"it is not a folder{link}"
    try:
        with os.scandir(root) as entries:
            empty = next(entries, None) is None
    except OSError as exc:
        return f"cannot list it{link}: {exc.strerror}"
    return f"it is empty{link}: a disk that is not mounted?" if empty else None


def unreachable_folders(project: Path, store: Store) -> list[tuple[Path, str]]:
    """``(folder, why)`` for each image folder of the project (pool, validation) that cannot be reached."""
    out = []
    for key in _ROOT_KEYS:
        rel = store.get_meta(key)
        if not rel:
            continue
        root = Path(project) / rel
        why = _unreachable(root)
        if why is not None:
            out.append((root, why))
    return out


def unreachable_note(root: Path, why: str) -> str:
    """What ``detal status`` says of an image folder that cannot be reached (no command can use it)."""
    return f"{root}: the image folder cannot be reached ({why}); cycle, import, push and pull refuse until " + _fix(root)


def check_reachable(project: Path, store: Store) -> None:
    """Refuse (:class:`~detal.errors.StateError`, one line) when an image folder of the project cannot
    be reached; nothing is marked."""
    for root, why in unreachable_folders(project, store)[:1]:
        raise StateError(f"{root}: the image folder cannot be reached ({why}); nothing was changed: "
                         + _fix(root))


def restore_returned(project: Path, store: Store, warn: Callable[[str], None] = _warn) -> list[ImageRow]:
    """Images taken out as ``missing`` or ``changed`` whose file is back as init recorded it: usable
    again, with the status they had (and their size measured again, :mod:`detal.project.sizes`).

    An image selected in a finished cycle that never went out with its batch (it was gone when the
    batch was written: no pre-label) goes back to the unlabeled pool instead of counting as out.
    """
    from detal.project.sizes import displayed_size_of

    counts = store.problem_counts()
    if not counts.get("missing") and not counts.get("changed"):
        return []
    back = [r for r in store.images() if r.problem in ("missing", "changed")
            and file_problem(Path(project) / r.relpath, r.sha256) is None]
    if not back:
        return []
    paths = ProjectPaths(project)
    done = {c.id for c in store.cycles() if c.state == "done"}
    unshipped = [r.id for r in back if r.status == Status.SELECTED.value and r.selected_cycle >= 1
                 and r.selected_cycle in done and not paths.prelabel(r.selected_cycle, r.key).is_file()]
    sizes = [(*size, r.id) for r in back if (size := displayed_size_of(Path(project) / r.relpath))]
    with store.transaction():
        store.clear_problem([r.id for r in back])
        store.set_sizes(sizes)
        if unshipped:
            pool = store.load_pool()
            pool.unselect(unshipped)
            store.save_pool(pool, unshipped)
    warn(f"note: {len(back)} image(s) taken out of the pool are back as init recorded them "
         f"(e.g. {Path(project) / back[0].relpath}): usable again")
    return back


def check_folded_names(project: Path, store: Store) -> None:
    """Refuse (:class:`~detal.errors.StateError`, one line naming both images) a project whose image
    keys clash under case folding and NFC, as ``init`` now refuses them; mark the store once none do."""
    if store.get_meta(NAME_RULE_KEY) == FOLDED:
        return
    seen: dict[str, ImageRow] = {}
    for row in store.images():
        name = short_name(row.key)  # what must differ is the bundle name, as init checks it
        other = seen.setdefault(fold_name(name), row)
        if other is row:
            continue
        first, second = sorted((other.relpath, row.relpath))
        raise StateError(
            f"{project}: images {show_name(first)} and {show_name(second)} have names that "
            f"{name_clash(short_name(other.key), name)}; this project was made before init refused such "
            "names and nothing was changed: rename one of the files and make the project again "
            "(detal init --force keeps the old one aside)"
        )
    with store.transaction():
        store.set_meta(NAME_RULE_KEY, FOLDED)


def check_pool(project: Path, store: Store) -> None:
    """Before a command uses the project's image files: refuse an unreachable image folder or names
    that clash under case folding, bring back the images that returned unchanged, and store sizes in
    the displayed frame (see the module doc)."""
    from detal.project.sizes import store_displayed_sizes

    check_reachable(project, store)
    check_folded_names(project, store)
    restore_returned(project, store)
    store_displayed_sizes(project, store)


def _refuse_lost(project: Path, store: Store, bad: dict[str, list[ImageRow]], looked: int) -> None:
    lost = sorted((r.relpath, problem) for problem, group in bad.items() for r in group)
    roots = [Path(project) / rel for key in _ROOT_KEYS if (rel := store.get_meta(key))]
    root = next((r for r in roots if lost[0][0].startswith(f"{r.relative_to(project).as_posix()}/")),
                roots[0] if roots else Path(project))
    raise StateError(
        f"{project}: {len(lost)} of the {looked} images just checked are missing or changed since init "
        f"(e.g. {Path(project) / lost[0][0]}: {lost[0][1]}), so {root} looks unmounted or replaced; "
        "nothing was taken out of the pool: " + _fix(root)
        + " (if the files were deleted on purpose, pass --allow-missing to take them out)"
    )


def usable_rows(
    project: Path,
    store: Store,
    rows: Sequence[ImageRow],
    checked: set[int],
    dropped: list[tuple[str, str]] | None = None,
    warn: Callable[[str], None] = _warn,
    *,
    allow_missing: bool = False,
) -> list[ImageRow]:
    """The rows whose image file is still what init recorded; the others are taken out of the pool.

    ``checked`` holds the ids verified earlier in this run (updated here);
    every image dropped is appended to ``dropped`` as ``(relpath, problem)``
    and named by ``warn`` (at most :data:`MAX_WARNINGS` lines, then one
    line with the count). More than :data:`MAX_LOST_SHARE` of the files
    looked at missing or changed raises :class:`~detal.errors.StateError`
    instead, and nothing is taken out, unless ``allow_missing``.
    """
    keep: list[ImageRow] = []
    bad: dict[str, list[ImageRow]] = {}
    looked = 0
    for row in rows:
        if row.problem is not None:
            continue
        if row.id not in checked:
            looked += 1
            problem = file_problem(Path(project) / row.relpath, row.sha256)
            if problem is not None:
                bad.setdefault(problem, []).append(row)
                continue
            checked.add(row.id)
        keep.append(row)
    if not bad:
        return keep
    n_lost = sum(len(group) for group in bad.values())
    if not allow_missing and n_lost >= MIN_LOST and n_lost > MAX_LOST_SHARE * looked:
        checked.difference_update(r.id for r in keep)  # nothing of this check counts as verified
        _refuse_lost(project, store, bad, looked)
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
