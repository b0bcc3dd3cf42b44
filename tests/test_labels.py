"""The detection record and YOLO label lines."""

from __future__ import annotations

import numpy as np
import pytest

from detal.detections import Detections, Prediction
from detal.errors import DataError
from detal.labels import (
    parse_label_text,
    parse_yolo_line,
    prediction_lines,
    read_classes,
    to_yolo_line,
)


def det(n=2, c=3):
    probs = np.full((n, c), 0.1)
    probs[:, 0] = 0.8
    return Detections(np.tile([[10, 20, 30, 60]], (n, 1)), np.zeros(n, int), np.full(n, 0.8), probs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"xyxy": np.zeros((2, 3))}, r"xyxy must have shape \(n, 4\)"),
        ({"class_id": np.zeros(3, int)}, "2 boxes but class_id"),
        ({"confidence": np.zeros(1)}, "2 boxes but"),
        ({"class_probs": np.zeros((1, 3))}, r"class_probs must have shape \(2, C\)"),
        ({"class_id": np.array([0, 3])}, "out of range for 3 classes"),
        ({"class_id": np.array([0.5, 1])}, "must hold integers"),
    ],
)
def test_detections_check_shapes(kwargs, match):
    base = {
        "xyxy": np.zeros((2, 4)),
        "class_id": np.zeros(2, int),
        "confidence": np.zeros(2),
        "class_probs": np.zeros((2, 3)),
    }
    base.update(kwargs)
    with pytest.raises(DataError, match=match):
        Detections(**base)


def test_detections_empty_and_filter():
    d = Detections.empty(5)
    assert len(d) == 0 and d.n_classes == 5
    d2 = det(3)
    assert len(d2.filter(np.array([True, False, True]))) == 2
    assert len(d2.above(0.9)) == 0


@pytest.mark.parametrize(
    "cls, xyxy, size, conf, expected",
    [
        (1, (0, 0, 50, 100), (100, 200), None, "1 0.250000 0.250000 0.500000 0.500000"),
        (0, (25, 50, 75, 150), (100, 200), 0.91234, "0 0.500000 0.500000 0.500000 0.500000 0.9123"),
        # spills over the border: clipped to the image
        (2, (-10, -10, 50, 50), (100, 100), None, "2 0.250000 0.250000 0.500000 0.500000"),
    ],
)
def test_to_yolo_line(cls, xyxy, size, conf, expected):
    assert to_yolo_line(cls, xyxy, *size, confidence=conf) == expected


@pytest.mark.parametrize(
    "line, allow_conf, match",
    [
        ("0 0.5 0.5 0.1", False, "expected 5 fields"),
        ("0 0.5 0.5 0.1 0.1 0.9", False, "expected 5 fields"),
        ("x 0.5 0.5 0.1 0.1", False, "not a number"),
        ("1.5 0.5 0.5 0.1 0.1", False, "not an integer"),
        ("3 0.5 0.5 0.1 0.1", False, r"class id 3 out of range \[0, 2\]"),
        ("-1 0.5 0.5 0.1 0.1", False, "out of range"),
        ("0 1.5 0.5 0.1 0.1", False, r"cx=1.5 outside \[0, 1\]"),
        ("0 0.5 0.5 0 0.1", False, "size must be positive"),
        ("0 0.5 0.5 nan 0.1", False, "finite"),
        ("0 0.5 0.5 a 0.1", False, "non-numeric"),
        ("0 0.95 0.5 0.2 0.1", False, "extends outside"),
        ("0 0.5 0.5 0.1 0.1 1.2", True, "confidence"),
    ],
)
def test_parse_yolo_line_errors(line, allow_conf, match):
    with pytest.raises(DataError, match=match):
        parse_yolo_line(line, 3, allow_confidence=allow_conf)


def test_parse_label_text_collects_every_problem():
    text = "0 0.5 0.5 0.1 0.1\n\n9 0.5 0.5 0.1 0.1\n0 0.5\n1 0.2 0.2 0.1 0.1\n"
    boxes, problems = parse_label_text(text, 3, "a.txt")
    assert [b.class_id for b in boxes] == [0, 1]
    assert [(p.line, str(p).split(":")[0]) for p in problems] == [(3, "a.txt"), (4, "a.txt")]
    assert str(problems[0]).startswith("a.txt:3: class id 9")
    assert parse_label_text("", 3, "empty.txt") == ([], [])  # empty file: no objects


def test_prediction_lines_round_trip():
    pred = Prediction("img.png", 100, 200, det(2))
    lines = prediction_lines(pred, conf=0.5, with_confidence=True)
    assert len(lines) == 2
    box = parse_yolo_line(lines[0], 3, allow_confidence=True)
    assert (box.cx, box.cy, box.w, box.h, box.confidence) == pytest.approx((0.2, 0.2, 0.2, 0.2, 0.8))
    assert prediction_lines(pred, conf=0.9) == []


def test_read_classes(tmp_path):
    p = tmp_path / "classes.txt"
    p.write_text("cat\ndog\n\n")
    assert read_classes(p) == ["cat", "dog"]
    p.write_text("\n \n")
    with pytest.raises(DataError, match="classes.txt: classes file is empty"):
        read_classes(p)
    p.write_text("a\nb\na\n")
    with pytest.raises(DataError, match="duplicate class names a"):
        read_classes(p)
    with pytest.raises(DataError, match="not found"):
        read_classes(tmp_path / "missing.txt")


@pytest.mark.parametrize(("name", "text", "names"), [
    ("data.yaml", "path: .\ntrain: images/train\nval: images/val\nnc: 3\nnames: [cat, dog, bird]\n",
     ["cat", "dog", "bird"]),
    ("data.yaml", "names:\n  0: cat\n  1: dog\n  2: bird\n", ["cat", "dog", "bird"]),
    ("dataset.YML", "names: {1: dog, 0: cat}\n", ["cat", "dog"]),
    ("classes.txt", "train: images\nnames: [cat, dog]\n", ["cat", "dog"]),  # a data.yaml by another name
    ("classes.txt", "0\n1\n2\n", ["0", "1", "2"]),  # digits are names (detal data digits)
    ("classes.txt", "traffic light\n3 wheeler\n", ["traffic light", "3 wheeler"]),  # not every line has an id
    ("classes.txt", "\ufeffcat\r\ndog\r\n", ["cat", "dog"]),
], ids=["data-yaml-list", "data-yaml-map", "yml-map-unordered", "yaml-in-txt", "digits", "spaces", "bom-crlf"])
def test_read_classes_reads_a_data_yaml_and_plain_names(tmp_path, name, text, names):
    """issue 22, defect 10: a data.yaml given as --classes gives its names, not one class a line."""
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    assert read_classes(path) == names
