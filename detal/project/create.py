"""``detal init``: create a project over an image folder and send out the initial random batch.

Nothing under the project folder changes unless init succeeds: the new
project is built in a temporary folder beside it and moved into place at the
end (the database last: the folder only counts as a project once it is
there). ``force=True`` moves the old project's state into
``PROJECT/backup-<time>/`` instead of deleting it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from detal.config import Config, load_config
from detal.errors import DataError, StateError
from detal.files import IMAGE_SUFFIXES
from detal.labels import LabelProblem, read_classes
from detal.pool import Status
from detal.project.bundle import write_bundle
from detal.project.folder import (
    CLASSES_FILE,
    CONFIG_FILE,
    CYCLES_DIR,
    LABELS_DIR,
    LOCK_FILE,
    PROJECT_ENTRIES,
    InitReport,
    problems_error,
)
from detal.project.label_files import is_not_a_label, label_folder
from detal.project.scan import ImageScan, link_into
from detal.selection import initial_size, random_subset
from detal.store import DB_NAME, Store

__all__ = ["init_project"]


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


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
    if (project / DB_NAME).exists() and not force:
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

    tmp = Path(tempfile.mkdtemp(prefix=f".{project.name}.init-", dir=_existing_ancestor(project.parent)))
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    try:
        report = _build_project(project, tmp, cfg, images, names, labels, val_images, val_labels,
                                write_bundle)
        _move_into_place(project, tmp, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
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
    store = Store.create(tmp / DB_NAME)
    try:
        scan = ImageScan(tmp, names, problems)
        prefix = link_into(project, tmp, images, "images")
        pool_labels = label_folder(Path(labels), problems) if labels is not None else {}
        with store.transaction():
            store.set_meta("classes", names)
            store.set_meta("images_root", prefix)
            try:
                n_pool = store.add_images(
                    scan.rows(images, prefix, Status.UNLABELED.value, pool_labels, "", False)
                )
            except sqlite3.IntegrityError as exc:
                raise DataError(
                    f"{images}: two images get the same bundle name ({exc}); "
                    "a '__' in a file name clashes with a subfolder, rename one"
                ) from None
            if n_pool == 0:
                raise DataError(
                    f"{images}: no images found (looked for {', '.join(IMAGE_SUFFIXES)})"
                )
            problems.extend(_unmatched(pool_labels))
            n_val = 0
            if val_images is not None:
                vprefix = link_into(project, tmp, Path(val_images), "val_images")
                store.set_meta("val_root", vprefix)
                vlabels = label_folder(Path(val_labels), problems)
                n_val = store.add_images(
                    scan.rows(Path(val_images), vprefix, Status.VAL.value, vlabels, "val:", True)
                )
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
                pool.select(picked, 0)
                store.save_pool(pool, picked)
            store.start_cycle(0, cfg.to_dict())
            store.update_cycle(0, state="done", n_selected=int(picked.size), finished_at=time.time())
        out = None
        if picked.size and bundle:
            rows = store.images(picked)
            out = write_bundle(tmp, 0, rows, names, None, {}, resolve_root=_resolver(tmp, prefix, images))
        return InitReport(
            project=project,
            n_images=n_pool,
            n_val=n_val,
            n_labeled=pool.count(Status.LABELED),
            n_selected=int(picked.size),
            duplicates=store.duplicates(),
            bundle=out,
        )
    finally:
        store.close()


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
    present = [
        e for e in (*PROJECT_ENTRIES, LOCK_FILE)
        if os.path.lexists(project / e)
        and (e not in ("images", "val_images") or os.path.islink(project / e))
    ]
    built = {e.name for e in tmp.iterdir()}
    clash = [e for e in present if e in built]
    if clash and not force:
        raise StateError(f"{project}: already holds {', '.join(clash)} (pass --force to start over)")
    if present:
        backup = project / time.strftime("backup-%Y%m%d-%H%M%S", time.gmtime())
        backup.mkdir()
        for e in present:
            os.rename(project / e, backup / e)
    # The database goes last: the project only counts as one once it is there.
    for entry in sorted(built, key=lambda e: e == DB_NAME):
        os.rename(tmp / entry, project / entry)
    tmp.rmdir()
