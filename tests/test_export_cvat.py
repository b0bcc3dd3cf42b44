"""cvat-yolo: CVAT's YOLO 1.1 zip, laid out as CVAT itself exports it, and read back."""

from __future__ import annotations

import zipfile

import pytest
from test_export_common import NAMES, expected_text, make_batch

from detal.errors import DataError
from detal.export import export_predictions, read_returned_labels
from detal.export.cvat import obj_data


@pytest.fixture
def exported(tmp_path):
    preds = make_batch(tmp_path / "pool")
    out = export_predictions(preds, NAMES, tmp_path / "out", ["cvat-yolo"])
    return preds, out["cvat-yolo"]


def test_zip_layout_has_no_wrapping_folder(exported):
    preds, path = exported
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert names[:3] == ["obj.data", "obj.names", "train.txt"]
        assert {n.split("/")[0] for n in names} == {"obj.data", "obj.names", "train.txt", "obj_train_data"}
        assert zf.read("obj.names").decode().splitlines() == NAMES
        assert zf.read("obj.data").decode() == obj_data(3)
        listed = zf.read("train.txt").decode().splitlines()
        assert listed == [f"data/obj_train_data/{p.path.name}" for p in preds]
        for p in preds:
            assert zf.read(f"obj_train_data/{p.path.stem}.txt").decode() == expected_text(p)
            assert zf.read(f"obj_train_data/{p.path.name}") == p.path.read_bytes()
        assert zf.testzip() is None


def test_obj_data_points_at_the_lists():
    text = obj_data(4)
    fields = dict(line.split(" = ") for line in text.splitlines())
    assert fields == {"classes": "4", "train": "data/train.txt", "names": "data/obj.names", "backup": "backup/"}


def test_same_batch_gives_the_same_bytes(tmp_path):
    preds = make_batch(tmp_path / "pool")
    a = export_predictions(preds, NAMES, tmp_path / "a", ["cvat-yolo"])["cvat-yolo"]
    b = export_predictions(preds, NAMES, tmp_path / "b", ["cvat-yolo"])["cvat-yolo"]
    assert a.read_bytes() == b.read_bytes()


def _rewrite(path, change):
    with zipfile.ZipFile(path) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    change(files)
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in files.items():
            zf.writestr(n, data)


def test_vendor_with_reordered_labels_and_valid_subset(exported):
    """CVAT writes labels in its project's order and may add other subsets."""
    preds, path = exported
    order = ["dog", "bird", "cat"]

    def change(files):
        files["obj.names"] = "\n".join(order).encode()
        for n in [n for n in files if n.endswith(".txt") and n.startswith("obj_train_data/")]:
            lines = []
            for line in files[n].decode().splitlines():
                cls, *rest = line.split()
                lines.append(" ".join([str(order.index(NAMES[int(cls)])), *rest]))
            new = "obj_valid_data/" + n.split("/", 1)[1] if n.endswith("d.txt") else n
            del files[n]
            files[new] = "\n".join(lines).encode()

    _rewrite(path, change)
    assert read_returned_labels(path, "cvat-yolo", NAMES) == {p.path.stem: expected_text(p) for p in preds}


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda f: f.pop("obj.names"), "no obj.names"),
        (lambda f: f.update({"obj.names": b"cat\nhorse\n"}), "class 'horse' \\(id 1\\) is not a project class"),
        (lambda f: f.update({"obj_train_data/a.txt": b"0 0.5 0.5 0.2 0.2\n0 0.9 0.5 0.4 0.2\n"}), "a.txt:2: box extends outside"),
    ],
    ids=["no names", "unknown class", "box outside"],
)
def test_bad_cvat_returns(exported, change, message):
    _, path = exported
    _rewrite(path, change)
    with pytest.raises(DataError, match=message):
        read_returned_labels(path, "cvat-yolo", NAMES)
