"""Scoring and pre-labeling with decode worker processes give the same bytes as decoding in-process.

A real tiny model (yolov8n.yaml, untrained, BatchNorm statistics estimated on
the images and a class head drawn at random so that every image gets boxes of
varied confidence) predicts 23 images of three letterbox shapes, a corrupt
file and a missing one, once with ``decode_workers: 0`` (today's path: one
reader thread on the CPU), once with 2 worker processes and once with 3 reader
threads. Every float of every prediction, every score and every pre-label file
must be equal. Threads and workers finish in any order; the loop takes images
in input order, so the batches are the same.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detal.config import Config
from detal.errors import ConfigError, ModelError
from detal.prelabel import prelabel
from detal.scoring import score_predictions
from detal.ultra import UltralyticsAdapter, prepare_ultralytics
from detal.ultra.preprocess import PoolDecoder

cv2 = pytest.importorskip("cv2")
psutil = pytest.importorskip("psutil")

SIZES = [(64, 64), (40, 96), (96, 48)]  # (h, w): three letterboxed shapes at imgsz 64
NAMES = ["a", "b", "c"]


def decode_processes() -> list:
    """This process's spawned children, less multiprocessing's resource tracker (it lives as long as we do)."""
    return [c for c in psutil.Process().children(recursive=True)
            if "resource_tracker" not in " ".join(c.cmdline())]


def make_images(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        h, w = SIZES[i % len(SIZES)]
        image = rng.integers(0, 80, (h, w, 3), dtype=np.uint8)
        s = int(rng.integers(10, 30))
        x, y = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
        cv2.rectangle(image, (x, y), (x + s, y + s), tuple(int(c) for c in rng.integers(100, 256, 3)), -1)
        path = folder / f"img{i:02d}.{'png' if i % 2 else 'jpg'}"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def make_weights(path: Path, images: list[Path]) -> Path:
    """yolov8n.yaml with 3 classes, BatchNorm calibrated on ``images``, a random class head."""
    prepare_ultralytics()
    import torch
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel("yolov8n.yaml", nc=3, verbose=False)
    model.names = dict(enumerate(NAMES))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
            m.reset_running_stats()
    ims = [cv2.resize(cv2.imread(str(p)), (64, 64))[..., ::-1] for p in images]
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(np.stack(ims).copy()).permute(0, 3, 1, 2).float() / 255)
    model.eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for branch in model.model[-1].cv3:
            branch[-1].weight.copy_(torch.randn(branch[-1].weight.shape, generator=gen) * 0.5)
            branch[-1].bias.fill_(-3.0)
    torch.save({"model": model, "train_args": {}}, path)
    return path


def config(**changes) -> Config:
    base = {"model": "yolov8n.yaml", "imgsz": 64, "device": "cpu", "predict_batch": 4, "score_conf": 0.05,
            "prelabel_conf": 0.1}
    return Config(**{**base, **changes})


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("decode")
    images = make_images(root / "pool", 23)
    (root / "pool" / "broken.jpg").write_bytes(b"not a jpeg at all")
    inputs = [*images[:10], root / "pool" / "broken.jpg", root / "pool" / "missing.png", *images[10:]]
    weights = make_weights(root / "tiny.pt", images)
    out: dict = {"inputs": inputs, "weights": weights, "root": root}
    for name, cfg, readers in (("today", config(), None), ("workers", config(decode_workers=2), None),
                               ("threads", config(), 3)):
        adapter = UltralyticsAdapter(cfg, readers=readers)
        real_run, children = adapter._run, []

        def run(loaded, group, *args, real_run=real_run, children=children):
            children.append(frozenset(c.pid for c in decode_processes()))
            return real_run(loaded, group, *args)

        adapter._run = run  # type: ignore[method-assign]
        result = adapter.predict(weights, inputs, conf=cfg.score_conf, iou=cfg.iou, batch=cfg.predict_batch,
                                 progress=False, with_dfl=True, with_embeddings=True)
        children.append("prelabel")
        written, failed = prelabel(adapter, weights, inputs, root / f"prelabels-{name}", NAMES, cfg,
                                   ("yolo", "coco"), with_confidence=True, progress=False)
        out[name] = {"result": result, "scores": score_predictions(result.predictions, cfg),
                     "written": written, "failed": failed, "children": children,
                     "left": frozenset(c.pid for c in decode_processes())}
        adapter.close()
        out[name]["closed"] = frozenset(c.pid for c in decode_processes())
    return out


def _same_prediction(a, b) -> None:
    assert (a.path, a.width, a.height) == (b.path, b.width, b.height)
    da, db = a.detections, b.detections
    for field in ("xyxy", "class_id", "confidence", "class_probs", "dfl"):
        x, y = getattr(da, field), getattr(db, field)
        assert x.dtype == y.dtype and np.array_equal(x, y), (a.path, field)
    assert a.embedding.dtype == b.embedding.dtype and np.array_equal(a.embedding, b.embedding)


@pytest.mark.parametrize("other", ["workers", "threads"])
def test_predictions_are_the_same_bytes(runs, other):
    today, there = runs["today"]["result"], runs[other]["result"]
    readable = [p for p in runs["inputs"] if p.name not in ("broken.jpg", "missing.png")]
    assert [p.path for p in today.predictions] == readable
    assert sum(len(p.detections) for p in today.predictions) >= len(readable)  # boxes to compare
    assert len({float(p.detections.confidence.max()) for p in today.predictions if len(p.detections)}) > 5
    assert len(there.predictions) == len(today.predictions)
    for a, b in zip(today.predictions, there.predictions):
        _same_prediction(a, b)
    assert there.failed == today.failed
    assert [p.name for p, _ in today.failed] == ["broken.jpg", "missing.png"]


@pytest.mark.parametrize("other", ["workers", "threads"])
def test_scores_and_prelabels_are_the_same(runs, other):
    today, there = runs["today"], runs[other]
    assert [(s.path, s.score, s.n_boxes) for s in there["scores"]] == \
        [(s.path, s.score, s.n_boxes) for s in today["scores"]]
    assert there["failed"] == today["failed"]
    assert sorted(there["written"]) == sorted(today["written"]) == ["coco", "yolo"]
    root_a, root_b = runs["root"] / "prelabels-today", runs["root"] / f"prelabels-{other}"
    files_a = sorted(p.relative_to(root_a) for p in root_a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(root_b) for p in root_b.rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) > 20
    for rel in files_a:
        assert (root_a / rel).read_bytes() == (root_b / rel).read_bytes(), rel


def test_worker_processes_did_the_decoding(runs):
    seen = runs["workers"]["children"]
    split = seen.index("prelabel")
    scoring, labeling = set().union(*seen[:split]), set().union(*seen[split + 1:])
    assert 1 <= len(scoring) <= 2  # spawned decode workers were alive during the passes
    assert labeling == scoring  # the pre-label pass reused them
    assert runs["workers"]["left"] == scoring and not runs["workers"]["closed"]  # kept, then stopped by close()
    for name in ("today", "threads"):
        assert not set().union(*(c for c in runs[name]["children"] if c != "prelabel"))


def test_a_dead_decode_worker_is_one_error(runs, monkeypatch):
    adapter = UltralyticsAdapter(config(decode_workers=1))
    monkeypatch.setattr(PoolDecoder, "__call__", lambda self, path: self._pool.submit(os._exit, 3).result())
    with pytest.raises(ModelError) as err:
        adapter.predict(runs["weights"], runs["inputs"][:6], conf=0.05, batch=2, progress=False)
    assert str(err.value).startswith("predict: image reader failed: BrokenProcessPool")
    assert "\n" not in str(err.value)
    assert not decode_processes()  # the broken pool was closed
    monkeypatch.undo()
    again = adapter.predict(runs["weights"], runs["inputs"][:6], conf=0.05, batch=2, progress=False)
    assert [p.path for p in again.predictions] == [p.path for p in runs["today"]["result"].predictions[:6]]
    adapter.close()


@pytest.mark.parametrize(("value", "message"), [
    (-1, "decode_workers must lie in [0, 256], got -1"),
    (257, "decode_workers must lie in [0, 256], got 257"),
    ("2", "decode_workers must be int, got '2'"),
    (True, "decode_workers must be int, got True"),
])
def test_decode_workers_is_checked(value, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Config(decode_workers=value)


def test_a_script_without_main_guard_is_not_rerun_in_the_workers(runs, tmp_path):
    """Spawned workers would re-run the caller's script; detal's start them without it."""

    ran = tmp_path / "ran.txt"
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from pathlib import Path\n"
        "from detal.config import Config\n"
        "from detal.ultra import UltralyticsAdapter\n"
        f"with open({str(ran)!r}, 'a') as fh:\n"
        "    fh.write('ran\\n')\n"
        "cfg = Config(model='yolov8n.yaml', imgsz=64, device='cpu', decode_workers=1)\n"
        f"paths = [Path(p) for p in {[str(p) for p in runs['inputs'][:4]]!r}]\n"
        f"result = UltralyticsAdapter(cfg).predict(Path({str(runs['weights'])!r}), paths, conf=0.05, progress=False)\n"
        "print('predicted', len(result.predictions))\n"
    )
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, str(script)], check=False, capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "predicted 4" in out.stdout
    assert ran.read_text() == "ran\n"  # once: the worker did not run the script again
