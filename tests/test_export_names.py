"""The class names a return carries map its ids by name, whatever file holds them (issue 22, defect 4).

The refusals are cases of ``test_hostile.py`` (``case_yolo_*``); here the
names are the project's, in another order, and every label must land with
the class its box was drawn for.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from projectkit import NAMES, make_project, write_returned

from detal.cli import main
from detal.commands import project as project_cmd
from detal.export import read_returned_labels
from detal.export.names import names_kind
from detal.fake import FakeAdapter
from detal.project.paths import ProjectPaths

VENDOR = ["bird", "cat", "dog"]  # the vendor's order: every id differs from the project's
BOXES = [(0.5, 0.5, 0.2, 0.2), (0.25, 0.3, 0.1, 0.2), (0.7, 0.6, 0.3, 0.1)]


@pytest.fixture(autouse=True)
def fake_adapter(monkeypatch):
    monkeypatch.setattr(project_cmd, "make_adapter", lambda cfg, project: FakeAdapter(len(NAMES), seed=2))


def _vendor_text(n: int) -> str:
    """Label ``n``: one box of every project class, ids in the vendor's order."""
    return "".join(f"{VENDOR.index(NAMES[(n + k) % 3])} {cx} {cy} {w} {h}\n"
                   for k, (cx, cy, w, h) in enumerate(BOXES))


def _project_text(n: int) -> str:
    return "".join(f"{(n + k) % 3} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n" for k, (cx, cy, w, h) in enumerate(BOXES))


NAMES_FILES = {
    "cvat obj.names": ({"obj.names": "\n".join(VENDOR) + "\n",
                        "obj.data": "classes = 3\nnames = data/obj.names\n", "train.txt": ""}, "obj_train_data/"),
    "cvat in a folder": ({"task/obj.names": "\n".join(VENDOR) + "\n", "task/obj.data": "classes = 3\n"},
                         "task/obj_train_data/"),
    "darknet voc.names": ({"voc.names": "\n".join(VENDOR)}, ""),
    "roboflow _darknet.labels": ({"train/_darknet.labels": "\n".join(VENDOR)}, "train/"),
    "dataset.yaml list": ({"dataset.yaml": f"names: [{', '.join(VENDOR)}]\n"}, "labels/"),
    "dataset.yml map": ({"dataset.yml": "names:\n" + "".join(f"  {i}: {n}\n" for i, n in enumerate(VENDOR))},
                        "labels/train/"),
    "nested dataset.yaml": ({"export/dataset.yaml": f"nc: 3\nnames: [{', '.join(VENDOR)}]\n"}, "export/labels/"),
    "obj.names and classes.txt agree": ({"obj.names": "\n".join(VENDOR), "classes.txt": "\n".join(VENDOR)},
                                        "obj_train_data/"),
    "a yaml without names beside": ({"config.yaml": "epochs: 3\n", "classes.txt": "\n".join(VENDOR)}, "labels/"),
}


def _write_return(root: Path, files: dict[str, str], labels_in: str, keys: list[str], zipped: bool) -> Path:
    out = dict(files)
    for n, key in enumerate(keys):
        out[f"{labels_in}{key}.txt"] = _vendor_text(n)
    if zipped:
        path = root / "returned.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in out.items():
                zf.writestr(name, data)
        return path
    for name, data in out.items():
        (root / "returned" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "returned" / name).write_text(data, encoding="utf-8")
    return root / "returned"


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "folder"])
@pytest.mark.parametrize("kind", list(NAMES_FILES))
def test_ids_are_mapped_through_the_names_file_present(tmp_path, kind, zipped):
    files, labels_in = NAMES_FILES[kind]
    keys = ["first", "sub_b", "last"]
    path = _write_return(tmp_path, files, labels_in, keys, zipped)
    got = read_returned_labels(path, "yolo", NAMES)  # without a pool, keyed by the path below labels/
    assert {k.rsplit("/", 1)[-1]: text for k, text in got.items()} == {k: _project_text(n) for n, k in enumerate(keys)}


@pytest.mark.parametrize("fmt", [None, "cvat-yolo"], ids=["default format", "cvat-yolo"])
@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "folder"])
def test_a_cvat_return_in_the_vendors_order_lands_on_the_right_classes(tmp_path, capsys, fmt, zipped):
    """detal import of a CVAT YOLO 1.1 return whose obj.names is the vendor's order."""
    project = make_project(tmp_path, n=20)
    keys = sorted(p.stem for p in write_returned(tmp_path / "keys", project, 0).iterdir())
    files = {"obj.names": "\n".join(VENDOR) + "\n", "obj.data": "classes = 3\nnames = data/obj.names\n"}
    path = _write_return(tmp_path, files, "obj_train_data/", keys, zipped)
    capsys.readouterr()
    assert main(["import", str(project), str(path), *(["--format", fmt] if fmt else [])]) == 0, \
        capsys.readouterr().err
    labels = ProjectPaths(project).labels_dir
    got = {p.stem: p.read_text(encoding="utf-8") for p in labels.rglob("*.txt")}
    assert got == {k: _project_text(n) for n, k in enumerate(keys)}


@pytest.mark.parametrize(("name", "kind"), [
    ("classes.txt", "list"), ("obj.names", "list"), ("Voc.NAMES", "list"), ("_darknet.labels", "list"),
    ("data.yaml", "yaml"), ("DATA.YML", "yaml"), ("dataset.yaml", "other-yaml"), ("a/b/x.yml", "other-yaml"),
    ("obj.data", "darknet-data"), ("a.txt", None), ("train.txt", None), ("notes.json", None),
])
def test_names_kind(name, kind):
    assert names_kind(name) == kind


@pytest.mark.parametrize("names_file", ["classes.txt", "obj.names", "sub/dataset.yaml"])
def test_init_labels_in_another_order_are_mapped_by_name(tmp_path, capsys, names_file):
    from projectkit import make_images, write_classes

    make_images(tmp_path / "imgs", 6, sub_every=3)
    labels = tmp_path / "labels"
    (labels / "sub").mkdir(parents=True)
    text = "\n".join(VENDOR) + "\n" if not names_file.endswith(".yaml") else f"names: [{', '.join(VENDOR)}]\n"
    (labels / names_file).write_text(text, encoding="utf-8")
    (labels / "im001.txt").write_text(_vendor_text(0), encoding="utf-8")
    (labels / "sub" / "im003.txt").write_text(_vendor_text(1), encoding="utf-8")
    capsys.readouterr()
    assert main(["init", str(tmp_path / "p"), "--images", str(tmp_path / "imgs"),
                 "--classes", str(write_classes(tmp_path / "classes.txt")), "--labels", str(labels)]) == 0, \
        capsys.readouterr().err
    labeled = tmp_path / "p" / "labels" / "images"
    got = {p.relative_to(labeled).as_posix(): p.read_text(encoding="utf-8") for p in labeled.rglob("*.txt")}
    assert got == {"im001.txt": _project_text(0), "sub/im003.txt": _project_text(1)}
