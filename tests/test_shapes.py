"""shapes-lt and the hard digits preset: deterministic, long-tailed, disjoint splits, valid labels."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from detal.digits import PRESETS, DigitsSpec, build_digits
from detal.labels import parse_label_text
from detal.shapes import NAMES, ShapesSpec, build_shapes, class_weights

N_SHAPES = len(NAMES)


def _labels(root, split, n_classes=N_SHAPES):
    boxes = []
    for p in sorted((root / "labels" / split).glob("*.txt")):
        got, problems = parse_label_text(p.read_text(), n_classes, str(p))
        assert not problems
        boxes += got
    return boxes


def test_class_weights_follow_zipf():
    w = class_weights(1.2)
    assert w.sum() == pytest.approx(1.0) and np.all(np.diff(w) < 0)
    assert w[0] / w[-1] == pytest.approx(8 ** 1.2)
    assert class_weights(0.0) == pytest.approx(np.full(8, 1 / 8))


def test_shapes_is_long_tailed_deterministic_and_its_splits_are_disjoint(tmp_path):
    spec = ShapesSpec(pool=120, val=40, seed=3)
    a, b = build_shapes(tmp_path / "a", spec), build_shapes(tmp_path / "b", spec)
    for split in ("pool", "val"):
        for p in sorted((tmp_path / "a" / "images" / split).glob("*.png")):
            assert p.read_bytes() == (tmp_path / "b" / "images" / split / p.name).read_bytes()
    assert a.read_text().split("\n", 2)[2].replace("/a", "/b") == b.read_text().split("\n", 2)[2]
    counts = Counter(box.class_id for box in _labels(tmp_path / "a", "pool"))
    assert counts[0] > 3 * counts[7] > 0  # the commonest class far more frequent than the rarest
    per_image = [len(_labels_of(p)) for p in (tmp_path / "a" / "labels" / "pool").glob("*.txt")]
    assert np.mean(per_image) >= 4  # dense
    sources = json.loads((tmp_path / "a" / "sources.json").read_text())
    assert not set(sources["pool"]) & set(sources["val"])  # no shape variant in both splits


def _labels_of(path):
    return [line for line in path.read_text().splitlines() if line.strip()]


def test_the_hard_preset_draws_more_and_smaller_digits(tmp_path):
    std = build_digits(tmp_path / "std", DigitsSpec(pool=60, val=10, seed=0))
    hard = build_digits(tmp_path / "hard", DigitsSpec(pool=60, val=10, seed=0, **PRESETS["hard"]))
    s, h = _labels(std.parent, "pool", 10), _labels(hard.parent, "pool", 10)
    assert len(h) > 1.5 * len(s)
    assert np.median([b.h for b in h]) < np.median([b.h for b in s])
