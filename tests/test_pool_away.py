"""A pool whose disk is unmounted, or whose ``images`` link breaks, between cycles (issue 22, defect 5).

The issue's case: one cycle run while the disk was away marked every
labeled and validation image ``missing`` for good, and the project had 0
labeled images once the disk was back. Now the cycle is refused with one
line, nothing is marked, and once the folder is back the project is what it
was: the same labeled images, the cycle runs or resumes. Images an older
detal marked ``missing`` come back when their file does. The refusals, one
per way a folder goes away, are ``case_cycle_pool_*`` / ``case_import_*``
in ``test_hostile_project.py``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import zipfile
from pathlib import Path

import pytest
from projectkit import NAMES, db_rows, label_cycle, make_images, make_project, write_returned

from detal.cli import main
from detal.commands import project as project_cmd
from detal.errors import StateError
from detal.fake import FakeAdapter
from detal.project import Hooks, run_cycle
from detal.store import Store


@pytest.fixture(autouse=True)
def fake_adapter(monkeypatch):
    monkeypatch.setattr(project_cmd, "make_adapter", lambda cfg, project: FakeAdapter(len(NAMES), seed=2))


@pytest.fixture
def disk(tmp_path):
    """A folder of 40 images bind-mounted at ``tmp_path/mnt``, as a disk is; ``(source, mount point)``."""
    src, at = tmp_path / "disk", tmp_path / "mnt"
    make_images(src, 40, sub_every=10)
    at.mkdir()
    if subprocess.run(["mount", "--bind", str(src), str(at)], check=False, capture_output=True).returncode:
        pytest.skip("cannot bind-mount here")
    yield src, at
    subprocess.run(["umount", "-l", str(at)], check=False, capture_output=True)


def _ready(t: Path, val: int = 3) -> Path:
    """Batches 0 and 1 labeled, a val split: ``detal cycle`` would run cycle 2."""
    project = make_project(t, n=40, val=val)
    label_cycle(project, 0, t)
    run_cycle(project, FakeAdapter(len(NAMES), seed=2))
    label_cycle(project, 1, t)
    return project


def _status(project: Path, capsys) -> dict:
    capsys.readouterr()
    assert main(["status", str(project), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _refused(argv: list[str], capsys, *words: str) -> None:
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("detal: error: ") and "Traceback" not in err[0], err
    for word in words:
        assert word in err[0], err[0]


def _away(t: Path, project: Path, how: str):
    """Take the pool away ``how``; return the function that brings it back."""
    pool, link = t / "images", project / "images"
    if how == "folder moved":
        pool.rename(t / "away")
        return lambda: (t / "away").rename(pool)
    if how == "link broken":
        target = os.readlink(link)
        link.unlink()
        link.symlink_to(t / "nowhere", target_is_directory=True)
        return lambda: (link.unlink(), link.symlink_to(target, target_is_directory=True))
    if how == "link at an empty folder":
        (t / "empty").mkdir()
        target = os.readlink(link)
        link.unlink()
        link.symlink_to(t / "empty", target_is_directory=True)
        return lambda: (link.unlink(), link.symlink_to(target, target_is_directory=True))
    if how == "link at another folder":
        make_images(t / "other", 40, start=300)
        target = os.readlink(link)
        link.unlink()
        link.symlink_to(t / "other", target_is_directory=True)
        return lambda: (link.unlink(), link.symlink_to(target, target_is_directory=True))
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["folder moved", "link broken", "link at an empty folder", "link at another folder"])
def test_a_pool_away_between_cycles_refuses_and_the_project_comes_back_unchanged(tmp_path, capsys, how):
    project = _ready(tmp_path)
    before = db_rows(project)
    labeled = _status(project, capsys)["images"]["labeled"]
    back = _away(tmp_path, project, how)

    _refused(["cycle", str(project)], capsys, "nothing")
    _refused(["cycle", str(project), "--if-ready"], capsys)  # cron's line too: an error, not "nothing to do"
    assert db_rows(project) == before  # nothing marked, no cycle recorded
    assert not (project / "cycles" / "2").exists()

    back()
    capsys.readouterr()
    assert main(["cycle", str(project)]) == 0, capsys.readouterr().err
    st = _status(project, capsys)
    assert st["images"]["labeled"] == labeled and st["images"]["missing"] == 0 and st["images"]["val"] == 3
    assert [c["state"] for c in st["cycles"]][-1] == "done" and st["cycles"][-1]["cycle"] == 2
    with Store.open(project / "detal.db") as store:
        assert store.cycle(2).n_train == labeled


def test_an_unmounted_disk_between_cycles(tmp_path, capsys, disk):
    src, at = disk
    (tmp_path / "images").symlink_to(at, target_is_directory=True)
    project = _ready(tmp_path, val=0)
    before = db_rows(project)
    subprocess.run(["umount", str(at)], check=True)
    _refused(["cycle", str(project)], capsys, "it is empty", "not mounted")
    _refused(["import", str(project), str(write_returned(tmp_path / "r", project, 1))], capsys, "it is empty")
    assert db_rows(project) == before
    subprocess.run(["mount", "--bind", str(src), str(at)], check=True)
    capsys.readouterr()
    assert main(["cycle", str(project)]) == 0, capsys.readouterr().err
    assert _status(project, capsys)["images"]["missing"] == 0


def test_a_cycle_interrupted_before_the_pool_went_away_resumes_once_it_is_back(tmp_path, capsys):
    project = make_project(tmp_path, n=40, val=2)
    label_cycle(project, 0, tmp_path)
    hooks = Hooks()

    def stop(**_):
        raise KeyboardInterrupt

    hooks.add("on_train_end", stop)
    with pytest.raises(KeyboardInterrupt):
        run_cycle(project, FakeAdapter(len(NAMES), seed=2), hooks=hooks)
    before = db_rows(project)
    back = _away(tmp_path, project, "folder moved")
    _refused(["cycle", str(project)], capsys, "cannot be reached")
    assert db_rows(project) == before
    back()
    capsys.readouterr()
    assert main(["cycle", str(project)]) == 0
    assert "resumed from state 'trained'" in capsys.readouterr().out


def _mark(project: Path, sql: str) -> None:
    conn = sqlite3.connect(project / "detal.db", isolation_level=None)
    try:
        conn.execute(sql)
    finally:
        conn.close()


def test_what_an_older_detal_marked_missing_comes_back_with_its_files(tmp_path, capsys):
    """The issue's aftermath: every labeled and val image 'missing', a cycle stuck at 'started'."""
    project = _ready(tmp_path)
    labeled = _status(project, capsys)["images"]["labeled"]
    hooks = Hooks()

    def stop(**_):
        raise KeyboardInterrupt

    hooks.add("on_cycle_start", stop)
    with pytest.raises(KeyboardInterrupt):
        run_cycle(project, FakeAdapter(len(NAMES), seed=2), hooks=hooks)
    _mark(project, "UPDATE images SET problem = 'missing' WHERE status IN ('labeled', 'val')")
    st = _status(project, capsys)
    assert st["images"]["labeled"] == 0 and st["cycles"][-1]["state"] == "started"
    _refused(["import", str(project), str(tmp_path / "returned1")], capsys, "interrupted")

    capsys.readouterr()
    assert main(["cycle", str(project)]) == 0
    out, err = capsys.readouterr()
    assert "resumed from state 'started'" in out and f"{labeled + 3} image(s) taken out of the pool are back" in err
    st = _status(project, capsys)
    assert st["images"]["labeled"] == labeled and st["images"]["val"] == 3 and st["images"]["missing"] == 0
    with Store.open(project / "detal.db") as store:
        assert store.cycle(2).n_train == labeled


def test_an_image_changed_and_changed_back_is_usable_again(tmp_path, capsys):
    project = _ready(tmp_path)
    with Store.open(project / "detal.db") as store:
        row = store.images(status="labeled")[0]
    path = project / row.relpath
    original = path.read_bytes()
    path.write_bytes(original + b"x")  # one file changed: below the share, taken out
    capsys.readouterr()
    assert main(["cycle", str(project)]) == 0
    assert f"{row.relpath}: changed" in capsys.readouterr().err
    path.write_bytes(original)
    label_cycle(project, 2, tmp_path)  # the import brings it back first
    with Store.open(project / "detal.db") as store:
        [again] = store.images([row.id])
        assert again.problem is None and again.status == "labeled"


def test_a_picked_image_gone_when_its_batch_was_written_rejoins_the_pool_not_the_batch(tmp_path, capsys):
    project = make_project(tmp_path, n=40)
    label_cycle(project, 0, tmp_path)
    gone: list[Path] = []

    def delete_one(cycle, ids):
        with Store.open(project / "detal.db") as store:
            row = store.images([int(ids[0])])[0]
        gone.append(project / row.relpath)
        gone.append(gone[0].with_name(gone[0].name + ".kept"))
        gone[0].rename(gone[1])

    hooks = Hooks()
    hooks.add("on_select_end", delete_one)
    report = run_cycle(project, FakeAdapter(len(NAMES), seed=2), hooks=hooks)
    assert report.n_selected == 3 and len(report.dropped) == 1
    gone[1].rename(gone[0])
    label_cycle(project, 1, tmp_path)  # the 3 that went out; the fourth never did
    with Store.open(project / "detal.db") as store:
        [row] = [r for r in store.images() if project / r.relpath == gone[0]]
        assert row.problem is None and row.status == "unlabeled" and row.selected_cycle == -1
        assert store.batch_out() == {}
    capsys.readouterr()
    assert main(["cycle", str(project)]) == 0, capsys.readouterr().err


def test_files_deleted_on_purpose_leave_with_allow_missing(tmp_path, capsys):
    project = _ready(tmp_path)
    with Store.open(project / "detal.db") as store:
        labeled = store.images(status="labeled")
    for row in labeled[:-2]:
        (project / row.relpath).unlink()
    before = db_rows(project)
    _refused(["cycle", str(project)], capsys, f"{len(labeled) - 2} of the", "--allow-missing")
    assert db_rows(project) == before
    capsys.readouterr()
    assert main(["cycle", str(project), "--allow-missing"]) == 0
    assert capsys.readouterr().err.count("taken out of the pool") == len(labeled) - 2
    st = _status(project, capsys)
    assert st["images"]["missing"] == len(labeled) - 2 and st["images"]["labeled"] == 2


def test_a_few_files_gone_are_taken_out_as_before(tmp_path, capsys):
    """Under :data:`~detal.project.verify.MIN_LOST` files, or not more than half, is no unmounted disk."""
    project = _ready(tmp_path)
    with Store.open(project / "detal.db") as store:
        labeled = store.images(status="labeled")
    for row in labeled[:2]:
        (project / row.relpath).unlink()
    capsys.readouterr()
    assert main(["cycle", str(project)]) == 0
    assert _status(project, capsys)["images"]["missing"] == 2


def test_push_is_refused_while_the_pool_is_away(tmp_path, capsys):
    from test_image_frame import FakeLabelStudio

    from detal.labelstudio import push_batch

    project = make_project(tmp_path, n=20)
    _away(tmp_path, project, "link broken")
    server = FakeLabelStudio()
    with pytest.raises(StateError, match="the image folder cannot be reached"):
        push_batch(project, server.url, client=server, token="x")
    assert server.tasks_by_id == {}


@pytest.mark.parametrize("how", ["folder moved", "link broken", "link at an empty folder"])
def test_status_says_the_pool_cannot_be_reached(tmp_path, capsys, how):
    """``detal status`` only reads, so it runs, but its figures are then what the store remembers:
    it names the folder and why, in the text and in ``--json``, and says nothing once it is back."""
    project = _ready(tmp_path)
    back = _away(tmp_path, project, how)
    capsys.readouterr()
    assert main(["status", str(project)]) == 0
    out = capsys.readouterr().out
    warned = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert len(warned) == 1 and f"{project / 'images'}: the image folder cannot be reached" in warned[0], out
    assert "cycle, import, push and pull refuse" in warned[0]
    [note] = _status(project, capsys)["unreachable"]
    assert note == warned[0][len("warning: "):]
    back()
    assert _status(project, capsys)["unreachable"] == []
    capsys.readouterr()
    assert main(["status", str(project)]) == 0
    assert "warning" not in capsys.readouterr().out


def test_status_says_an_unmounted_disk_cannot_be_reached(tmp_path, capsys, disk):
    src, at = disk
    (tmp_path / "images").symlink_to(at, target_is_directory=True)
    project = _ready(tmp_path, val=0)
    subprocess.run(["umount", str(at)], check=True)
    [note] = _status(project, capsys)["unreachable"]
    assert "it is empty" in note and "not mounted" in note
    subprocess.run(["mount", "--bind", str(src), str(at)], check=True)
    assert _status(project, capsys)["unreachable"] == []


def _spoil_part(t: Path, project: Path, how: str) -> tuple[set[str], object]:
    """Take part of the pool away ``how`` (below the refusal's share); the relpaths spoiled, and the
    function that puts them back."""
    from PIL import Image

    with Store.open(project / "detal.db") as store:
        rows = {r.relpath: r for r in store.images()}
    labeled = sorted(p for p, r in rows.items() if r.status == "labeled")
    unlabeled = sorted(p for p, r in rows.items() if r.status == "unlabeled" and "/sub/" not in p)
    if how == "a subfolder gone":
        (t / "images" / "sub").rename(t / "sub-away")
        return {p for p in rows if p.startswith("images/sub/")}, lambda: (t / "sub-away").rename(t / "images" / "sub")
    if how == "a labeled image replaced by another picture of the same name":
        path = project / labeled[0]
        original = path.read_bytes()
        Image.new("RGB", (16, 12), (200, 10, 10)).save(path)
        return {labeled[0]}, lambda: path.write_bytes(original)
    if how == "one deleted, one replaced, one renamed in case":
        gone, replaced, renamed = (project / p for p in (labeled[0], unlabeled[0], unlabeled[1]))
        saved = {p: p.read_bytes() for p in (gone, replaced)}
        gone.unlink()
        replaced.write_bytes(saved[replaced] + b"x")
        renamed.rename(renamed.with_name(renamed.name.upper()))

        def back():
            for p, data in saved.items():
                p.write_bytes(data)
            renamed.with_name(renamed.name.upper()).rename(renamed)
        return {labeled[0], unlabeled[0], unlabeled[1]}, back
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["a subfolder gone", "a labeled image replaced by another picture of the same name",
                                 "one deleted, one replaced, one renamed in case"])
def test_a_partly_missing_pool_marks_only_what_is_missing_and_gets_it_back(tmp_path, capsys, how):
    """Below the refusal's share the cycle goes on: only spoiled images are taken out (each one the
    cycle uses: every labeled one; an unlabeled one only if it is scored), none goes out in the new
    bundle, every other keeps its status; once the files are back as init recorded them, they are
    usable again with the status they had."""
    from detal.project.verify import check_pool

    project = _ready(tmp_path)
    with Store.open(project / "detal.db") as store:
        before = {r.relpath: r.status for r in store.images()}
    spoiled, put_back = _spoil_part(tmp_path, project, how)
    capsys.readouterr()
    assert main(["cycle", str(project)]) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    with Store.open(project / "detal.db") as store:
        after = {r.relpath: r for r in store.images()}
    marked = {p for p, r in after.items() if r.problem is not None}
    assert marked <= spoiled
    assert {p for p in spoiled if before[p] == "labeled"} <= marked
    with zipfile.ZipFile(project / "cycles" / "2" / "batch-2.zip") as zf:
        shipped = {Path(n).stem for n in zf.namelist()}
    assert shipped and not {after[p].key for p in spoiled} & shipped
    for path, status in before.items():
        if path not in spoiled and status != "unlabeled":  # the cycle only picks from the unlabeled
            assert after[path].status == status, path
    assert all(p in err for p in marked), err
    put_back()
    with Store.open(project / "detal.db") as store:
        check_pool(project, store)
        assert [r.relpath for r in store.images() if r.problem is not None] == []
        assert {r.relpath: r.status for r in store.images() if r.relpath in spoiled} == {
            p: before[p] for p in spoiled}
