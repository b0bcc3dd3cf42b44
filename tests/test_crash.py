"""Fault injection: kill -9 during ``cycle`` and ``import``, then rerun.

A subprocess runs the API with the fake adapter and SIGKILLs itself at a
named point (a hook event, or inside the adapter's train/predict). After the
kill the project must be consistent (integrity check, cycle states, a label
file for every labeled image, no label lost); after a rerun it must equal a
reference project that ran the same steps without a crash.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from projectkit import NAMES, db_rows, label_cycle, make_project, write_returned

from detal.fake import FakeAdapter
from detal.labels import parse_label_text
from detal.project import import_labels, project_status, run_cycle

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from detal.fake import FakeAdapter
    from detal.project import Hooks, import_labels, run_cycle

    project, action, point = sys.argv[1:4]

    def die(**info):
        os.kill(os.getpid(), signal.SIGKILL)

    class Crashy(FakeAdapter):
        def train(self, *args, **kwargs):
            result = super().train(*args, **kwargs)
            if point == "in_train":
                die()
            return result

        def predict(self, *args, **kwargs):
            if point == "in_predict":
                die()
            return super().predict(*args, **kwargs)

    if point == "in_record_corrections":  # inside the import's transaction, its last write done
        from detal.store import Store

        record = Store.record_corrections

        def record_and_die(self, *args, **kwargs):
            record(self, *args, **kwargs)
            die()

        Store.record_corrections = record_and_die

    hooks = Hooks()
    if point.startswith("on_"):
        if point == "on_label_written":
            hooks.add(point, lambda index, **_: index == 1 and die())
        else:
            hooks.add(point, die)
    if action == "cycle":
        run_cycle(project, Crashy(N_CLASSES, seed=1), hooks=hooks)
    else:
        import_labels(project, sys.argv[4], hooks=hooks, overwrite=action == "import-overwrite")
    print("finished without a crash")
    """
).replace("N_CLASSES", str(len(NAMES)))

CYCLE_POINTS = ["on_cycle_start", "in_train", "on_train_end", "in_predict", "on_select_end",
                "on_prelabels_written", "on_bundle_written", "on_export_end"]
IMPORT_POINTS = ["on_import_validated", "on_label_written", "on_labels_written", "on_import_end"]


def _crash(tmp_path: Path, project: Path, action: str, point: str, *extra: str) -> None:
    script = tmp_path / "crashy.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(project), action, point, *extra],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr


def _labels(project: Path) -> dict[str, str]:
    root = project / "labels"
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*.txt")
            if not any(part.startswith(".") for part in p.relative_to(root).parts)}


def check_consistent(project: Path) -> None:
    conn = sqlite3.connect(project / "detal.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        cycles = conn.execute("SELECT id, state FROM cycles ORDER BY id").fetchall()
        assert all(state == "done" for _, state in cycles[:-1])
        ids = [c for c, _ in cycles]
        assert ids == list(range(len(ids)))
        for relpath, status, sel, lab in conn.execute(
            "SELECT relpath, status, selected_cycle, labeled_cycle FROM images"
        ):
            if status in ("labeled", "val"):
                label = project / "labels" / Path(relpath).with_suffix(".txt")
                assert label.is_file(), f"labeled image {relpath} lost its label"
                _, problems = parse_label_text(label.read_text(), len(NAMES), str(label))
                assert not problems
            if status == "selected":
                assert sel in ids
            if status == "labeled":
                assert lab >= 0 or sel == -1
        last_id, last_state = cycles[-1]
        if last_state == "done":
            assert (project / f"cycles/{last_id}/batch-{last_id}.zip").is_file()
        scored_cycles = {c for (c,) in conn.execute("SELECT DISTINCT cycle FROM scores")}
        assert scored_cycles <= set(ids)
    finally:
        conn.close()


def _comparable(project: Path) -> dict:
    rows = db_rows(project)
    rows["cycles"] = [(r[0], r[1], r[2], r[3], r[4], r[6], r[7]) for r in rows["cycles"]]
    rows["imports"] = [r[3:] for r in rows["imports"]]
    out = {"db": rows, "labels": _labels(project)}
    for bundle in sorted(project.glob("cycles/*/batch-*.zip")):
        with zipfile.ZipFile(bundle) as zf:
            out[bundle.name] = {n: zf.read(n) for n in sorted(zf.namelist())}
    out["prelabels"] = {p.relative_to(project).as_posix(): p.read_text()
                        for p in project.glob("cycles/*/prelabels/*.txt")}
    leftovers = [p for p in project.rglob("*") if "tmp-" in p.name or ".staging-" in p.name]
    assert not leftovers, leftovers
    return out


def _pair(tmp_path: Path, cycles_done: int) -> tuple[Path, Path]:
    """Two identical projects with batch 0 labeled and ``cycles_done`` cycles run."""
    projects = []
    for name in ("crashed", "reference"):
        project = make_project(tmp_path / name, n=40, val=2)
        label_cycle(project, 0, tmp_path / name)
        for k in range(1, cycles_done + 1):
            run_cycle(project, FakeAdapter(len(NAMES), seed=1))
            if k < cycles_done:
                label_cycle(project, k, tmp_path / name)
        projects.append(project)
    return projects[0], projects[1]


@pytest.mark.parametrize("point", CYCLE_POINTS)
def test_kill_during_cycle(point, tmp_path):
    crashed, reference = _pair(tmp_path, cycles_done=1)
    label_cycle(crashed, 1, tmp_path / "crashed")
    label_cycle(reference, 1, tmp_path / "reference")
    labels_before = _labels(crashed)

    _crash(tmp_path, crashed, "cycle", point)
    check_consistent(crashed)
    assert _labels(crashed) == labels_before  # no label lost

    state = sqlite3.connect(crashed / "detal.db").execute(
        "SELECT state FROM cycles ORDER BY id DESC LIMIT 1").fetchone()[0]
    if state != "done":
        report = run_cycle(crashed, FakeAdapter(len(NAMES), seed=1))
        assert report.cycle == 2
    run_cycle(reference, FakeAdapter(len(NAMES), seed=1))
    check_consistent(crashed)
    assert _comparable(crashed) == _comparable(reference)


@pytest.mark.parametrize("point", IMPORT_POINTS)
def test_kill_during_import(point, tmp_path):
    crashed, reference = _pair(tmp_path, cycles_done=1)
    ret_c = write_returned(tmp_path / "ret_c", crashed, 1)
    ret_r = write_returned(tmp_path / "ret_r", reference, 1)
    labels_before = _labels(crashed)

    _crash(tmp_path, crashed, "import", point, str(ret_c))
    check_consistent(crashed)
    after = _labels(crashed)
    assert {k: after[k] for k in labels_before} == labels_before  # no label lost

    import_labels(crashed, ret_c)  # rerun: applies what is missing, or changes nothing
    import_labels(reference, ret_r)
    check_consistent(crashed)
    a, b = _comparable(crashed), _comparable(reference)
    assert a == b


@pytest.mark.parametrize("overwrite", [False, True])
def test_kill_while_recording_what_correcting_took_leaves_the_old_state(overwrite, tmp_path):
    """kill -9 inside the import's transaction, after its correction rows are written: nothing of it stays."""
    crashed, reference = _pair(tmp_path, cycles_done=1)
    returned = {}
    for name, project in (("c", crashed), ("r", reference)):
        returned[name] = write_returned(tmp_path / f"ret_{name}", project, 1)
        if overwrite:  # batch 1 is in; then the vendor sends a fix of every label: the pre-labels after all
            import_labels(project, returned[name])
            returned[name] = fix = tmp_path / f"fix_{name}"
            fix.mkdir()
            for key, boxes in json.loads((project / "cycles/1/shipped.json").read_text())["images"].items():
                (fix / f"{key}.txt").write_text("".join(" ".join(map(str, b[:5])) + "\n" for b in boxes))
    before = db_rows(crashed)
    corrections_before = before["corrections"]
    assert bool(corrections_before) and len(corrections_before) == (8 if overwrite else 4)

    action = "import-overwrite" if overwrite else "import"
    _crash(tmp_path, crashed, action, "in_record_corrections", str(returned["c"]))
    check_consistent(crashed)
    assert db_rows(crashed) == before  # the old state, whole

    for project, name in ((crashed, "c"), (reference, "r")):
        import_labels(project, returned[name], overwrite=overwrite)
    check_consistent(crashed)
    a, b = _comparable(crashed), _comparable(reference)
    if overwrite:  # the killed run had replaced the files: the rerun finds them unchanged, and logs no import
        assert [r[2] for r in a["db"].pop("imports")] == [0, 0] and [r[2] for r in b["db"].pop("imports")] == [0, 0, 4]
    assert a == b  # the correction rows too: the rerun recorded them for the unchanged labels
    assert db_rows(crashed)["corrections"] != corrections_before


def test_crash_script_runs_clean_without_a_point(tmp_path):
    crashed, _ = _pair(tmp_path, cycles_done=1)
    script = tmp_path / "crashy.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(crashed), "import", "none",
                           str(write_returned(tmp_path / "r", crashed, 1))],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and "finished without a crash" in proc.stdout, proc.stderr


def test_two_commands_at_once_are_refused(tmp_path):
    import fcntl

    from detal.errors import StateError

    project = make_project(tmp_path, n=20)
    with open(project / ".detal.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(StateError, match="another detal command"):
            import_labels(project, write_returned(tmp_path / "r", project, 0))
        assert project_status(project)["running"] is True
    assert project_status(project)["running"] is False
    assert os.path.exists(project / "detal.db")
