"""label-studio: the tasks and config are read by Label Studio's own tools.

* ``label_studio_tools.core.label_config.parse_config`` (what Label Studio's
  converter uses) parses ``config.xml``: one RectangleLabels control named
  ``from_name`` over the Image ``to_name``, with the project's classes;
* ``label_studio_converter.Converter`` converts the tasks to YOLO, reading our
  regions as an annotator would after accepting the predictions, and gives
  back detal's labels;
* the tasks validate against the pre-annotation JSON format documented in
  Label Studio's guide ("Import pre-annotated data"), written down below as a
  JSON schema. (label-studio-sdk, whose LabelInterface validates predictions
  itself, would force numpy 2.2 and opencv-headless 4.12, so it is not used.)
"""

from __future__ import annotations

import json

import pytest
from test_export_common import NAMES, expected_text, make_batch, scores_for

from detal.errors import DataError
from detal.export import export_predictions
from detal.export.common import canonical_images
from detal.export.labelstudio import labeling_config, normalize_uncertainty

jsonschema = pytest.importorskip("jsonschema")
pytest.importorskip("label_studio_converter")
from label_studio_converter import Converter
from label_studio_tools.core.label_config import parse_config

_NUMBER = {"type": "number"}
_PERCENT = {"type": "number", "minimum": 0, "maximum": 100}
REGION = {
    "type": "object",
    "required": ["id", "type", "from_name", "to_name", "value", "original_width", "original_height"],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "type": {"const": "rectanglelabels"},
        "from_name": {"type": "string"},
        "to_name": {"type": "string"},
        "original_width": {"type": "integer", "minimum": 1},
        "original_height": {"type": "integer", "minimum": 1},
        "image_rotation": _NUMBER,
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "value": {
            "type": "object",
            "required": ["x", "y", "width", "height", "rectanglelabels"],
            "properties": {
                "x": _PERCENT,
                "y": _PERCENT,
                "width": _PERCENT,
                "height": _PERCENT,
                "rotation": _NUMBER,
                "rectanglelabels": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            },
        },
    },
}
TASKS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["data", "predictions"],
        "properties": {
            "data": {"type": "object", "minProperties": 1},
            "predictions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["model_version", "result"],
                    "properties": {
                        "model_version": {"type": "string"},
                        "score": {"type": "number", "minimum": 0, "maximum": 1},
                        "result": {"type": "array", "items": REGION},
                    },
                },
            },
        },
    },
}


@pytest.fixture
def exported(tmp_path):
    preds = make_batch(tmp_path / "pool")
    scores = scores_for(preds)
    out = export_predictions(
        preds, NAMES, tmp_path / "out", ["label-studio"], scores=scores, cycle=3,
        from_name="boxes", to_name="photo",
    )
    return preds, scores, out["label-studio"]


def test_config_is_parsed_by_label_studio_tools(exported):
    _, _, tasks_path = exported
    schema = parse_config((tasks_path.parent / "config.xml").read_text())
    assert list(schema) == ["boxes"]
    control = schema["boxes"]
    assert control["type"] == "RectangleLabels"
    assert control["to_name"] == ["photo"]
    assert control["inputs"] == [{"type": "Image", "value": "photo"}]
    assert control["labels"] == NAMES


def test_tasks_match_the_documented_schema(exported):
    _, _, tasks_path = exported
    tasks = json.loads(tasks_path.read_text())
    jsonschema.validate(tasks, TASKS)
    broken = json.loads(tasks_path.read_text())
    broken[0]["predictions"][0]["result"][0]["value"]["x"] = 140.0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, TASKS)


def test_scores_versions_and_regions(exported):
    preds, scores, tasks_path = exported
    tasks = json.loads(tasks_path.read_text())
    images = canonical_images(preds, NAMES)
    assert len(tasks) == len(preds)
    for task, pred, im in zip(tasks, preds, images):
        assert task["data"] == {"photo": f"images/{pred.path.name}"}
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == "3"
        assert prediction["score"] == pytest.approx(1 - scores[pred.path.name])
        result = prediction["result"]
        assert [r["score"] for r in result] == pytest.approx([b.confidence for b in im.boxes])
        assert len({r["id"] for r in result}) == len(result)
        for r, b in zip(result, im.boxes):
            assert (r["from_name"], r["to_name"]) == ("boxes", "photo")
            assert (r["original_width"], r["original_height"]) == (pred.width, pred.height)
            assert r["value"]["rectanglelabels"] == [NAMES[b.class_id]]
            assert r["value"]["width"] == pytest.approx(100 * b.w)
    # Label Studio lists the lowest prediction score first: the most uncertain image
    lowest = min(tasks, key=lambda t: t["predictions"][0]["score"])
    assert lowest["data"]["photo"].endswith(max(scores, key=scores.get))


def test_label_studio_converter_gives_back_detal_labels(exported, tmp_path):
    preds, _, tasks_path = exported
    tasks = json.loads(tasks_path.read_text())
    # what Label Studio stores once an annotator accepts every prediction unchanged
    accepted = [
        {**t, "id": i, "annotations": [{"id": i, "result": t["predictions"][0]["result"]}]}
        for i, t in enumerate(tasks, start=1)
    ]
    accepted_path = tmp_path / "accepted.json"
    accepted_path.write_text(json.dumps(accepted))
    converter = Converter(
        str(tasks_path.parent / "config.xml"), project_dir=str(tmp_path), download_resources=False
    )
    converter.convert_to_yolo(str(accepted_path), str(tmp_path / "ls-yolo"), is_dir=False)
    ls_names = (tmp_path / "ls-yolo" / "classes.txt").read_text().split()
    assert sorted(ls_names) == sorted(NAMES)
    for pred in preds:
        text = (tmp_path / "ls-yolo" / "labels" / f"{pred.path.stem}.txt").read_text()
        lines = []
        for line in text.splitlines():
            cls, *xywh = line.split()
            lines.append(" ".join([str(NAMES.index(ls_names[int(cls)]))] + [f"{float(v):.6f}" for v in xywh]))
        assert "".join(line + "\n" for line in lines) == expected_text(pred), pred.path.name


def test_without_scores_the_prediction_has_no_score(tmp_path):
    preds = make_batch(tmp_path / "pool")
    out = export_predictions(preds, NAMES, tmp_path / "out", ["label-studio"], copy_images=False)
    tasks = json.loads(out["label-studio"].read_text())
    assert all("score" not in t["predictions"][0] for t in tasks)
    assert {t["predictions"][0]["model_version"] for t in tasks} == {"prelabel"}
    jsonschema.validate(tasks, TASKS)


def test_config_escapes_class_names():
    xml = labeling_config(['a "quoted" <name>', "b&c"], "label", "image")
    schema = parse_config(xml)
    assert schema["label"]["labels"] == ['a "quoted" <name>', "b&c"]


@pytest.mark.parametrize(
    "scores, expected",
    [
        ({"a": 0.2, "b": 0.9}, {"a": 0.2, "b": 0.9}),
        ({"a": 1.0, "b": 4.0}, {"a": 0.25, "b": 1.0}),  # the sum aggregate: divide by the largest
        ({}, {}),
    ],
)
def test_normalize_uncertainty(scores, expected):
    assert normalize_uncertainty(scores) == pytest.approx(expected)


def test_normalize_uncertainty_rejects_negative():
    with pytest.raises(DataError, match="finite and >= 0"):
        normalize_uncertainty({"a": -0.1})
