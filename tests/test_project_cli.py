"""``detal init | cycle | import | status`` in-process, and the bad-input table.

Every bad input must exit 1 with exactly one line on stderr naming the file
and the problem, and leave the project (DB rows and files) exactly as it was.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
from projectkit import (
    NAMES,
    batch_names,
    make_images,
    make_project,
    snapshot,
    write_classes,
    write_returned,
)

from detal.cli import main
from detal.commands import project as project_cmd
from detal.fake import FakeAdapter


@pytest.fixture(autouse=True)
def fake_adapter(monkeypatch):
    monkeypatch.setattr(project_cmd, "make_adapter", lambda cfg, project: FakeAdapter(len(NAMES), seed=2))


def _keys(project: Path, cycle: int = 0) -> list[str]:
    return [n.rsplit(".", 1)[0] for n in batch_names(project, cycle)]


def test_loop_through_the_cli(tmp_path, capsys):
    make_images(tmp_path / "imgs", 30)
    write_classes(tmp_path / "classes.txt")
    project = tmp_path / "proj"
    assert main(["init", str(project), "--images", str(tmp_path / "imgs"), "--classes",
                 str(tmp_path / "classes.txt"), "--set", "initial_fraction=0.1"]) == 0
    out = capsys.readouterr().out
    assert "30 images" in out and "initial batch: 3 images" in out
    assert main(["import", str(project), str(write_returned(tmp_path / "r0", project, 0))]) == 0
    assert "imported 3 labels" in capsys.readouterr().out
    assert main(["cycle", str(project)]) == 0
    out = capsys.readouterr().out
    assert "train: 3 images" in out and "select: 3 images" in out  # (a batch out: tests/test_cycle_cli.py)
    assert main(["status", str(project)]) == 0
    out = capsys.readouterr().out
    assert "batch out: cycle 1, 3 of 3" in out and "labeled 3 (10.0%" in out
    assert main(["status", str(project), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["images"]["selected"] == 3 and len(st["cycles"]) == 2


def test_cycle_format_list_is_parsed(tmp_path, monkeypatch, capsys):
    project = make_project(tmp_path, n=30)
    seen = {}

    def fake_run_cycle(project, adapter, **kw):
        seen.update(kw)
        raise SystemExit(0)

    monkeypatch.setattr("detal.project.run_cycle", fake_run_cycle)
    with pytest.raises(SystemExit):
        main(["cycle", str(project), "--format", "yolo,coco", "--format", "cvat-yolo", "--force"])
    assert seen["formats"] == ["yolo,coco", "cvat-yolo"] and seen["force"] is True


def test_fake_adapter_env_switch(tmp_path, monkeypatch):
    monkeypatch.undo()  # use the real make_adapter
    monkeypatch.setenv("DETAL_FAKE_ADAPTER", "1")
    project = make_project(tmp_path, n=20)
    from detal.config import load_config

    adapter = project_cmd.make_adapter(load_config(), project)
    assert isinstance(adapter, FakeAdapter) and adapter.n_classes == len(NAMES)


# -- bad input ---------------------------------------------------------------------
def _init_argv(tmp_path, project="proj", images="images", classes="classes.txt", *extra):
    return ["init", str(tmp_path / project), "--images", str(tmp_path / images),
            "--classes", str(tmp_path / classes), *extra]


def _pool(tmp_path, n=20):
    make_images(tmp_path / "images", n)
    write_classes(tmp_path / "classes.txt")


def _ret(tmp_path, lines: dict[int, str] | None = None, extra: dict[str, str] | None = None):
    """A project with batch 0 out, and a returned-labels folder for it (edited by ``lines``)."""
    project = make_project(tmp_path, n=40)
    ret = write_returned(tmp_path / "ret", project, 0)
    keys = _keys(project)
    for i, text in (lines or {}).items():
        (ret / f"{keys[i]}.txt").write_text(text)
    for name, text in (extra or {}).items():
        (ret / name).write_text(text)
    return project, ret, keys


def _zip(tmp_path, members: dict[str, str], symlink: str | None = None):
    project = make_project(tmp_path, n=40)
    keys = _keys(project)
    path = tmp_path / "ret.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for k in keys:
            zf.writestr(f"{k}.txt", "0 0.5 0.5 0.2 0.2\n")
        for name, text in members.items():
            zf.writestr(name, text)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, "/etc/passwd")
    return project, path


def case_missing_classes(t):
    _pool(t)
    return _init_argv(t, classes="nope.txt"), ["nope.txt", "classes file not found"]


def case_empty_classes(t):
    _pool(t)
    (t / "empty.txt").write_text("\n  \n")
    return _init_argv(t, classes="empty.txt"), ["empty.txt", "classes file is empty"]


def case_no_images(t):
    (t / "images").mkdir()
    (t / "images" / "notes.md").write_text("hi")
    write_classes(t / "classes.txt")
    return _init_argv(t), ["images", "no images found"]


def case_missing_image_folder(t):
    write_classes(t / "classes.txt")
    return _init_argv(t, images="nowhere"), ["nowhere", "image folder not found"]


def case_corrupt_image(t):
    _pool(t)
    (t / "images" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return _init_argv(t), ["bad.png", "corrupt image"]


def case_empty_image(t):
    _pool(t)
    (t / "images" / "zero.jpg").write_bytes(b"")
    return _init_argv(t), ["zero.jpg", "corrupt image, empty file"]


def case_project_exists(t):
    make_project(t, n=20)
    return _init_argv(t), ["proj", "already exists", "--force"]


def case_init_label_for_unknown_image(t):
    _pool(t)
    (t / "lab").mkdir()
    (t / "lab" / "im003.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (t / "lab" / "stranger.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    return _init_argv(t, "proj", "images", "classes.txt", "--labels", str(t / "lab")), [
        "stranger.txt", "label for an image the project does not have"]


def case_init_malformed_label(t):
    _pool(t)
    (t / "lab").mkdir()
    (t / "lab" / "im003.txt").write_text("0 0.5 0.5\n")
    return _init_argv(t, "proj", "images", "classes.txt", "--labels", str(t / "lab")), [
        "im003.txt:1", "expected 5 fields"]


def case_val_images_without_labels(t):
    _pool(t)
    make_images(t / "val", 2, start=50)
    return _init_argv(t, "proj", "images", "classes.txt", "--val-images", str(t / "val")), [
        "--val-images and --val-labels go together"]


def case_val_image_without_label(t):
    _pool(t)
    make_images(t / "val", 2, start=50)
    (t / "vl").mkdir()
    (t / "vl" / "im050.txt").write_text("")
    return _init_argv(t, "proj", "images", "classes.txt", "--val-images", str(t / "val"),
                      "--val-labels", str(t / "vl")), ["im051.png", "validation image has no label file"]


def case_unknown_config_key(t):
    _pool(t)
    return _init_argv(t, "proj", "images", "classes.txt", "--set", "inital_fraction=0.1"), [
        "inital_fraction", "did you mean 'initial_fraction'"]


def case_import_unknown_image(t):
    project, ret, _ = _ret(t, extra={"im999.txt": "0 0.5 0.5 0.1 0.1\n"})
    return ["import", str(project), str(ret)], ["im999.txt", "does not have"]


def case_import_malformed_line(t):
    project, ret, keys = _ret(t, {1: "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2 0.9 7\n"})
    return ["import", str(project), str(ret)], [f"{keys[1]}.txt:2", "expected 5 fields"]


def case_import_non_numeric(t):
    project, ret, keys = _ret(t, {0: "car 0.5 0.5 0.2 0.2\n"})
    return ["import", str(project), str(ret)], [f"{keys[0]}.txt:1", "class id 'car' is not a number"]


def case_import_class_out_of_range(t):
    project, ret, keys = _ret(t, {2: "3 0.5 0.5 0.2 0.2\n"})
    return ["import", str(project), str(ret)], [f"{keys[2]}.txt:1", "class id 3 out of range [0, 2]"]


def case_import_coords_out_of_range(t):
    project, ret, keys = _ret(t, {0: "0 1.5 0.5 0.2 0.2\n"})
    return ["import", str(project), str(ret)], [f"{keys[0]}.txt:1", "cx=1.5 outside [0, 1]"]


def case_import_zero_size(t):
    project, ret, keys = _ret(t, {3: "1 0.5 0.5 0.0 0.2\n"})
    return ["import", str(project), str(ret)], [f"{keys[3]}.txt:1", "box size must be positive"]


def case_import_many_problems(t):
    project, ret, keys = _ret(t, {0: "9 0.5 0.5 0.2 0.2\n", 1: "0 0.5 0.5 -1 0.2\n"},
                              {"nobody.txt": ""})
    return ["import", str(project), str(ret)], [
        "3 problem(s)", f"{keys[0]}.txt:1", f"{keys[1]}.txt:1", "nobody.txt"]


def case_import_zip_slip(t):
    project, path = _zip(t, {"../../evil.txt": "0 0.5 0.5 0.2 0.2\n"})
    return ["import", str(project), str(path)], ["ret.zip!../../evil.txt", "escapes"]


def case_import_zip_absolute(t):
    project, path = _zip(t, {"/etc/cron.d/x.txt": "0 0.5 0.5 0.2 0.2\n"})
    return ["import", str(project), str(path)], ["/etc/cron.d/x.txt", "absolute path"]


def case_import_zip_symlink(t):
    project, path = _zip(t, {}, symlink="labels/link.txt")
    return ["import", str(project), str(path)], ["labels/link.txt", "symbolic link"]


def case_import_folder_symlink(t):
    project, ret, keys = _ret(t)
    (ret / f"{keys[0]}.txt").unlink()
    outside = t / "outside.txt"
    outside.write_text("0 0.5 0.5 0.2 0.2\n")
    os.symlink(outside, ret / f"{keys[0]}.txt")
    return ["import", str(project), str(ret)], [f"{keys[0]}.txt", "symbolic link not allowed"]


def case_import_not_a_zip(t):
    project = make_project(t, n=20)
    (t / "labels.tar").write_text("not a zip")
    return ["import", str(project), str(t / "labels.tar")], ["labels.tar", "expected a folder or a .zip"]


def case_import_missing_path(t):
    project = make_project(t, n=20)
    return ["import", str(project), str(t / "gone")], ["gone", "not found"]


def case_import_no_batch_out(t):
    project, ret, keys = _ret(t)
    assert main(["import", str(project), str(ret)]) == 0
    other = t / "other"
    other.mkdir()
    free = next(f"im{i:03d}" for i in range(1, 10) if f"im{i:03d}" not in keys)
    (other / f"{free}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    return ["import", str(project), str(other)], ["no batch is out"]


def case_import_changed_label_without_overwrite(t):
    project, ret, keys = _ret(t)
    assert main(["import", str(project), str(ret)]) == 0
    (ret / f"{keys[0]}.txt").write_text("2 0.5 0.5 0.2 0.2\n")
    return ["import", str(project), str(ret)], [f"{keys[0]}.txt", "already labeled", "--overwrite"]


def case_import_not_a_project(t):
    (t / "plain").mkdir()
    (t / "ret").mkdir()
    return ["import", str(t / "plain"), str(t / "ret")], ["plain", "not a detal project"]


def case_cycle_not_a_project(t):
    (t / "plain").mkdir()
    return ["cycle", str(t / "plain")], ["plain", "not a detal project"]


def case_status_not_a_project(t):
    (t / "plain").mkdir()
    return ["status", str(t / "plain")], ["plain", "not a detal project"]


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_bad_input(case, tmp_path, capsys):
    argv, expected = case(tmp_path)
    capsys.readouterr()
    before = snapshot(tmp_path)
    assert main(argv) == 1
    _out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("detal: error: ")
    for text in expected:
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"
    assert snapshot(tmp_path) == before


def test_there_are_enough_bad_input_cases():
    assert len(CASES) >= 15


@pytest.mark.parametrize(("names", "shown"), [
    (["cat", "dog", "bird"], "3 classes (cat, dog, bird)"),
    (["person"], "1 class (person)"),
    ([str(i) for i in range(10)], "10 classes (0, 1, 2, 3, 4, 5, 6, 7, ...)"),
])
def test_init_prints_the_class_count(tmp_path, capsys, names, shown):
    """issue 22, defect 10: init says how many classes it read (a data.yaml read line by line showed 16)."""
    make_images(tmp_path / "imgs", 4)
    classes = write_classes(tmp_path / "classes.txt", names)
    assert main(["init", str(tmp_path / "p"), "--images", str(tmp_path / "imgs"), "--classes", str(classes)]) == 0
    assert f"0 validation, {shown}\n" in capsys.readouterr().out


def test_init_with_a_data_yaml_as_classes_gets_its_names(tmp_path, capsys):
    make_images(tmp_path / "imgs", 4)
    data = tmp_path / "data.yaml"
    data.write_text("path: /data\ntrain: images/train\nval: images/val\nnc: 3\nnames:\n  0: cat\n  1: dog\n  2: bird\n")
    assert main(["init", str(tmp_path / "p"), "--images", str(tmp_path / "imgs"), "--classes", str(data)]) == 0
    assert "3 classes (cat, dog, bird)" in capsys.readouterr().out
    assert (tmp_path / "p" / "classes.txt").read_text() == "cat\ndog\nbird\n"
