"""Hostile returns whose file names could put a label on the wrong pool image (issue 22)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from projectkit import NAMES, write_classes

from detal.cli import main
from detal.commands import project as project_cmd
from detal.fake import FakeAdapter


@pytest.fixture(autouse=True)
def fake_adapter(monkeypatch):
    monkeypatch.setattr(project_cmd, "make_adapter", lambda cfg, project: FakeAdapter(len(NAMES), seed=2))


def _pool(t: Path, names: list[str]) -> Path:
    images = t / "imgs"
    for n, name in enumerate(names):
        path = images / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fmt = "JPEG" if name.lower().endswith(".jpg") else "PNG"
        Image.new("RGB", (32, 32), (n * 40 % 255, 90, 30)).save(path, format=fmt)
    project = t / "p"
    assert main(["init", str(project), "--images", str(images),
                 "--classes", str(write_classes(t / "classes.txt"))]) == 0
    return project


@pytest.mark.parametrize("stem", ["x", "a.b", "with space", "café"])
def test_double_suffix_yolo_label_is_refused_not_put_on_the_other_image(tmp_path, capsys, stem):
    project = _pool(tmp_path, [f"{stem}.png", f"{stem}.png.jpg"])
    returned = tmp_path / "ret"
    returned.mkdir()
    (returned / f"{stem}.png.txt").write_text("0 0.5 0.5 0.2 0.2\n", encoding="utf-8")
    before = sorted(p.relative_to(project) for p in (project / "labels").rglob("*"))
    capsys.readouterr()
    assert main(["import", str(project), str(returned)]) == 1
    err = capsys.readouterr().err
    assert f"{stem}.png.txt" in err and "could mean image" in err and "Traceback" not in err
    assert sorted(p.relative_to(project) for p in (project / "labels").rglob("*")) == before


@pytest.mark.parametrize("stem", ["x", "a.b", "with space", "café"])
def test_double_suffix_coco_file_name_is_refused_not_put_on_the_other_image(tmp_path, capsys, stem):
    import json

    project = _pool(tmp_path, [f"{stem}.png", f"{stem}.png.jpg"])
    coco = tmp_path / "ret.json"
    coco.write_text(json.dumps({
        "images": [{"id": 1, "file_name": f"{stem}.png", "width": 32, "height": 32}],
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(NAMES)],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [8, 8, 6, 6]}],
    }), encoding="utf-8")
    before = sorted(p.relative_to(project) for p in (project / "labels").rglob("*"))
    capsys.readouterr()
    assert main(["import", str(project), str(coco), "--format", "coco"]) == 1
    err = capsys.readouterr().err
    assert "could mean image" in err and "Traceback" not in err
    assert sorted(p.relative_to(project) for p in (project / "labels").rglob("*")) == before
