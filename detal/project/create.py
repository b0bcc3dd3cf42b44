"""``detal init``: create a project over an image folder and send out the initial random batch.

Nothing under the project folder changes unless init succeeds: the new
project is built in a temporary folder beside it and moved into place at the
end (the database last: the folder only counts as a project once it is
there). A disk that fills up meanwhile leaves nothing either, and the one
line names the project (:func:`detal.errors.disk_full`). ``force=True`` moves the old project's state into
``PROJECT/backup-<time>/`` instead of deleting it.

``init`` over an existing project holds the project's lock
(:func:`detal.project.folder.folder_lock`) from start to end, so it refuses
to run while a cycle or an import does, and no command can start while it
replaces the project; the lock file itself stays in place. The old
database is checkpointed first and moved together with its ``-wal`` and
``-shm`` files, so the backup holds every committed change and the new
database never sees the old one's write-ahead log.

The temporary folder is named ``.PROJECT.init-<pid>-<random>``; one whose
process is gone (a killed ``init``) is removed by the next ``init``.

Every image passes :mod:`detal.image_check` (those with labels, the
validation images and the initial batch decoded), or the project is not
created; the message names each image refused, with the reason.

Refused with one line before anything is written: a project path under a
regular file, a folder that cannot be written, and a project folder that is
the image folder itself (it may lie beside the images or inside them: the
scan never enters the project).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
import yaml

from detal.config import Config, load_config
from detal.errors import DataError, StateError, disk_full
from detal.files import IMAGE_SUFFIXES, check_can_write
from detal.image_check import inspect_image
from detal.labels import LabelProblem, read_classes
from detal.pool import Status
from detal.project.bundle import write_bundle
from detal.project.folder import InitReport, folder_lock, problems_error
from detal.project.label_files import is_not_a_label, label_folder, labels_by_image
from detal.project.paths import (
    CLASSES_FILE,
    CONFIG_FILE,
    CYCLES_DIR,
    IMAGES_LINK,
    LABELS_DIR,
    LOCK_FILE,
    PROJECT_ENTRIES,
    VAL_IMAGES_LINK,
    ProjectPaths,
)
from detal.project.scan import ImageScan, link_into
from detal.project.sizes import DISPLAYED, SIZE_FRAME_KEY
from detal.project.verify import FOLDED, NAME_RULE_KEY
from detal.selection import initial_size, random_subset
from detal.store import DB_NAME, Store, checkpoint

__all__ = ["clean_stale_init", "init_project"]


_DB_FILES = (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal")
"""The database and the files SQLite keeps beside it: they move together, or not at all."""


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not os.path.lexists(path):
        path = path.parent
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def clean_stale_init(parent: Path, name: str) -> list[Path]:
    """Remove ``.NAME.init-<pid>-*`` folders in ``parent`` whose process is gone; return them."""
    removed = []
    for stale in parent.glob(f".{name}.init-*"):
        pid = stale.name[len(f".{name}.init-"):].split("-", 1)[0]
        if not pid.isdigit() or _pid_alive(int(pid)) or not stale.is_dir() or stale.is_symlink():
            continue  # a live init's folder, or one whose maker cannot be told: left alone
        shutil.rmtree(stale, ignore_errors=True)
        removed.append(stale)
    return removed


def _check_place(project: Path, images: Path) -> Path:
    """Refuse a project path that cannot hold a project; return the folder the build happens in."""
    anc = _existing_ancestor(project)
    if anc != project.absolute() and not anc.is_dir():
        raise DataError(f"{project}: cannot create a project there, {anc} is a file, not a folder")
    if project.exists() and not project.is_dir():
        raise DataError(f"{project}: exists and is not a folder")
    if images.is_dir() and project.exists() and os.path.samefile(project, images):
        raise DataError(
            f"{project}: is the image folder itself; give the project a folder of its own "
            "(beside the images, or inside the image folder)"
        )
    parent = _existing_ancestor(project.parent)
    check_can_write(parent, project)
    if project.is_dir():
        check_can_write(project, project)
    return parent


def init_project(
    project: str | Path,
    images: str | Path,
    classes: str | Path,
    *,
    labels: str | Path | None = None,
    val_images: str | Path | None = None,
    val_labels: str | Path | None = None,
    config: Config | None = None,
    force: bool = False,
    write_bundle: bool = True,
) -> InitReport:
    """Create a project over an image folder and export the initial random batch.

    The initial set is ``initial_fraction`` of the pool, drawn with
    ``numpy.random.default_rng(seed)`` (images that come with labels count
    towards it), so every project made with one seed over one folder starts
    from the same images. ``write_bundle=False`` skips the bundle zip (a
    simulation, whose annotator needs no copies of the images).
    """
    project = Path(project)
    cfg = config or load_config()
    images = Path(images)
    if ProjectPaths(project).db.exists() and not force:
        raise StateError(f"{project}: a detal project already exists here (pass --force to start over)")
    if project.exists() and not project.is_dir():
        raise DataError(f"{project}: exists and is not a folder")
    names = read_classes(classes)
    if not images.is_dir():
        raise DataError(f"{images}: image folder not found")
    if labels is not None and not Path(labels).is_dir():
        raise DataError(f"{labels}: label folder not found")
    if (val_images is None) != (val_labels is None):
        raise DataError("--val-images and --val-labels go together: give both or neither")
    if val_images is not None and not Path(val_images).is_dir():
        raise DataError(f"{val_images}: validation image folder not found")
    if val_labels is not None and not Path(val_labels).is_dir():
        raise DataError(f"{val_labels}: validation label folder not found")

    parent = _check_place(project, images)
    lock: AbstractContextManager = nullcontext()
    if (project / LOCK_FILE).is_file():
        lock = folder_lock(project, "another detal command is running on this project; "
                                    "run init --force again once it has finished")
    with lock:
        clean_stale_init(parent, project.name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{project.name}.init-{os.getpid()}-", dir=parent))
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        try:
            report = _build_project(project, tmp, cfg, images, names, labels, val_images, val_labels,
                                    write_bundle)
            _move_into_place(project, tmp, force)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            full = disk_full(exc, project, name_file=False)  # the project, not the folder just removed
            if full is not None:
                raise full from exc
            raise
    report.bundle = project / report.bundle.relative_to(tmp) if report.bundle else None
    return report


def _unmatched(labels: dict[str, tuple[Path, str]]) -> list[LabelProblem]:
    return [LabelProblem(str(path), 0, "label for an image the project does not have")
            for path, _ in sorted(labels.values()) if not is_not_a_label(path.name)]


def _build_project(
    project: Path, tmp: Path, cfg: Config, images: Path, names: list[str],
    labels: str | Path | None, val_images: str | Path | None, val_labels: str | Path | None,
    bundle: bool,
) -> InitReport:
    (tmp / LABELS_DIR).mkdir()
    (tmp / CYCLES_DIR).mkdir()
    (tmp / LOCK_FILE).touch()
    (tmp / CLASSES_FILE).write_text("\n".join(names) + "\n", encoding="utf-8")
    (tmp / CONFIG_FILE).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    problems: list = []
    store = Store.create(ProjectPaths(tmp).db)
    try:
        scan = ImageScan(tmp, names, problems, exclude=[project])
        prefix = link_into(project, tmp, images, IMAGES_LINK)
        pool_labels = {}
        if labels is not None:
            pool_labels = labels_by_image(label_folder(Path(labels), problems, names), images, scan.exclude,
                                          problems)
        with store.transaction():
            store.set_meta("classes", names)
            store.set_meta("images_root", prefix)
            store.set_meta(SIZE_FRAME_KEY, DISPLAYED)  # sizes as displayed (detal.image_frame)
            store.set_meta(NAME_RULE_KEY, FOLDED)  # the scan refuses names one under case folding
            with store.bulk_load():  # the secondary indexes are made once, after the last row
                try:
                    n_pool = store.add_images(
                        scan.rows(images, prefix, Status.UNLABELED.value, pool_labels, "", False)
                    )
                except sqlite3.IntegrityError as exc:  # the scan names clashes; this is the backstop
                    raise DataError(f"{images}: two images get the same bundle name ({exc})") from None
                if scan.bad:
                    raise problems_error(images, scan.bad, "project not created")
                if n_pool == 0:
                    raise DataError(
                        f"{images}: no images found (looked for {', '.join(IMAGE_SUFFIXES)})"
                    )
                problems.extend(_unmatched(pool_labels))
                n_val = 0
                if val_images is not None:
                    vprefix = link_into(project, tmp, Path(val_images), VAL_IMAGES_LINK)
                    store.set_meta("val_root", vprefix)
                    vlabels = labels_by_image(label_folder(Path(val_labels), problems, names),
                                              Path(val_images), scan.exclude, problems)
                    n_val = store.add_images(
                        scan.rows(Path(val_images), vprefix, Status.VAL.value, vlabels, "val:", True)
                    )
                    if scan.bad:
                        raise problems_error(val_images, scan.bad, "project not created")
                    if n_val == 0:
                        raise DataError(f"{val_images}: no images found")
                    problems.extend(_unmatched(vlabels))
            if problems:
                raise problems_error(labels or val_labels, problems, "project not created")

            pool = store.load_pool()
            need = initial_size(cfg.initial_fraction, cfg.max_labeled_fraction, pool.size)
            need -= pool.count(Status.LABELED)
            picked = np.zeros(0, dtype=np.int64)
            if need > 0:
                rng = np.random.default_rng(cfg.seed)
                picked = random_subset(pool.unlabeled_ids(), need, rng)
                _check_decodes(store.images(picked), _resolver(tmp, prefix, images), images)
                pool.select(picked, 0)
                store.save_pool(pool, picked)
            store.start_cycle(0, cfg.to_dict())
            store.update_cycle(0, state="done", n_selected=int(picked.size), finished_at=time.time())
        out = None
        if picked.size and bundle:
            rows = store.images(picked)
            out = write_bundle(tmp, 0, rows, names, None, {}, resolve_root=_resolver(tmp, prefix, images),
                               images_root=prefix)
        return InitReport(
            project=project,
            n_images=n_pool,
            n_val=n_val,
            n_labeled=pool.count(Status.LABELED),
            n_selected=int(picked.size),
            duplicates=store.duplicates(),
            bundle=out,
            names=list(names),
            dead_links=scan.dead_links,
        )
    finally:
        store.close()


def _check_decodes(rows: list, resolve: Callable[[str], Path], images: Path) -> None:
    """The initial batch goes out to be labeled and trained on: every image must decode."""
    bad = []
    for row in rows:
        try:
            inspect_image(resolve(row.relpath), decode=True)
        except DataError as exc:
            bad.append(str(exc))
    if bad:
        raise problems_error(images, bad, "project not created")


def _resolver(tmp: Path, prefix: str, images: Path) -> Callable[[str], Path]:
    """Paths of images while the project still lives in its temporary folder."""
    def resolve(relpath: str) -> Path:
        if relpath.startswith(prefix + "/") and not (tmp / prefix).exists():
            return images / relpath[len(prefix) + 1 :]
        return tmp / relpath
    return resolve


def _move_into_place(project: Path, tmp: Path, force: bool) -> None:
    if not project.exists():
        project.parent.mkdir(parents=True, exist_ok=True)
        os.rename(tmp, project)
        return
    # State detal made; an image folder that really lives in the project stays put.
    # The lock file stays too: init holds it while it replaces the project.
    present = [
        e for e in (*PROJECT_ENTRIES, *_DB_FILES)
        if os.path.lexists(project / e)
        and (e not in (IMAGES_LINK, VAL_IMAGES_LINK) or os.path.islink(project / e))
    ]
    if os.path.lexists(project / LOCK_FILE):
        (tmp / LOCK_FILE).unlink()
    built = {e.name for e in tmp.iterdir()}
    clash = [e for e in present if e in built]
    if clash and not force:
        raise StateError(f"{project}: already holds {', '.join(clash)} (pass --force to start over)")
    if present:
        if DB_NAME in present:
            checkpoint(ProjectPaths(project).db)
        backup = _new_backup_folder(project)
        # The database moves last, after its -wal and -shm, so the backup never
        # holds a database without the log of its committed changes.
        for e in sorted(present, key=lambda e: e == DB_NAME):
            if os.path.lexists(project / e):  # a checkpoint may have removed the -wal
                os.rename(project / e, backup / e)
    # The database goes last: the project only counts as one once it is there.
    for entry in sorted(built, key=lambda e: e == DB_NAME):
        os.rename(tmp / entry, project / entry)
    tmp.rmdir()


def _new_backup_folder(project: Path) -> Path:
    """``PROJECT/backup-<UTC time>``, with ``-1``, ``-2`` ... when that name is taken."""
    base = time.strftime("backup-%Y%m%d-%H%M%S", time.gmtime())
    for n in range(10_000):
        backup = project / (base if n == 0 else f"{base}-{n}")
        try:
            backup.mkdir()
        except FileExistsError:
            continue
        return backup
    raise StateError(f"{project}: too many backups named {base}*")
