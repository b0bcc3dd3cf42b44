"""coco: pycocotools loads the file, and scoring it against itself gives AP = 1."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from test_export_common import NAMES, expected_text, make_batch

from detal.errors import DataError
from detal.export import CATEGORY_ID_BASE, export_predictions, read_returned_labels
from detal.export.coco import coco_document
from detal.export.common import canonical_images

pytest.importorskip("pycocotools")
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


@pytest.fixture
def coco_file(tmp_path):
    preds = make_batch(tmp_path / "pool")
    out = export_predictions(preds, NAMES, tmp_path / "out", ["coco"])
    return preds, out["coco"]


def _quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def test_pycocotools_loads_images_categories_and_boxes(coco_file):
    preds, path = coco_file
    coco = _quiet(COCO, str(path))
    images = canonical_images(preds, NAMES)
    assert sorted(coco.getImgIds()) == list(range(1, len(preds) + 1))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == NAMES
    assert coco.getCatIds(catNms=["cat"]) == [CATEGORY_ID_BASE]
    for image_id, im in enumerate(images, start=1):
        info = coco.loadImgs(image_id)[0]
        assert (info["file_name"], info["width"], info["height"]) == (im.name, im.width, im.height)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        assert len(anns) == len(im.boxes)
        for ann, box in zip(anns, im.boxes):
            assert ann["category_id"] == box.class_id + CATEGORY_ID_BASE
            assert ann["bbox"] == pytest.approx(box.xywh_px(im.width, im.height), abs=1e-6)
            assert ann["area"] == pytest.approx(ann["bbox"][2] * ann["bbox"][3], abs=1e-5)
            assert ann["iscrowd"] == 0
            assert ann["score"] == pytest.approx(box.confidence, abs=1e-6)
            x, y, w, h = ann["bbox"]
            assert -1e-6 <= x and x + w <= im.width + 1e-6 and -1e-6 <= y and y + h <= im.height + 1e-6


def test_predictions_scored_against_themselves_give_ap_one(coco_file):
    _, path = coco_file
    gt = _quiet(COCO, str(path))
    results = json.loads(path.read_text())["annotations"]
    dt = _quiet(gt.loadRes, results)
    evaluator = COCOeval(gt, dt, "bbox")
    _quiet(evaluator.evaluate)
    _quiet(evaluator.accumulate)
    _quiet(evaluator.summarize)
    assert evaluator.stats[0] == pytest.approx(1.0)  # AP@[.5:.95]


def test_document_ids_and_categories_are_pure():
    assert coco_document([], ["a", "b"])["categories"] == [
        {"id": 1, "name": "a", "supercategory": ""},
        {"id": 2, "name": "b", "supercategory": ""},
    ]


def test_vendor_category_order_is_mapped_by_name(coco_file):
    preds, path = coco_file
    doc = json.loads(path.read_text())
    # the vendor renumbers categories: bird=1, cat=7, dog=3
    renumber = {1: 7, 2: 3, 3: 1}
    doc["categories"] = [{**c, "id": renumber[c["id"]]} for c in doc["categories"]]
    for ann in doc["annotations"]:
        ann["category_id"] = renumber[ann["category_id"]]
    path.write_text(json.dumps(doc))
    assert read_returned_labels(path, "coco", NAMES) == {p.path.name: expected_text(p) for p in preds}


BAD_RETURNS = [
    ("unknown category", lambda d: d["categories"].append({"id": 9, "name": "horse"}) or d["annotations"][0].update(category_id=9), "category 9 is not a project class"),
    ("no such category id", lambda d: d["annotations"][0].update(category_id=42), "unknown category_id 42"),
    ("no such image", lambda d: d["annotations"][0].update(image_id=99), "unknown image_id 99"),
    ("box outside image", lambda d: d["annotations"][0].update(bbox=[60, 0, 30, 10]), "outside"),
    ("bbox not numbers", lambda d: d["annotations"][0].update(bbox=[1, 2, "x", 4]), "bbox must be 4 numbers"),
    ("crowd region", lambda d: d["annotations"][0].update(iscrowd=1), "iscrowd"),
    ("image without size", lambda d: d["images"][0].pop("width"), "lacks id, file_name, width or height"),
]


@pytest.mark.parametrize("spoil, message", [c[1:] for c in BAD_RETURNS], ids=[c[0] for c in BAD_RETURNS])
def test_bad_returned_coco_lists_every_problem(coco_file, spoil, message):
    _, path = coco_file
    doc = json.loads(path.read_text())
    spoil(doc)
    doc["annotations"][-1]["bbox"] = [-50, 0, 10, 10]  # and a second problem, always
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=message) as info:
        read_returned_labels(path, "coco", NAMES)
    assert len(info.value.problems) >= 2


def test_not_json_is_one_clear_error(tmp_path):
    bad = tmp_path / "instances.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="instances.json: not valid JSON"):
        read_returned_labels(bad, "coco", NAMES)
