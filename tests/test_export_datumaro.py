"""datumaro, an independent reader, imports the yolo, cvat-yolo and coco exports.

The boxes it finds (pixels, by class name) must equal detal's, image by image.
"""

from __future__ import annotations

import zipfile

import pytest
from test_export_common import NAMES, make_batch

from detal.export import export_predictions
from detal.export.common import canonical_images

datumaro = pytest.importorskip("datumaro")
from datumaro.components.annotation import AnnotationType
from datumaro.components.dataset import Dataset


def _datumaro_boxes(dataset) -> dict[str, list[tuple[str, tuple[float, ...]]]]:
    """Image id -> sorted (class name, corner points x1 y1 x2 y2) as datumaro read them."""
    labels = dataset.categories()[AnnotationType.label]
    out = {}
    for item in dataset:
        boxes = [
            (labels[a.label].name, tuple(a.points))
            for a in item.annotations
            if a.type == AnnotationType.bbox
        ]
        out[item.id] = sorted(boxes)
    return out


def _detal_boxes(preds) -> dict[str, list[tuple[str, tuple[float, ...]]]]:
    out = {}
    for im in canonical_images(preds, NAMES):
        boxes = []
        for b in im.boxes:
            x, y, w, h = b.xywh_px(im.width, im.height)
            boxes.append((NAMES[b.class_id], (x, y, x + w, y + h)))
        out[im.stem] = sorted(boxes)
    return out


# datumaro stores shape points as float32 rounded to 2 decimals (COORDINATE_ROUNDING_DIGITS)
PX_TOL = 0.0051


def _assert_same(found, want):
    assert sorted(found) == sorted(want)
    n = 0
    for key, boxes in want.items():
        assert [name for name, _ in found[key]] == [name for name, _ in boxes], key
        for (_, got), (_, exp) in zip(found[key], boxes):
            assert got == pytest.approx(exp, abs=PX_TOL), key
            n += 1
    assert n >= 5  # the batch has boxes to compare


@pytest.fixture
def exported(tmp_path):
    preds = make_batch(tmp_path / "pool")
    out = export_predictions(preds, NAMES, tmp_path / "out", ["yolo", "cvat-yolo", "coco", "cvat-xml"])
    return preds, out, tmp_path


def test_datumaro_reads_the_ultralytics_layout(exported):
    preds, out, _ = exported
    dataset = Dataset.import_from(str(out["yolo"]), "yolo")
    assert [c.name for c in dataset.categories()[AnnotationType.label]] == NAMES
    _assert_same(_datumaro_boxes(dataset), _detal_boxes(preds))
    sizes = {item.id: item.media.size for item in dataset}
    assert sizes == {p.path.stem: (p.height, p.width) for p in preds}


def test_datumaro_reads_the_coco_file(exported):
    preds, _, tmp_path = exported
    dataset = Dataset.import_from(str(tmp_path / "out" / "coco"), "coco_instances")
    assert [c.name for c in dataset.categories()[AnnotationType.label]] == NAMES
    _assert_same(_datumaro_boxes(dataset), _detal_boxes(preds))
    scores = sorted(
        round(a.attributes["score"], 6) for item in dataset for a in item.annotations
    )
    want = sorted(round(b.confidence, 6) for im in canonical_images(preds, NAMES) for b in im.boxes)
    assert scores == want


def test_datumaro_reads_the_cvat_yolo_zip(exported):
    preds, out, tmp_path = exported
    unpacked = tmp_path / "cvat"
    with zipfile.ZipFile(out["cvat-yolo"]) as zf:
        zf.extractall(unpacked)
    dataset = Dataset.import_from(str(unpacked), "yolo")
    assert {item.subset for item in dataset} == {"train"}
    _assert_same(_datumaro_boxes(dataset), _detal_boxes(preds))


def test_datumaro_reads_the_cvat_xml(exported):
    preds, out, _ = exported
    dataset = Dataset.import_from(str(out["cvat-xml"]), "cvat")
    assert [c.name for c in dataset.categories()[AnnotationType.label]] == NAMES
    _assert_same(_datumaro_boxes(dataset), _detal_boxes(preds))
    sizes = {item.id: item.media.size for item in dataset}
    assert sizes == {p.path.stem: (p.height, p.width) for p in preds}


def test_datumaro_skips_labels_with_the_confidence_column(tmp_path):
    """Why the column is off by default: datumaro drops 6-field label files (and their boxes)."""
    preds = make_batch(tmp_path / "pool")
    out = export_predictions(preds, NAMES, tmp_path / "out", ["yolo"], with_confidence=True)
    found = _datumaro_boxes(Dataset.import_from(str(out["yolo"]), "yolo"))
    assert sum(len(b) for b in found.values()) == 0
    assert sum(len(b) for b in _detal_boxes(preds).values()) > 0
