"""The annotation loop on a project folder: init, cycle, import, status.

This is the Python API behind ``detal init | cycle | import | status``; the
CLI only parses arguments and prints. A project folder looks like::

    PROJECT/
      detal.db          the store (detal.store): images, cycles, scores, imports
      classes.txt       class names, one a line
      config.yaml       the config snapshot the project was created with
      images -> DIR     a symbolic link to the image folder (not a copy)
      val_images -> DIR the validation images, if any
      labels/           the labels people made: detal's own copy, one file per
                        image at labels/<relpath without suffix>.txt
      cycles/<k>/       train/ (the adapter's run), prelabels/ (YOLO txt) and
                        batch-<k>.zip (the bundle sent out for labeling)

Images are referenced, not copied: a pool may hold 100,000 files and copying
would double the disk use and the time of ``init``; hard links fail across
file systems. The symbolic link keeps every stored path relative to the
project (``images/sub/a.jpg``), so moving the image folder only means
re-pointing one link, and the content hash of every image is kept to detect
files that changed under the project. Bundles do carry copies of their
batch's images, since they leave the machine.

Labels that people made are never destroyed: imported files replace a label
only with ``overwrite=True``, and then the old file is kept under
``labels/.replaced/``; ``init(force=True)`` moves the old project's state
into ``PROJECT/backup-<time>/`` instead of deleting it.

Partial imports are allowed: an import may carry labels for part of the batch
that is out. Those images become labeled; the rest stay selected, and
``run_cycle`` refuses to start (unless ``force=True``) while any image of a
batch is still out.

Crash safety. Each cycle row in the store moves through
``started -> trained -> selected -> done`` (see :data:`detal.store.CYCLE_STATES`);
each move is one transaction, and files are written to a temporary name and
then renamed. ``run_cycle`` on a project whose last cycle is not ``done``
resumes it from its state: training restarts from scratch, selection is
deterministic (the generator is seeded with ``(seed, cycle)``), and the export
is rewritten. ``import_labels`` writes label files before the one transaction
that marks their images labeled, so a killed import leaves at most label files
for images that are still selected, which the rerun replaces.

Hooks: :class:`Hooks` holds callbacks for the named events in :data:`EVENTS`;
tests use them to kill the process at chosen points.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import math
import os
import shutil
import sqlite3
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import yaml

from detal.adapter import LabeledImage, ModelAdapter
from detal.config import Config, cycle_epochs, load_config
from detal.detections import Prediction
from detal.errors import DataError, ModelError, StateError
from detal.export.yolo import data_yaml as yolo_data_yaml
from detal.files import IMAGE_SUFFIXES
from detal.labels import LabelProblem, parse_label_text, prediction_lines, read_classes
from detal.pool import Pool, Status
from detal.scoring import score_predictions
from detal.selection import Plan, fraction_count, random_subset, select_batch, strategy_plan
from detal.store import DB_NAME, Store

__all__ = [
    "EVENTS",
    "IMAGE_SUFFIXES",
    "CycleReport",
    "Hooks",
    "ImportReport",
    "InitReport",
    "import_labels",
    "init_project",
    "project_config",
    "project_status",
    "run_cycle",
]

CLASSES_FILE = "classes.txt"
CONFIG_FILE = "config.yaml"
LABELS_DIR = "labels"
CYCLES_DIR = "cycles"
LOCK_FILE = ".detal.lock"
_PROJECT_ENTRIES = (DB_NAME, CLASSES_FILE, CONFIG_FILE, LABELS_DIR, CYCLES_DIR, "images", "val_images")
_MAX_LABEL_BYTES = 4 * 1024 * 1024
_MAX_LISTED_PROBLEMS = 200
_NOT_LABELS = {"classes.txt", "train.txt", "val.txt", "valid.txt", "test.txt"}

EVENTS = (
    "on_cycle_start",
    "on_train_end",
    "on_select_end",
    "on_prelabels_written",
    "on_bundle_written",
    "on_export_end",
    "on_import_validated",
    "on_label_written",
    "on_labels_written",
    "on_import_end",
)


class Hooks:
    """Callbacks by event name; each is called with keyword arguments describing the event."""

    def __init__(self) -> None:
        self._callbacks: dict[str, list[Callable[..., None]]] = {e: [] for e in EVENTS}

    def add(self, event: str, fn: Callable[..., None]) -> None:
        if event not in self._callbacks:
            raise ValueError(f"unknown event {event!r}; expected one of {', '.join(EVENTS)}")
        self._callbacks[event].append(fn)

    def emit(self, event: str, **info: Any) -> None:
        for fn in self._callbacks[event]:
            fn(**info)


_NO_HOOKS = Hooks()


# -- reports -------------------------------------------------------------------------
@dataclass
class InitReport:
    project: Path
    n_images: int
    n_val: int
    n_labeled: int
    n_selected: int
    duplicates: list[list[str]]
    bundle: Path | None


@dataclass
class CycleReport:
    cycle: int
    resumed_from: str | None
    n_train: int
    metrics: dict | None
    n_selected: int
    prelabels: Path
    bundle: Path
    exports: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)


@dataclass
class ImportReport:
    n_labeled: int
    n_unchanged: int
    n_overwritten: int
    remaining: int


# -- small helpers ---------------------------------------------------------------------
def _problems_error(source: object, problems: Sequence[LabelProblem | str], what: str) -> DataError:
    shown = [str(p) for p in problems[:_MAX_LISTED_PROBLEMS]]
    more = len(problems) - len(shown)
    tail = f"; ... and {more} more" if more > 0 else ""
    return DataError(f"{source}: {len(problems)} problem(s), {what}: " + "; ".join(shown) + tail)


def _label_relpath(image_relpath: str) -> Path:
    return Path(LABELS_DIR) / PurePosixPath(image_relpath).with_suffix(".txt")


def _norm_label(text: str) -> str:
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return "\n".join(line for line in lines if line)


@contextmanager
def _project_lock(project: Path) -> Iterator[None]:
    """One cycle or import at a time per project (released by the OS if the process dies)."""
    with open(project / LOCK_FILE, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateError(f"{project}: another detal command is running on this project") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _command_running(project: Path) -> bool:
    """Whether a cycle or import holds the project's lock right now."""
    lock = project / LOCK_FILE
    if not lock.exists():
        return False
    with open(lock, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def _open_store(project: Path) -> Store:
    project = Path(project)
    if not (project / DB_NAME).is_file():
        raise StateError(f"{project}: not a detal project (no {DB_NAME}; run detal init first)")
    return Store.open(project / DB_NAME)


def project_config(project: str | Path, overrides: Iterable[str] = ()) -> Config:
    """The project's config snapshot with ``key=value`` overrides applied."""
    if not (Path(project) / DB_NAME).is_file():
        raise StateError(f"{project}: not a detal project (no {DB_NAME}; run detal init first)")
    path = Path(project) / CONFIG_FILE
    if not path.is_file():
        raise StateError(f"{path}: config snapshot missing")
    return load_config(path, overrides)


# -- scanning images -------------------------------------------------------------------
def _walk_images(root: Path) -> Iterator[str]:
    """Image files under ``root`` as POSIX relpaths, in a stable (sorted) order."""
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            names = sorted(os.listdir(root / rel))
        except OSError as exc:
            raise DataError(f"{root / rel}: cannot list folder ({exc.strerror})") from None
        subdirs = []
        for name in names:
            if name.startswith("."):
                continue
            child = f"{rel}/{name}" if rel else name
            full = root / child
            if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES and full.is_file():
                yield child
            elif full.is_dir():
                subdirs.append(child)
        stack.extend(reversed(subdirs))


def _image_info(path: Path) -> tuple[str, int, int]:
    """Content hash, width and height; the header is parsed, the pixels are not decoded."""
    from PIL import Image

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read image ({exc.strerror})") from None
    digest = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
    except Exception as exc:  # noqa: BLE001 - decoders raise many types on bad bytes
        # (UnidentifiedImageError, OSError, SyntaxError, ValueError; and once Ultralytics has
        # patched Image.open, ModuleNotFoundError from its HEIF fallback)
        reason = "empty file" if not data else f"not a readable image ({exc.__class__.__name__})"
        raise DataError(f"{path}: corrupt image, {reason}") from None
    if width <= 0 or height <= 0:
        raise DataError(f"{path}: corrupt image, size {width}x{height}")
    return digest, width, height


def _label_files(labels_dir: Path) -> dict[str, Path]:
    """``relpath without suffix -> file`` for every ``.txt`` under ``labels_dir``."""
    out = {}
    for dirpath, _dirs, files in os.walk(labels_dir):
        for name in files:
            if not name.endswith(".txt") or name.startswith("."):
                continue
            full = Path(dirpath) / name
            rel = full.relative_to(labels_dir).as_posix()
            if rel in _NOT_LABELS:
                continue
            out[rel[: -len(".txt")]] = full
    return out


def _read_text(path: Path, display: str, problems: list) -> str | None:
    try:
        if path.stat().st_size > _MAX_LABEL_BYTES:
            problems.append(LabelProblem(display, 0, "label file too large"))
            return None
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        problems.append(LabelProblem(display, 0, "not UTF-8 text"))
    except OSError as exc:
        problems.append(LabelProblem(display, 0, f"cannot read ({exc.strerror})"))
    return None


class _Scan:
    """Streams one image folder into the store, copying and validating its labels."""

    def __init__(self, tmp: Path, names: list[str], problems: list) -> None:
        self.tmp = tmp
        self.names = names
        self.problems = problems
        self.next_id = 0

    def rows(
        self, root: Path, prefix: str, status: str, labels: dict[str, Path], key_prefix: str,
        require_labels: bool,
    ) -> Iterator[tuple]:
        # Same-stem files can only clash within one folder, and the walk yields a
        # folder's files together: remembering one folder at a time keeps memory flat.
        seen_stems: dict[str, str] = {}
        folder = None
        for rel in _walk_images(root):
            stem = rel.rsplit(".", 1)[0]
            if rel.rpartition("/")[0] != folder:
                folder = rel.rpartition("/")[0]
                seen_stems.clear()
            if stem in seen_stems:
                raise DataError(
                    f"{root / rel}: same name as {root / seen_stems[stem]} apart from the suffix; "
                    "YOLO labels are matched by name, rename one of them"
                )
            seen_stems[stem] = rel
            digest, width, height = _image_info(root / rel)
            relpath = f"{prefix}/{rel}"
            label = labels.pop(stem, None)
            row_status = status
            if label is not None:
                text = _read_text(label, str(label), self.problems)
                if text is not None:
                    _, probs = parse_label_text(text, len(self.names), str(label))
                    self.problems.extend(probs)
                    if not probs:
                        target = self.tmp / _label_relpath(relpath)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_text(text, encoding="utf-8")
                if status == Status.UNLABELED.value:
                    row_status = Status.LABELED.value
            elif require_labels:
                self.problems.append(LabelProblem(str(root / rel), 0, "validation image has no label file"))
            key = key_prefix + stem.replace("/", "__")
            yield (self.next_id, relpath, key, digest, width, height, row_status)
            self.next_id += 1


def _link_into(project: Path, tmp: Path, src: Path, name: str) -> str:
    """Make ``src`` reachable from the project; return its path relative to the project."""
    src_res = src.resolve()
    try:
        return src_res.relative_to(project.resolve()).as_posix()
    except ValueError:
        pass
    os.symlink(src_res, tmp / name, target_is_directory=True)
    return name


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
) -> InitReport:
    """Create a project over an image folder and export the initial random batch.

    Nothing under ``project`` changes unless init succeeds: the new project is
    built in a temporary folder beside it and moved into place at the end.
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
        report = _build_project(project, tmp, cfg, images, names, labels, val_images, val_labels)
        _move_into_place(project, tmp, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report.bundle = project / report.bundle.relative_to(tmp) if report.bundle else None
    return report


def _build_project(
    project: Path, tmp: Path, cfg: Config, images: Path, names: list[str],
    labels: str | Path | None, val_images: str | Path | None, val_labels: str | Path | None,
) -> InitReport:
    (tmp / LABELS_DIR).mkdir()
    (tmp / CYCLES_DIR).mkdir()
    (tmp / LOCK_FILE).touch()
    (tmp / CLASSES_FILE).write_text("\n".join(names) + "\n", encoding="utf-8")
    (tmp / CONFIG_FILE).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    problems: list = []
    store = Store.create(tmp / DB_NAME)
    try:
        scan = _Scan(tmp, names, problems)
        prefix = _link_into(project, tmp, images, "images")
        pool_labels = _label_files(Path(labels)) if labels is not None else {}
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
            problems.extend(
                LabelProblem(str(p), 0, "label for an image the project does not have")
                for p in sorted(pool_labels.values())
            )
            n_val = 0
            if val_images is not None:
                vprefix = _link_into(project, tmp, Path(val_images), "val_images")
                store.set_meta("val_root", vprefix)
                vlabels = _label_files(Path(val_labels))
                n_val = store.add_images(
                    scan.rows(Path(val_images), vprefix, Status.VAL.value, vlabels, "val:", True)
                )
                if n_val == 0:
                    raise DataError(f"{val_images}: no images found")
                problems.extend(
                    LabelProblem(str(p), 0, "label for an image the project does not have")
                    for p in sorted(vlabels.values())
                )
            if problems:
                raise _problems_error(labels or val_labels, problems, "project not created")

            pool = store.load_pool()
            n_init = fraction_count(cfg.initial_fraction, pool.size)
            need = n_init - pool.count(Status.LABELED)
            picked = np.zeros(0, dtype=np.int64)
            if need > 0:
                rng = np.random.default_rng(cfg.seed)
                picked = random_subset(pool.unlabeled_ids(), need, rng)
                pool.select(picked, 0)
                store.save_pool(pool, picked)
            store.start_cycle(0, cfg.to_dict())
            store.update_cycle(0, state="done", n_selected=int(picked.size), finished_at=time.time())
        bundle = None
        if picked.size:
            rows = store.images(picked)
            bundle = _write_bundle(tmp, 0, rows, names, None, {}, resolve_root=_resolver(tmp, prefix, images))
        duplicates = store.duplicates()
        return InitReport(
            project=project,
            n_images=n_pool,
            n_val=n_val,
            n_labeled=pool.count(Status.LABELED),
            n_selected=int(picked.size),
            duplicates=duplicates,
            bundle=bundle,
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
        e for e in _PROJECT_ENTRIES + (LOCK_FILE,)
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


# -- bundles -------------------------------------------------------------------------
def _bundle_name(row) -> str:
    return row.key + PurePosixPath(row.relpath).suffix


def _write_bundle(
    project: Path,
    cycle: int,
    rows: Sequence,
    names: Sequence[str],
    prelabels: dict[int, str] | None,
    manifest: dict[int, tuple[float, int, int | None]],
    resolve_root: Callable[[str], Path] | None = None,
) -> Path:
    """Write ``cycles/<k>/batch-<k>.zip`` atomically: images/, labels/, classes.txt, data.yaml, manifest.csv."""
    out_dir = project / CYCLES_DIR / str(cycle)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"batch-{cycle}.zip"
    tmp = out_dir / f".batch-{cycle}.zip.tmp-{os.getpid()}"
    resolve = resolve_root or (lambda rel: project / rel)
    order = sorted(rows, key=lambda r: (-manifest.get(r.id, (-math.inf,))[0], r.id))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["image", "score", "n_boxes", "top_class"])
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for row in order:
            name = _bundle_name(row)
            zf.write(resolve(row.relpath), f"images/{name}")
            if prelabels is not None:
                zf.writestr(f"labels/{row.key}.txt", prelabels.get(row.id, ""),
                            compress_type=zipfile.ZIP_DEFLATED)
            score, n_boxes, top = manifest.get(row.id, (None, None, None))
            writer.writerow([
                name,
                "" if score is None else f"{score:.6f}",
                "" if n_boxes is None else n_boxes,
                "" if top is None else names[top],
            ])
        zf.writestr("classes.txt", "\n".join(names) + "\n")
        # The export writer's data.yaml has no `path:` key, so Ultralytics resolves
        # images/ beside the yaml wherever the bundle is unpacked (a `path: .`
        # would be taken relative to the current directory).
        zf.writestr("data.yaml", yolo_data_yaml(names))
        zf.writestr("manifest.csv", buf.getvalue())
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    return target


# -- cycle ---------------------------------------------------------------------------
def _pairs(project: Path, rows: Iterable) -> list[LabeledImage]:
    return [(project / r.relpath, project / _label_relpath(r.relpath)) for r in rows]


def _rel_to_project(project: Path, path: Path) -> str:
    try:
        return Path(path).resolve().relative_to(project.resolve()).as_posix()
    except ValueError:
        return str(Path(path).resolve())


def _batch_out(store: Store) -> dict[int, tuple[int, int]]:
    """``cycle -> (images still out, images selected in that cycle)`` for batches not fully in."""
    out = {}
    cur = store.execute(
        "SELECT selected_cycle, sum(status = 'selected'), count(*) FROM images "
        "WHERE selected_cycle >= 0 GROUP BY selected_cycle HAVING sum(status = 'selected') > 0"
    )
    for cycle, remaining, total in cur:
        out[int(cycle)] = (int(remaining), int(total))
    return out


def _budget(pool: Pool, cfg: Config) -> int:
    """How many more images may be sent out before ``max_labeled_fraction`` is reached."""
    cap = math.floor(cfg.max_labeled_fraction * pool.size + 1e-9)
    return cap - pool.count(Status.LABELED) - pool.count(Status.SELECTED)


def _capped_plan(plan: Plan, batch: int, cfg: Config) -> Plan:
    if batch >= plan.batch_size:
        return plan
    if plan.n_uncertain >= plan.batch_size:
        n_uncertain = batch
    else:
        n_uncertain = min(batch, math.floor(cfg.uncertain_share * batch + 0.5))
    return Plan(plan.strategy, batch, plan.subset_size, n_uncertain)


def run_cycle(
    project: str | Path,
    adapter: ModelAdapter,
    *,
    force: bool = False,
    formats: Sequence[str] = ("yolo",),
    overrides: Iterable[str] = (),
    hooks: Hooks | None = None,
) -> CycleReport:
    """Train on every labeled image, select the next batch and export it with pre-labels.

    Resumes the last cycle if it was interrupted (with the config of this call:
    project config plus ``overrides``); otherwise starts the next one. Raises
    :class:`StateError` while a batch is out (unless ``force``),
    before anything is labeled, and once ``max_labeled_fraction`` is reached.
    """
    project = Path(project)
    hooks = hooks or _NO_HOOKS
    formats = _check_formats(formats)
    store = _open_store(project)
    try:
        with _project_lock(project):
            return _run_cycle(project, store, adapter, force, formats, list(overrides), hooks)
    finally:
        store.close()


def _check_formats(formats: Sequence[str] | str) -> list[str]:
    if isinstance(formats, str):
        formats = [formats]
    out: list[str] = []
    for item in formats:
        for name in str(item).split(","):
            name = name.strip()
            if name and name not in out:
                out.append(name)
    out = out or ["yolo"]
    if out != ["yolo"]:
        from detal.export import parse_formats  # checks the names before any work is done

        out = parse_formats(out)
    return out


def _run_cycle(
    project: Path, store: Store, adapter: ModelAdapter, force: bool, formats: list[str],
    overrides: list[str], hooks: Hooks,
) -> CycleReport:
    names: list[str] = store.get_meta("classes")
    last = store.last_cycle()
    resumed_from = None
    cfg = project_config(project, overrides)
    pool: Pool | None = None
    if last is not None and last.state != "done":
        # Resume with the config given to this run (so a failed cycle can be fixed
        # with --set); the cycle's snapshot is updated to match.
        k, state, resumed_from = last.id, last.state, last.state
        if cfg.to_dict() != last.config:
            with store.transaction():
                store.update_cycle(k, config=cfg.to_dict())
    else:
        pool = store.load_pool()
        out = _batch_out(store)
        if out and not force:
            desc = ", ".join(f"cycle {c}: {r} of {t}" for c, (r, t) in sorted(out.items()))
            raise StateError(
                f"{project}: a batch is still out ({desc} images unlabeled); "
                "import its labels with detal import, or pass --force"
            )
        if pool.count(Status.LABELED) == 0:
            raise StateError(f"{project}: no labeled images to train on; import the initial batch first")
        if _budget(pool, cfg) <= 0:
            raise StateError(
                f"{project}: labeling budget reached ({pool.count(Status.LABELED)} labeled and "
                f"{pool.count(Status.SELECTED)} out of {pool.size} images; "
                f"max_labeled_fraction={cfg.max_labeled_fraction})"
            )
        if not pool.unlabeled_ids().size:
            raise StateError(f"{project}: no unlabeled images left to select from")
        k = (last.id + 1) if last is not None else 1
        with store.transaction():
            store.start_cycle(k, cfg.to_dict())
        state = "started"
        hooks.emit("on_cycle_start", cycle=k)

    cycle_dir = project / CYCLES_DIR / str(k)
    cycle_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*cycle_dir.glob(".*.tmp-*"), *cycle_dir.glob(".*.export-tmp")]:  # left by a killed run
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    timings = dict(store.cycle(k).timings)
    cache: dict[int, Prediction] = {}

    if state == "started":
        t0 = time.perf_counter()
        train_dir = cycle_dir / "train"
        if train_dir.exists():
            shutil.rmtree(train_dir)
        labeled = store.images(status=Status.LABELED.value)
        val_items = _pairs(project, store.images(status=Status.VAL.value))
        trained_before = [c for c in store.cycles() if c.id < k and c.state == "done" and c.weights]
        init_weights = project / trained_before[-1].weights if cfg.warm_start and trained_before else None
        # Same rule as the simulation: first_cycle_epochs for the first training,
        # raised to min_steps_per_cycle gradient steps.
        epochs = cycle_epochs(cfg, 0 if not trained_before else k, len(labeled))
        result = adapter.train(
            _pairs(project, labeled), val_items, names, train_dir, epochs=epochs, init_weights=init_weights
        )
        metrics = result.metrics
        if metrics is None and val_items:
            metrics = adapter.evaluate(result.weights, val_items, names, cycle_dir / "val")
        timings["train_s"] = round(time.perf_counter() - t0, 3)
        with store.transaction():
            store.update_cycle(
                k,
                state="trained",
                weights=_rel_to_project(project, result.weights),
                metrics=asdict(metrics) if metrics is not None else None,
                n_train=len(labeled),
                timings=timings,
            )
        state = "trained"
        hooks.emit("on_train_end", cycle=k, metrics=metrics)

    row = store.cycle(k)
    weights = project / row.weights

    def predict(image_rows: Sequence) -> dict[int, Prediction]:
        by_path = {str(project / r.relpath): r.id for r in image_rows}
        resolved: dict[str, int] = {}
        result = adapter.predict(
            weights,
            [project / r.relpath for r in image_rows],
            conf=min(cfg.score_conf, cfg.prelabel_conf),
            iou=cfg.iou,
            batch=cfg.predict_batch,
            progress=False,
        )
        out = {}
        for p in result.predictions:
            image_id = by_path.get(str(p.path))
            if image_id is None:  # an adapter that reports resolved paths
                if not resolved:
                    resolved.update({str(Path(k).resolve()): v for k, v in by_path.items()})
                image_id = resolved.get(str(Path(p.path).resolve()))
            if image_id is None:
                raise ModelError(f"{p.path}: the adapter returned a prediction for an image it was not given")
            out[image_id] = p
        return out

    if state == "trained":
        t0 = time.perf_counter()
        if pool is None:  # resumed after training: not loaded above
            pool = store.load_pool()
        plan = strategy_plan(
            cfg.strategy, pool.size, batch_fraction=cfg.batch_fraction,
            subset_fraction=cfg.subset_fraction, uncertain_share=cfg.uncertain_share,
        )
        plan = _capped_plan(plan, max(0, _budget(pool, cfg)), cfg)
        scored: dict[int, tuple[float, int, int | None]] = {}

        def scorer(ids: np.ndarray) -> np.ndarray:
            preds = predict(store.images(ids))
            cache.update(preds)
            ordered = [(i, preds[i]) for i in ids.tolist() if i in preds]
            for (i, _), s in zip(ordered, score_predictions([p for _, p in ordered], cfg)):
                scored[i] = (s.score, s.n_boxes, s.top_class)
            return np.array([scored[i][0] if i in scored else np.nan for i in ids.tolist()])

        selection = select_batch(pool.unlabeled_ids(), plan, np.random.default_rng([cfg.seed, k]), scorer)
        timings["select_s"] = round(time.perf_counter() - t0, 3)
        with store.transaction():
            store.add_scores(k, [(i, *v) for i, v in scored.items()])
            pool.select(selection.ids, k)
            store.save_pool(pool, selection.ids)
            store.update_cycle(k, state="selected", n_selected=int(selection.ids.size), timings=timings)
        state = "selected"
        hooks.emit("on_select_end", cycle=k, ids=selection.ids)

    # state == "selected": write pre-labels and the bundle, then mark the cycle done.
    t0 = time.perf_counter()
    batch = store.images(selected_cycle=k)
    missing = [r for r in batch if r.id not in cache]
    if missing:
        cache.update(predict(missing))
    preds = {r.id: cache[r.id] for r in batch if r.id in cache}
    stored = store.scores(k)
    ids = list(preds)
    # Only the random picks lack a score from selection; score just those.
    unscored = [i for i in ids if i not in stored]
    computed = {
        i: (s.score, s.n_boxes, s.top_class)
        for i, s in zip(unscored, score_predictions([preds[i] for i in unscored], cfg))
    }
    extra_scores = [(i, *v) for i, v in computed.items()]
    prelabels = {i: "".join(line + "\n" for line in prediction_lines(p, cfg.prelabel_conf))
                 for i, p in preds.items()}
    manifest: dict[int, tuple[float, int, int | None]] = {}
    for i in ids:
        score, _, top = stored[i] if i in stored else computed[i]
        manifest[i] = (score, prelabels[i].count("\n"), top)

    pre_dir = cycle_dir / "prelabels"
    staging = cycle_dir / f".prelabels.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for r in batch:
        (staging / f"{r.key}.txt").write_text(prelabels.get(r.id, ""), encoding="utf-8")
    if pre_dir.exists():
        shutil.rmtree(pre_dir)
    os.rename(staging, pre_dir)
    hooks.emit("on_prelabels_written", cycle=k, path=pre_dir)

    bundle = _write_bundle(project, k, batch, names, prelabels, manifest)
    hooks.emit("on_bundle_written", cycle=k, path=bundle)
    exported = ["yolo"]
    others = [f for f in formats if f != "yolo"]
    if others:
        exported += _export_other(project, cycle_dir, k, batch, preds, manifest, names, cfg, others)
    timings["export_s"] = round(time.perf_counter() - t0, 3)
    with store.transaction():
        store.add_scores(k, extra_scores, in_subset=False)
        store.update_cycle(k, state="done", timings=timings, finished_at=time.time())
    hooks.emit("on_export_end", cycle=k, bundle=bundle)
    final = store.cycle(k)
    return CycleReport(
        cycle=k,
        resumed_from=resumed_from,
        n_train=final.n_train,
        metrics=final.metrics,
        n_selected=len(batch),
        prelabels=pre_dir,
        bundle=bundle,
        exports=exported,
        timings=timings,
    )


def _export_other(
    project: Path, cycle_dir: Path, k: int, batch: Sequence, preds: dict[int, Prediction],
    manifest: dict, names: list[str], cfg: Config, formats: list[str],
) -> list[str]:
    """Formats other than the bundle, written by :mod:`detal.export` into ``cycles/<k>/exports/``.

    Imported only when such a format is asked for, so the default path does
    not depend on it. Images are presented under their bundle names (through
    symbolic links in a scratch folder) so that every format names an image
    the way the bundle does, and ``detal import --format ...`` can match it.
    """
    from dataclasses import replace

    from detal.export import export_predictions, normalise_uncertainty

    links = cycle_dir / f".export-links.tmp-{os.getpid()}"
    shutil.rmtree(links, ignore_errors=True)
    links.mkdir()
    try:
        renamed, scores = [], {}
        for r in batch:
            if r.id not in preds:
                continue
            name = _bundle_name(r)
            os.symlink((project / r.relpath).resolve(), links / name)
            renamed.append(replace(preds[r.id], path=links / name))
            scores[name] = manifest[r.id][0]
        export_predictions(
            renamed, names, cycle_dir / "exports", formats,
            scores=normalise_uncertainty(scores), cycle=k, conf=cfg.prelabel_conf,
        )
    finally:
        shutil.rmtree(links, ignore_errors=True)
    return formats


# -- import --------------------------------------------------------------------------
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
            if info.is_dir() or "__MACOSX" in parts or not name.endswith(".txt"):
                continue
            if PurePosixPath(name).name.startswith("."):
                continue
            if info.file_size > _MAX_LABEL_BYTES:
                problems.append(LabelProblem(where, 0, "label file too large"))
                continue
            try:
                entries.append((where, zf.read(info).decode("utf-8-sig")))
            except UnicodeDecodeError:
                problems.append(LabelProblem(where, 0, "not UTF-8 text"))
            except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
                problems.append(LabelProblem(where, 0, f"cannot read from zip ({exc})"))
    return entries


def _folder_entries(path: Path, problems: list) -> list[tuple[str, str]]:
    entries = []
    for dirpath, dirs, files in os.walk(path, followlinks=False):
        for name in sorted(dirs):
            if os.path.islink(os.path.join(dirpath, name)):
                problems.append(LabelProblem(os.path.join(dirpath, name), 0, "symbolic link not allowed"))
        for name in sorted(files):
            full = Path(dirpath) / name
            if full.is_symlink():
                if name.endswith(".txt"):
                    problems.append(LabelProblem(str(full), 0, "symbolic link not allowed"))
                continue
            if not name.endswith(".txt") or name.startswith("."):
                continue
            text = _read_text(full, str(full), problems)
            if text is not None:
                entries.append((str(full), text))
    return entries


def _read_source(path: Path, fmt: str, names: list[str], problems: list) -> list[tuple[str, str, str]]:
    """``(display name, image key, label text)`` for every label file in ``path``."""
    if fmt != "yolo":
        from detal.export import read_returned_labels  # only for the vendor formats

        return [(f"{path}!{n}", n, t) for n, t in sorted(read_returned_labels(path, fmt, names).items())]
    # A YOLO label file is named after its image: <key>.txt, in any folder.
    if path.is_dir():
        return [(where, Path(where).name[: -len(".txt")], text)
                for where, text in _folder_entries(path, problems)]
    if path.is_file() and zipfile.is_zipfile(path):
        inner = len(f"{path}!")
        return [(where, PurePosixPath(where[inner:].replace("\\", "/")).name[: -len(".txt")], text)
                for where, text in _zip_entries(path, problems)]
    if not path.exists():
        raise DataError(f"{path}: not found")
    raise DataError(f"{path}: expected a folder or a .zip of YOLO .txt label files")


def import_labels(
    project: str | Path,
    path: str | Path,
    *,
    fmt: str = "yolo",
    overwrite: bool = False,
    hooks: Hooks | None = None,
) -> ImportReport:
    """Import corrected labels for the batch that is out, all or nothing.

    Every file is validated first, and every problem is reported in one
    :class:`DataError`. Labels of images that are already labeled are left
    alone when identical and rejected when different, unless ``overwrite``.
    """
    project, path = Path(project), Path(path)
    hooks = hooks or _NO_HOOKS
    store = _open_store(project)
    try:
        with _project_lock(project):
            return _import(project, store, path, fmt, overwrite, hooks)
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
    entries = _read_source(path, fmt, names, problems)
    by_key = store.images_by_key()
    seen: dict[str, str] = {}
    new, changed, unchanged, not_out = [], [], 0, 0
    for where, key, text in entries:
        if key not in by_key and PurePosixPath(key).suffix:
            key = PurePosixPath(key).stem  # COCO names images with their suffix
        row = by_key.get(key)
        if row is None or row.status == Status.VAL.value:
            if f"{key}.txt" in _NOT_LABELS:
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
        target = project / _label_relpath(row.relpath)
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
    if not _batch_out(store) and not overwrite and (not_out or not entries):
        raise StateError(
            f"{project}: no batch is out, so there is nothing to import from {path} "
            "(run detal cycle to select one)"
        )
    if problems:
        raise _problems_error(path, problems, "nothing imported")
    if not entries:
        raise DataError(f"{path}: no label files (.txt) found")
    hooks.emit("on_import_validated", n_new=len(new), n_changed=len(changed))

    staging = labels_root / f".staging-{os.getpid()}"
    staging.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    for n, (row, text) in enumerate(new + changed):
        staged = staging / f"{n}.txt"
        staged.write_text(text, encoding="utf-8")
        target = project / _label_relpath(row.relpath)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_file() and _norm_label(target.read_text(encoding="utf-8")) != _norm_label(text):
            backup = labels_root / ".replaced" / _label_relpath(row.relpath).relative_to(LABELS_DIR)
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


# -- status --------------------------------------------------------------------------
def project_status(project: str | Path) -> dict[str, Any]:
    """Everything ``detal status`` shows, as plain data (JSON-ready)."""
    project = Path(project)
    store = _open_store(project)
    try:
        counts = store.status_counts()
        pool_size = sum(v for s, v in counts.items() if s != Status.VAL.value)
        cfg = project_config(project)
        cycles = []
        for c in store.cycles():
            metrics = c.metrics or {}
            cycles.append({
                "cycle": c.id,
                "state": c.state,
                "n_train": c.n_train,
                "n_selected": c.n_selected,
                "map50": metrics.get("map50"),
                "map50_95": metrics.get("map50_95"),
                "weights": c.weights,
                "timings": c.timings,
            })
        out = [
            {"cycle": cyc, "remaining": rem, "selected": tot,
             "bundle": f"{CYCLES_DIR}/{cyc}/batch-{cyc}.zip"}
            for cyc, (rem, tot) in sorted(_batch_out(store).items())
        ]
        return {
            "project": str(project),
            "classes": store.get_meta("classes"),
            "images": {"pool": pool_size, **counts},
            "labeled_fraction": counts[Status.LABELED.value] / pool_size if pool_size else 0.0,
            "max_labeled_fraction": cfg.max_labeled_fraction,
            "cycles": cycles,
            "batch_out": out,
            "duplicates": store.duplicates(),
            "imports": len(store.imports()),
            "running": _command_running(project),
        }
    finally:
        store.close()
