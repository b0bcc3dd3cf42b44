"""``detal import``: corrected labels for the batch that is out come into the project.

All or nothing: every file is read (:mod:`detal.project.label_files`) and
validated first, and every problem is reported in one :class:`DataError`.
Labels people made are never destroyed: a label that differs from the one
the project holds is refused unless ``overwrite``, and then the old file is
kept under ``labels/.replaced/``.

Partial imports are allowed: an import may carry labels for part of the
batch that is out. Those images become labeled; the rest stay selected, and
``run_cycle`` refuses to start (unless ``force``) while any image of a batch
is still out.

Crash safety: label files are written (each to a temporary name, then
renamed) before the one transaction that marks their images labeled, so a
killed import leaves at most label files for images that are still
selected, which the rerun replaces.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path, PurePosixPath

from detal.errors import DataError, StateError
from detal.labels import LabelProblem, parse_label_text
from detal.pool import Status
from detal.project.folder import (
    LABELS_DIR,
    NO_HOOKS,
    Hooks,
    ImportReport,
    batch_out,
    folder_lock,
    label_relpath,
    open_store,
    problems_error,
)
from detal.project.label_files import is_not_a_label, returned_labels
from detal.store import Store

__all__ = ["import_labels"]


def _norm_label(text: str) -> str:
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return "\n".join(line for line in lines if line)


def import_labels(
    project: str | Path,
    path: str | Path,
    *,
    fmt: str = "yolo",
    overwrite: bool = False,
    hooks: Hooks | None = None,
) -> ImportReport:
    """Import corrected labels for the batch that is out, all or nothing.

    ``path`` is a folder or a zip of ``<key>.txt`` YOLO files (``fmt="yolo"``)
    or a ``cvat-yolo`` / ``coco`` export. Labels of images that are already
    labeled are left alone when identical and rejected when different,
    unless ``overwrite``.
    """
    project, path = Path(project), Path(path)
    store = open_store(project)
    try:
        with folder_lock(project):
            return _import(project, store, path, fmt, overwrite, hooks or NO_HOOKS)
    finally:
        store.close()


def _import(project: Path, store: Store, path: Path, fmt: str, overwrite: bool, hooks: Hooks) -> ImportReport:
    last = store.last_cycle()
    if last is not None and last.state != "done":
        raise StateError(f"{project}: cycle {last.id} was interrupted; rerun detal cycle to finish it first")
    names: list[str] = store.get_meta("classes")
    labels_root = project / LABELS_DIR
    for stale in labels_root.glob(".staging-*"):
        shutil.rmtree(stale, ignore_errors=True)

    problems: list = []
    entries = returned_labels(path, fmt, names, problems)
    by_key = store.images_by_key()
    seen: dict[str, str] = {}
    new, changed, unchanged, not_out = [], [], 0, 0
    for where, key, text in entries:
        if key not in by_key and PurePosixPath(key).suffix:
            key = PurePosixPath(key).stem  # COCO names images with their suffix
        row = by_key.get(key)
        if row is None or row.status == Status.VAL.value:
            if is_not_a_label(f"{key}.txt"):
                continue
            problems.append(LabelProblem(where, 0, f"label for an image the project does not have ({key})"))
            continue
        if key in seen:
            problems.append(LabelProblem(where, 0, f"second label for image {key} (first: {seen[key]})"))
            continue
        seen[key] = where
        _, probs = parse_label_text(text, len(names), where)
        if probs:
            problems.extend(probs)
            continue
        target = project / label_relpath(row.relpath)
        if row.status == Status.LABELED.value:
            old = target.read_text(encoding="utf-8") if target.is_file() else None
            if old is not None and _norm_label(old) == _norm_label(text):
                unchanged += 1
            elif overwrite:
                changed.append((row, text))
            else:
                problems.append(LabelProblem(
                    where, 0, f"image {key} is already labeled with a different label; pass --overwrite to replace it"
                ))
        elif row.status == Status.SELECTED.value:
            new.append((row, text))
        else:
            not_out += 1
            problems.append(LabelProblem(where, 0, f"image {key} is not in a batch that is out"))
    if not batch_out(store) and not overwrite and (not_out or not entries):
        raise StateError(
            f"{project}: no batch is out, so there is nothing to import from {path} "
            "(run detal cycle to select one)"
        )
    if problems:
        raise problems_error(path, problems, "nothing imported")
    if not seen:
        raise DataError(f"{path}: no label files (.txt) found")
    hooks.emit("on_import_validated", n_new=len(new), n_changed=len(changed))

    staging = labels_root / f".staging-{os.getpid()}"
    staging.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    for n, (row, text) in enumerate(new + changed):
        staged = staging / f"{n}.txt"
        staged.write_text(text, encoding="utf-8")
        target = project / label_relpath(row.relpath)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_file() and _norm_label(target.read_text(encoding="utf-8")) != _norm_label(text):
            backup = labels_root / ".replaced" / label_relpath(row.relpath).relative_to(LABELS_DIR)
            backup = backup.with_name(f"{backup.stem}.{stamp}.txt")
            backup.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(target, backup)
        os.replace(staged, target)
        hooks.emit("on_label_written", index=n, path=target)
    hooks.emit("on_labels_written", n=len(new) + len(changed))

    with store.transaction():
        if new:
            pool = store.load_pool()
            by_cycle: dict[int, list[int]] = {}
            for row, _ in new:
                by_cycle.setdefault(row.selected_cycle, []).append(row.id)
            for cycle, ids in by_cycle.items():
                pool.label(ids, cycle)
            store.save_pool(pool, [row.id for row, _ in new])
        if new or changed:
            store.record_import(str(path), len(new), unchanged, len(changed))
    shutil.rmtree(staging, ignore_errors=True)
    remaining = store.image_count(Status.SELECTED.value)
    hooks.emit("on_import_end", n_labeled=len(new), remaining=remaining)
    return ImportReport(len(new), unchanged, len(changed), remaining)
