"""digits-det: disjoint source split, determinism, valid labels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detal.digits import DigitsSpec, build_digits, render_canvas, split_sources
from detal.errors import DataError
from detal.labels import parse_label_text
from detal.simulate import load_dataset


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    build_digits(out, DigitsSpec(pool=30, val=10, imgsz=64, seed=3))
    return out


def test_split_is_disjoint_and_complete():
    pool, val = split_sources(1797, 0.2, np.random.default_rng(0))
    assert np.intersect1d(pool, val).size == 0
    assert pool.size + val.size == 1797
    assert val.size == round(0.2 * 1797)


def test_canvases_use_only_their_split(built):
    sources = json.loads((built / "sources.json").read_text())
    assert not set(sources["pool"]) & set(sources["val"])
    images = np.zeros((1797, 8, 8), np.float32) + 1.0
    targets = np.arange(1797) % 10
    allowed = np.asarray(sources["val"][:7])
    rng = np.random.default_rng(1)
    for _ in range(20):
        c = render_canvas(images, targets, allowed, DigitsSpec(imgsz=96), rng)
        assert set(c.sources.tolist()) <= set(allowed.tolist())


def test_layout_and_counts(built):
    ds = load_dataset(built / "data.yaml")
    assert ds.names == [str(i) for i in range(10)]
    assert len(ds.pool) == 30 and len(ds.val) == 10
    assert all(lbl.is_file() for _, lbl in ds.pool + ds.val)


def test_labels_valid_inside_and_disjoint(built):
    n_boxes = []
    for lbl in sorted((built / "labels").rglob("*.txt")):
        boxes, problems = parse_label_text(lbl.read_text(), 10, str(lbl))
        assert problems == []
        assert 1 <= len(boxes) <= 6
        n_boxes.append(len(boxes))
        xyxy = [(b.cx - b.w / 2, b.cy - b.h / 2, b.cx + b.w / 2, b.cy + b.h / 2) for b in boxes]
        for i, a in enumerate(xyxy):
            assert min(a) >= -1e-6 and max(a) <= 1.0 + 1e-6
            for b in xyxy[i + 1:]:
                overlap_w = min(a[2], b[2]) - max(a[0], b[0])
                overlap_h = min(a[3], b[3]) - max(a[1], b[1])
                assert overlap_w <= 1e-6 or overlap_h <= 1e-6, f"{lbl}: boxes overlap"
    assert max(n_boxes) > 1  # canvases do hold several digits


def test_deterministic_per_seed(tmp_path):
    spec = DigitsSpec(pool=6, val=3, imgsz=48, seed=7)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    build_digits(a, spec)
    build_digits(b, spec)
    build_digits(c, DigitsSpec(pool=6, val=3, imgsz=48, seed=8))
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != "data.yaml")
    assert files
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert any((a / rel).read_bytes() != (c / rel).read_bytes() for rel in files)


@pytest.mark.parametrize(
    "kwargs",
    [{"pool": 0}, {"val": 0}, {"imgsz": 16}, {"min_digits": 3, "max_digits": 2}],
)
def test_bad_spec(kwargs):
    with pytest.raises(DataError):
        DigitsSpec(**kwargs)


def test_cli_builds(tmp_path, capsys):
    from detal.cli import main

    assert main(["data", "digits", "--out", str(tmp_path / "d"), "--pool", "4", "--val", "2", "--imgsz", "48"]) == 0
    assert len(list((tmp_path / "d" / "images" / "pool").glob("*.png"))) == 4
    assert "data.yaml" in capsys.readouterr().out
