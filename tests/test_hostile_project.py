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
characters in file names), 15 (messages), and issue 22's 15 (a read-only
``detal.db`` in a folder that can be written: immutable, or a read-only
bind mount of the file, refused by the store's write probe before any label
is written). What is not an error (3: the scan
follows each folder once; 4: the cycle goes on without a missing image;
5: backups never overwrite another; 1: the WAL moves with the database;
16: a killed init's folder is cleaned) is tested below the table.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import unicodedata
import zipfile
from pathlib import Path

import pytest
from imagekit import cut, encoded, flat_jpeg, half, png_bad_crc
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
from detal.files import fold_name, name_clash, short_name
from detal.project import Hooks, import_labels, init_project, run_cycle
from detal.project.create import clean_stale_init
from detal.project.folder import LOCK_FILE
from detal.store import Store

NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")
_HELD: list = []  # lock files held by a case until the runner has run
_MOUNTS: list[Path] = []  # read-only bind mounts made by a case, undone after it
_IMMUTABLE: list[Path] = []  # files a case made immutable (chattr +i), made mutable again after it


@pytest.fixture(autouse=True)
def fake_adapter(monkeypatch):
    monkeypatch.setattr(project_cmd, "make_adapter", lambda cfg, project: FakeAdapter(len(NAMES), seed=2))
    yield
    while _HELD:
        _HELD.pop().close()
    while _MOUNTS:  # lazy: an open file must not keep a mount alive
        subprocess.run(["umount", "-l", str(_MOUNTS.pop())], check=False)
    while _IMMUTABLE:
        subprocess.run(["chattr", "-i", str(_IMMUTABLE.pop())], check=False)


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


def _read_only_view(src: Path, at: Path) -> Path:
    """``src`` seen through a read-only bind mount at ``at`` (skips where mounting is not allowed)."""
    at.mkdir()
    made = subprocess.run(["mount", "--bind", str(src), str(at)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {made.stderr.decode().strip()}")
    _MOUNTS.append(at)
    if subprocess.run(["mount", "-o", "remount,ro,bind", str(at)], capture_output=True, check=False).returncode:
        pytest.skip("cannot make a bind mount read-only here")
    return at


def _immutable(path: Path) -> None:
    """``path`` made immutable (``chattr +i``): as root ``chmod 0444`` stops no write, this does."""
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot make {path.name} immutable here (chattr: {made.stderr.strip()}): not run")
    _IMMUTABLE.append(path)


def _read_only_file(path: Path) -> None:
    """``path`` bind-mounted read-only over itself: the folder stays writable, the file does not."""
    if subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True, check=False).returncode:
        pytest.skip("cannot bind-mount a file here: not run")
    _MOUNTS.append(path)
    if subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], capture_output=True, check=False).returncode:
        pytest.skip("cannot make a bind mount read-only here: not run")


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


def case_init_force_with_labels_while_a_command_holds_the_lock(t):
    project = make_project(t, n=20)
    (t / "lab").mkdir()
    (t / "lab" / "im001.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    _hold_lock(project)
    return _init(t, t / "images", "--force", "--labels", str(t / "lab"), project=project), [
        "another detal command is running"]


# -- group 4: an image taken out of the pool ------------------------------------------------------


def case_import_label_of_an_image_taken_out_of_the_pool(t):
    project = make_project(t, n=20)
    returned = write_returned(t / "ret", project, 0)
    key = min(returned.iterdir()).stem
    with Store.open(project / "detal.db") as store:  # really gone (one back unchanged counts again)
        (project / store.images_by_key()[key].relpath).unlink()
    _sql(project, f"UPDATE images SET problem = 'missing' WHERE key = '{key}'")
    return ["import", str(project), str(returned)], [
        f"{key}.txt", f"image {key} was taken out of the pool (missing since init)"]


def case_import_label_of_a_changed_image(t):
    project = make_project(t, n=20)
    returned = write_returned(t / "ret", project, 0)
    key = max(returned.iterdir()).stem
    with Store.open(project / "detal.db") as store:  # the file really changed (one back unchanged counts again)
        Image.new("RGB", (20, 20), (1, 2, 3)).save(project / store.images_by_key()[key].relpath)
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


def case_init_project_under_a_link_to_a_regular_file(t):
    make_images(t / "imgs", 4)
    (t / "afile").write_text("x")
    (t / "link").symlink_to(t / "afile")
    return _init(t, t / "imgs", project=t / "link" / "proj"), ["link/proj", "link is a file, not a folder"]


def case_init_project_in_a_folder_that_cannot_be_written(t):
    make_images(t / "imgs", 4)
    return _init(t, t / "imgs", project=Path("/sys/detal-hostile-test-project")), [
        "/sys/detal-hostile-test-project", "cannot write in /sys"]


def case_init_force_on_a_read_only_project(t):
    project = make_project(t, n=20)
    view = _read_only_view(project, t / "ro")
    return _init(t, t / "images", "--force", project=view), ["ro", "cannot write in", "Read-only file system"]


def case_import_into_a_read_only_project(t):
    project = make_project(t, n=20)
    returned = write_returned(t / "ret", project, 0)
    view = _read_only_view(project, t / "ro")
    return ["import", str(view), str(returned)], ["ro", "needs a folder it may write", "detal status only reads"]


def case_import_into_a_project_whose_database_is_immutable(t):
    project = make_project(t, n=20)
    returned = write_returned(t / "ret", project, 0)
    _immutable(project / "detal.db")
    return ["import", str(project), str(returned)], [
        "proj/detal.db: read-only", "attempt to write a readonly database", "needs a folder it may write"]


def case_import_overwrite_into_a_project_whose_database_is_immutable(t):
    project = make_project(t, n=20)
    label_cycle(project, 0, t)
    returned = write_returned(t / "ret2", project, 0, "2 0.4 0.4 0.3 0.3")
    _immutable(project / "detal.db")
    return ["import", str(project), str(returned), "--overwrite"], ["proj/detal.db: read-only"]


def case_import_into_a_project_whose_database_is_a_read_only_mount(t):
    project = make_project(t, n=20)
    returned = write_returned(t / "ret", project, 0)
    _read_only_file(project / "detal.db")
    return ["import", str(project), str(returned)], ["proj/detal.db: read-only"]


def case_cycle_on_a_project_whose_database_is_immutable(t):
    project = make_project(t, n=20)
    label_cycle(project, 0, t)
    _immutable(project / "detal.db")
    return ["cycle", str(project)], ["proj/detal.db: read-only", "detal status only reads"]


def case_cycle_on_a_project_whose_database_is_a_read_only_mount(t):
    project = make_project(t, n=20)
    label_cycle(project, 0, t)
    _read_only_file(project / "detal.db")
    return ["cycle", str(project)], ["proj/detal.db: read-only"]


def case_cycle_on_a_read_only_project(t):
    project = make_project(t, n=20)
    label_cycle(project, 0, t)
    view = _read_only_view(project, t / "ro")
    return ["cycle", str(view)], ["ro", "needs a folder it may write"]


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


def case_status_cycle_config_not_json(t):
    project = make_project(t, n=20)
    _sql(project, "UPDATE cycles SET config = '{broken' WHERE id = 0")
    return ["status", str(project)], ["detal.db", "damaged project database (cycle 0 holds invalid JSON)"]


def case_cycle_cycle_metrics_not_json(t):
    project = make_project(t, n=20)
    label_cycle(project, 0, t)
    _sql(project, "UPDATE cycles SET timings = 'nan nan' WHERE id = 0")
    return ["cycle", str(project)], ["damaged project database (cycle 0 holds invalid JSON)"]


# -- group 10: read-only commands never write ---------------------------------------------------


def case_status_on_a_zero_byte_database(t):
    project = make_project(t, n=20)
    (project / "detal.db").write_bytes(b"")
    return ["status", str(project)], ["detal.db", "not a detal project database"]


def case_import_on_a_zero_byte_database(t):
    project = make_project(t, n=20)
    returned = write_returned(t / "ret", project, 0)
    (project / "detal.db").write_bytes(b"")
    return ["import", str(project), str(returned)], ["detal.db", "not a detal project database"]


def case_cycle_on_a_zero_byte_database(t):
    project = make_project(t, n=20)
    (project / "detal.db").write_bytes(b"")
    return ["cycle", str(project)], ["detal.db", "not a detal project database"]


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
    Image.new("RGB", (12, 12)).save(t / "imgs" / "a\nb.png")
    return _init(t, t / "imgs"), ["imgs", "image 'a\\nb.png' has a newline in its name"]


def case_init_tab_in_an_image_name(t):
    make_images(t / "imgs", 3)
    Image.new("RGB", (12, 12)).save(t / "imgs" / "a\tb.png")
    return _init(t, t / "imgs"), ["'a\\tb.png' has a tab in its name"]


def case_init_carriage_return_in_a_folder_name(t):
    make_images(t / "imgs", 3)
    (t / "imgs" / "sub\r").mkdir()
    Image.new("RGB", (12, 12)).save(t / "imgs" / "sub\r" / "x.png")
    return _init(t, t / "imgs"), ["'sub\\r/x.png' has a carriage return in its name"]


def case_init_escape_character_in_a_val_image_name(t):
    make_images(t / "imgs", 3)
    (t / "val").mkdir()
    Image.new("RGB", (12, 12)).save(t / "val" / "v\x1b.png")
    (t / "vl").mkdir()
    return _init(t, t / "imgs", "--val-images", str(t / "val"), "--val-labels", str(t / "vl")), [
        "val", "the control character U+001B in its name"]


def case_init_delete_character_in_an_image_name(t):
    make_images(t / "imgs", 3)
    Image.new("RGB", (12, 12)).save(t / "imgs" / "z\x7f.png")
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
    Image.new("RGB", (13, 13)).save(t / "imgs" / "a__im000.jpg")
    return _init(t, t / "imgs"), ["'a/im000.png' and 'a__im000.jpg' get the same bundle name"]


def case_init_nfc_and_nfd_image_names(t):
    make_images(t / "imgs", 2)
    Image.new("RGB", (12, 12)).save(t / "imgs" / f"{NFC}.png")
    Image.new("RGB", (13, 12)).save(t / "imgs" / f"{NFD}.png")
    return _init(t, t / "imgs"), ["'cafe\\u0301.png'", "'café.png'", "differ only in Unicode normalisation"]


def case_init_same_stem_two_suffixes_is_named_distinguishably(t):
    make_images(t / "imgs", 2)
    Image.new("RGB", (12, 12)).save(t / "imgs" / f"{NFD}.png")
    Image.new("RGB", (12, 12)).save(t / "imgs" / f"{NFD}.jpg")
    return _init(t, t / "imgs"), ["'cafe\\u0301.jpg' and 'cafe\\u0301.png' have the same name apart"]


def case_import_nfd_label_for_an_nfc_image(t):
    make_images(t / "imgs", 9)
    Image.new("RGB", (12, 12)).save(t / "imgs" / f"{NFC}.png")
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


# -- issue 22, defect 7: names Windows or macOS cannot keep apart, or cannot hold ------------------


def _images(root: Path, *names: str) -> Path:
    for n, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        fmt = "JPEG" if name.lower().rstrip(" .").endswith((".jpg", ".jpeg")) else "PNG"
        Image.new("RGB", (10 + n, 10), (n * 30 % 255, 40, 90)).save(root / name, format=fmt)
    return root


def _with_val(t: Path, *names: str) -> list[str]:
    val = _images(t / "val", *names)
    (t / "vl").mkdir()
    for name in names:
        (t / "vl" / (name.rsplit(".", 1)[0] + ".txt")).write_text("0 0.5 0.5 0.2 0.2\n")
    return _init(t, _images(t / "imgs", "a.png", "b.png"), "--val-images", str(val), "--val-labels", str(t / "vl"))


def case_init_names_differ_only_in_case(t):
    return _init(t, _images(t / "imgs", "IMG_1.JPG", "img_1.jpg", "b.png")), [
        "'IMG_1.JPG' and 'img_1.jpg' have names that differ only in case", "rename one of them"]


def case_init_names_differ_in_case_and_suffix(t):
    return _init(t, _images(t / "imgs", "A.png", "a.jpg")), ["'A.png' and 'a.jpg'", "differ only in case"]


def case_init_folder_names_differ_only_in_case(t):
    return _init(t, _images(t / "imgs", "Sub/a.png", "sub/a.png", "b.png")), [
        "'Sub/a.png' and 'sub/a.png'", "differ only in case"]


def case_init_nested_names_differ_only_in_case(t):
    return _init(t, _images(t / "imgs", "sub/Photo.png", "sub/photo.png")), [
        "'sub/Photo.png' and 'sub/photo.png'", "differ only in case"]


def case_init_case_against_a_double_underscore_name(t):
    return _init(t, _images(t / "imgs", "Sub__a.png", "sub/a.png")), [
        "'Sub__a.png' and 'sub/a.png'", "differ only in case"]


def case_init_case_first_and_last_image(t):
    names = ["AAA.png", *[f"m{i}.png" for i in range(9)], "aaa.png"]
    return _init(t, _images(t / "imgs", *names)), ["'AAA.png' and 'aaa.png'", "differ only in case"]


def case_init_case_and_normalisation_at_once(t):
    return _init(t, _images(t / "imgs", unicodedata.normalize("NFC", "Café.png"), f"{NFD}.png")), [
        "'Café.png'", "'cafe\\u0301.png'", "differ only in case"]


def case_init_val_names_differ_only_in_case(t):
    return _with_val(t, "V.png", "v.png"), ["'V.png' and 'v.png'", "differ only in case"]


def _windows_case(n: int, name: str, words: list[str]):
    def case(t):
        return _init(t, _images(t / "imgs", name, "ok.png")), words
    slug = re.sub(r"[^A-Za-z0-9]+", "_", name.encode("ascii", "backslashreplace").decode()).strip("_")
    case.__name__ = f"case_init_windows_name_{n:02d}_{slug}"
    return case


for _n, (_name, _words) in enumerate([
    ("a<b>.png", ["image 'a<b>.png'", "has '<', which Windows does not allow", "rename it"]),
    ("a>b.png", ["'a>b.png'", "has '>'"]),
    ("12:30:00.png", ["'12:30:00.png'", "has ':'"]),
    ('say "hi".png', ["has '\"'"]),
    ("a|b.png", ["has '|'"]),
    ("why?.png", ["has '?'"]),
    ("star*.png", ["has '*'"]),
    ("back\\slash.png", ["has '\\\\'"]),
    ("CON.png", ["image 'CON.png'", "'CON' is a name Windows keeps for a device"]),
    ("con.png", ["'con' is a name Windows keeps for a device"]),
    ("aux.jpg", ["'aux.jpg'", "'aux' is a name Windows keeps"]),
    ("NUL.png", ["'NUL' is a name Windows keeps"]),
    ("COM1.png", ["'COM1' is a name Windows keeps"]),
    ("lpt9.jpg", ["'lpt9' is a name Windows keeps"]),
    ("CON.tar.png", ["'CON.tar.png'", "'CON' is a name Windows keeps"]),
    ("COM\u00b9.png", ["'COM\u00b9' is a name Windows keeps"]),
    ("CON/a.png", ["folder 'CON'", "Windows keeps for a device"]),
    ("sub./a.png", ["folder 'sub.'", "ends in a dot, which Windows drops"]),
    ("sub /a.png", ["folder 'sub '", "ends in a space, which Windows drops"]),
    ("a.png ", ["image 'a.png '", "ends in a space"]),
    ("a.png.", ["image 'a.png.'", "ends in a dot"]),
    ("deep/er:/a.png", ["folder 'deep/er:'", "has ':'"]),
]):
    _case = _windows_case(_n, _name, _words)
    globals()[_case.__name__] = _case


def case_init_windows_folder_of_many_images_named_once(t):
    _images(t / "imgs", *[f"bad:dir/im{i}.png" for i in range(5)], "ok.png")
    return _init(t, t / "imgs"), ["1 problem(s), project not created", "folder 'bad:dir'"]


def case_init_windows_names_all_named_in_one_line(t):
    _images(t / "imgs", "a<b>.png", "PRN.png", "x /y.png", "ok.png")
    return _init(t, t / "imgs"), ["3 problem(s)", "'a<b>.png'", "'PRN.png'", "folder 'x '"]


def case_init_windows_name_of_a_val_image(t):
    return _with_val(t, "PRN.png", "ok.png"), ["val", "'PRN' is a name Windows keeps for a device"]


# -- data.yaml read like every other YAML: no aliases -------------------------------------------


def _simulate(t: Path, data_yaml: str) -> list[str]:
    (t / "data.yaml").write_text(data_yaml)
    (t / "sim.yaml").write_text("epochs_per_cycle: 1\n")
    return ["simulate", str(t / "sim.yaml"), "--data", str(t / "data.yaml"), "--runs", str(t / "runs")]


def case_simulate_data_yaml_alias_bomb(t):
    lines = ['names: [a]', 'x: &a ["l","l","l","l","l","l","l","l","l"]']
    lines += [f"{c}: &{c} [" + ",".join([f"*{p}"] * 9) + "]" for p, c in zip("abcdefgh", "bcdefghi")]
    return _simulate(t, "\n".join(lines) + "\n"), ["data.yaml", "line 3", "YAML aliases (*a) are not allowed"]


def case_simulate_data_yaml_names_through_an_alias(t):
    return _simulate(t, "base: &n [cat, dog]\nnames: *n\ntrain: images\nval: images\n"), [
        "data.yaml", "(*n) are not allowed"]



# -- issue 22, defects 8 and 17: images Ultralytics would leave out of training -----------------
# Each kind of image is tried in every place init meets it: first and last in the pool, nested,
# with a label, as a validation image, in the initial batch. The kinds OpenCV alone finds (a
# truncated BMP or TIFF) are decoded only where detal trains on or ships the image first.

_TRUNCATED_JPEG = half(encoded("JPEG", (64, 48)))
_LEFT_OUT = {  # kind: (suffix, content, words of the reason)
    "gif_named_png": (".png", encoded("GIF"), ["a GIF image by its content (its name says .png)",
                                               "Ultralytics trains only on"]),
    "gif_named_jpg": (".jpg", encoded("GIF"), ["a GIF image by its content (its name says .jpg)"]),
    "gif_named_webp": (".webp", encoded("GIF"), ["a GIF image by its content (its name says .webp)"]),
    "ico_named_png": (".png", encoded("ICO"), ["an ICO image by its content"]),
    "ppm_named_bmp": (".bmp", encoded("PPM"), ["a PPM image by its content (its name says .bmp)"]),
    "tga_named_tif": (".tif", encoded("TGA"), ["a TGA image by its content"]),
    "png_9x9": (".png", encoded("PNG", (9, 9)), ["9x9 pixels", "at least 10 pixels a side"]),
    "png_1x1": (".png", encoded("PNG", (1, 1)), ["1x1 pixels", "Ultralytics would leave it out"]),
    "jpeg_9x200": (".jpg", encoded("JPEG", (9, 200)), ["9x200 pixels"]),
    "webp_300x9": (".webp", encoded("WEBP", (300, 9)), ["300x9 pixels"]),
    "jpeg_truncated_in_half": (".jpg", _TRUNCATED_JPEG, ["truncated JPEG", "image file is truncated"]),
    "jpeg_truncated_named_jpeg": (".jpeg", cut(encoded("JPEG", (64, 48)), -400), ["truncated JPEG"]),
    "png_truncated": (".png", cut(encoded("PNG", (40, 30)), 2000), ["corrupt image", "Truncated File Read"]),
    "png_bad_checksum": (".png", png_bad_crc(), ["corrupt image", "broken PNG file"]),
    "jpeg_over_a_gigapixel": (".jpg", flat_jpeg(33000, 33000), [
        "33000x33000 = 1,089,000,000 pixels, over the limit of 1,073,741,824", "OpenCV"]),
    "jpeg_over_two_gigapixels": (".jpg", flat_jpeg(50000, 50000), [
        "more than 2,147,483,648 pixels, over the limit of 1,073,741,824"]),
}
_UNDECODABLE = {  # found by decoding only
    "bmp_truncated": (".bmp", cut(encoded("BMP", (40, 30)), 2000), ["corrupt image, OpenCV cannot decode it"]),
    "tiff_truncated": (".tiff", cut(encoded("TIFF", (40, 30)), 2000), ["OpenCV cannot decode it"]),
    "bmp_truncated_named_png": (".png", cut(encoded("BMP", (40, 30)), 2000), ["OpenCV cannot decode it"]),
}


def _init_over(t: Path, kind: str, place: str) -> tuple[list[str], list[str]]:
    suffix, data, words = {**_LEFT_OUT, **_UNDECODABLE}[kind]
    make_images(t / "imgs", 6, sub_every=4)
    where = {"first": "imgs/aaa", "last": "imgs/zzz", "nested": "imgs/sub/deeper/x", "labeled": "imgs/lab",
             "val": "val/v", "initial_batch": "imgs/pick"}[place]
    _bad_image(t / f"{where}{suffix}", data)
    extra: list[str] = []
    if place == "labeled":
        (t / "lab").mkdir()
        (t / "lab" / "lab.txt").write_text("0 0.5 0.5 0.2 0.2\n")
        (t / "lab" / "im001.txt").write_text("1 0.5 0.5 0.2 0.2\n")
        extra = ["--labels", str(t / "lab")]
    elif place == "val":
        make_images(t / "val", 2, start=60)
        (t / "vl").mkdir()
        for p in (t / "val").iterdir():
            (t / "vl" / f"{p.stem}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
        extra = ["--val-images", str(t / "val"), "--val-labels", str(t / "vl")]
    elif place == "initial_batch":
        extra = ["--set", "initial_fraction=1", "--set", "max_labeled_fraction=1"]
    return _init(t, t / "imgs", *extra), ["project not created", f"{Path(where).name}{suffix}", *words]


def _left_out_case(kind: str, place: str):
    def case(t):
        return _init_over(t, kind, place)
    case.__name__ = f"case_init_{kind}_{place}"
    return case


for _kind in _LEFT_OUT:
    for _place in ("first", "last", "nested", "labeled", "val"):
        globals()[f"case_init_{_kind}_{_place}"] = _left_out_case(_kind, _place)
for _kind in _UNDECODABLE:
    for _place in ("labeled", "val", "initial_batch"):
        globals()[f"case_init_{_kind}_{_place}"] = _left_out_case(_kind, _place)
globals()["case_init_gif_named_png_initial_batch"] = _left_out_case("gif_named_png", "initial_batch")
globals()["case_init_jpeg_truncated_in_half_initial_batch"] = _left_out_case("jpeg_truncated_in_half",
                                                                            "initial_batch")


def _import_over(t: Path, data: bytes, fmt: str = "yolo") -> tuple[list[str], list[str]]:
    """Batch 0 out; one of its images is replaced by ``data`` before its labels come back."""
    project = make_project(t, n=20)
    returned = write_returned(t / "ret", project, 0)
    key = min(returned.iterdir()).stem
    rel = next(r for r in (project / "images").rglob("*.png") if r.relative_to(project / "images").as_posix()
               .replace("/", "__")[: -len(".png")] == key)
    rel.write_bytes(data)
    source = returned
    if fmt == "zip":
        source = t / "ret.zip"
        with zipfile.ZipFile(source, "w") as zf:
            for f in sorted(returned.iterdir()):
                zf.write(f, f"labels/{f.name}")
    return ["import", str(project), str(source)], ["nothing imported", f"{key}.txt",
                                                   f"image images/{rel.relative_to(project / 'images')}"]


def case_import_label_of_an_image_now_a_gif(t):
    argv, words = _import_over(t, encoded("GIF"))
    return argv, [*words, "a GIF image by its content (its name says .png)"]


def case_import_label_of_an_image_now_a_gif_from_a_zip(t):
    argv, words = _import_over(t, encoded("GIF"), "zip")
    return argv, [*words, "ret.zip!labels/", "a GIF image by its content"]


def case_import_label_of_an_image_now_9_pixels_wide(t):
    argv, words = _import_over(t, encoded("PNG", (9, 30)))
    return argv, [*words, "9x30 pixels"]


def case_import_label_of_an_image_now_truncated(t):
    argv, words = _import_over(t, cut(encoded("PNG", (40, 30)), 2000))
    return argv, [*words, "corrupt image", "Truncated File Read"]


def case_import_label_of_an_image_now_a_truncated_jpeg(t):
    argv, words = _import_over(t, _TRUNCATED_JPEG)
    return argv, [*words, "truncated JPEG"]


def case_import_label_of_an_image_opencv_cannot_decode(t):
    argv, words = _import_over(t, cut(encoded("BMP", (40, 30)), 2000))
    return argv, [*words, "OpenCV cannot decode it"]


def case_import_label_of_an_image_now_an_empty_file(t):
    argv, words = _import_over(t, b"")
    return argv, [*words, "corrupt image, empty file"]


# -- issue 22, defect 11: label files beside labels/ in a returned folder or zip --------------------


def _returned_with_labels_folder(t: Path, project: Path, outside: dict[str, str], under: str = "labels"):
    """Batch 0's labels under ``under/`` (all but the ones moved to ``outside``: relpath -> key)."""
    flat = write_returned(t / "flat", project, 0)
    ret = t / "ret"
    for f in sorted(flat.iterdir()):
        moved = [rel for rel, key in outside.items() if key == f.stem]
        target = ret / moved[0] if moved else ret / under / f.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, target)
    shutil.rmtree(flat)
    return ret


def _keys0(project: Path) -> list[str]:
    return [n.rsplit(".", 1)[0] for n in batch_names(project, 0)]


def case_import_label_beside_labels_folder(t):
    project = make_project(t, n=40)
    key = _keys0(project)[-1]
    ret = _returned_with_labels_folder(t, project, {f"{key}.txt": key})
    return ["import", str(project), str(ret)], [
        f"ret/{key}.txt: label file outside labels/ (only the files in labels/ are read)", "move it into labels/"]


def case_import_first_label_beside_labels_folder(t):
    project = make_project(t, n=40)
    key = _keys0(project)[0]
    ret = _returned_with_labels_folder(t, project, {f"{key}.txt": key})
    return ["import", str(project), str(ret)], [f"{key}.txt: label file outside labels/"]


def case_import_label_under_images_beside_labels(t):
    project = make_project(t, n=40)
    key = _keys0(project)[1]
    ret = _returned_with_labels_folder(t, project, {f"images/{key}.txt": key})
    return ["import", str(project), str(ret)], [f"ret/images/{key}.txt: label file outside labels/"]


def case_import_unzipped_bundle_with_a_label_beside_labels(t):
    project = make_project(t, n=40)
    key = _keys0(project)[2]
    ret = _returned_with_labels_folder(t, project, {f"batch-0/{key}.txt": key}, under="batch-0/labels")
    (ret / "batch-0" / "classes.txt").write_text("\n".join(NAMES) + "\n")
    return ["import", str(project), str(ret)], [f"batch-0/{key}.txt: label file outside labels/"]


def case_import_stray_copy_beside_labels(t):
    project = make_project(t, n=40)
    ret = _returned_with_labels_folder(t, project, {})
    shutil.copy(next((ret / "labels").iterdir()), ret / "copy of label.txt")
    return ["import", str(project), str(ret)], ["ret/copy of label.txt: label file outside labels/"]


def case_import_zip_with_a_label_beside_labels(t):
    project = make_project(t, n=40)
    key = _keys0(project)[-1]
    ret = _returned_with_labels_folder(t, project, {f"{key}.txt": key})
    with zipfile.ZipFile(t / "ret.zip", "w") as zf:
        for f in sorted(ret.rglob("*.txt")):
            zf.write(f, f.relative_to(ret).as_posix())
    shutil.rmtree(ret)
    return ["import", str(project), str(t / "ret.zip")], [f"ret.zip!{key}.txt: label file outside labels/"]


def case_import_zip_with_labels_in_a_folder_and_one_at_the_top(t):
    project = make_project(t, n=40)
    key = _keys0(project)[0]
    ret = _returned_with_labels_folder(t, project, {f"{key}.txt": key}, under="done/labels")
    with zipfile.ZipFile(t / "ret.zip", "w") as zf:
        for f in sorted(ret.rglob("*.txt")):
            zf.write(f, f.relative_to(ret).as_posix())
    shutil.rmtree(ret)
    return ["import", str(project), str(t / "ret.zip")], [f"ret.zip!{key}.txt: label file outside labels/"]

# -- issue 22, defect 5: an image folder that went away refuses the command, marks nothing ------------


def _mount(src: Path, at: Path) -> Path:
    """``src`` bind-mounted at ``at``, as a disk is (skips where mounting is not allowed)."""
    at.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(["mount", "--bind", str(src), str(at)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {made.stderr.decode().strip()}")
    _MOUNTS.append(at)
    return at


def _unmount(at: Path) -> None:
    subprocess.run(["umount", str(at)], check=True)
    _MOUNTS.remove(at)


def _ready_for_cycle_2(t: Path, *, val: int = 0, pool: Path | None = None) -> Path:
    """Batch 0 and batch 1 labeled: ``detal cycle`` would run cycle 2. ``pool``: the image folder."""
    if pool is not None and pool != t / "images":
        make_images(pool, 40, sub_every=10)
        (t / "images").symlink_to(pool, target_is_directory=True)
    project = make_project(t, n=40, val=val)
    label_cycle(project, 0, t)
    run_cycle(project, FakeAdapter(len(NAMES), seed=2))
    label_cycle(project, 1, t)
    return project


def _cycle(project: Path) -> list[str]:
    return ["cycle", str(project)]


def case_cycle_pool_folder_gone(t):
    project = _ready_for_cycle_2(t)
    (t / "images").rename(t / "images-away")
    return _cycle(project), ["proj/images: the image folder cannot be reached", "which does not exist",
                             "nothing was changed", "ln -sfn"]


def case_cycle_pool_disk_unmounted(t):
    disk = t / "disk"
    make_images(disk, 40, sub_every=10)
    _mount(disk, t / "mnt")
    project = _ready_for_cycle_2(t, pool=t / "mnt")
    _unmount(t / "mnt")
    return _cycle(project), ["cannot be reached", "it is empty", "not mounted"]


def case_cycle_pool_folder_emptied(t):
    project = _ready_for_cycle_2(t)
    (t / "images").rename(t / "images-away")
    (t / "images").mkdir()
    return _cycle(project), ["cannot be reached", "it is empty"]


def case_cycle_pool_folder_replaced_by_a_file(t):
    project = _ready_for_cycle_2(t)
    (t / "images").rename(t / "images-away")
    (t / "images").write_text("not a folder")
    return _cycle(project), ["cannot be reached", "it is not a folder"]


def case_cycle_images_link_itself_removed(t):
    project = _ready_for_cycle_2(t)
    (project / "images").unlink()
    return _cycle(project), ["proj/images: the image folder cannot be reached", "it does not exist"]


def case_cycle_images_link_repointed_at_another_folder(t):
    project = _ready_for_cycle_2(t)
    make_images(t / "other", 40, start=200)
    (project / "images").unlink()
    (project / "images").symlink_to(t / "other", target_is_directory=True)
    return _cycle(project), ["images just checked are missing or changed since init", "looks unmounted or replaced",
                             "nothing was taken out of the pool", "--allow-missing"]


def case_cycle_images_link_repointed_at_resized_copies(t):
    project = _ready_for_cycle_2(t)
    for p in sorted((t / "images").rglob("*.png")):
        copy = t / "resized" / p.relative_to(t / "images")
        copy.parent.mkdir(parents=True, exist_ok=True)
        Image.open(p).resize((20, 20)).save(copy)
    (project / "images").unlink()
    (project / "images").symlink_to(t / "resized", target_is_directory=True)
    return _cycle(project), ["missing or changed since init", ": changed)", "--allow-missing"]


def case_cycle_pool_subfolder_gone(t):
    make_images(t / "images", 40, sub_every=10)
    for p in sorted((t / "images").glob("im0[0-3]*.png")):  # 36 of the 40 into one subfolder (one disk)
        (t / "images" / "cam1").mkdir(exist_ok=True)
        p.rename(t / "images" / "cam1" / p.name)
    project = _ready_for_cycle_2(t)
    shutil.rmtree(t / "images" / "cam1")
    return _cycle(project), ["missing or changed since init", "images/cam1/", "nothing was taken out"]


def case_cycle_val_folder_gone(t):
    project = _ready_for_cycle_2(t, val=3)
    (t / "val").rename(t / "val-away")
    return _cycle(project), ["proj/val_images: the image folder cannot be reached", "does not exist"]


def case_cycle_interrupted_then_pool_gone(t):
    project = make_project(t, n=40)
    label_cycle(project, 0, t)
    hooks = Hooks()

    def stop(**_):
        raise KeyboardInterrupt

    hooks.add("on_train_end", stop)
    with pytest.raises(KeyboardInterrupt):
        run_cycle(project, FakeAdapter(len(NAMES), seed=2), hooks=hooks)
    (t / "images").rename(t / "images-away")
    return _cycle(project), ["cannot be reached", "which does not exist"]


def case_cycle_first_cycle_pool_gone(t):
    project = make_project(t, n=40)
    label_cycle(project, 0, t)
    (t / "images").rename(t / "images-away")
    return _cycle(project), ["cannot be reached"]


def case_import_pool_folder_gone(t):
    project = make_project(t, n=40)
    label_cycle(project, 0, t)
    run_cycle(project, FakeAdapter(len(NAMES), seed=2))
    returned = write_returned(t / "ret1", project, 1)
    (t / "images").rename(t / "images-away")
    return ["import", str(project), str(returned)], ["proj/images: the image folder cannot be reached"]


def case_import_initial_batch_pool_unmounted(t):
    disk = t / "disk"
    make_images(disk, 20)
    _mount(disk, t / "mnt")
    (t / "images").symlink_to(t / "mnt", target_is_directory=True)
    project = make_project(t, n=20)
    returned = write_returned(t / "ret0", project, 0)
    _unmount(t / "mnt")
    return ["import", str(project), str(returned)], ["cannot be reached", "it is empty"]


def case_import_val_folder_gone(t):
    project = make_project(t, n=20, val=2)
    returned = write_returned(t / "ret0", project, 0)
    shutil.rmtree(t / "val")
    return ["import", str(project), str(returned)], ["proj/val_images: the image folder cannot be reached"]



# -- issue 22, defect 7 in a project made before init refused names one under case folding ---------------


def _made_before_the_case_rule(project: Path, renames: dict[str, str]) -> Path:
    """``project`` as an older detal left it: each image file ``old`` renamed ``new`` on disk and in the
    store (its key as init makes keys), and the store without the mark of the case-folding check."""
    root = project.parent / "images"
    statements = ["DELETE FROM meta WHERE key = 'name_rule'"]
    for old, new in renames.items():
        pool = (root / old).exists()
        folder, prefix, key_prefix = (root, "images/", "") if pool else (project.parent / "val", "val_images/", "val:")
        (folder / new).parent.mkdir(parents=True, exist_ok=True)
        (folder / old).rename(folder / new)
        key = key_prefix + new.rsplit(".", 1)[0].replace("/", "__")
        new_sql, old_sql, key_sql = (v.replace("'", "''") for v in (prefix + new, prefix + old, key))
        statements.append(f"UPDATE images SET relpath = '{new_sql}', key = '{key_sql}' WHERE relpath = '{old_sql}'")
    _sql(project, *statements)
    return project


def case_cycle_old_project_names_differ_only_in_case(t):
    project = _made_before_the_case_rule(_ready_for_cycle_2(t), {"im005.png": "IM003.png"})
    return _cycle(project), ["images 'images/IM003.png' and 'images/im003.png' have names that differ only in case",
                             "made before init refused such names", "nothing was changed", "init --force"]


def case_cycle_old_project_folders_differ_only_in_case(t):
    project = _made_before_the_case_rule(_ready_for_cycle_2(t), {"im011.png": "SUB/im010.png"})
    return _cycle(project), ["'images/SUB/im010.png' and 'images/sub/im010.png'", "differ only in case"]


def case_cycle_old_project_case_against_a_double_underscore_name(t):
    project = _made_before_the_case_rule(_ready_for_cycle_2(t), {"im011.png": "Sub__im010.png"})
    return _cycle(project), ["'images/Sub__im010.png' and 'images/sub/im010.png'", "differ only in case"]


def case_cycle_old_project_names_differ_in_normalisation(t):
    project = _made_before_the_case_rule(_ready_for_cycle_2(t), {"im005.png": f"{NFC}.png",
                                                                 "im006.png": f"{NFD}.png"})
    return _cycle(project), ["have names that differ only in Unicode normalisation",
                             "made before init refused such names"]


def case_cycle_old_project_first_and_last_image(t):
    project = _made_before_the_case_rule(_ready_for_cycle_2(t), {"im001.png": "AAA.png", "im039.png": "aaa.png"})
    return _cycle(project), ["'images/AAA.png' and 'images/aaa.png'", "differ only in case"]


def case_cycle_old_project_val_names_differ_only_in_case(t):
    project = _made_before_the_case_rule(_ready_for_cycle_2(t, val=3), {"im501.png": "IM500.png"})
    return _cycle(project), ["'val_images/IM500.png' and 'val_images/im500.png'", "differ only in case"]


def case_import_old_project_names_differ_only_in_case(t):
    project = make_project(t, n=20)
    returned = write_returned(t / "ret0", project, 0)
    _made_before_the_case_rule(project, {"im005.png": "IM003.png"})
    return ["import", str(project), str(returned)], ["'images/IM003.png' and 'images/im003.png'",
                                                      "differ only in case", "nothing was changed"]

# -- issue 22: init --labels by the key rule of returns -------------------------------------------------


def _init_labeled(t: Path, pool: list[str], labels: list[str]) -> list[str]:
    for n, name in enumerate(pool):
        (t / "imgs" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20 + n, 16), (40 * n, 90, 30)).save(t / "imgs" / name)
    for name in labels:
        (t / "lab" / name).parent.mkdir(parents=True, exist_ok=True)
        (t / "lab" / name).write_text("0 0.5 0.5 0.2 0.2\n")
    return _init(t, t / "imgs", *(["--labels", str(t / "lab")] if labels else []))


def case_init_label_that_could_mean_two_images(t):
    return _init_labeled(t, ["a.png", "sub/a.png"], ["other/a.txt"]), [
        "other/a.txt", "could mean image 'a.png' or 'sub/a.png'"]


def case_init_flat_label_for_two_nested_images(t):
    return _init_labeled(t, ["x/a.png", "y/a.png", "b.png"], ["a.txt", "b.txt"]), [
        "lab/a.txt", "could mean image 'x/a.png' or 'y/a.png'", "only its base name matches"]


def case_init_two_labels_for_one_image(t):
    return _init_labeled(t, ["a.png", "sub/b.png"], ["sub/b.txt", "sub__b.txt"]), [
        "sub__b.txt", "second label for image 'sub/b.png'"]


def case_init_label_named_after_a_double_suffix_image(t):
    return _init_labeled(t, ["x.png", "x.png.jpg"], ["x.png.txt"]), [
        "x.png.txt", "could mean image 'x.png' or 'x.png.jpg'"]


def case_init_image_named_as_a_deep_image_is_shortened(t):
    """The bundle names a deep image by its key cut short and hashed; an image named so already clashes."""
    deep = f"{'d' * 200}/{'e' * 200}/{'f' * 240}"
    key = deep.replace("/", "__").encode()
    digest = hashlib.sha256(key).hexdigest()[:12]
    return _init_labeled(t, [f"{deep}.png", f"{'d' * 187}~{digest}.png", "a.png"], []), [
        "imgs: images 'dddd", "ffff.png' and 'dddd", f"~{digest}.png'", "get the same bundle name"]


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
    assert {c.__name__.split("_")[1] for c in CASES} == {"init", "import", "status", "cycle", "simulate"}


# == what is not an error: the fixes at work ===================================================


def _db_count(db: Path, table: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def _integrity(db: Path) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def _backups(project: Path) -> list[Path]:
    return sorted(project.glob("backup-*"))


# -- group 1: init --force against a running import, and after a crash ----------------------------


def test_init_force_during_an_import_is_refused_and_the_import_survives(tmp_path, capsys):
    """The issue's race, made deterministic: the import is held after writing its first label."""
    project = make_project(tmp_path, n=60)
    returned = write_returned(tmp_path / "ret", project, 0)
    inside, go_on = threading.Event(), threading.Event()
    hooks = Hooks()
    hooks.add("on_label_written", lambda index, path: (inside.set(), go_on.wait(30)) if index == 0 else None)
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(r=import_labels(project, returned, hooks=hooks)))
    worker.start()
    try:
        assert inside.wait(30)
        capsys.readouterr()
        assert main(_init(tmp_path, tmp_path / "images", "--force", project=project)) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "another detal command is running on this project" in err[0]
        assert not _backups(project)
    finally:
        go_on.set()
        worker.join(30)
    assert result["r"].n_labeled == 6
    assert main(_init(tmp_path, tmp_path / "images", "--force", project=project)) == 0
    [backup] = _backups(project)
    assert _integrity(backup / "detal.db") == "ok"
    assert _db_count(backup / "detal.db", "imports") == 1  # the committed import is in the backup
    assert _integrity(project / "detal.db") == "ok"
    assert _db_count(project / "detal.db", "imports") == 0
    assert _db_count(project / "detal.db", "images") == 60


_CRASHED_IMPORT = """
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA wal_autocheckpoint=0")
conn.execute("BEGIN IMMEDIATE")
for i in range(200):
    conn.execute("INSERT INTO imports (source, at, n_labeled, n_unchanged, n_overwritten) "
                 "VALUES (?, 0, 1, 0, 0)", (f"crashed-{i}" * 50,))
conn.execute("COMMIT")
os._exit(9)  # killed: the committed rows are only in the WAL
"""


def test_init_force_after_a_crash_keeps_the_wal_with_its_database(tmp_path):
    project = make_project(tmp_path, n=20)
    subprocess.run([sys.executable, "-c", _CRASHED_IMPORT, str(project / "detal.db")], check=False)
    assert (project / "detal.db-wal").stat().st_size > 0  # the crash state the issue describes
    init_project(project, tmp_path / "images", tmp_path / "classes.txt", force=True)
    [backup] = _backups(project)
    assert _integrity(backup / "detal.db") == "ok"
    assert _db_count(backup / "detal.db", "imports") == 200
    assert _integrity(project / "detal.db") == "ok"
    assert _db_count(project / "detal.db", "imports") == 0
    assert not (project / "detal.db-wal").exists() or _db_count(project / "detal.db", "imports") == 0
    with Store.open(project / "detal.db") as store:
        assert store.image_count() == 20


@pytest.mark.parametrize("leftover", ["detal.db-wal", "detal.db-shm", "detal.db-journal"])
def test_init_force_moves_every_database_file(tmp_path, leftover):
    """A file SQLite keeps beside the database never stays beside the new one."""
    project = make_project(tmp_path, n=20)
    (project / leftover).write_bytes(b"stale " * 100)
    init_project(project, tmp_path / "images", tmp_path / "classes.txt", force=True)
    assert not (project / leftover).exists()
    assert _integrity(project / "detal.db") == "ok"
    [backup] = _backups(project)
    assert (backup / "detal.db").is_file()


def test_init_force_twice_within_a_second(tmp_path, capsys):
    project = make_project(tmp_path, n=20)
    argv = _init(tmp_path, tmp_path / "images", "--force", project=project)
    assert main(argv) == 0
    assert main(argv) == 0
    assert main(argv) == 0, capsys.readouterr().err
    backups = _backups(project)
    assert len(backups) == 3
    assert all((b / "detal.db").is_file() for b in backups)
    assert (project / LOCK_FILE).is_file() and not any((b / LOCK_FILE).exists() for b in backups)


# -- group 3: the scan follows each folder once, and never enters the project --------------------


def _links(kind: str, images: Path, outside: Path) -> int:
    """Add links of ``kind`` to a 6-image folder; return the number of distinct images then."""
    if kind == "self":
        (images / "self").symlink_to(".", target_is_directory=True)
    elif kind == "loop":
        (images / "sub" / "up").symlink_to("..", target_is_directory=True)
    elif kind == "outside-twice":
        make_images(outside, 3, start=100)
        (images / "one").symlink_to(outside, target_is_directory=True)
        (images / "two").symlink_to(outside, target_is_directory=True)
        return 9
    elif kind == "absolute-root":
        (images / "sub" / "root").symlink_to(images, target_is_directory=True)
    elif kind == "mutual":
        (images / "x").mkdir()
        (images / "x" / "to_sub").symlink_to(images / "sub", target_is_directory=True)
        (images / "sub" / "to_x").symlink_to(images / "x", target_is_directory=True)
    return 6


@pytest.mark.parametrize("kind", ["self", "loop", "outside-twice", "absolute-root", "mutual"])
def test_scan_follows_a_linked_folder_once(tmp_path, kind):
    make_images(tmp_path / "imgs", 6, sub_every=2)
    expected = _links(kind, tmp_path / "imgs", tmp_path / "outside")
    report = init_project(tmp_path / "p", tmp_path / "imgs", write_classes(tmp_path / "classes.txt"))
    assert report.n_images == expected


def test_project_inside_its_image_folder_is_never_scanned(tmp_path):
    make_images(tmp_path / "imgs", 12, sub_every=4)
    classes = write_classes(tmp_path / "classes.txt")
    project = tmp_path / "imgs" / "proj"
    assert init_project(project, tmp_path / "imgs", classes).n_images == 12
    for _ in range(2):  # init --force follows nothing of the project: its images link, its backups
        assert init_project(project, tmp_path / "imgs", classes, force=True).n_images == 12
    assert (project / "images").is_symlink() and len(_backups(project)) == 2


# -- group 4: an image deleted or changed after init leaves the pool; the cycle goes on ------------


def _spoil(path: Path, how: str) -> None:
    if how == "deleted":
        path.unlink()
    else:
        Image.new("RGB", (20, 20), (1, 2, 3)).save(path)


@pytest.mark.parametrize("how", ["deleted", "changed"])
def test_an_image_spoiled_after_selection_leaves_the_batch(tmp_path, capsys, how):
    project = make_project(tmp_path, n=40)
    label_cycle(project, 0, tmp_path)
    spoiled: list[Path] = []

    def spoil(cycle, ids):
        with Store.open(project / "detal.db") as store:
            row = store.images([int(ids[0])])[0]
        spoiled.append(project / row.relpath)
        _spoil(spoiled[0], how)

    hooks = Hooks()
    hooks.add("on_select_end", spoil)
    capsys.readouterr()
    report = run_cycle(project, FakeAdapter(len(NAMES), seed=2), hooks=hooks)
    problem = "missing" if how == "deleted" else "changed"
    rel = spoiled[0].relative_to(project).as_posix()
    assert report.dropped == [(rel, problem)]
    assert report.n_selected == 3 and len(batch_names(project, 1)) == 3
    err = capsys.readouterr().err
    assert f"{rel}: {problem}" in err and "taken out of the pool" in err
    assert main(["status", str(project), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["images"][problem] == 1 and st["images"]["pool"] == 39
    assert st["cycles"][-1]["state"] == "done"
    with Store.open(project / "detal.db") as store:  # it stays recorded, with its status
        [row] = [r for r in store.images() if r.relpath == rel]
        assert row.problem == problem and row.status == "selected"


def test_a_cycle_stuck_at_selected_goes_on_once_rerun(tmp_path, capsys):
    """The issue's case: the bundle could not be written, and every rerun failed."""
    project = make_project(tmp_path, n=40)
    label_cycle(project, 0, tmp_path)
    hooks = Hooks()

    def crash(cycle, ids):
        raise KeyboardInterrupt

    hooks.add("on_select_end", crash)
    with pytest.raises(KeyboardInterrupt):
        run_cycle(project, FakeAdapter(len(NAMES), seed=2), hooks=hooks)
    with Store.open(project / "detal.db") as store:
        batch = store.images(selected_cycle=1)
        assert store.last_cycle().state == "selected"
    (project / batch[0].relpath).unlink()
    (project / batch[1].relpath).unlink()
    capsys.readouterr()
    assert main(["cycle", str(project)]) == 0
    out, err = capsys.readouterr()
    assert "resumed" in out  # the wording is the cycle output's
    assert err.count("taken out of the pool") == 2 and batch[0].relpath in err
    assert len(batch_names(project, 1)) == 2
    assert main(["import", str(project), str(write_returned(tmp_path / "r1", project, 1))]) == 0


@pytest.mark.parametrize("how", ["deleted", "changed"])
def test_a_labeled_image_spoiled_is_not_trained_on(tmp_path, capsys, how):
    project = make_project(tmp_path, n=40, val=3)
    label_cycle(project, 0, tmp_path)
    with Store.open(project / "detal.db") as store:
        labeled = store.images(status="labeled")
        val = store.images(status="val")
    _spoil(project / labeled[0].relpath, how)
    _spoil(project / val[0].relpath, how)
    adapter = FakeAdapter(len(NAMES), seed=2)
    report = run_cycle(project, adapter)
    assert report.n_train == len(labeled) - 1
    assert {r for r, _ in report.dropped} == {labeled[0].relpath, val[0].relpath}
    train = json.loads((project / "cycles/1/train/weights.json").read_text())["train"]
    assert str(project / labeled[0].relpath) not in train and len(train) == len(labeled) - 1
    st = json.loads(_status_json(project, capsys))
    assert st["images"]["val"] == 2 and st["images"]["labeled"] == len(labeled) - 1


def _status_json(project: Path, capsys) -> str:
    capsys.readouterr()
    assert main(["status", str(project), "--json"]) == 0
    return capsys.readouterr().out


def test_many_missing_images_are_summed_up(tmp_path, capsys):
    from detal.project.verify import MAX_WARNINGS, usable_rows

    project = make_project(tmp_path, n=40)
    with Store.open(project / "detal.db") as store:
        rows = store.images(status="unlabeled")
        for r in rows[:25]:
            (project / r.relpath).unlink()
        lines: list[str] = []
        kept = usable_rows(project, store, rows, set(), warn=lines.append, allow_missing=True)
        assert len(kept) == len(rows) - 25
        assert len(lines) == MAX_WARNINGS + 1 and "25 images taken out of the pool" in lines[-1]
        assert store.problem_counts() == {"missing": 25, "changed": 0, "unreadable": 0}
        assert store.load_pool().size == 15


# -- group 5: a backup never overwrites another ------------------------------------------------------


def test_overwrite_three_times_in_one_instant_keeps_every_label(tmp_path, monkeypatch):
    import detal.project.label_import as li

    monkeypatch.setattr(li.time, "time", lambda: 1_700_000_000.25)
    project = make_project(tmp_path, n=20)
    versions = ["0 0.5 0.5 0.2 0.2", "1 0.5 0.5 0.2 0.2", "2 0.5 0.5 0.2 0.2", "1 0.4 0.4 0.2 0.2"]
    import_labels(project, write_returned(tmp_path / "v0", project, 0, versions[0]))
    for n, line in enumerate(versions[1:], start=1):
        import_labels(project, write_returned(tmp_path / f"v{n}", project, 0, line), overwrite=True)
    replaced = sorted((project / "labels/.replaced").rglob("*.txt"))
    assert len(replaced) == 3 * 2  # two images in batch 0, three replaced versions each
    kept = sorted(p.read_text().split()[0] for p in replaced)
    assert kept == ["0", "0", "1", "1", "2", "2"]


def test_a_backup_name_already_taken_is_not_overwritten(tmp_path, monkeypatch):
    import detal.project.label_import as li

    monkeypatch.setattr(li.time, "time", lambda: 1_700_000_000.5)
    project = make_project(tmp_path, n=20)
    import_labels(project, write_returned(tmp_path / "v0", project, 0, "0 0.5 0.5 0.2 0.2"))
    key = batch_names(project, 0)[0].rsplit(".", 1)[0]
    taken = project / "labels/.replaced/images" / f"{key}.20231114-221320.500000-0.txt"
    taken.parent.mkdir(parents=True)
    taken.write_text("a person's label\n")
    import_labels(project, write_returned(tmp_path / "v1", project, 0, "1 0.5 0.5 0.2 0.2"), overwrite=True)
    assert taken.read_text() == "a person's label\n"
    assert (taken.parent / f"{key}.20231114-221320.500000-1.txt").read_text().startswith("0 ")


def test_the_same_boxes_written_differently_are_unchanged(tmp_path):
    project = make_project(tmp_path, n=20)
    import_labels(project, write_returned(tmp_path / "v0", project, 0, "0 0.5 0.5 0.2 0.2\n1 0.25 0.25 0.1 0.1"))
    again = write_returned(tmp_path / "v1", project, 0, "1  0.250000 0.2500 0.1 0.10\n\n0 0.5 0.5 0.2 0.2")
    report = import_labels(project, again, overwrite=True)
    assert (report.n_unchanged, report.n_overwritten) == (2, 0)
    assert not (project / "labels/.replaced").exists()


# -- group 10: status reads only ---------------------------------------------------------------------


def test_status_opens_the_database_read_only(tmp_path, monkeypatch, capsys):
    """Every connection status makes is ``mode=ro``, and no file under the project changes."""
    project = make_project(tmp_path, n=20)
    (project / LOCK_FILE).unlink()
    opened: list[str] = []
    real_connect = sqlite3.connect

    def spy(database, *args, **kwargs):
        opened.append(str(database))
        return real_connect(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", spy)
    db = project / "detal.db"
    stat = db.stat()
    before = {p.name for p in project.iterdir()}
    assert main(["status", str(project)]) == 0
    assert opened and all("mode=ro" in u for u in opened)
    assert {p.name for p in project.iterdir()} == before  # no lock file, no -wal, no -shm made
    assert (db.stat().st_mtime_ns, db.stat().st_size) == (stat.st_mtime_ns, stat.st_size)


def _read_only_copy(src: Path, images: Path) -> tuple[Path, Path]:
    """A copy of a project and its images under /tmp (which every user may enter), all read-only."""
    base = Path(tempfile.mkdtemp(prefix="detal-ro-", dir="/tmp"))
    shutil.copytree(images, base / "images")
    project = base / "proj"
    shutil.copytree(src, project, symlinks=True)
    (project / "images").unlink()
    (project / "images").symlink_to(base / "images", target_is_directory=True)
    for dirpath, _dirs, files in os.walk(base):
        os.chmod(dirpath, 0o555)
        for f in files:
            os.chmod(Path(dirpath) / f, 0o444)
    return base, project


def _file_bytes(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = os.readlink(p) if p.is_symlink() else (
            hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
    return out


def _remove(base: Path) -> None:
    for dirpath, _dirs, _files in os.walk(base):
        os.chmod(dirpath, 0o755)
    shutil.rmtree(base, ignore_errors=True)


def _status_as_nobody(project: Path) -> tuple[int, str]:
    """``detal status`` in a forked child that has become the user nobody (uid 65534)."""
    import contextlib
    import io

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 99
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                code = main(["status", str(project)])
            os.write(w, out.getvalue().encode())
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(w, repr(exc).encode())
        os._exit(code)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), data.decode()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_status_by_a_user_who_may_only_read(tmp_path):
    """A real second user (nobody) on a read-only copy of a project: status works and writes nothing.

    The child process is forked from this one (the interpreter lives where
    nobody may not read) and drops to uid 65534 before ``main`` runs, so
    every file access is checked as that user's.
    """
    src = make_project(tmp_path, n=20)
    label_cycle(src, 0, tmp_path)
    base, project = _read_only_copy(src, tmp_path / "images")
    try:
        before = _file_bytes(base)  # not through sqlite: as root, even mode=ro may add a -shm
        code, out = _status_as_nobody(project)
        assert code == 0, out
        assert "20 pool images" in out and "labeled 2" in out
        assert _file_bytes(base) == before
        assert not (project / "detal.db-wal").exists()
    finally:
        _remove(base)


def test_status_on_a_read_only_file_system(tmp_path, capsys):
    """A read-only bind mount: the kernel refuses every write, so status must do none."""
    src = make_project(tmp_path, n=20)
    mount = tmp_path / "ro"
    mount.mkdir()
    made = subprocess.run(["mount", "--bind", str(src), str(mount)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {made.stderr.decode().strip()}")
    try:
        ro = subprocess.run(["mount", "-o", "remount,ro,bind", str(mount)], capture_output=True, check=False)
        if ro.returncode != 0:
            pytest.skip("cannot make the bind mount read-only")
        with pytest.raises(OSError):
            (mount / "probe").write_text("x")
        capsys.readouterr()
        assert main(["status", str(mount)]) == 0, capsys.readouterr().err
        assert "20 pool images" in capsys.readouterr().out
    finally:
        # lazy: a connection a failing status left open must not keep the mount
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_status_does_not_migrate_an_old_database(tmp_path, capsys):
    """A database made before ``scores.embedding`` and ``images.problem``: status reads it as it is."""
    project = make_project(tmp_path, n=20)
    _sql(project, "ALTER TABLE scores DROP COLUMN embedding", "ALTER TABLE images DROP COLUMN problem")
    before = hashlib.sha256((project / "detal.db").read_bytes()).hexdigest()
    assert main(["status", str(project), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["images"]["pool"] == 20 and st["images"]["missing"] == 0
    assert hashlib.sha256((project / "detal.db").read_bytes()).hexdigest() == before
    with Store.open(project / "detal.db") as store:  # a command that writes brings it up to date
        assert store.problem_counts() == {"missing": 0, "changed": 0, "unreadable": 0}
        assert "problem" in {r[1] for r in store.execute("PRAGMA table_info(images)")}


# -- group 11: pre-labels accepted on purpose, or corrected -------------------------------------------


def test_prelabels_accepted_with_the_flag(tmp_path, capsys):
    project = _after_cycle_1(tmp_path)
    bundle = project / "cycles/1/batch-1.zip"
    assert main(["import", str(project), str(bundle), "--accept-prelabels"]) == 0
    assert "imported 4 labels" in capsys.readouterr().out


def test_prelabels_with_one_label_corrected_are_imported(tmp_path, capsys):
    project = _after_cycle_1(tmp_path)
    shutil.copytree(project / "cycles/1/prelabels", tmp_path / "ret")
    first = min((tmp_path / "ret").iterdir())
    first.write_text("2 0.3 0.3 0.1 0.1\n")
    assert main(["import", str(project), str(tmp_path / "ret")]) == 0
    assert "imported 4 labels" in capsys.readouterr().out


def test_coco_without_annotations_with_allow_empty(tmp_path, capsys):
    project = make_project(tmp_path, n=20)
    images = []
    with zipfile.ZipFile(project / "cycles/0/batch-0.zip") as zf:
        for i, name in enumerate(batch_names(project, 0), start=1):
            with zf.open(f"images/{name}") as fh:
                w, h = Image.open(fh).size
            images.append({"id": i, "file_name": name, "width": w, "height": h})
    doc = {"images": images, "annotations": [], "categories": [{"id": 1, "name": "cat"}]}
    (tmp_path / "i.json").write_text(json.dumps(doc))
    argv = ["import", str(project), str(tmp_path / "i.json"), "--format", "coco"]
    assert main(argv) == 1
    assert "no annotations at all" in capsys.readouterr().err
    assert main([*argv, "--allow-empty"]) == 0
    assert "imported 2 labels" in capsys.readouterr().out


# -- group 16: a killed init's temporary folder ----------------------------------------------------------


_KILLED_INIT = """
import os, sys
import detal.project.create as create
def killed(*args, **kwargs):
    os._exit(9)
create._move_into_place = killed
create.init_project(sys.argv[1], sys.argv[2], sys.argv[3])
"""


def test_a_killed_init_is_cleaned_by_the_next(tmp_path):
    make_images(tmp_path / "imgs", 6)
    classes = write_classes(tmp_path / "classes.txt")
    project = tmp_path / "p"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    run = subprocess.run([sys.executable, "-c", _KILLED_INIT, str(project), str(tmp_path / "imgs"), str(classes)],
                         env=env, check=False, timeout=120)
    assert run.returncode == 9
    [left] = tmp_path.glob(".p.init-*")
    assert left.name.startswith(f".p.init-{run.args and left.name.split('-')[1]}")
    assert (left / "detal.db").is_file() and not project.exists()
    init_project(project, tmp_path / "imgs", classes)
    assert not list(tmp_path.glob(".p.init-*"))
    assert (project / "detal.db").is_file()


@pytest.mark.parametrize("name, removed", [
    ("dead", True),
    ("alive", False),  # an init running now
    ("no-pid", False),  # made by something that cannot be asked
    ("other-project", False),
])
def test_stale_init_folders(tmp_path, name, removed):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = {"dead": f".p.init-{dead.pid}-x1", "alive": f".p.init-{os.getpid()}-x2",
              "no-pid": ".p.init-abcdefgh", "other-project": f".q.init-{dead.pid}-x3"}[name]
    (tmp_path / folder).mkdir()
    (tmp_path / folder / "detal.db").write_text("half built")
    gone = clean_stale_init(tmp_path, "p")
    assert (not (tmp_path / folder).exists()) == removed
    assert gone == ([tmp_path / folder] if removed else [])


# -- the fake adapter reports each image's real size (so COCO's size check holds) ------------------------


def test_fake_adapter_reports_real_image_sizes(tmp_path):
    Image.new("RGB", (23, 17)).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"not an image")
    result = FakeAdapter(3, size=(64, 48)).predict(Path("w"), [tmp_path / "a.png", tmp_path / "b.png"], conf=0)
    assert [(p.width, p.height) for p in result.predictions] == [(23, 17), (64, 48)]
    for p in result.predictions:
        assert (p.detections.xyxy[:, [0, 2]] <= p.width).all() and (p.detections.xyxy[:, [1, 3]] <= p.height).all()


# -- issue 22, defect 11: what may lie beside labels/ -----------------------------------------------


def test_an_unzipped_bundle_with_its_lists_beside_labels_imports(tmp_path, capsys):
    """classes.txt, data.yaml, manifest.csv, readme.txt and the images beside labels/ are no labels."""
    project = make_project(tmp_path, n=40)
    ret = tmp_path / "ret"
    with zipfile.ZipFile(project / "cycles/0/batch-0.zip") as zf:
        zf.extractall(ret)
    write_returned(ret / "labels", project, 0)
    (ret / "readme.txt").write_text("labeled by the vendor\n")
    assert main(["import", str(project), str(ret)]) == 0, capsys.readouterr().err
    assert "imported 4 labels" in capsys.readouterr().out


def test_an_old_project_without_clashing_names_is_checked_once_and_marked(tmp_path, capsys):
    """A project made before the case rule whose names do not clash runs its cycle; the check is not made again."""
    project = _made_before_the_case_rule(_ready_for_cycle_2(tmp_path), {})
    assert main(["cycle", str(project)]) == 0, capsys.readouterr().err
    with Store.open(project / "detal.db") as store:
        assert store.get_meta("name_rule") == "folded"


def test_the_old_project_check_folds_bundle_names_as_init_does(tmp_path, capsys):
    """Two long names one in case at their start have bundle names that differ (each ends in its own
    hash): init takes both, so the check of an older project must take them too."""
    upper, lower = f"{'A' * 240}.png", f"{'a' * 240}.png"
    assert short_name(upper[:-4]).lower() != short_name(lower[:-4]).lower()
    project = _made_before_the_case_rule(_ready_for_cycle_2(tmp_path), {"im005.png": upper, "im006.png": lower})
    assert main(["cycle", str(project)]) == 0, capsys.readouterr().err
    with Store.open(project / "detal.db") as store:
        assert store.get_meta("name_rule") == "folded"


@pytest.mark.parametrize(("name", "other", "words"), [
    ("Cat", "cat", "differ only in case"),
    ("caf\u00e9", "cafe\u0301", "differ only in Unicode normalisation"),
    ("CAF\u00c9", "cafe\u0301", "differ only in case"),  # case and normalisation: case is what a user sees
    ("cat", "cat", None),
])
def test_name_clash_says_what_makes_two_names_one(name, other, words):
    assert fold_name(name) == fold_name(other)
    how = name_clash(name, other)
    assert how == words if words is None else how.startswith(words)


def test_init_marks_its_names_as_checked(tmp_path):
    project = make_project(tmp_path, n=10)
    with Store.open(project / "detal.db") as store:
        assert store.get_meta("name_rule") == "folded"
# -- issue 22, defect 16: names of deep images, through every file detal names after an image ----------

DEEP_LONG = f"{'d' * 200}/{'e' * 200}/{'f' * 240}.png"  # its key (d..d__e..e__f..f) is 644 bytes
NEAR_255 = f"{'g' * 250}.png"  # a name of 254 bytes: <key>.txt fits, <index>_<name> and backups did not
ACCENTED_LONG = f"{'é' * 100}/{'ü' * 120}.png"  # 442 bytes of key, two bytes a character


def _long_pool(t: Path) -> Path:
    names = [DEEP_LONG, NEAR_255, ACCENTED_LONG, "a.png", "sub/b.png", "c.png"]
    for n, name in enumerate(names):
        path = t / "imgs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20 + n, 16), (40 * n, 90, 30)).save(path)
    return t / "imgs"


def _unzip(bundle: Path, to: Path) -> list[dict]:
    """Unpack a bundle as a vendor does (real files on disk); its manifest rows."""
    import csv
    import io

    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(to)
        return list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode("utf-8"))))


def _label_back(ret: Path, rows: list[dict], box: dict[str, str]) -> None:
    """Labels for an unpacked bundle, each named as its image is in the bundle; ``box`` by pool path."""
    (ret / "labels").mkdir(exist_ok=True)
    for row in rows:
        stem = row["image"].rsplit(".", 1)[0]
        (ret / "labels" / f"{stem}.txt").write_text(box[row["path"]], encoding="utf-8")


def _project_labels(project: Path) -> dict[str, str]:
    """The project's labels by the pool image's path (``sub/a.txt``); backups are elsewhere."""
    root = project / "labels" / "images"
    return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8") for p in root.rglob("*.txt")}


def test_deep_image_names_round_trip_through_cycles_bundles_exports_and_imports(tmp_path, capsys):
    from detal.export import read_returned
    from detal.project.label_import import pool_names

    images = _long_pool(tmp_path)
    project = tmp_path / "p"
    cfg = ["initial_fraction=0.5", "batch_fraction=0.5", "subset_fraction=1", "max_labeled_fraction=1"]
    assert main(_init(tmp_path, images, *[a for c in cfg for a in ("--set", c)], project=project)) == 0
    box = {name: f"{n % 3} 0.500000 0.500000 0.{n + 1}00000 0.250000\n" for n, name in
           enumerate([DEEP_LONG, NEAR_255, ACCENTED_LONG, "a.png", "sub/b.png", "c.png"])}

    rows0 = _unzip(project / "cycles/0/batch-0.zip", tmp_path / "ret0")
    assert len(rows0) == 3 and {r["path"] for r in rows0} <= set(box)
    _label_back(tmp_path / "ret0", rows0, box)
    assert main(["import", str(project), str(tmp_path / "ret0")]) == 0, capsys.readouterr().err

    hooks = Hooks()

    def stop(**_):
        raise KeyboardInterrupt

    hooks.add("on_prelabels_written", stop)
    with pytest.raises(KeyboardInterrupt):  # interrupted once its pre-label files are on disk
        run_cycle(project, FakeAdapter(len(NAMES), seed=2), hooks=hooks, formats=["yolo", "cvat-yolo", "coco"])
    run_cycle(project, FakeAdapter(len(NAMES), seed=2), formats=["yolo", "cvat-yolo", "coco"])  # the resume
    capsys.readouterr()
    assert main(["review", str(project)]) == 0, capsys.readouterr().err

    # every name made from an image's key is bounded (labels/ mirrors the pool's own names)
    for path in (project / "cycles").rglob("*"):
        assert len(path.name.encode("utf-8")) <= 210, path.name

    rows1 = _unzip(project / "cycles/1/batch-1.zip", tmp_path / "ret1")
    assert {r["path"] for r in rows0} | {r["path"] for r in rows1} == set(box)
    with Store.open(project / "detal.db") as store:
        pool = pool_names(store)
        out = {r.key for r in store.images(selected_cycle=1)}
    exports = project / "cycles/1/exports"
    for path, fmt in [(exports / "coco/annotations/instances_default.json", "coco"),
                      (exports / "cvat-yolo.zip", "cvat-yolo"), (tmp_path / "ret1", "yolo")]:
        got = read_returned(path, fmt, NAMES, pool=pool)
        assert not got.problems and set(got.labels) == out, (fmt, got.problems[:2])

    _label_back(tmp_path / "ret1", rows1, box)
    assert main(["import", str(project), str(tmp_path / "ret1")]) == 0, capsys.readouterr().err
    assert _project_labels(project) == {name.rsplit(".", 1)[0] + ".txt": text for name, text in box.items()}

    # a correction of the 254-byte name, the old label kept aside under a name that fits
    (tmp_path / "fix" / "labels").mkdir(parents=True)
    (tmp_path / "fix" / "labels" / f"{'g' * 250}.txt").write_text("2 0.400000 0.400000 0.200000 0.200000\n")
    assert main(["import", str(project), str(tmp_path / "fix"), "--overwrite"]) == 0, capsys.readouterr().err
    assert _project_labels(project)[f"{'g' * 250}.txt"] == "2 0.400000 0.400000 0.200000 0.200000\n"
    [kept] = (project / "labels" / ".replaced").rglob("*.txt")
    assert kept.read_text() == box[NEAR_255]


# -- init --labels and the simulated annotator match by the key rule (issue 22) ----------------------


def _labeled_init(t: Path, pool: list[str], labels: dict[str, str]) -> list[str]:
    for n, name in enumerate(pool):
        path = t / "imgs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20 + n, 16), (40 * n, 90, 30)).save(path)
    for name, text in labels.items():
        (t / "lab" / name).parent.mkdir(parents=True, exist_ok=True)
        (t / "lab" / name).write_text(text)
    return _init(t, t / "imgs", "--labels", str(t / "lab"))


@pytest.mark.parametrize("pool, labels, lands", [
    (["a.png", "sub/b.png"], {"sub__b.txt": "1 0.5 0.5 0.2 0.2\n"}, {"sub/b": "1"}),  # named as the bundle
    (["a.png", "sub/b.png"], {"b.txt": "1 0.5 0.5 0.2 0.2\n"}, {"sub/b": "1"}),  # a base name one image has
    (["a.png", "sub/b.png"], {"labels/sub/b.txt": "2 0.5 0.5 0.2 0.2\n", "labels/a.txt": "0 0.5 0.5 0.2 0.2\n"},
     {"sub/b": "2", "a": "0"}),  # wrapped in labels/
    (["x.png", "y.jpg"], {"x.png.txt": "1 0.5 0.5 0.2 0.2\n", "y.jpg.txt": "2 0.5 0.5 0.2 0.2\n"},
     {"x": "1", "y": "2"}),  # named after the image file
], ids=["bundle-name", "base-name", "under-labels", "image-file-name"])
def test_init_labels_match_by_the_key_rule(tmp_path, capsys, pool, labels, lands):
    assert main(_labeled_init(tmp_path, pool, labels)) == 0, capsys.readouterr().err
    got = {k[: -len(".txt")]: v.split()[0] for k, v in _project_labels(tmp_path / "p").items()}
    assert got == lands
