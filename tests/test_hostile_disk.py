"""A full disk and a read-only database, for real (issue 22, defects 14 and 15).

No mock: the project lies on a small tmpfs mounted for the test, a filler
file takes its space down to a few kilobytes or none, and ``detal`` runs as
a user runs it, in a subprocess (the fake adapter: no training). Every
command that writes (``init``, ``init --force``, ``import``, ``import
--overwrite``, ``cycle`` with and without other export formats, ``review``,
``score``, ``prelabel``) must then

- exit 1 with one line, ``<path>: the disk is full (no space left on
  device); free space and rerun``, and no traceback; never "not a detal
  project database", which invites ``init --force`` on a healthy one;
- leave the project as it was: the same files (no half-written one) and
  the same rows, so no label is lost; a cycle may keep the stage it had
  committed (a cycle resumes, :mod:`detal.project.cycle`), and nothing more;
- once the filler is gone, run the same command through, as it would have.

``detal status`` only reads, so it works on a full disk. ``pull`` comes in
through the same import (:func:`detal.project.import_keyed_labels`), tested
in process; ``push`` writes only through the store's transactions.

A read-only ``detal.db`` (``chattr +i``, or a read-only bind mount of the
file: as root ``chmod 0444`` stops nothing) is refused when the store opens
(its write probe), before a label file is written; those cases are in the
table of ``test_hostile_project.py``, and the all-or-nothing import is
checked here against a database that turns read-only after its files are
staged.

Mounting needs root: elsewhere every test here is skipped, with a warning
saying so.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from projectkit import (
    NAMES,
    label_cycle,
    make_images,
    make_project,
    snapshot,
    write_classes,
    write_returned,
)

from detal.errors import disk_full
from detal.fake import FakeAdapter
from detal.project import Hooks, import_keyed_labels, import_labels, run_cycle
from detal.store import checkpoint

ROOT = Path(__file__).resolve().parents[1]
DISK_SIZE = "24m"
FULL_LINE = "the disk is full (no space left on device); free space and rerun"


def _skip_loudly(why: str) -> None:
    message = f"{why}: the full-disk tests did NOT run"
    warnings.warn(message, stacklevel=2)
    pytest.skip(message)


class Disk:
    """A tmpfs at ``root``; :meth:`fill` leaves ``leave`` bytes free, :meth:`free` gives them back."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.filler = root / "filler"

    def fill(self, leave: int = 0) -> None:
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            for size in (1 << 16, 4096):  # big writes, then the last pages
                try:
                    while True:
                        os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)
        if leave:
            os.truncate(self.filler, max(0, self.filler.stat().st_size - leave))
        assert self.free_bytes() <= leave + 4096

    def free_bytes(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def disk(tmp_path):
    if os.geteuid() != 0:
        _skip_loudly("not root, so no tmpfs can be mounted")
    at = tmp_path / "disk"
    at.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(at)],
                          capture_output=True, text=True, check=False)
    if made.returncode:
        _skip_loudly(f"cannot mount a tmpfs here ({made.stderr.strip()})")
    try:
        yield Disk(at)
    finally:
        subprocess.run(["umount", "-l", str(at)], check=False)


def detal(*argv: object, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m detal ARGV`` with the fake adapter, as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DETAL_FAKE_ADAPTER": "1"}
    return subprocess.run([sys.executable, "-m", "detal", *map(str, argv)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300, check=False)


# -- the projects, on the disk ------------------------------------------------------------------


def _fresh(disk: Disk, t: Path) -> Path:
    """Just made: batch 0 (4 images) is out."""
    return make_project(disk.root, n=40, name="p")


def _labeled(disk: Disk, t: Path) -> Path:
    """Batch 0 labeled: ``detal cycle`` would run cycle 1."""
    project = _fresh(disk, t)
    label_cycle(project, 0, t)
    return project


def _cycled(disk: Disk, t: Path) -> Path:
    """Cycle 1 done: batch 1 is out with pre-labels."""
    project = _labeled(disk, t)
    run_cycle(project, FakeAdapter(len(NAMES), seed=2))
    return project


def _weights(project: Path) -> Path:
    return project / "cycles" / "1" / "train" / "weights.json"


# -- every command that writes: (setup, argv); the command runs in t --------------------------------

COMMANDS = {
    "init": (lambda d, t: make_images(d.root / "images", 40, sub_every=10), lambda d, t: [
        "init", d.root / "q", "--images", d.root / "images", "--classes", write_classes(t / "classes.txt")]),
    "init-with-labels": (lambda d, t: make_images(d.root / "images", 40, sub_every=10), lambda d, t: [
        "init", d.root / "q", "--images", d.root / "images", "--classes", write_classes(t / "classes.txt"),
        "--labels", _own_labels(t)]),
    "init-force": (_fresh, lambda d, t: [
        "init", d.root / "p", "--force", "--images", d.root / "images", "--classes",
        write_classes(t / "classes.txt")]),
    "import": (_fresh, lambda d, t: ["import", d.root / "p", write_returned(t / "ret", d.root / "p", 0)]),
    "import-zip": (_fresh, lambda d, t: ["import", d.root / "p", _zipped(write_returned(t / "ret", d.root / "p", 0))]),
    "import-overwrite": (_labeled, lambda d, t: [
        "import", d.root / "p", write_returned(t / "ret2", d.root / "p", 0, "2 0.4 0.4 0.3 0.3"), "--overwrite"]),
    "cycle": (_labeled, lambda d, t: ["cycle", d.root / "p"]),
    "cycle-formats": (_labeled, lambda d, t: ["cycle", d.root / "p", "--format", "yolo,coco,cvat-yolo,label-studio"]),
    "review": (_cycled, lambda d, t: ["review", d.root / "p"]),
    "review-out": (_cycled, lambda d, t: ["review", d.root / "p", "--out", d.root / "page"]),
    "score": (_cycled, lambda d, t: [
        "score", "--weights", _weights(d.root / "p"), "--images", d.root / "images", "--out", d.root / "s.csv",
        "--embeddings", d.root / "e.npz", "--quiet"]),
    "prelabel": (_cycled, lambda d, t: [
        "prelabel", "--weights", _weights(d.root / "p"), "--images", d.root / "images", "--out", d.root / "pre",
        "--classes", write_classes(t / "classes.txt"), "--format", "yolo,coco", "--quiet"]),
}


def _own_labels(t: Path) -> Path:
    folder = t / "own"
    folder.mkdir(exist_ok=True)
    for i in range(1, 9):
        (folder / f"im{i:03d}.txt").write_text("1 0.5 0.5 0.3 0.3\n")
    return folder


def _zipped(folder: Path) -> Path:
    import shutil

    return Path(shutil.make_archive(str(folder), "zip", folder))


LEAVE = [0, 4 << 10, 8 << 10, 16 << 10, 24 << 10, 32 << 10, 40 << 10, 48 << 10, 64 << 10, 96 << 10,
         128 << 10, 192 << 10, 256 << 10, 384 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20, 8 << 20]
"""Bytes left free, one try each until the command runs through: none (SQLite cannot even make its
``-shm`` file), a few pages, room for the ``-shm`` but not for the writes, then room for some writes
but not all, and so on. Every try before the one that runs through meets the disk at another point."""


def _state(disk: Disk) -> dict:
    """Every file on the disk but the filler (hashes), and every row of each project database.

    Then each database is closed by a last connection that may write (a checkpoint), so SQLite
    removes its ``-wal`` and ``-shm`` files: a command that would remove them on close frees no room
    the filler is meant to take, and every try meets the disk as filled.
    """
    state = snapshot(disk.root)
    state["files"].pop("filler", None)
    for db in disk.root.rglob("detal.db"):
        checkpoint(db)
    return state


def _one_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("detal: error: "), lines[0]
    return lines[0]


def _cycle_kept_a_stage(before: dict, after: dict) -> bool:
    """Whether ``after`` differs from ``before`` only by a cycle stopped at a stage it committed."""
    rows_b, rows_a = before["p/detal.db"], after["p/detal.db"]
    if any(rows_b[t] != rows_a[t] for t in rows_b if t not in ("cycles", "scores", "images")):
        return False
    new = [r for r in rows_a["cycles"] if r not in rows_b["cycles"]]
    return len(new) == 1 and new[0][1] in ("started", "trained", "selected")


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_full_disk_is_one_line_and_the_project_is_as_it_was(disk, tmp_path, name):
    """The command, tried with less and less room taken away (:data:`LEAVE`), on the same project: each
    try that fails is the one line and leaves everything as it was, so the next try starts from the
    same project, and the first one with room enough runs through."""
    setup, argv = COMMANDS[name]
    setup(disk, tmp_path)
    args = argv(disk, tmp_path)
    before = _state(disk)
    failed = []
    for leave in LEAVE:
        disk.fill(leave)
        proc = detal(*args, cwd=tmp_path)
        status = detal("status", disk.root / "p", cwd=tmp_path) if (disk.root / "p" / "detal.db").exists() else None
        disk.free()
        if proc.returncode == 0:
            break
        after = _state(disk)
        failed.append(leave)
        assert proc.returncode == 1, (leave, proc.stdout[-2000:], proc.stderr[-3000:])
        line = _one_line(proc)
        assert FULL_LINE in line and str(disk.root) in line, (leave, line)
        assert "not a detal project database" not in line
        if after != before:
            assert name.startswith("cycle") and _cycle_kept_a_stage(before, after), (name, leave)
            assert not [f for f in after["files"] if ".tmp-" in f or ".staging-" in f], after["files"]
        if status is not None:  # status only reads: a full disk does not stop it
            assert status.returncode == 0, (leave, status.stderr[-2000:])
    else:
        raise AssertionError(f"{name} never ran through, even with {LEAVE[-1]} bytes free")
    assert failed and failed[0] == 0, failed  # no room at all fails, every time
    assert "Traceback" not in proc.stderr


def test_a_full_disk_during_an_import_loses_no_label_and_the_rerun_equals_one_on_a_roomy_disk(disk, tmp_path):
    """Several leftovers at once: labels already there, --overwrite, a zip; the result after freeing equals
    the same import on a disk with room."""
    project = _labeled(disk, tmp_path)
    returned = write_returned(tmp_path / "ret2", project, 0, "2 0.4 0.4 0.3 0.3")
    labels = {p.relative_to(project).as_posix(): p.read_text() for p in (project / "labels").rglob("*.txt")}
    assert labels
    disk.fill(0)
    proc = detal("import", project, returned, "--overwrite", cwd=tmp_path)
    assert proc.returncode == 1 and FULL_LINE in _one_line(proc)
    disk.free()
    assert {p.relative_to(project).as_posix(): p.read_text() for p in (project / "labels").rglob("*.txt")} == labels
    assert detal("import", project, returned, "--overwrite", cwd=tmp_path).returncode == 0
    replaced = sorted((project / "labels" / ".replaced").rglob("*.txt"))
    assert sorted(p.read_text() for p in replaced) == sorted(labels.values())  # every old label kept


def test_a_full_disk_while_pulling_labels_is_one_line_and_nothing_changes(disk, tmp_path, capsys):
    """``detal pull`` imports through :func:`import_keyed_labels`: the same staging and the same undo."""
    from detal.errors import StateError
    from detal.store import Store

    project = _fresh(disk, tmp_path)
    with Store.open(project / "detal.db") as store:
        keys = [r.key for r in store.images(status="selected")]
    before = _state(disk)
    disk.fill(0)
    with pytest.raises(StateError, match="the disk is full"):
        import_keyed_labels(project, {k: "0 0.5 0.5 0.2 0.2\n" for k in keys}, "label studio")
    disk.free()
    assert _state(disk) == before


@pytest.mark.parametrize("leave", [0, 48 << 10], ids=["0k-free", "48k-free"])
def test_a_full_disk_while_pushing_is_one_line_and_the_rerun_adopts_the_tasks(disk, tmp_path, leave):
    """``detal push`` uploads, then records the task ids in the store: a full disk refuses the record
    with the one line, and the rerun adopts the tasks it made (no task twice)."""
    from test_image_frame import FakeLabelStudio

    from detal.errors import StateError
    from detal.labelstudio import push_batch

    project = _fresh(disk, tmp_path)
    server = FakeLabelStudio()
    disk.fill(leave)
    with pytest.raises(StateError, match="the disk is full") as info:
        push_batch(project, server.url, client=server, token="x")
    assert str(disk.root) in str(info.value)
    disk.free()
    report = push_batch(project, server.url, client=server, token="x")
    assert report.n_pushed + report.n_adopted == 4
    keys = sorted(t["data"]["detal_key"] for t in server.tasks_by_id.values())
    assert len(keys) == len(set(keys)) == 4


# -- all or nothing, whatever fails after the files are staged ----------------------------------------


@pytest.mark.parametrize("event", ["on_label_written", "on_labels_written"])
def test_an_import_that_fails_at_any_point_puts_every_label_back(tmp_path, event):
    """An import stopped after it renamed one label into place, or all of them (an interrupt, an
    error): ``labels/`` and the store are as they were, no backup left."""
    project = make_project(tmp_path, n=40)
    label_cycle(project, 0, tmp_path)
    returned = write_returned(tmp_path / "ret2", project, 0, "2 0.4 0.4 0.3 0.3")
    before = snapshot(project)

    class Stop(RuntimeError):
        pass

    def stop(**info):
        if event != "on_label_written" or info["index"] == 1:
            raise Stop(event)

    hooks = Hooks()
    hooks.add(event, stop)
    with pytest.raises(Stop):
        import_labels(project, returned, overwrite=True, hooks=hooks)
    assert snapshot(project) == before


def test_a_commit_the_disk_refuses_puts_every_label_back(tmp_path, monkeypatch):
    """The store's transaction fails as on a full disk, after every label file was renamed into place:
    they all go back, and the line is the disk's."""
    from detal.errors import StateError
    from detal.store import Store

    project = make_project(tmp_path, n=40)
    label_cycle(project, 0, tmp_path)
    returned = write_returned(tmp_path / "ret2", project, 0, "2 0.4 0.4 0.3 0.3")
    before = snapshot(project)

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Store, "record_import", full)
    with pytest.raises(StateError, match="the disk is full"):
        import_labels(project, returned, overwrite=True)
    assert snapshot(project) == before


# -- the helper ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("exc", "expected"), [
    (OSError(errno.ENOSPC, "No space left on device", "/d/p/labels/a.txt"),
     "/d/p/labels/a.txt: the disk is full (no space left on device); free space and rerun"),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), "/d/p: the disk quota is full (disk quota exceeded)"),
    (sqlite3.OperationalError("database or disk is full"), "/d/p: the disk is full"),
    (OSError(errno.EACCES, "Permission denied", "/d/p/x"), None),
    (OSError(errno.EIO, "Input/output error", "/d/p/x"), None),
    (sqlite3.OperationalError("database is locked"), None),
    (sqlite3.DatabaseError("file is not a database"), None),
])
def test_disk_full_recognises_what_a_full_disk_raises(exc, expected):
    error = disk_full(exc, "/d/p")
    if expected is None:
        assert error is None
    else:
        assert expected in str(error)


def test_a_disk_io_error_is_a_full_disk_only_when_the_disk_is_full(disk):
    exc = sqlite3.OperationalError("disk I/O error")
    assert disk_full(exc, disk.root / "p" / "detal.db") is None  # room left: a real I/O error, said as such
    disk.fill(0)
    assert FULL_LINE in str(disk_full(exc, disk.root / "p" / "detal.db"))
