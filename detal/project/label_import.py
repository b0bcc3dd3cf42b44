"""``detal import``: corrected labels for the batch that is out come into the project.

All or nothing: every file is read by :func:`detal.export.read_returned` (the
one reader of returned labels, which maps class ids by name whenever the
source carries names, finds each label's image by the one key rule of
:mod:`detal.export.keys` from :func:`pool_names`, and checks a COCO file's
image sizes against the ones the project recorded) and validated first, and
every problem is reported in one :class:`DataError`. Labels whose image is
known already (``detal pull``) come in through :func:`import_keyed_labels`,
with the same checks. Labels people made are never destroyed: a label that
differs from the one the project holds is refused unless ``overwrite``, and
then the old file is kept under ``labels/.replaced/`` with a name no other
backup has (time to the microsecond, then a counter; the file is created
exclusively, so no backup ever replaces another).

Unchanged pre-labels are not corrected labels: an import whose every new
label equals the pre-label detal sent out for it (``cycles/<k>/prelabels``)
is refused unless ``accept_prelabels``. A COCO file without any annotation
is refused unless ``allow_empty`` (it would mark every image "no objects").
A label for an image Ultralytics could not train on (:mod:`detal.image_check`,
decoded: the file became a GIF, a truncated JPEG ...) is a problem naming the
image and the reason.

Partial imports are allowed: an import may carry labels for part of the
batch that is out. Those images become labeled; the rest stay selected, and
``run_cycle`` refuses to start (unless ``force``) while any image of a batch
is still out.

What correcting the pre-labels took: every image whose labels come in is
matched against the pre-label boxes shipped by the cycle that selected it
(:mod:`detal.project.corrections`, with the config's ``effort_iou``), and
its counts of verified, adjusted, relabeled, deleted and drawn boxes are
stored, replacing any it had (a re-import with ``overwrite`` counts once).

All or nothing on the disk too. Everything that needs room is written first
(:func:`_stage`): every new label text into ``labels/.staging-<pid>/``, every
backup, every folder. Only then are the staged files renamed into place, and
the one transaction marks their images labeled and records what correcting
them took (:func:`_apply`). A failure at any point (a full disk, a read-only
database, an interrupt) puts every label file back as it was and removes
what was made, so ``labels/`` and the store are both as before. The store is
opened with a write probe (:meth:`detal.store.Store.open`), so a database
that cannot be written refuses the import before any of this.

Crash safety: a killed import leaves at most label files for images that
are still selected, which the rerun replaces; a label it replaced is kept
under ``labels/.replaced/`` (a backup is made before the rename).

An image folder that cannot be reached (an unmounted disk, a broken
``images`` link) refuses the import with one line
(:func:`detal.project.verify.check_pool`); images taken out as missing whose
file is back unchanged count again first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from detal.errors import DataError, StateError, disk_full
from detal.export import PoolNames, ReturnedLabels, read_returned
from detal.files import short_name
from detal.image_check import why_unusable
from detal.labels import LabelProblem, parse_label_text, show_name
from detal.pool import Status
from detal.project.corrections import correction_rows, uncorrected_rows
from detal.project.folder import (
    NO_HOOKS,
    Hooks,
    ImportReport,
    batch_out,
    folder_lock,
    open_store,
    problems_error,
    project_config,
)
from detal.project.paths import (
    LABELS_DIR,
    REPLACED_DIR,
    ProjectPaths,
    in_image_folder,
    label_relpath,
)
from detal.project.verify import check_pool
from detal.store import ImageRow, Store

__all__ = ["import_keyed_labels", "import_labels", "pool_names"]

Reader = Callable[[list[str], PoolNames, dict[str, tuple[int, int]]], ReturnedLabels]
"""Reads the labels of one import: (project classes, pool names, image sizes by key) -> labels by key."""


def _boxes(text: str) -> list[tuple]:
    """The boxes of YOLO text as numbers (6 decimals, as written), in a stable order."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        try:
            out.append((int(float(fields[0])), *(round(float(v), 6) for v in fields[1:5])))
        except (ValueError, IndexError):
            return [("unparsed", text)]
    return sorted(out)


def _same_label(a: str, b: str) -> bool:
    """Whether two label texts hold the same boxes (spacing, decimals and line order aside)."""
    return _boxes(a) == _boxes(b)


def _prelabel_text(project: Path, row: ImageRow) -> str | None:
    path = ProjectPaths(project).prelabel(row.selected_cycle, row.key)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _check_not_prelabels(project: Path, path: Path, new: list[tuple[ImageRow, str]]) -> None:
    """Refuse an import whose every new label is detal's own pre-label, unchanged."""
    same = []
    for row, text in new:
        pre = _prelabel_text(project, row)
        if pre is None or not _same_label(pre, text):
            return
        same.append(row)
    if same:
        cycles = sorted({r.selected_cycle for r in same})
        raise DataError(
            f"{path}: all {len(same)} label(s) are the pre-labels of cycle "
            f"{', '.join(map(str, cycles))} unchanged (e.g. {same[0].key}), not corrected labels; "
            "correct them first, or pass --accept-prelabels to import them as they are"
        )


def import_labels(
    project: str | Path,
    path: str | Path,
    *,
    fmt: str = "yolo",
    overwrite: bool = False,
    allow_empty: bool = False,
    accept_prelabels: bool = False,
    hooks: Hooks | None = None,
) -> ImportReport:
    """Import corrected labels for the batch that is out, all or nothing.

    ``path`` is a folder or a zip of YOLO label files (``fmt="yolo"``;
    a ``classes.txt`` or ``data.yaml`` in it maps the ids by name) or a
    ``cvat-yolo`` / ``coco`` / ``cvat-xml`` export. Each label's image is found by one rule
    (:mod:`detal.export.keys`): by its path laid out like the image folder
    (``sub/a.txt``) or its bundle name (``sub__a.txt``), else by a base name
    only one image has; a label that fits two images, or none, is refused
    naming the file. Labels of images that are already labeled are left
    alone when identical and rejected when different, unless ``overwrite``.
    ``allow_empty`` accepts a COCO or CVAT XML file with no boxes;
    ``accept_prelabels`` accepts labels that are all the pre-labels unchanged.
    """
    path = Path(path)

    def read(names: list[str], pool: PoolNames, sizes: dict[str, tuple[int, int]]) -> ReturnedLabels:
        return read_returned(path, fmt, names, pool=pool, sizes=sizes, allow_no_annotations=allow_empty,
                             allow_confidence=fmt != "yolo")

    return _locked(Path(project), path, read, overwrite, hooks, accept_prelabels)


def import_keyed_labels(
    project: str | Path,
    labels: Mapping[str, str],
    source: str,
    *,
    sources: Mapping[str, str] | None = None,
    overwrite: bool = False,
    hooks: Hooks | None = None,
) -> ImportReport:
    """:func:`import_labels` for YOLO label texts already keyed by image key, with the same checks.

    For a source that knows each label's image (``detal pull``: the task
    detal pushed for it), so no file name is read and nothing is guessed.
    ``source`` names it in messages; ``sources`` names each label's origin.
    """
    def read(names: list[str], pool: PoolNames, sizes: dict[str, tuple[int, int]]) -> ReturnedLabels:
        where = dict(sources or {})
        return ReturnedLabels(labels=dict(labels), sources={k: where.get(k, f"{source}: image {k}") for k in labels})

    return _locked(Path(project), source, read, overwrite, hooks, False)


def _locked(project: Path, source: Path | str, read: Reader, overwrite: bool, hooks: Hooks | None,
            accept_prelabels: bool) -> ImportReport:
    store = open_store(project)
    try:
        with folder_lock(project):
            return _import(project, store, source, read, overwrite, hooks or NO_HOOKS, accept_prelabels)
    finally:
        store.close()


def pool_names(store: Store, by_key: Mapping[str, ImageRow] | None = None) -> PoolNames:
    """The names the pool's images answer to in a return (:class:`~detal.export.keys.PoolNames`).

    Validation images are not among them: they are never sent out.
    """
    rows = (by_key or store.images_by_key()).values()
    root = store.get_meta("images_root")
    return PoolNames((r.key, in_image_folder(r.relpath, root)) for r in rows if r.status != Status.VAL.value)


def _backup(labels_root: Path, row: ImageRow, stamp: str, made: list[Path]) -> Path:
    """A new file under ``labels/.replaced/`` for the old label of ``row``; never an existing one.

    The folders it creates are appended to ``made``.
    """
    rel = label_relpath(row.relpath).relative_to(LABELS_DIR)
    folder = labels_root / REPLACED_DIR / rel.parent
    _make_dirs(folder, made)
    for n in range(1_000_000):
        candidate = folder / f"{short_name(f'{rel.stem}.{stamp}-{n}')}.txt"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise StateError(f"{folder}: cannot find a free name for the backup of {rel}")


@dataclass
class _Write:
    """One label file of an import, staged: its new text beside the project's labels, and what the
    target held before (a hard link, or a copy), so that a failure puts it back."""

    target: Path
    staged: Path
    before: Path | None
    backup: Path | None  # the copy kept under labels/.replaced/, made by this import


def _make_dirs(folder: Path, made: list[Path]) -> None:
    """``folder`` and its missing parents, each one created appended to ``made`` (outermost first)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        made.append(d)


def _keep(target: Path, at: Path) -> None:
    """``at`` holding what ``target`` holds now: a hard link (no space needed), else a copy."""
    try:
        os.link(target, at)
    except OSError:
        shutil.copy2(target, at)


def _undo(writes: list[_Write], made: list[Path], moved: int) -> None:
    """Put back what the first ``moved`` writes replaced, and remove every backup and folder made."""
    for w in reversed(writes[:moved]):
        if w.before is not None:
            os.replace(w.before, w.target)
        else:
            w.target.unlink(missing_ok=True)
    for w in writes:
        if w.backup is not None:
            w.backup.unlink(missing_ok=True)
    for d in reversed(made):
        with contextlib.suppress(OSError):
            d.rmdir()


def _stage(project: Path, labels_root: Path, staging: Path,
           rows: list[tuple[ImageRow, str]]) -> tuple[list[_Write], list[Path]]:
    """Write every new label text, every backup and every folder before any label file changes.

    What needs room on the disk happens here: a failure removes what was made
    and leaves ``labels/`` as it was (a full disk is the one line of
    :func:`detal.errors.disk_full`, naming ``labels/``). What is left to do
    (:func:`_apply`) are renames. Returns the writes and the folders made.
    """
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}"
    made: list[Path] = []
    writes: list[_Write] = []
    try:
        _make_dirs(staging, made)
        for n, (row, text) in enumerate(rows):
            staged = staging / f"{n}.txt"
            staged.write_text(text, encoding="utf-8")
            target = project / label_relpath(row.relpath)
            _make_dirs(target.parent, made)
            before = backup = None
            if target.is_file():
                before = staging / f"{n}.before"
                _keep(target, before)
                if not _same_label(target.read_text(encoding="utf-8"), text):
                    backup = _backup(labels_root, row, stamp, made)
                    writes.append(_Write(target, staged, before, backup))  # the backup is removed on failure
                    shutil.copy2(target, backup)
                    continue
            writes.append(_Write(target, staged, before, backup))
    except BaseException as exc:
        _undo(writes, made, 0)
        shutil.rmtree(staging, ignore_errors=True)
        full = disk_full(exc, labels_root, name_file=False)  # not the staged file just removed
        if full is not None:
            raise full from exc
        raise
    return writes, made


def _apply(store: Store, path: Path | str, writes: list[_Write], made: list[Path], new: list, changed: list,
           unchanged: int, corrections: list, shipped_boxes: list, hooks: Hooks) -> None:
    """Rename the staged labels into place, then mark their images labeled in one transaction; a
    failure of either (a read-only or full disk) puts every label file back as it was."""
    moved = 0
    try:
        for n, w in enumerate(writes):
            os.replace(w.staged, w.target)
            moved += 1
            hooks.emit("on_label_written", index=n, path=w.target)
        hooks.emit("on_labels_written", n=len(writes))
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
            store.record_corrections(corrections, shipped_boxes)
    except BaseException:
        _undo(writes, made, moved)
        raise


def _import(project: Path, store: Store, path: Path | str, read: Reader, overwrite: bool, hooks: Hooks,
            accept_prelabels: bool = False) -> ImportReport:
    last = store.last_cycle()
    if last is not None and last.state != "done":
        raise StateError(f"{project}: cycle {last.id} was interrupted; rerun detal cycle to finish it first")
    check_pool(project, store)  # an unreachable image folder refuses; images back unchanged count again
    names: list[str] = store.get_meta("classes")
    labels_root = ProjectPaths(project).labels_dir
    for stale in labels_root.glob(".staging-*"):
        shutil.rmtree(stale, ignore_errors=True)

    by_key = store.images_by_key()
    sizes = {r.key: (r.width, r.height) for r in by_key.values()}
    returned = read(names, pool_names(store, by_key), sizes)
    problems: list = list(returned.problems)
    entries = [(returned.sources[k], k, text) for k, text in sorted(returned.labels.items())]
    seen: dict[str, str] = {}
    new, changed, unchanged, not_out = [], [], 0, 0
    returned_boxes: list[tuple[ImageRow, list]] = []  # every image whose labels come in, with its boxes
    for where, key, text in entries:
        row = by_key.get(key)
        if row is None or row.status == Status.VAL.value:  # the readers match keys to pool images only
            problems.append(LabelProblem(where, 0, f"label for an image the project does not have ({show_name(key)})"))
            continue
        if row.problem is not None:
            problems.append(LabelProblem(
                where, 0, f"image {key} was taken out of the pool ({row.problem} since init)"))
            continue
        if key in seen:
            problems.append(LabelProblem(where, 0, f"second label for image {key} (first: {seen[key]})"))
            continue
        seen[key] = where
        boxes, probs = parse_label_text(text, len(names), where)
        if probs:
            problems.extend(probs)
            continue
        target = project / label_relpath(row.relpath)
        if row.status == Status.LABELED.value:
            old = target.read_text(encoding="utf-8") if target.is_file() else None
            if old is not None and _same_label(old, text):
                unchanged += 1
                returned_boxes.append((row, boxes))
            elif overwrite:
                changed.append((row, text))
                returned_boxes.append((row, boxes))
            else:
                problems.append(LabelProblem(
                    where, 0, f"image {key} is already labeled with a different label; pass --overwrite to replace it"
                ))
        elif row.status == Status.SELECTED.value:
            new.append((row, text))
            returned_boxes.append((row, boxes))
        else:
            not_out += 1
            problems.append(LabelProblem(where, 0, f"image {key} is not in a batch that is out"))
    for row, _ in new + changed:  # what Ultralytics cannot train on is no label for it (detal.image_check)
        why = why_unusable(project / row.relpath)
        if why is not None:
            problems.append(LabelProblem(seen[row.key], 0, f"image {row.relpath}: {why}"))
    if not batch_out(store) and not overwrite and (not_out or not (entries or problems)):
        raise StateError(
            f"{project}: no batch is out, so there is nothing to import from {path} "
            "(run detal cycle to select one)"
        )
    if problems:
        raise problems_error(path, problems, "nothing imported")
    if not seen:
        raise DataError(f"{path}: no label files (.txt) found")
    if not accept_prelabels:
        _check_not_prelabels(project, path, new)
    # what correcting the pre-labels took, for every image whose labels come in (unchanged ones
    # too: a killed --overwrite import leaves their files new and their rows old), and for labeled
    # batch images an older detal imported without rows
    iou = project_config(project).effort_iou
    corrections, shipped_boxes = correction_rows(project, returned_boxes, len(names), iou)
    late, late_boxes = uncorrected_rows(project, store, len(names), iou, exclude=[r.id for r, _ in returned_boxes])
    hooks.emit("on_import_validated", n_new=len(new), n_changed=len(changed))

    staging = labels_root / f".staging-{os.getpid()}"
    writes, made = _stage(project, labels_root, staging, new + changed)
    try:
        _apply(store, path, writes, made, new, changed, unchanged, corrections + late,
               shipped_boxes + late_boxes, hooks)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    remaining = store.image_count(Status.SELECTED.value)
    hooks.emit("on_import_end", n_labeled=len(new), remaining=remaining)
    return ImportReport(len(new), unchanged, len(changed), remaining)
