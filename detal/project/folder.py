"""The project folder: its lock, its store, its config, hooks and reports.

Its layout, every path in it, is named once in :mod:`detal.project.paths`.

Shared by every verb (:mod:`~detal.project.create`, :mod:`~detal.project.cycle`,
:mod:`~detal.project.label_import`, :mod:`~detal.project.status`).
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detal.adapter import LabeledImage, Metrics
from detal.config import Config, load_config
from detal.errors import BusyError, DataError, StateError, unknown
from detal.labels import LabelProblem
from detal.project.paths import (
    CLASSES_FILE,
    CONFIG_FILE,
    CYCLES_DIR,
    LABELS_DIR,
    LOCK_FILE,
    ProjectPaths,
    label_relpath,
)
from detal.store import DB_NAME, Store

__all__ = [
    "CLASSES_FILE",
    "CONFIG_FILE",
    "CYCLES_DIR",
    "EVENTS",
    "LABELS_DIR",
    "LOCK_FILE",
    "CycleReport",
    "Hooks",
    "ImportReport",
    "InitReport",
    "batch_out",
    "command_running",
    "folder_lock",
    "label_relpath",
    "open_store",
    "pairs",
    "problems_error",
    "project_config",
]

_MAX_LISTED_PROBLEMS = 200

EVENTS = (
    "on_cycle_start",
    "on_train_progress",
    "on_train_end",
    "on_teacher_trained",
    "on_pseudo_written",
    "on_stage_end",
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
            raise ValueError(unknown("event", event, EVENTS))
        self._callbacks[event].append(fn)

    def emit(self, event: str, **info: Any) -> None:
        for fn in self._callbacks[event]:
            fn(**info)


NO_HOOKS = Hooks()


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
    names: list[str] = field(default_factory=list)
    """The project's class names, in id order."""
    dead_links: list[str] = field(default_factory=list)
    """Image-named links in the image folders that lead nowhere, skipped (their paths)."""


@dataclass
class CycleReport:
    """What one cycle did. ``bundle`` is ``None`` when none was written (nothing selected,
    or bundles switched off)."""

    cycle: int
    resumed_from: str | None
    n_train: int
    metrics: Metrics | None
    n_selected: int
    prelabels: Path
    bundle: Path | None
    exports: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    dropped: list[tuple[str, str]] = field(default_factory=list)
    """Images taken out of the pool in this run: ``(relpath, "missing" | "changed" | "unreadable")``."""


@dataclass
class ImportReport:
    n_labeled: int
    n_unchanged: int
    n_overwritten: int
    remaining: int


# -- small helpers ---------------------------------------------------------------------
def problems_error(source: object, problems: Sequence[LabelProblem | str], what: str) -> DataError:
    """One :class:`DataError` listing (the first 200 of) ``problems``; ``.problems`` keeps them all."""
    shown = [str(p) for p in problems[:_MAX_LISTED_PROBLEMS]]
    more = len(problems) - len(shown)
    tail = f"; ... and {more} more" if more > 0 else ""
    return DataError(f"{source}: {len(problems)} problem(s), {what}: " + "; ".join(shown) + tail, problems=problems)


def pairs(project: Path, rows: Iterable) -> list[LabeledImage]:
    """``(image, label)`` paths of image rows, for the adapter."""
    paths = ProjectPaths(project)
    return [(project / r.relpath, paths.label(r.relpath)) for r in rows]


@contextmanager
def folder_lock(folder: Path, what: str = "another detal command is running on this project") -> Iterator[None]:
    """Hold ``folder/.detal.lock`` (flock) or raise :class:`~detal.errors.BusyError` at once.

    The one lock of detal: a cycle or an import on a project, and a whole
    simulation on its output folder. The kernel releases it when the process
    dies, even by ``kill -9``, so there is never a stale lock to clean up.
    """
    try:
        fh = open(ProjectPaths(folder).lock, "a+")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise StateError(
            f"{folder}: cannot open the lock file {LOCK_FILE} ({exc.strerror}); this command "
            "changes the project, so it needs a folder it may write (detal status only reads)"
        ) from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BusyError(f"{folder}: {what}") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def command_running(folder: Path) -> bool:
    """Whether a process holds the folder's lock right now."""
    lock = ProjectPaths(folder).lock
    try:
        # read-only: flock needs no write access, and nothing is created
        with open(lock, "rb") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
            return False
    except OSError:
        return False


def open_store(project: Path, *, readonly: bool = False) -> Store:
    """The project's store; ``readonly`` for commands that only show (``mode=ro``, never writes)."""
    project = Path(project)
    db = ProjectPaths(project).db
    if not db.is_file():
        raise StateError(f"{project}: not a detal project (no {DB_NAME}; run detal init first)")
    return Store.open(db, readonly=readonly)


def project_config(project: str | Path, overrides: Iterable[str] = ()) -> Config:
    """The project's config snapshot with ``key=value`` overrides applied."""
    paths = ProjectPaths(project)
    if not paths.db.is_file():
        raise StateError(f"{project}: not a detal project (no {DB_NAME}; run detal init first)")
    path = paths.config
    if not path.is_file():
        raise StateError(f"{path}: config snapshot missing")
    return load_config(path, overrides)


def batch_out(store: Store) -> dict[int, tuple[int, int]]:
    """``cycle -> (images still out, images selected in that cycle)`` for batches not fully in."""
    return store.batch_out()
