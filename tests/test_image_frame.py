"""EXIF-rotated photos: one frame everywhere, the displayed one (issue 22, defect 6).

The photos are real JPEGs written by PIL, stored sideways (48 x 30 pixels in
the file) with EXIF orientation 6 or 8, so they are 30 x 48 as displayed,
as OpenCV (and so Ultralytics), browsers and CVAT show them. Each format
that carries a size must carry that one: ``init`` stores it, the COCO and
Label Studio exports write it, ``push`` sends it, and the COCO import and
``pull`` accept it and refuse the unturned size. The hostile COCO cases are
``case_coco_rotated_*`` in ``test_hostile.py``.
"""

from __future__ import annotations

import json
import sqlite3
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from projectkit import NAMES, write_classes

from detal.cli import main
from detal.commands import project as project_cmd
from detal.errors import DataError
from detal.export.labelstudio import labeling_config
from detal.fake import FakeAdapter
from detal.image_frame import displayed_size, orientation, size_problem
from detal.labelstudio import pull_labels, push_batch
from detal.project.paths import ProjectPaths
from detal.store import Store

STORED = (48, 30)  # width x height of the pixels in the file
SHOWN = (30, 48)  # as displayed: a quarter turn swaps them


@pytest.fixture(autouse=True)
def fake_adapter(monkeypatch):
    monkeypatch.setattr(project_cmd, "make_adapter", lambda cfg, project: FakeAdapter(len(NAMES), seed=2))


def rotated_jpeg(path: Path, orientation_tag: int, size: tuple[int, int] = STORED, shade: int = 0) -> Path:
    """A real JPEG of ``size`` pixels with EXIF ``Orientation`` = ``orientation_tag``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", size, (shade % 256, 90, 30))
    im.paste((250, 250, 250), (0, 0, size[0] // 3, size[1] // 3))  # a corner, so a turn shows
    exif = im.getexif()
    exif[0x0112] = orientation_tag
    im.save(path, format="JPEG", exif=exif.tobytes(), quality=95)
    return path


def rotated_project(t: Path, n: int = 10, *, fraction: float = 0.2) -> Path:
    """``n`` photos (orientation 6 and 8 in turn, every third nested), initial batch ``fraction``."""
    for i in range(n):
        rel = f"sub/ph{i:02d}.jpg" if i % 3 == 0 else f"ph{i:02d}.jpg"
        rotated_jpeg(t / "photos" / rel, 6 if i % 2 else 8, shade=i * 20)
    project = t / "p"
    assert main(["init", str(project), "--images", str(t / "photos"), "--classes",
                 str(write_classes(t / "classes.txt")), "--set", f"initial_fraction={fraction}",
                 "--set", "batch_fraction=0.2", "--set", "subset_fraction=0.5"]) == 0
    return project


def _rows(project: Path) -> list:
    with Store.open(project / "detal.db") as store:
        return store.images()


def _label_batch(project: Path, t: Path, cycle: int) -> None:
    with zipfile.ZipFile(ProjectPaths(project).bundle(cycle)) as zf:
        keys = [n.split(",")[0].rsplit(".", 1)[0] for n in zf.read("manifest.csv").decode().splitlines()[1:]]
    folder = t / f"ret{cycle}"
    folder.mkdir()
    for key in keys:
        (folder / f"{key}.txt").write_text("0 0.3 0.2 0.2 0.3\n")
    assert main(["import", str(project), str(folder)]) == 0


# -- the frame itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
@pytest.mark.parametrize("tag", range(1, 9))
def test_displayed_size_is_the_frame_opencv_decodes(tmp_path, fmt, tag):
    """OpenCV decodes what Ultralytics trains on; the displayed size must be its shape."""
    path = tmp_path / f"x.{fmt.lower()}"
    im = Image.new("RGB", STORED, (10, 20, 30))
    exif = im.getexif()
    exif[0x0112] = tag
    im.save(path, format=fmt, exif=exif.tobytes())
    with Image.open(path) as opened:
        shown = displayed_size(opened)
        assert orientation(opened) == tag
    decoded = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:  # OpenCV cannot read every TIFF PIL writes; then nothing trains on it either
        pytest.skip("OpenCV does not decode this TIFF")
    assert shown == (decoded.shape[1], decoded.shape[0])
    assert shown == (STORED[::-1] if tag >= 5 else STORED)


def test_a_damaged_or_absent_exif_block_leaves_the_image_as_stored(tmp_path):
    Image.new("RGB", STORED).save(tmp_path / "plain.jpg")
    with Image.open(tmp_path / "plain.jpg") as im:
        assert orientation(im) == 1 and displayed_size(im) == STORED
    bad = tmp_path / "bad.jpg"
    Image.new("RGB", STORED).save(bad, exif=b"Exif\x00\x00garbage")
    with Image.open(bad) as im:
        assert orientation(im) == 1 and displayed_size(im) == STORED


def test_size_problem_names_a_swap():
    assert size_problem(SHOWN, SHOWN) is None
    assert "swapped" in size_problem(STORED, SHOWN)
    wrong = size_problem((31, 48), SHOWN)
    assert "31x48 but the image is 30x48 as displayed" in wrong and "swapped" not in wrong


# -- init stores it, the exports write it ------------------------------------------------------------


def test_init_stores_the_displayed_size_of_every_photo(tmp_path):
    project = rotated_project(tmp_path)
    rows = _rows(project)
    assert len(rows) == 10 and {r.relpath.startswith("images/sub/") for r in rows} == {True, False}
    assert {(r.width, r.height) for r in rows} == {SHOWN}


def test_the_cycles_coco_and_label_studio_exports_carry_the_displayed_size(tmp_path, capsys):
    project = rotated_project(tmp_path)
    _label_batch(project, tmp_path, 0)
    assert main(["cycle", str(project), "--format", "yolo,coco,label-studio"]) == 0, capsys.readouterr().err
    paths = ProjectPaths(project)
    coco = json.loads(paths.coco_export(1).read_text())
    assert coco["images"] and {(im["width"], im["height"]) for im in coco["images"]} == {SHOWN}
    tasks = json.loads(paths.labelstudio_tasks(1).read_text())
    regions = [r for t in tasks for p in t.get("predictions", []) for r in p["result"]]
    assert regions and {(r["original_width"], r["original_height"]) for r in regions} == {SHOWN}


def test_detals_own_coco_export_imports_back(tmp_path, capsys):
    """The issue's case: the corrected COCO export of a rotated photo was refused."""
    project = rotated_project(tmp_path)
    _label_batch(project, tmp_path, 0)
    assert main(["cycle", str(project), "--format", "coco"]) == 0, capsys.readouterr().err
    doc = json.loads(ProjectPaths(project).coco_export(1).read_text())
    doc["annotations"] = [{"id": i + 1, "image_id": im["id"], "category_id": 2, "bbox": [3, 6, 12, 24]}
                          for i, im in enumerate(doc["images"])]
    path = tmp_path / "corrected.json"
    path.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["import", str(project), str(path), "--format", "coco"]) == 0, capsys.readouterr().err
    labels = sorted(ProjectPaths(project).labels_dir.rglob("*.txt"))
    texts = {p.read_text() for p in labels}
    # 3..15 of 30 across, 6..30 of 48 down: the box in the displayed frame
    assert "1 0.300000 0.375000 0.400000 0.500000\n" in texts and len(labels) == 2 + len(doc["images"])


def test_a_cvat_and_yolo_round_trip_keeps_the_boxes(tmp_path, capsys):
    """Normalised boxes carry no size: the pre-labels come back as they went out, in the one frame."""
    project = rotated_project(tmp_path)
    _label_batch(project, tmp_path, 0)
    assert main(["cycle", str(project), "--format", "yolo,cvat-yolo"]) == 0, capsys.readouterr().err
    paths = ProjectPaths(project)
    pre = {p.stem: p.read_text() for p in paths.prelabels_dir(1).glob("*.txt")}
    cvat = next(paths.exports_dir(1).glob("cvat-yolo*"))
    assert main(["import", str(project), str(cvat), "--format", "cvat-yolo", "--accept-prelabels"]) == 0, \
        capsys.readouterr().err
    with Store.open(project / "detal.db") as store:
        rows = store.images(selected_cycle=1)
    got = {r.key: (project / "labels" / Path(r.relpath).with_suffix(".txt")).read_text() for r in rows}
    assert got == pre


# -- push sends it, pull checks against it ------------------------------------------------------------


class FakeLabelStudio:
    """The part of :class:`detal.labelstudio.Client` that push and pull use, in memory."""

    url = "http://127.0.0.1:9"

    def __init__(self) -> None:
        self.tasks_by_id: dict[int, dict] = {}

    def project(self, pid: int) -> dict:
        return {"id": pid, "label_config": labeling_config(NAMES, "label", "image")}

    def create_project(self, title: str, label_config: str) -> dict:
        return {"id": 1, "label_config": label_config}

    def tasks(self, pid: int, include: str | None = None, page_size: int = 100, ids=None):
        for tid, task in self.tasks_by_id.items():
            if ids is None or tid in ids:
                yield {"id": tid, **task}

    def upload(self, pid: int, files) -> list[str]:
        return [f"upload/{name}" for name, _ in files]

    def import_tasks(self, pid: int, tasks) -> list[int]:
        ids = []
        for task in tasks:
            tid = len(self.tasks_by_id) + 1
            self.tasks_by_id[tid] = json.loads(json.dumps(task))
            ids.append(tid)
        return ids


def _annotate(server: FakeLabelStudio, size: tuple[int, int]) -> None:
    for task in server.tasks_by_id.values():
        task["annotations"] = [{"id": 1, "was_cancelled": False, "result": [{
            "type": "rectanglelabels", "from_name": "label", "to_name": "image", "id": "r1",
            "original_width": size[0], "original_height": size[1], "image_rotation": 0,
            "value": {"x": 10, "y": 12.5, "width": 40, "height": 25, "rotation": 0, "rectanglelabels": ["dog"]},
        }]}]


def _pushed_cycle_1(t: Path, capsys) -> tuple[Path, FakeLabelStudio]:
    project = rotated_project(t)
    _label_batch(project, t, 0)
    assert main(["cycle", str(project)]) == 0, capsys.readouterr().err
    server = FakeLabelStudio()
    report = push_batch(project, server.url, client=server, token="x")
    assert report.n_pushed == 2
    return project, server


def test_push_sends_the_displayed_size(tmp_path, capsys):
    _, server = _pushed_cycle_1(tmp_path, capsys)
    regions = [r for t in server.tasks_by_id.values() for p in t["predictions"] for r in p["result"]]
    assert regions and {(r["original_width"], r["original_height"]) for r in regions} == {SHOWN}


def test_pull_takes_annotations_in_the_displayed_frame(tmp_path, capsys):
    project, server = _pushed_cycle_1(tmp_path, capsys)
    _annotate(server, SHOWN)
    report = pull_labels(project, client=server, token="x")
    assert report.n_labeled == 2


def test_pull_refuses_annotations_in_the_unturned_frame(tmp_path, capsys):
    project, server = _pushed_cycle_1(tmp_path, capsys)
    _annotate(server, STORED)
    before = sorted(ProjectPaths(project).labels_dir.rglob("*.txt"))
    with pytest.raises(DataError) as info:
        pull_labels(project, client=server, token="x")
    assert "48x30 but the image is 30x48 as displayed" in str(info.value) and "swapped" in str(info.value)
    assert sorted(ProjectPaths(project).labels_dir.rglob("*.txt")) == before


# -- projects made before: their stored sizes are corrected once ----------------------------------------


def _make_old(project: Path) -> None:
    """What a project made before the displayed frame holds: header sizes, no size_frame mark."""
    conn = sqlite3.connect(project / "detal.db", isolation_level=None)
    try:
        conn.execute("UPDATE images SET width = 48, height = 30")
        conn.execute("DELETE FROM meta WHERE key = 'size_frame'")
    finally:
        conn.close()


@pytest.mark.parametrize("command", ["cycle", "import"])
def test_an_older_projects_sizes_are_corrected_once(tmp_path, capsys, command):
    project = rotated_project(tmp_path)
    if command == "import":
        _make_old(project)
        _label_batch(project, tmp_path, 0)
    else:
        _label_batch(project, tmp_path, 0)
        _make_old(project)
        assert main(["cycle", str(project)]) == 0, capsys.readouterr().err
    rows = _rows(project)
    assert {(r.width, r.height) for r in rows} == {SHOWN}
    with Store.open(project / "detal.db") as store:
        assert store.get_meta("size_frame") == "displayed"


def test_the_correction_waits_for_an_image_folder_that_is_back(tmp_path, capsys):
    from detal.project.sizes import store_displayed_sizes

    project = rotated_project(tmp_path)
    _make_old(project)
    (tmp_path / "photos").rename(tmp_path / "away")
    with Store.open(project / "detal.db") as store:
        assert store_displayed_sizes(project, store) == 0
        assert store.get_meta("size_frame") is None  # tried again next time
    (tmp_path / "away").rename(tmp_path / "photos")
    with Store.open(project / "detal.db") as store:
        assert store_displayed_sizes(project, store) == 10
        assert store.get_meta("size_frame") == "displayed"
        assert store_displayed_sizes(project, store) == 0
