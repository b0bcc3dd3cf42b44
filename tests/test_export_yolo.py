"""yolo: the Ultralytics layout; Ultralytics itself trains on it; returned labels read back."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_export_common import NAMES, expected_text, make_batch

from detal.errors import DataError
from detal.export import export_predictions, read_returned_labels
from detal.export.common import canonical_images
from detal.export.yolo import data_yaml


def test_data_yaml_names_and_paths():
    loaded = yaml.safe_load(data_yaml(NAMES))
    assert loaded == {"train": "images", "val": "images", "nc": 3, "names": {0: "cat", 1: "dog", 2: "bird"}}


@pytest.mark.slow
def test_ultralytics_trains_one_epoch_on_the_export(tmp_path, network_attempts):
    """Ultralytics reads every label detal wrote, and trains; nothing is downloaded."""
    ultralytics = pytest.importorskip("ultralytics")
    from ultralytics.utils import USER_CONFIG_DIR

    # check_det_dataset always looks for Arial.ttf (for plots) and would try to download it;
    # any TrueType font under that name keeps it offline.
    font = USER_CONFIG_DIR / "Arial.ttf"
    if not font.exists():
        import matplotlib

        font.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", font)
    preds = make_batch(tmp_path / "pool")
    out = export_predictions(preds, NAMES, tmp_path / "out", ["yolo"])
    model = ultralytics.YOLO("yolov8n.yaml")
    model.train(
        data=str(out["yolo"] / "data.yaml"),
        epochs=1,
        imgsz=32,
        batch=5,  # the whole batch in one step: a final batch of 1 trips BatchNorm at this size
        workers=0,
        device="cpu",
        plots=False,
        amp=False,
        verbose=False,
        project=str(tmp_path / "runs"),
        name="one-epoch",
        exist_ok=True,
    )
    trainer = model.trainer
    assert (trainer.save_dir / "weights" / "last.pt").is_file()
    assert trainer.data["names"] == dict(enumerate(NAMES))
    # the labels Ultralytics loaded are detal's, box for box
    loaded = {os.path.basename(lb["im_file"]): lb for lb in trainer.train_loader.dataset.labels}
    assert sorted(loaded) == sorted(p.path.name for p in preds)
    for im in canonical_images(preds, NAMES):
        lb = loaded[im.name]
        want = np.array([[b.class_id, b.cx, b.cy, b.w, b.h] for b in im.boxes]).reshape(-1, 5)
        got = np.concatenate([lb["cls"].reshape(-1, 1), lb["bboxes"].reshape(-1, 4)], axis=1)
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert network_attempts == []


# -- returned labels ----------------------------------------------------------------------


def test_returned_names_in_another_order_are_mapped(tmp_path):
    preds = make_batch(tmp_path / "pool")
    out = export_predictions(preds, NAMES, tmp_path / "out", ["yolo"])
    # the vendor's tool wrote classes in its own order: bird, cat, dog
    order = ["bird", "cat", "dog"]
    (out["yolo"] / "data.yaml").write_text(yaml.safe_dump({"names": order}))
    for p in (out["yolo"] / "labels").iterdir():
        lines = []
        for line in p.read_text().splitlines():
            cls, *rest = line.split()
            lines.append(" ".join([str(order.index(NAMES[int(cls)])), *rest]))
        p.write_text("\n".join(lines))
    assert read_returned_labels(out["yolo"], "yolo", NAMES) == {p.path.stem: expected_text(p) for p in preds}


def test_loose_txt_files_and_classes_txt(tmp_path):
    folder = tmp_path / "returned"
    folder.mkdir()
    (folder / "classes.txt").write_text("dog\ncat\n")
    (folder / "x.txt").write_text("1 0.5 0.5 0.2 0.2\n0 0.25 0.25 0.1 0.1 0.87\n")
    (folder / "empty.txt").write_text("")
    assert read_returned_labels(folder, "yolo", NAMES) == {
        "x": "0 0.500000 0.500000 0.200000 0.200000\n1 0.250000 0.250000 0.100000 0.100000\n",
        "empty": "",
    }


def _zip(path, files: dict[str, str]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


BAD = [
    ("too few fields", {"labels/a.txt": "0 0.5 0.5 0.2\n"}, "labels/a.txt:1: expected 5 or 6 fields"),
    ("class out of range", {"labels/a.txt": "7 0.5 0.5 0.2 0.2\n"}, "class id 7 out of range"),
    ("coordinate outside", {"labels/a.txt": "0 1.5 0.5 0.2 0.2\n"}, "cx=1.5 outside"),
    ("zero size", {"labels/a.txt": "0 0.5 0.5 0 0.2\n"}, "size must be positive"),
    ("not a number", {"labels/a.txt": "0 0.5 abc 0.2 0.2\n"}, "non-numeric"),
    ("unknown class name", {"data.yaml": "names: [cat, horse]\n", "labels/a.txt": "1 0.5 0.5 0.2 0.2\n"}, "class 'horse' \\(id 1\\) is not a project class"),
    ("escaping path", {"../evil.txt": "0 0.5 0.5 0.2 0.2\n", "labels/a.txt": ""}, "path escapes the archive"),
    ("same image twice", {"labels/a.txt": "", "batch/labels/a.txt": ""}, "second label for image 'a'"),
    ("not utf-8", {"labels/a.txt": "\udcff"}, "not UTF-8"),
]


@pytest.mark.parametrize("files, message", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_returned_zip_lists_every_problem(tmp_path, files, message):
    files = {**files, "labels/zz.txt": "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2\n"}  # one more problem, always
    raw = {k: v.encode("utf-8", "surrogateescape") for k, v in files.items()}
    path = tmp_path / "returned.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in raw.items():
            zf.writestr(name, data)
    with pytest.raises(DataError, match=message) as info:
        read_returned_labels(path, "yolo", NAMES)
    assert "labels/zz.txt:2" in str(info.value)
    assert len(info.value.problems) >= 2
    assert "\n" not in str(info.value)


def test_symlinked_label_is_refused(tmp_path):
    folder = tmp_path / "returned" / "labels"
    folder.mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("0 0.5 0.5 0.2 0.2\n")
    (folder / "a.txt").symlink_to(secret)
    with pytest.raises(DataError, match="symbolic link not allowed"):
        read_returned_labels(tmp_path / "returned", "yolo", NAMES)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p, "not found"),
        (lambda p: (p.mkdir(), p)[1], "no yolo labels found"),
        (lambda p: (p.write_text("junk"), p)[1], "expected a folder or a .zip"),
    ],
    ids=["missing", "empty folder", "not a zip"],
)
def test_nothing_to_read(tmp_path, make, message):
    path = make(tmp_path / "returned")
    with pytest.raises(DataError, match=message):
        read_returned_labels(path, "yolo", NAMES)


def test_unknown_import_format(tmp_path):
    from detal.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown format 'label-studio'"):
        read_returned_labels(tmp_path, "label-studio", NAMES)
