"""detal.export: checks before writing, no partial output, round trips.

The small batch built here (``make_batch``) is shared by the per-format
reader tests (``test_export_<format>.py``), which import it from this module.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from detal.detections import Detections, Prediction
from detal.errors import ConfigError, DataError
from detal.export import (
    FORMATS,
    IMPORT_FORMATS,
    export_predictions,
    parse_formats,
    read_returned_labels,
)
from detal.export.common import canonical_images, yolo_text
from detal.fake import FakeAdapter
from detal.labels import prediction_lines

NAMES = ["cat", "dog", "bird"]
SIZES = {"a.png": (64, 48), "b.jpg": (80, 60), "c.png": (50, 70), "d.png": (64, 64), "e.png": (40, 40)}


def _det(rows: list[tuple[int, float, float, float, float, float]], n: int = 3) -> Detections:
    """Detections from rows of (class, x1, y1, x2, y2, conf); probs peak at the class."""
    if not rows:
        return Detections.empty(n)
    cls = np.array([r[0] for r in rows])
    xyxy = np.array([r[1:5] for r in rows], dtype=float)
    conf = np.array([r[5] for r in rows])
    probs = np.full((len(rows), n), 0.05)
    probs[np.arange(len(rows)), cls] = conf
    return Detections(xyxy, cls, conf, probs)


def write_images(folder: Path, sizes: dict[str, tuple[int, int]] = SIZES) -> dict[str, Path]:
    """Small real images, different sizes, deterministic noise."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = {}
    for name, (w, h) in sizes.items():
        path = folder / name
        assert cv2.imwrite(str(path), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        out[name] = path
    return out


def make_batch(folder: Path) -> list[Prediction]:
    """Predictions with the cases that matter: edges, low confidence, no boxes, fake draws."""
    paths = write_images(folder)
    canned = {
        # a box touching the right/bottom border, a box spilling 0.3 px (clipped), a low-confidence box
        "a.png": _det([(0, 10, 5, 64, 48, 0.91), (2, -0.3, 2.5, 20.25, 30, 0.55), (1, 5, 5, 9, 9, 0.02)]),
        "b.jpg": _det([(1, 0, 0, 80, 60, 0.40), (0, 33.3, 12.1, 47.9, 59.99, 0.77)]),
        "c.png": _det([]),  # an image the model found nothing in
    }
    preds = []
    for name, path in paths.items():
        w, h = SIZES[name]
        if name in canned:
            preds.append(Prediction(path, w, h, canned[name]))
        else:  # deterministic random boxes and class probabilities, sized to this image
            fake = FakeAdapter(3, seed=3, size=(w, h))
            preds += fake.predict(Path("unused.pt"), [path], conf=0.0).predictions
    return preds


def scores_for(preds: list[Prediction]) -> dict[str, float]:
    return {p.path.name: round(0.1 + 0.2 * i, 3) for i, p in enumerate(preds)}


def expected_text(pred: Prediction, conf: float = 0.0) -> str:
    return "".join(line + "\n" for line in prediction_lines(pred, conf=conf))


def snapshot(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def batch(tmp_path: Path) -> list[Prediction]:
    return make_batch(tmp_path / "pool")


# -- canonical boxes -------------------------------------------------------------


def test_canonical_boxes_equal_prediction_lines(batch):
    images = canonical_images(batch, NAMES, conf=0.25)
    for pred, image in zip(batch, images):
        assert yolo_text(image) == expected_text(pred, conf=0.25)
    # the low-confidence box of a.png is gone, the spilling one is clipped to x=0
    a = images[0]
    assert [b.class_id for b in a.boxes] == [0, 2]
    assert a.boxes[1].cx - a.boxes[1].w / 2 == pytest.approx(0.0, abs=1e-6)


def test_confidence_column_only_when_asked(batch, tmp_path):
    out = export_predictions(batch, NAMES, tmp_path / "out", ["yolo", "cvat-yolo"], with_confidence=True)
    line = (out["yolo"] / "labels" / "a.txt").read_text().splitlines()[0]
    assert line.split() == ["0", *expected_text(batch[0]).split()[1:5], "0.9100"]
    with zipfile.ZipFile(out["cvat-yolo"]) as zf:
        assert all(len(ln.split()) == 5 for ln in zf.read("obj_train_data/a.txt").decode().splitlines())
    plain = export_predictions(batch, NAMES, tmp_path / "plain", ["yolo"])
    assert all(
        len(ln.split()) == 5 for p in (plain["yolo"] / "labels").glob("*.txt") for ln in p.read_text().splitlines()
    )


def test_returned_paths_and_layout(batch, tmp_path):
    out = export_predictions(batch, NAMES, tmp_path / "out", list(FORMATS), scores=scores_for(batch), cycle=2)
    root = tmp_path / "out"
    assert out == {
        "yolo": root / "yolo",
        "cvat-yolo": root / "cvat-yolo.zip",
        "coco": root / "coco" / "annotations" / "instances_default.json",
        "cvat-xml": root / "cvat-xml" / "annotations.xml",
        "label-studio": root / "label-studio" / "tasks.json",
    }
    assert sorted(p.name for p in root.iterdir()) == ["coco", "cvat-xml", "cvat-yolo.zip", "label-studio", "yolo"]
    assert (root / "yolo" / "data.yaml").is_file()
    assert sorted(p.name for p in (root / "yolo" / "images").iterdir()) == sorted(SIZES)
    assert sorted(p.name for p in (root / "coco" / "images").iterdir()) == sorted(SIZES)
    assert (root / "label-studio" / "config.xml").is_file()
    # nothing left behind beside out_dir
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "pool"]


def test_labels_only_without_images(batch, tmp_path):
    out = export_predictions(batch, NAMES, tmp_path / "out", ["yolo", "cvat-yolo", "coco"], copy_images=False)
    assert not (out["yolo"] / "images").exists()
    assert not (tmp_path / "out" / "coco" / "images").exists()
    with zipfile.ZipFile(out["cvat-yolo"]) as zf:
        assert not [n for n in zf.namelist() if n.endswith((".png", ".jpg"))]


def test_existing_artifact_is_replaced_and_others_kept(batch, tmp_path):
    root = tmp_path / "out"
    export_predictions(batch, NAMES, root, ["yolo", "coco"])
    (root / "notes.txt").write_text("mine")
    export_predictions(batch[:2], NAMES, root, ["yolo"])
    assert sorted(p.name for p in (root / "yolo" / "labels").iterdir()) == ["a.txt", "b.txt"]
    assert (root / "notes.txt").read_text() == "mine"
    assert len(json.loads((root / "coco/annotations/instances_default.json").read_text())["images"]) == 5


def test_parse_formats():
    assert parse_formats("yolo, coco,yolo") == ["yolo", "coco"]
    assert parse_formats(["Label-Studio"]) == ["label-studio"]
    with pytest.raises(ConfigError, match="did you mean 'cvat-yolo'"):
        parse_formats("cvat-yollo")
    with pytest.raises(ConfigError, match="no format"):
        parse_formats(" , ")


# -- bad input: a clear error and out_dir untouched ---------------------------------


def _shift(pred: Prediction, dx: float) -> Prediction:
    d = pred.detections
    return Prediction(pred.path, pred.width, pred.height, Detections(d.xyxy + [dx, 0, dx, 0], d.class_id, d.confidence, d.class_probs))


BAD_CASES = [
    # id, how to spoil (preds, names, kwargs), error type, message part
    ("unknown format", lambda p, n, k: (p, n, {**k, "formats": ["yolo", "pascal"]}), ConfigError, "unknown format 'pascal'"),
    ("no format", lambda p, n, k: (p, n, {**k, "formats": []}), ConfigError, "no format"),
    ("class missing from project", lambda p, n, k: (p, n[:2], k), DataError, "class id 2 is not one of the project's 2 classes"),
    ("box outside image", lambda p, n, k: ([_shift(p[0], 30.0), *p[1:]], n, k), DataError, "outside the 64x48 image"),
    ("box left of image", lambda p, n, k: ([_shift(p[0], -11.0), *p[1:]], n, k), DataError, "outside the 64x48 image"),
    (
        "inverted box",
        lambda p, n, k: ([Prediction(p[0].path, 64, 48, _det([(0, 30, 5, 10, 20, 0.9)])), *p[1:]], n, k),
        DataError,
        "inverted box",
    ),
    (
        "non-finite box",
        lambda p, n, k: ([Prediction(p[0].path, 64, 48, _det([(0, np.nan, 5, 10, 20, 0.9)])), *p[1:]], n, k),
        DataError,
        "not finite",
    ),
    (
        "same file name twice",
        lambda p, n, k: ([*p, Prediction(p[0].path.parent / "x" / "a.png", 64, 48, p[0].detections)], n, k),
        DataError,
        "file name 'a.png' also used",
    ),
    (
        "same stem twice",
        lambda p, n, k: ([*p, Prediction(p[0].path.with_suffix(".jpg"), 64, 48, p[0].detections)], n, k),
        DataError,
        "stem 'a' also used",
    ),
    ("duplicate class names", lambda p, n, k: (p, ["cat", "dog", "cat"], k), DataError, "duplicate class names cat"),
    ("no classes", lambda p, n, k: (p, [], k), DataError, "no class names"),
    ("score missing", lambda p, n, k: (p, n, {**k, "scores": {"a.png": 0.5}}), DataError, "no uncertainty for 4 image"),
    ("score out of range", lambda p, n, k: (p, n, {**k, "scores": {x.path.name: 1.5 for x in p}}), DataError, "must lie in \\[0, 1\\]"),
    ("conf out of range", lambda p, n, k: (p, n, {**k, "conf": 2.0}), DataError, "conf must lie in"),
    ("same from/to name", lambda p, n, k: (p, n, {**k, "from_name": "x", "to_name": "x"}), DataError, "must differ"),
    (
        "image file missing",
        lambda p, n, k: ([*p, Prediction(p[0].path.parent / "gone.png", 10, 10, Detections.empty(3))], n, {**k, "scores": None}),
        DataError,
        "do not exist",
    ),
]


@pytest.mark.parametrize("spoil, error, message", [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES])
@pytest.mark.parametrize("out_exists", [False, True], ids=["new-out", "existing-out"])
def test_bad_input_raises_and_writes_nothing(batch, tmp_path, spoil, error, message, out_exists):
    out_dir = tmp_path / "out"
    if out_exists:
        export_predictions(batch, NAMES, out_dir, ["yolo"])
    before = snapshot(out_dir)
    siblings = sorted(p.name for p in tmp_path.iterdir())
    kwargs = {"formats": list(FORMATS), "scores": scores_for(batch)}
    preds, names, kwargs = spoil(batch, NAMES, kwargs)
    with pytest.raises(error, match=message):
        export_predictions(preds, names, out_dir, **kwargs)
    assert snapshot(out_dir) == before
    assert out_dir.exists() == out_exists
    assert sorted(p.name for p in tmp_path.iterdir()) == siblings


def test_every_problem_is_listed(batch, tmp_path):
    preds = [_shift(batch[0], 30.0), _shift(batch[1], 200.0), *batch[2:]]
    with pytest.raises(DataError) as info:
        export_predictions(preds, NAMES[:2], tmp_path / "out", ["coco"])
    message = str(info.value)
    assert "a.png: box 0" in message and "b.jpg: box 0" in message
    assert "class id 2" in message
    assert len(info.value.problems) >= 3


def test_failed_write_leaves_nothing(batch, tmp_path, monkeypatch):
    from detal import export

    def boom(*args, **kwargs):
        raise OSError("disk full")

    export_predictions(batch, NAMES, tmp_path / "out", ["yolo"])
    before = snapshot(tmp_path / "out")
    monkeypatch.setattr(export.cvat, "write_cvat_zip", boom)
    with pytest.raises(OSError, match="disk full"):
        export_predictions(batch, NAMES, tmp_path / "out", ["yolo", "cvat-yolo", "coco"])
    assert snapshot(tmp_path / "out") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "pool"]


# -- round trip ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", IMPORT_FORMATS)
@pytest.mark.parametrize("conf", [0.0, 0.5])
def test_round_trip_gives_identical_labels(batch, tmp_path, fmt, conf):
    out = export_predictions(batch, NAMES, tmp_path / "out", [fmt], conf=conf, with_confidence=True)
    back = read_returned_labels(out[fmt], fmt, NAMES)
    key = (lambda p: p.path.name) if fmt in ("coco", "cvat-xml") else (lambda p: p.path.stem)  # file names
    assert back == {key(p): expected_text(p, conf) for p in batch}


def test_round_trip_from_zipped_yolo_and_unzipped_cvat(batch, tmp_path):
    out = export_predictions(batch, NAMES, tmp_path / "out", ["yolo", "cvat-yolo"])
    zipped = tmp_path / "returned.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for p in (out["yolo"] / "labels").iterdir():
            zf.write(p, f"labels/{p.name}")
    unzipped = tmp_path / "cvat"
    with zipfile.ZipFile(out["cvat-yolo"]) as zf:
        zf.extractall(unzipped)
    want = {p.path.stem: expected_text(p) for p in batch}
    assert read_returned_labels(zipped, "yolo", NAMES) == want
    assert read_returned_labels(unzipped, "cvat-yolo", NAMES) == want

def test_coco_read_from_its_folder(batch, tmp_path):
    export_predictions(batch, NAMES, tmp_path / "out", ["coco"])
    back = read_returned_labels(tmp_path / "out" / "coco", "coco", NAMES)
    assert back == {p.path.name: expected_text(p) for p in batch}


def test_round_trip_many_random_images(tmp_path):
    """Fake draws over many sizes: rounding never changes a label on the way back."""
    rng = np.random.default_rng(7)
    sizes = {f"im{i:03d}.png": (int(rng.integers(8, 900)), int(rng.integers(8, 900))) for i in range(60)}
    paths = write_images(tmp_path / "pool", {k: (min(w, 64), min(h, 64)) for k, (w, h) in sizes.items()})
    preds = []
    for name, (w, h) in sizes.items():
        n = int(rng.integers(0, 6))
        x1, y1 = rng.uniform(0, w, n), rng.uniform(0, h, n)
        x2, y2 = np.minimum(x1 + rng.uniform(0.5, w, n), w), np.minimum(y1 + rng.uniform(0.5, h, n), h)
        cls = rng.integers(0, 3, n)
        probs = rng.dirichlet(np.ones(3), n)
        preds.append(Prediction(paths[name], w, h, Detections(np.stack([x1, y1, x2, y2], 1), cls, probs.max(1), probs)))
    out = export_predictions(preds, NAMES, tmp_path / "out", IMPORT_FORMATS, copy_images=False)
    for fmt in IMPORT_FORMATS:
        key = (lambda p: p.path.name) if fmt in ("coco", "cvat-xml") else (lambda p: p.path.stem)
        assert read_returned_labels(out[fmt], fmt, NAMES) == {key(p): expected_text(p) for p in preds}, fmt
