"""Hostile input to the project core (issue 14): one line, exit 1, nothing changed.

The same pattern as ``test_hostile.py``: every ``case_*`` builds its input
under ``t`` and returns the argv of one ``detal`` command and words the
error line must hold; the runner checks, in process, exit code 1, exactly one
stderr line ``detal: error: ...`` holding every word, no traceback, and that
nothing under ``t`` changed: files, database rows, and here also the raw
bytes of every ``detal.db`` (a read-only command must not rewrite it).

Groups (the issue's numbers): 1 (the project lock on ``init --force``),
4 (an image taken out of the pool), 9 (tracebacks that become one line),
10 (read-only status), 11 (pre-labels returned unchanged), 13 (control
characters in file names), 15 (messages). What is not an error (3: the scan
follows each folder once; 4: the cycle goes on without a missing image;
5: backups never overwrite another; 1: the WAL moves with the database;
16: a killed init's folder is cleaned) is tested below the table.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from projectkit import (
    NAMES,
    batch_names,
    label_cycle,
    make_images,
    make_project,
    snapshot,
    write_classes,
    write_returned,
)

from detal.cli import main
from detal.commands import project as project_cmd
from detal.fake import FakeAdapter
from detal.project import Hooks, import_labels, init_project, run_cycle
from detal.project.create import clean_stale_init
from detal.project.folder import LOCK_FILE
from detal.store import Store

NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")
_HELD: list = []  # lock files held by a case until the runner has run


@pytest.fixture(autouse=True)
def fake_adapter(monkeypatch):
    monkeypatch.setattr(project_cmd, "make_adapter", lambda cfg, project: FakeAdapter(len(NAMES), seed=2))
    yield
    while _HELD:
        _HELD.pop().close()


# -- builders ---------------------------------------------------------------------------------


def _init(t: Path, images: Path, *extra: str, project: Path | None = None) -> list[str]:
    classes = write_classes(t / "classes.txt")
    return ["init", str(project or t / "p"), "--images", str(images), "--classes", str(classes), *extra]


def _hold_lock(project: Path) -> None:
    """Hold the project's lock as a running cycle or import does (another open file, flock)."""
    import fcntl

    fh = open(project / LOCK_FILE, "a+")  # noqa: SIM115 - closed by the fixture
    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _HELD.append(fh)


def _after_cycle_1(t: Path) -> Path:
    """A project with batch 0 labeled and cycle 1 done: batch 1 (4 images) is out with pre-labels."""
    project = make_project(t, n=40)
    label_cycle(project, 0, t)
    run_cycle(project, FakeAdapter(len(NAMES), seed=2), formats=["yolo", "cvat-yolo", "coco"])
    return project


def _sql(project: Path, *statements: str) -> None:
    conn = sqlite3.connect(project / "detal.db", isolation_level=None)
    try:
        for s in statements:
            conn.execute(s)
    finally:
        conn.close()


def _bad_image(path: Path, data: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


# -- group 1: init --force takes the project lock ---------------------------------------------


def case_init_force_while_a_command_holds_the_lock(t):
    project = make_project(t, n=20)
    _hold_lock(project)
    return _init(t, t / "images", "--force", project=project), [
        str(project), "another detal command is running on this project"]


def case_init_force_while_locked_after_an_uncheckpointed_import(t):
    project = make_project(t, n=20)
    label_cycle(project, 0, t)
    _hold_lock(project)
    return _init(t, t / "images", "--force", project=project), ["another detal command is running"]


def case_init_force_on_a_locked_project_with_images_inside(t):
    make_images(t / "p" / "imgs", 12)
    init_project(t / "p", t / "p" / "imgs", write_classes(t / "classes.txt"))
    _hold_lock(t / "p")
    return _init(t, t / "p" / "imgs", "--force"), ["another detal command is running"]


def case_import_while_init_or_cycle_holds_the_lock(t):
    project = make_project(t, n=20)
    returned = write_returned(t / "ret", project, 0)
    _hold_lock(project)
    return ["import", str(project), str(returned)], ["another detal command is running"]


# -- group 4: an image taken out of the pool ------------------------------------------------------


def case_import_label_of_an_image_taken_out_of_the_pool(t):
    project = make_project(t, n=20)
    returned = write_returned(t / "ret", project, 0)
    key = sorted(returned.iterdir())[0].stem
    _sql(project, f"UPDATE images SET problem = 'missing' WHERE key = '{key}'")
    return ["import", str(project), str(returned)], [
        f"{key}.txt", f"image {key} was taken out of the pool (missing since init)"]


def case_import_label_of_a_changed_image(t):
    project = make_project(t, n=20)
    returned = write_returned(t / "ret", project, 0)
    key = sorted(returned.iterdir())[-1].stem
    _sql(project, f"UPDATE images SET problem = 'changed' WHERE key = '{key}'")
    return ["import", str(project), str(returned)], [f"image {key} was taken out of the pool (changed"]


# -- group 9: tracebacks that become one line -------------------------------------------------


def case_init_project_under_a_regular_file(t):
    make_images(t / "imgs", 4)
    (t / "afile").write_text("x")
    return _init(t, t / "imgs", project=t / "afile" / "proj"), [
        "afile/proj", "cannot create a project there", "afile is a file, not a folder"]


def case_init_project_two_levels_under_a_regular_file(t):
    make_images(t / "imgs", 4)
    (t / "afile").write_text("x")
    return _init(t, t / "imgs", project=t / "afile" / "a" / "b"), ["afile is a file, not a folder"]


def case_init_project_is_a_regular_file(t):
    make_images(t / "imgs", 4)
    (t / "afile").write_text("x")
    return _init(t, t / "imgs", project=t / "afile"), ["afile", "exists and is not a folder"]


def case_init_project_in_a_folder_that_cannot_be_written(t):
    make_images(t / "imgs", 4)
    return _init(t, t / "imgs", project=Path("/sys/detal-hostile-test-project")), [
        "/sys/detal-hostile-test-project", "cannot write in /sys"]


def case_init_project_folder_is_the_image_folder(t):
    make_images(t / "imgs", 4)
    return _init(t, t / "imgs", project=t / "imgs"), ["imgs", "is the image folder itself"]


def case_init_project_is_a_link_to_the_image_folder(t):
    make_images(t / "imgs", 4)
    (t / "link").symlink_to(t / "imgs", target_is_directory=True)
    return _init(t, t / "imgs", project=t / "link"), ["link", "is the image folder itself"]


def case_init_image_folder_given_through_a_link_is_the_project(t):
    make_images(t / "imgs", 4)
    (t / "link").symlink_to(t / "imgs", target_is_directory=True)
    return _init(t, t / "link", project=t / "imgs"), ["imgs", "is the image folder itself"]


def case_status_database_missing_a_table(t):
    project = make_project(t, n=20)
    _sql(project, "DROP TABLE imports")
    return ["status", str(project)], ["detal.db", "damaged project database (table imports missing)"]


def case_cycle_database_missing_two_tables(t):
    project = make_project(t, n=20)
    _sql(project, "DROP TABLE scores", "DROP TABLE cycles")
    return ["cycle", str(project), "--force"], ["damaged project database (table cycles, scores missing)"]


def case_import_database_missing_the_images_table(t):
    project = make_project(t, n=20)
    returned = write_returned(t / "ret", project, 0)
    _sql(project, "DROP TABLE scores", "DROP TABLE images")
    return ["import", str(project), str(returned)], ["damaged project database (table images, scores missing)"]


def case_status_meta_classes_not_json(t):
    project = make_project(t, n=20)
    _sql(project, "UPDATE meta SET value = '[\"cat\", ' WHERE key = 'classes'")
    return ["status", str(project)], ["detal.db", "damaged project database (meta 'classes' is not valid JSON)"]


def case_import_meta_classes_not_json(t):
    project = make_project(t, n=20)
    returned = write_returned(t / "ret", project, 0)
    _sql(project, "UPDATE meta SET value = 'cat dog' WHERE key = 'classes'")
    return ["import", str(project), str(returned)], ["meta 'classes' is not valid JSON"]


def case_cycle_meta_classes_not_json(t):
    project = make_project(t, n=20)
    label_cycle(project, 0, t)
    _sql(project, "UPDATE meta SET value = '{' WHERE key = 'classes'")
    return ["cycle", str(project)], ["damaged project database", "meta 'classes'"]


def case_status_schema_version_not_json(t):
    project = make_project(t, n=20)
    _sql(project, "UPDATE meta SET value = 'one' WHERE key = 'schema_version'")
    return ["status", str(project)], ["detal.db", "unsupported schema version one"]


def case_status_database_without_meta(t):
    project = make_project(t, n=20)
    _sql(project, "DROP TABLE meta")
    return ["status", str(project)], ["detal.db", "not a detal project database (no meta table)"]


# -- group 10: read-only commands never write ---------------------------------------------------


def case_status_on_a_zero_byte_database(t):
    project = make_project(t, n=20)
    (project / "detal.db").write_bytes(b"")
    return ["status", str(project)], ["detal.db", "not a detal project database (empty file)"]


def case_status_on_a_text_file_as_database(t):
    project = make_project(t, n=20)
    (project / "detal.db").write_text("not a database at all, but long enough to have a header" * 20)
    return ["status", str(project)], ["detal.db", "not a detal project database"]


def case_import_on_a_zero_byte_database(t):
    project = make_project(t, n=20)
    returned = write_returned(t / "ret", project, 0)
    (project / "detal.db").write_bytes(b"")
    return ["import", str(project), str(returned)], ["detal.db", "(empty file)"]


def case_cycle_on_a_zero_byte_database(t):
    project = make_project(t, n=20)
    (project / "detal.db").write_bytes(b"")
    return ["cycle", str(project)], ["detal.db", "(empty file)"]


# -- group 11: the pre-labels returned unchanged --------------------------------------------------


def case_import_the_bundle_zip_unchanged(t):
    project = _after_cycle_1(t)
    return ["import", str(project), str(project / "cycles/1/batch-1.zip")], [
        "batch-1.zip", "all 4 label(s) are the pre-labels of cycle 1 unchanged", "--accept-prelabels"]


def case_import_the_prelabels_folder_unchanged(t):
    project = _after_cycle_1(t)
    shutil.copytree(project / "cycles/1/prelabels", t / "ret")
    return ["import", str(project), str(t / "ret")], ["ret", "pre-labels of cycle 1 unchanged"]


def case_import_the_prelabels_with_lines_reordered_and_respaced(t):
    project = _after_cycle_1(t)
    for f in (project / "cycles/1/prelabels").iterdir():
        lines = [" ".join(line.split()) + "  " for line in f.read_text().splitlines()]
        (t / "ret").mkdir(exist_ok=True)
        (t / "ret" / f.name).write_text("\r\n".join(reversed(lines)) + "\r\n")
    return ["import", str(project), str(t / "ret")], ["pre-labels of cycle 1 unchanged"]


def case_import_the_cvat_export_unchanged(t):
    project = _after_cycle_1(t)
    return ["import", str(project), str(project / "cycles/1/exports/cvat-yolo.zip"), "--format", "cvat-yolo"], [
        "cvat-yolo.zip", "pre-labels of cycle 1 unchanged"]


def case_import_the_coco_export_unchanged(t):
    project = _after_cycle_1(t)
    return ["import", str(project), str(project / "cycles/1/exports/coco"), "--format", "coco",
            "--allow-empty"], ["coco", "pre-labels of cycle 1 unchanged"]


def case_import_part_of_the_prelabels_unchanged(t):
    project = _after_cycle_1(t)
    (t / "ret").mkdir()
    for f in sorted((project / "cycles/1/prelabels").iterdir())[:2]:
        shutil.copy(f, t / "ret" / f.name)
    return ["import", str(project), str(t / "ret")], ["all 2 label(s) are the pre-labels"]


# -- group 13: control characters in file names ---------------------------------------------------


def case_init_newline_in_an_image_name(t):
    make_images(t / "imgs", 3)
    Image.new("RGB", (8, 8)).save(t / "imgs" / "a\nb.png")
    return _init(t, t / "imgs"), ["imgs", "image 'a\\nb.png' has a newline in its name"]


def case_init_tab_in_an_image_name(t):
    make_images(t / "imgs", 3)
    Image.new("RGB", (8, 8)).save(t / "imgs" / "a\tb.png")
    return _init(t, t / "imgs"), ["'a\\tb.png' has a tab in its name"]


def case_init_carriage_return_in_a_folder_name(t):
    make_images(t / "imgs", 3)
    (t / "imgs" / "sub\r").mkdir()
    Image.new("RGB", (8, 8)).save(t / "imgs" / "sub\r" / "x.png")
    return _init(t, t / "imgs"), ["'sub\\r/x.png' has a carriage return in its name"]


def case_init_escape_character_in_a_val_image_name(t):
    make_images(t / "imgs", 3)
    (t / "val").mkdir()
    Image.new("RGB", (8, 8)).save(t / "val" / "v\x1b.png")
    (t / "vl").mkdir()
    return _init(t, t / "imgs", "--val-images", str(t / "val"), "--val-labels", str(t / "vl")), [
        "val", "the control character U+001B in its name"]


def case_init_delete_character_in_an_image_name(t):
    make_images(t / "imgs", 3)
    Image.new("RGB", (8, 8)).save(t / "imgs" / "z\x7f.png")
    return _init(t, t / "imgs"), ["U+007F"]


# -- group 15: messages ---------------------------------------------------------------------------


def case_init_five_corrupt_images_all_named(t):
    make_images(t / "imgs", 4)
    for i in range(5):
        _bad_image(t / "imgs" / f"bad{i}.png", b"" if i % 2 else b"not a png")
    return _init(t, t / "imgs"), [
        "5 problem(s), project not created", *[f"bad{i}.png: corrupt image" for i in range(5)], "empty file"]


def case_init_250_corrupt_images_list_200(t):
    make_images(t / "imgs", 2)
    for i in range(250):
        _bad_image(t / "imgs" / f"bad{i:03d}.jpg", b"x")
    return _init(t, t / "imgs"), ["250 problem(s)", "bad000.jpg", "; ... and 50 more"]


def case_init_corrupt_val_images_all_named(t):
    make_images(t / "imgs", 4)
    make_images(t / "val", 2, start=50)
    (t / "vl").mkdir()
    for p in (t / "val").iterdir():
        (t / "vl" / f"{p.stem}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    for i in range(3):
        _bad_image(t / "val" / f"vbad{i}.png")
        (t / "vl" / f"vbad{i}.txt").write_text("")
    return _init(t, t / "imgs", "--val-images", str(t / "val"), "--val-labels", str(t / "vl")), [
        "3 problem(s)", "vbad0.png", "vbad1.png", "vbad2.png"]


def case_init_subfolder_clashes_with_double_underscore(t):
    make_images(t / "imgs", 3)
    make_images(t / "imgs" / "sub", 1, start=7)
    shutil.copy(t / "imgs" / "sub" / "im007.png", t / "imgs" / "sub__im007.png")
    return _init(t, t / "imgs"), [
        "'sub/im007.png' and 'sub__im007.png' get the same bundle name 'sub__im007'", "rename one"]


def case_init_clash_across_suffixes(t):
    make_images(t / "imgs" / "a", 1)
    Image.new("RGB", (9, 9)).save(t / "imgs" / "a__im000.jpg")
    return _init(t, t / "imgs"), ["'a/im000.png' and 'a__im000.jpg' get the same bundle name"]


def case_init_nfc_and_nfd_image_names(t):
    make_images(t / "imgs", 2)
    Image.new("RGB", (8, 8)).save(t / "imgs" / f"{NFC}.png")
    Image.new("RGB", (9, 8)).save(t / "imgs" / f"{NFD}.png")
    return _init(t, t / "imgs"), ["'cafe\\u0301.png'", "'café.png'", "differ only in Unicode normalisation"]


def case_init_same_stem_two_suffixes_is_named_distinguishably(t):
    make_images(t / "imgs", 2)
    Image.new("RGB", (8, 8)).save(t / "imgs" / f"{NFD}.png")
    Image.new("RGB", (8, 8)).save(t / "imgs" / f"{NFD}.jpg")
    return _init(t, t / "imgs"), ["'cafe\\u0301.jpg' and 'cafe\\u0301.png' have the same name apart"]


def case_import_nfd_label_for_an_nfc_image(t):
    make_images(t / "imgs", 9)
    Image.new("RGB", (8, 8)).save(t / "imgs" / f"{NFC}.png")
    from detal.config import load_config

    init_project(t / "p", t / "imgs", write_classes(t / "classes.txt"),
                 config=load_config(None, ["initial_fraction=1", "max_labeled_fraction=1"]))
    (t / "ret").mkdir()
    for name in batch_names(t / "p", 0):
        stem = name.rsplit(".", 1)[0]
        stem = NFD if stem == NFC else stem
        (t / "ret" / f"{stem}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    return ["import", str(t / "p"), str(t / "ret")], [
        "label for an image the project does not have ('cafe\\u0301'",
        "differs from 'café' only in Unicode normalisation"]


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


def _db_bytes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("detal.db"))}


def _state(root: Path) -> tuple:
    """Files, database rows and database bytes under ``root``."""
    try:
        return snapshot(root), _db_bytes(root)
    except sqlite3.DatabaseError:  # a detal.db that is no database: every file's bytes
        files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        return files, _db_bytes(root)


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_hostile_project_input(case, tmp_path, capsys):
    argv, expected = case(tmp_path)
    capsys.readouterr()
    before = _state(tmp_path)
    assert main(argv) == 1
    _out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[:2000]
    assert lines[0].startswith("detal: error: ")
    assert "Traceback" not in err
    for text in expected:
        assert text in lines[0], f"{text!r} not in {lines[0][:3000]!r}"
    assert _state(tmp_path) == before
    assert not list(tmp_path.glob(".*.init-*"))  # no half-built project left beside it


def test_there_are_enough_hostile_project_cases():
    assert len(CASES) >= 40
    assert {c.__name__.split("_")[1] for c in CASES} == {"init", "import", "status", "cycle"}
