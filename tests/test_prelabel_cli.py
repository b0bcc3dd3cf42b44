"""``detal prelabel``, in-process, against the fake adapter (and once against a real model)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from detal.cli import main
from detal.commands import prelabel as prelabel_cmd
from detal.config import Config
from detal.export import read_returned_labels
from detal.fake import FakeAdapter
from detal.labels import prediction_lines
from detal.scoring import score_predictions

NAMES = ["cat", "dog", "bird"]


def _images(folder: Path, names=("a.png", "b.png", "sub/c.jpg", "d.png")) -> list[Path]:
    rng = np.random.default_rng(1)
    out = []
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        out.append(path)
    return out


class NamedFake(FakeAdapter):
    """A fake whose weights know their class names (as real weights do)."""

    def class_names(self, weights: Path) -> list[str]:
        return list(NAMES)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    images = _images(tmp_path / "pool")
    (tmp_path / "pool" / "notes.txt").write_text("not an image")
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"fake weights")
    classes = tmp_path / "classes.txt"
    classes.write_text("\n".join(NAMES) + "\n")
    fakes: list[FakeAdapter] = []

    def factory(cfg: Config) -> FakeAdapter:
        fakes.append(NamedFake(3, seed=5, unreadable=getattr(factory, "unreadable", ())))
        return fakes[-1]

    monkeypatch.setattr(prelabel_cmd, "make_adapter", factory)
    return tmp_path, images, weights, classes, factory, fakes


def _args(tmp_path, weights, *extra):
    return ["prelabel", "--weights", str(weights), "--images", str(tmp_path / "pool"),
            "--out", str(tmp_path / "out"), "--quiet", *extra]


def test_writes_every_format_with_the_fake_model(setup, capsys):
    tmp_path, images, weights, classes, _, fakes = setup
    rc = main(_args(tmp_path, weights, "--classes", str(classes), "--format", "yolo,cvat-yolo",
                    "--format", "coco", "--format", "label-studio", "--set", "prelabel_conf=0.5"))
    out = capsys.readouterr().out
    assert rc == 0
    assert "prelabeled 4 images" in out and "cvat-yolo: " in out
    root = tmp_path / "out"
    assert sorted(p.name for p in root.iterdir()) == ["coco", "cvat-yolo.zip", "label-studio", "yolo"]
    # the labels are the fake model's boxes at prelabel_conf, for every image (recursively found)
    preds = FakeAdapter(3, seed=5).predict(weights, images, conf=0.0).predictions
    want = {p.path.stem: "".join(x + "\n" for x in prediction_lines(p, conf=0.5)) for p in preds}
    got = {p.stem: p.read_text() for p in (root / "yolo" / "labels").iterdir()}
    assert got == want
    assert read_returned_labels(root / "cvat-yolo.zip", "cvat-yolo", NAMES) == want
    # Label Studio: 1 - the image's uncertainty (entropy, max, at score_conf), no cycle
    cfg = Config(prelabel_conf=0.5)
    scores = {s.path.name: s.score for s in score_predictions(preds, cfg)}
    tasks = json.loads((root / "label-studio" / "tasks.json").read_text())
    for task in tasks:
        name = Path(task["data"]["image"]).name
        assert task["predictions"][0]["score"] == pytest.approx(1 - scores[name], abs=1e-6)
        assert task["predictions"][0]["model_version"] == "prelabel"
    # predicted once, at the lower of the two thresholds
    assert fakes[-1].calls == [("predict", {"n": 4, "conf": 0.1})]  # score_conf 0.1 < prelabel_conf 0.5


def test_names_from_the_weights_and_confidence_column(setup):
    tmp_path, _, weights, _, _, _ = setup
    assert main(_args(tmp_path, weights, "--with-confidence")) == 0
    data = (tmp_path / "out" / "yolo" / "data.yaml").read_text()
    assert "0: cat" in data and "2: bird" in data
    lines = [ln for p in (tmp_path / "out" / "yolo" / "labels").iterdir() for ln in p.read_text().splitlines()]
    assert lines and all(len(ln.split()) == 6 for ln in lines)


def test_unreadable_image_is_skipped_and_reported(setup, capsys):
    tmp_path, _, weights, classes, factory, _ = setup
    factory.unreadable = {"b.png"}
    assert main(_args(tmp_path, weights, "--classes", str(classes))) == 0
    err = capsys.readouterr().err
    assert "skipped" in err and "b.png" in err
    assert sorted(p.name for p in (tmp_path / "out" / "yolo" / "labels").iterdir()) == ["a.txt", "c.txt", "d.txt"]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("detal: error: ")
    assert "Traceback" not in err
    return lines[0]


BAD = [
    ("missing weights", lambda t: ["--weights", str(t / "nope.pt")], "nope.pt: weights file not found"),
    ("empty image dir", lambda t: ["--images", str((t / "empty").mkdir() or t / "empty")], "no images"),
    ("image dir missing", lambda t: ["--images", str(t / "nowhere")], "image folder not found"),
    ("unknown format", lambda t: ["--format", "yolo,voc"], "unknown format 'voc'"),
    ("classes file missing", lambda t: ["--classes", str(t / "none.txt")], "none.txt: classes file not found"),
    ("too few classes", lambda t: ["--classes", str(_write(t / "two.txt", "cat\ndog\n"))], "predicts 3 classes but 2 class names"),
    ("bad config key", lambda t: ["--set", "prelabel_cnf=0.3"], "did you mean 'prelabel_conf'"),
    ("conf out of range", lambda t: ["--set", "prelabel_conf=3"], "prelabel_conf must lie in"),
]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("extra, message", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_is_one_line_and_exit_1(setup, capsys, extra, message):
    tmp_path, _, weights, classes, _, _ = setup
    args = _args(tmp_path, weights, "--classes", str(classes), "--format", "yolo,coco")
    for flag_value in zip(*[iter(extra(tmp_path))] * 2):
        flag, value = flag_value
        if flag in args and flag not in ("--format", "--set"):
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    assert main(args) == 1
    assert message in _one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_no_names_anywhere(setup, capsys, monkeypatch):
    tmp_path, _, weights, _, _, _ = setup
    monkeypatch.setattr(prelabel_cmd, "make_adapter", lambda cfg: FakeAdapter(3))
    assert main(_args(tmp_path, weights)) == 1
    assert "pass --classes FILE" in _one_error_line(capsys)


def test_every_image_unreadable(setup, capsys):
    tmp_path, _, weights, classes, factory, _ = setup
    factory.unreadable = {"a.png", "b.png", "c.jpg", "d.png"}
    assert main(_args(tmp_path, weights, "--classes", str(classes))) == 1
    assert "none of the 4 images could be read" in _one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_listed_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "prelabel" in capsys.readouterr().out


@pytest.mark.slow
def test_real_model_end_to_end(tmp_path, monkeypatch, capsys):
    """Train 1 epoch with the real adapter, then pre-label with its weights, names from the weights."""
    pytest.importorskip("ultralytics")
    from detal.ultra import UltralyticsAdapter

    images = _images(tmp_path / "pool", names=("a.png", "b.png", "c.png", "d.png"))
    labels = []
    for i, image in enumerate(images):
        label = image.with_suffix(".txt")
        label.write_text(f"{i % 3} 0.5 0.5 0.4 0.4\n")
        labels.append(label)
    cfg = Config(model="yolov8n.yaml", imgsz=32, batch=4, device="cpu", workers=0, epochs_per_cycle=1)
    trained = UltralyticsAdapter(cfg).train(
        list(zip(images, labels)), [], NAMES, tmp_path / "train", epochs=1
    )
    rc = main(["prelabel", "--weights", str(trained.weights), "--images", str(tmp_path / "pool"),
               "--out", str(tmp_path / "out"), "--format", "yolo,cvat-yolo,coco,label-studio",
               "--set", "model=yolov8n.yaml", "--set", "imgsz=32", "--set", "device=cpu",
               "--set", "prelabel_conf=0.0", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    root = tmp_path / "out"
    assert "0: cat" in (root / "yolo" / "data.yaml").read_text()
    assert sorted(p.name for p in (root / "yolo" / "labels").iterdir()) == ["a.txt", "b.txt", "c.txt", "d.txt"]
    with zipfile.ZipFile(root / "cvat-yolo.zip") as zf:
        assert "obj.names" in zf.namelist()
    coco = json.loads((root / "coco" / "annotations" / "instances_default.json").read_text())
    assert len(coco["images"]) == 4
