"""The Ultralytics adapter against real (tiny) Ultralytics training and inference.

One yolov8n model is trained once for the module (imgsz 64, 2 epochs, 12
generated images of drawn squares, circles and triangles) and shared by the
predict, evaluate, equality and no-network tests. A model trained that briefly
gives nearly the same scores to every image, which would make the equality
test with ``YOLO.predict`` toothless, so that test also runs on a copy whose
class-score convolution is re-drawn at random: its scores then vary strongly
from image to image and anchor to anchor.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import NETWORK_ATTEMPTS

from detal.config import Config
from detal.errors import ConfigError, DataError, ModelError
from detal.ultra import UltralyticsAdapter, stage_split

cv2 = pytest.importorskip("cv2")

NAMES = ["square", "circle", "triangle"]
COLORS = [(0, 0, 255), (0, 255, 0), (255, 0, 0)]
SIZES = [(64, 64), (32, 96), (96, 32)]  # (h, w): letterboxed at imgsz 64 to 64x64, 32x64 and 64x32


def draw_dataset(root: Path, n: int, seed: int = 0) -> list[tuple[Path, Path]]:
    """``n`` images with 1-3 drawn shapes each and their YOLO labels."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(n):
        h, w = SIZES[i % len(SIZES)]
        image = np.full((h, w, 3), int(rng.integers(20, 60)), np.uint8)
        lines = []
        for _ in range(int(rng.integers(1, 4))):
            c = int(rng.integers(0, 3))
            s = int(rng.integers(14, 26))
            x, y = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
            if c == 0:
                cv2.rectangle(image, (x, y), (x + s - 1, y + s - 1), COLORS[c], -1)
            elif c == 1:
                cv2.circle(image, (x + s // 2, y + s // 2), s // 2, COLORS[c], -1)
            else:
                pts = np.array([[x, y + s - 1], [x + s - 1, y + s - 1], [x + s // 2, y]], np.int32)
                cv2.fillPoly(image, [pts], COLORS[c])
            lines.append(f"{c} {(x + s / 2) / w:.6f} {(y + s / 2) / h:.6f} {s / w:.6f} {s / h:.6f}")
        img_path, label_path = root / f"img{i:03d}.png", root / f"img{i:03d}.txt"
        cv2.imwrite(str(img_path), image)
        label_path.write_text("\n".join(lines) + "\n")
        items.append((img_path, label_path))
    return items


def tiny_config(**changes) -> Config:
    base = {"model": "yolov8n.yaml", "imgsz": 64, "batch": 8, "workers": 0, "device": "cpu", "seed": 0}
    base.update(changes)
    return Config(**base)


def redraw_class_head(weights: Path, out: Path, seed: int = 0) -> Path:
    """A copy of ``weights`` whose last class-score convolutions are random (bias 0)."""
    import torch
    from ultralytics import YOLO

    model = YOLO(str(weights))
    head = model.model.model[-1]
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for branch in head.cv3:
            conv = branch[-1]
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * 1.5)
            conv.bias.zero_()
    model.save(str(out))
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("shapes")
    items = draw_dataset(root / "pool", 16)
    return {"root": root, "train": items[:12], "val": items[12:], "all": items}


@pytest.fixture(scope="module")
def trained(data) -> dict:
    """One real training run, shared; records any network attempt made while it ran."""
    NETWORK_ATTEMPTS.clear()
    adapter = UltralyticsAdapter(tiny_config())
    out = data["root"] / "cycle0"
    result = adapter.train(data["train"], data["val"], NAMES, out, epochs=2)
    attempts = list(NETWORK_ATTEMPTS)
    sharp = redraw_class_head(result.weights, data["root"] / "sharp.pt")
    return {"adapter": adapter, "result": result, "out": out, "attempts": attempts, "sharp": sharp}


# ----------------------------------------------------------------------------- train


@pytest.mark.slow
def test_train_writes_weights_metrics_and_exact_lists(data, trained):
    result, out = trained["result"], trained["out"]
    assert result.weights.is_file() and out in result.weights.parents
    assert result.weights.name == "best.pt" and result.epochs == 2
    assert result.metrics is not None
    assert 0.0 <= result.metrics.map50 <= 1.0 and 0.0 <= result.metrics.map50_95 <= result.metrics.map50 + 1e-9
    per_class = result.metrics.per_class
    assert per_class is not None and len(per_class) == len(NAMES)
    measured = [ap for ap in per_class if ap is not None]
    assert measured and np.mean(measured) == pytest.approx(result.metrics.map50_95, abs=1e-6)
    staged = (out / "dataset" / "train.txt").read_text().split()
    assert sorted(Path(p).resolve() for p in staged) == sorted(p.resolve() for p, _ in data["train"])
    val = (out / "dataset" / "val.txt").read_text().split()
    assert sorted(Path(p).resolve() for p in val) == sorted(p.resolve() for p, _ in data["val"])
    spec = yaml.safe_load((out / "dataset" / "data.yaml").read_text())
    assert spec["names"] == dict(enumerate(NAMES)) and spec["nc"] == 3
    assert not list(out.glob("train/*.png")) and not list(out.glob("train/*.jpg"))  # plots=False


@pytest.mark.slow
def test_checkpoint_has_project_names_and_class_count(trained):
    from ultralytics.nn.tasks import load_checkpoint

    model, _ = load_checkpoint(str(trained["result"].weights))
    assert model.nc == 3 and list(model.names.values()) == NAMES


@pytest.mark.slow
def test_warm_start_without_val_returns_last_weights(data, trained, tmp_path):
    adapter = UltralyticsAdapter(tiny_config())
    result = adapter.train(
        data["train"][:6], [], NAMES, tmp_path / "cycle1", epochs=1, init_weights=trained["result"].weights
    )
    assert result.metrics is None
    assert result.weights.name == "last.pt" and result.weights.is_file()
    args = yaml.safe_load((tmp_path / "cycle1" / "train" / "args.yaml").read_text())
    assert args["val"] is False and args["plots"] is False
    assert Path(args["model"]).resolve() == trained["result"].weights.resolve()


@pytest.mark.slow
@pytest.mark.parametrize("model_yaml", ["yolov5s.yaml", "yolo11n.yaml"])
def test_other_architectures_train_with_project_class_count(data, tmp_path, model_yaml):
    adapter = UltralyticsAdapter(tiny_config(model=model_yaml, batch=4))
    names = ["a", "b"]
    items = []
    for image, label in data["train"][:4]:
        two = tmp_path / label.name  # fold the three classes into two
        two.write_text("".join(f"{min(int(l.split()[0]), 1)} {l.split(' ', 1)[1]}\n" for l in label.read_text().splitlines()))
        items.append((image, two))
    result = adapter.train(items, [], names, tmp_path / "run", epochs=1)
    pred = adapter.predict(result.weights, [items[0][0]], conf=0.0, progress=False).predictions[0]
    assert pred.detections.n_classes == 2


@pytest.mark.slow
def test_a_local_pt_as_model_is_retrained_with_the_project_classes(data, trained, tmp_path):
    adapter = UltralyticsAdapter(tiny_config(model=str(trained["result"].weights)))
    items = []
    for image, label in data["train"][:4]:
        one = tmp_path / label.name  # every shape is "thing"
        one.write_text("".join(f"0 {line.split(' ', 1)[1]}\n" for line in label.read_text().splitlines()))
        items.append((image, one))
    result = adapter.train(items, [], ["thing"], tmp_path / "run", epochs=1)
    from ultralytics.nn.tasks import load_checkpoint

    model, _ = load_checkpoint(str(result.weights))
    assert model.nc == 1 and model.names == {0: "thing"}


# ----------------------------------------------------------------------------- predict


@pytest.mark.slow
def test_predict_returns_full_probability_vectors_in_input_order(data, trained):
    adapter = trained["adapter"]
    paths = [p for p, _ in data["all"]][::-1]
    result = adapter.predict(trained["sharp"], paths, conf=0.25, batch=5, progress=False)
    assert result.failed == []
    assert [p.path for p in result.predictions] == paths
    n_boxes = 0
    for pred in result.predictions:
        h, w = cv2.imread(str(pred.path)).shape[:2]
        assert (pred.width, pred.height) == (w, h)
        det = pred.detections
        n_boxes += len(det)
        assert det.class_probs.shape == (len(det), 3)
        np.testing.assert_array_equal(det.class_id, det.class_probs.argmax(axis=1))
        np.testing.assert_allclose(det.confidence, det.class_probs.max(axis=1), rtol=0, atol=1e-6)
        assert np.all(det.confidence >= 0.25)
        assert np.all(det.xyxy >= 0) and np.all(det.xyxy[:, [0, 2]] <= w) and np.all(det.xyxy[:, [1, 3]] <= h)
    assert n_boxes > 0


def _ultralytics_boxes(weights: Path, path: Path, conf: float, iou: float):
    from ultralytics import YOLO

    boxes = YOLO(str(weights)).predict(str(path), imgsz=64, conf=conf, iou=iou, device="cpu", verbose=False)[0].boxes
    return boxes.xyxy.numpy(), boxes.cls.numpy().astype(int), boxes.conf.numpy()


@pytest.mark.slow
@pytest.mark.parametrize(
    "which,conf,batch,extras",
    [("trained", 0.001, 4, False), ("sharp", 0.25, 1, False), ("sharp", 0.25, 16, False), ("sharp", 0.25, 5, True)],
)
def test_top1_class_and_confidence_equal_ultralytics_predict(data, trained, which, conf, batch, extras):
    """Also with DFL logits and embeddings read from the same pass (``extras``)."""
    weights = trained["result"].weights if which == "trained" else trained["sharp"]
    paths = [p for p, _ in data["all"]]
    ours = trained["adapter"].predict(
        weights, paths, conf=conf, iou=0.7, batch=batch, progress=False, with_dfl=extras, with_embeddings=extras
    )
    total = 0
    for pred in ours.predictions:
        xyxy, cls, confidence = _ultralytics_boxes(weights, pred.path, conf, 0.7)
        det = pred.detections
        assert len(det) == len(cls), pred.path
        total += len(cls)
        # Pair boxes by position, not by rank: two boxes whose confidences tie to
        # float rounding may come out of NMS in either order.
        ours_order = np.lexsort(np.round(det.xyxy, 2).T[::-1])
        theirs_order = np.lexsort(np.round(xyxy, 2).T[::-1])
        np.testing.assert_allclose(det.xyxy[ours_order], xyxy[theirs_order], rtol=0, atol=1e-3)
        np.testing.assert_array_equal(det.class_id[ours_order], cls[theirs_order])
        np.testing.assert_allclose(det.confidence[ours_order], confidence[theirs_order], rtol=0, atol=1e-5)
    assert total > 0


@pytest.mark.slow
def test_corrupt_missing_and_empty_images_are_listed_not_fatal(data, trained, tmp_path):
    good = [p for p, _ in data["all"][:3]]
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(os.urandom(512))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good[0].read_bytes()[:40])
    missing = tmp_path / "missing.jpg"
    paths = [garbage, good[0], empty, good[1], missing, truncated, good[2]]
    result = trained["adapter"].predict(trained["sharp"], paths, conf=0.25, batch=2, progress=False)
    assert [p.path for p in result.predictions] == good
    assert [path for path, _ in result.failed] == [garbage, empty, missing, truncated]
    reasons = dict(result.failed)
    assert "not found" in reasons[missing] and "decode" in reasons[garbage]


@pytest.mark.slow
def test_predict_accepts_a_generator_and_an_empty_input(data, trained):
    adapter = trained["adapter"]
    stream = (p for p, _ in data["all"][:5])
    assert len(adapter.predict(trained["sharp"], stream, conf=0.25, batch=2, progress=False).predictions) == 5
    empty = adapter.predict(trained["sharp"], [], conf=0.25, progress=False)
    assert empty.predictions == [] and empty.failed == []


def test_predict_gives_freed_heap_memory_back_every_few_batches(data, trained, monkeypatch):
    import detal.ultra.predict as predict_module

    trims = []
    monkeypatch.setattr(predict_module, "release_freed_memory", lambda: trims.append(1))
    paths = [p for p, _ in data["all"]]
    images = [paths[i % len(paths)] for i in range(2 * predict_module.TRIM_EVERY + 1)]
    result = trained["adapter"].predict(trained["sharp"], images, conf=0.25, batch=1, progress=False)
    assert len(result.predictions) == len(images)
    assert len(trims) == 2  # after batch 8 and batch 16 of 17


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_freed_memory_reaches_glibc():
    from detal.ultra.predict import release_freed_memory

    assert release_freed_memory() is True


@pytest.mark.slow
@pytest.mark.parametrize("readers", [1, 3])
def test_predict_streams_images_with_bounded_buffering(data, trained, readers, monkeypatch):
    """A generator of 120 paths is pulled only a few batches ahead of the forward passes."""
    batch, n = 4, 120
    paths = [p for p, _ in data["all"]]
    pulled = [0]

    def stream():
        for i in range(n):
            pulled[0] += 1
            yield paths[i % len(paths)]

    adapter = UltralyticsAdapter(tiny_config(), readers=readers)
    real_run = adapter._run
    processed, waiting = [0], []

    def run(loaded, group, conf, iou, *extras):
        processed[0] += len(group)
        waiting.append(pulled[0] - processed[0])  # pulled from the generator, not yet run
        return real_run(loaded, group, conf, iou, *extras)

    monkeypatch.setattr(adapter, "_run", run)
    result = adapter.predict(trained["sharp"], stream(), conf=0.25, batch=batch, progress=False)
    assert [p.path for p in result.predictions] == [paths[i % len(paths)] for i in range(n)]
    assert max(waiting) <= 2 * batch + 4 * batch + readers  # queue + shape buckets + one per reader
    assert max(len(p.detections) for p in result.predictions) > 0


# ----------------------------------------------------------------------------- DFL logits and embeddings


def redraw_box_head(weights: Path, out: Path, seed: int = 0) -> Path:
    """A copy of ``weights`` whose last box (DFL) convolutions are random, so sides range from sharp to flat."""
    import torch
    from ultralytics import YOLO

    model = YOLO(str(weights))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for branch in model.model.model[-1].cv2:
            conv = branch[-1]
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * 3.0)
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=gen) * 2.0)
    model.save(str(out))
    return out


def _from_scratch(weights: Path, path: Path, conf: float, iou: float) -> dict:
    """The kept boxes' DFL logits, localization and the image embedding, computed here alone.

    The checkpoint is loaded and fused, the image letterboxed and run through
    the network one at a time; the head's input feature maps are caught by a
    forward hook, its raw box logits taken from its output, the kept anchors
    from Ultralytics' NMS.
    """
    import torch
    from ultralytics.data.augment import LetterBox
    from ultralytics.nn.tasks import load_checkpoint
    from ultralytics.utils import nms, ops

    model, _ = load_checkpoint(str(weights))
    model = model.fuse(verbose=False).float().eval()
    head = model.model[-1]
    im = cv2.imread(str(path))
    lb = LetterBox((64, 64), auto=True, stride=32)(image=im)
    x = torch.from_numpy(lb[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    caught = {}
    handle = head.register_forward_hook(lambda m, inputs, output: caught.update(feats=list(inputs[0])))
    with torch.no_grad():
        decoded, raw = model(x)
    handle.remove()
    kept, idx = nms.non_max_suppression(decoded.clone(), conf, iou, max_det=300, return_idxs=True)
    keep = idx[0].view(-1).long()
    r = head.reg_max
    logits = raw["boxes"][0][:, keep].T.reshape(-1, 4, r)  # (k, 4, reg_max)
    p = logits.softmax(-1)
    # The layout (side-major) is the one the model's own DFL module decodes: check it.
    expected = head.dfl(raw["boxes"])[0][:, keep].T  # (k, 4) expected distances in bins
    torch.testing.assert_close((p * torch.arange(r, dtype=p.dtype)).sum(-1), expected, rtol=0, atol=1e-4)
    entropy = -(p * p.clamp_min(1e-30).log()).sum(-1) / np.log(r)
    pooled = torch.cat([f.mean(dim=(2, 3)) for f in caught["feats"]], dim=1)[0]
    boxes = ops.scale_boxes(x.shape[2:], kept[0][:, :4].clone(), im.shape[:2])
    return {
        "xyxy": boxes.numpy(),
        "dfl": logits.numpy(),
        "localization": entropy.mean(-1).numpy(),
        "embedding": (pooled / pooled.norm()).numpy(),
    }


@pytest.fixture(scope="module")
def untrained(data) -> Path:
    """yolov8n as built from its YAML (3 classes), saved as a checkpoint."""
    import torch

    from detal.ultra import prepare_ultralytics

    prepare_ultralytics()
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel("yolov8n.yaml", nc=3, verbose=False)
    model.names = dict(enumerate(NAMES))
    path = data["root"] / "untrained.pt"
    torch.save({"model": model.eval(), "train_args": {}}, path)
    return path


@pytest.fixture(scope="module")
def boxy(data, trained) -> Path:
    return redraw_box_head(trained["sharp"], data["root"] / "boxy.pt")


@pytest.mark.slow
def test_dfl_logits_and_localization_equal_a_from_scratch_computation(data, trained, boxy):
    from detal.uncertainty import localization

    paths = [p for p, _ in data["all"]]
    ours = trained["adapter"].predict(boxy, paths, conf=0.25, batch=5, progress=False, with_dfl=True)
    values = []
    for pred in ours.predictions:
        ref = _from_scratch(boxy, pred.path, 0.25, 0.7)
        det = pred.detections
        assert det.dfl is not None and det.dfl.shape == (len(det), 4, 16)
        assert len(det) == len(ref["xyxy"]), pred.path
        mine = np.lexsort(np.round(det.xyxy, 2).T[::-1])
        theirs = np.lexsort(np.round(ref["xyxy"], 2).T[::-1])
        np.testing.assert_allclose(det.xyxy[mine], ref["xyxy"][theirs], rtol=0, atol=1e-3)
        np.testing.assert_allclose(det.dfl[mine], ref["dfl"][theirs], rtol=0, atol=1e-4)
        loc = localization(det.dfl)
        np.testing.assert_allclose(loc[mine], ref["localization"][theirs], rtol=0, atol=1e-5)
        values.extend(loc.tolist())
    assert len(values) > 0
    assert np.ptp(values) > 0.01  # the boxes differ: the comparison is not of constants
    # with_dfl left to the adapter: read when the config's measure needs them
    mixed = UltralyticsAdapter(tiny_config(measure={"binary_entropy": 1, "localization": 1}))
    auto = mixed.predict(boxy, paths[:3], conf=0.25, progress=False).predictions
    assert all(p.detections.dfl is not None for p in auto)
    plain = trained["adapter"].predict(boxy, paths[:3], conf=0.25, progress=False).predictions
    assert all(p.detections.dfl is None for p in plain)


@pytest.mark.slow
def test_embeddings_are_unit_norm_equal_for_equal_images_and_from_the_head_inputs(data, trained, untrained, tmp_path):
    """On an untrained yolov8n: two epochs at imgsz 64 leave the trained model's head inputs
    nearly constant (pooled, they differ in the 4th decimal between a black and a white
    image), which would make "different images differ" a test of rounding."""
    import shutil

    weights = untrained
    originals = [p for p, _ in data["all"][:6]]
    copies = []
    for p in originals[:3]:
        copies.append(tmp_path / f"copy_{p.name}")
        shutil.copyfile(p, copies[-1])
    paths = [*originals, *copies]
    ours = trained["adapter"].predict(weights, paths, conf=0.25, batch=16, progress=False, with_embeddings=True)
    emb = {p.path: p.embedding for p in ours.predictions}
    assert all(e.dtype == np.float16 and e.shape == (64 + 128 + 256,) for e in emb.values())
    for e in emb.values():
        assert np.linalg.norm(e.astype(np.float32)) == pytest.approx(1.0, abs=2e-3)
    for p, c in zip(originals, copies):
        np.testing.assert_array_equal(emb[p], emb[c])
    flat = np.stack([emb[p].astype(np.float32) for p in originals])
    gaps = [np.abs(flat[i] - flat[j]).max() for i in range(len(flat)) for j in range(i + 1, len(flat))]
    assert min(gaps) > 1e-2  # different images, different embeddings
    for p in originals:
        ref = _from_scratch(weights, p, 0.25, 0.7)["embedding"]
        np.testing.assert_allclose(emb[p].astype(np.float32), ref, rtol=0, atol=2e-3)
    plain = trained["adapter"].predict(weights, originals, conf=0.25, progress=False)
    assert all(p.embedding is None and p.detections.dfl is None for p in plain.predictions)


# ----------------------------------------------------------------------------- evaluate


@pytest.mark.slow
def test_evaluate_returns_validator_map(data, trained, tmp_path):
    metrics = trained["adapter"].evaluate(trained["result"].weights, data["val"], NAMES, tmp_path / "eval")
    assert 0.0 <= metrics.map50_95 <= metrics.map50 <= 1.0
    present = {int(line.split()[0]) for _, label in data["val"] for line in label.read_text().splitlines()}
    assert len(metrics.per_class) == len(NAMES)
    for c, ap in enumerate(metrics.per_class):
        assert (ap is None) == (c not in present)
        assert ap is None or 0.0 <= ap <= 1.0
    measured = [ap for ap in metrics.per_class if ap is not None]
    assert np.mean(measured) == pytest.approx(metrics.map50_95, abs=1e-6)  # mAP is the mean over measured classes
    assert (tmp_path / "eval" / "dataset" / "val.txt").read_text().count("\n") == len(data["val"])
    assert not list((tmp_path / "eval").rglob("*.png")) or all(
        "dataset" in p.parts for p in (tmp_path / "eval").rglob("*.png")
    )


# ----------------------------------------------------------------------------- offline


@pytest.mark.slow
def test_nothing_reaches_for_the_network(data, trained, tmp_path, network_attempts):
    assert trained["attempts"] == []  # during training
    adapter = trained["adapter"]
    adapter.predict(trained["result"].weights, [p for p, _ in data["val"]], conf=0.25, progress=False)
    adapter.evaluate(trained["result"].weights, data["val"], NAMES, tmp_path / "eval")
    assert network_attempts == []


@pytest.mark.slow
def test_settings_stay_out_of_home_and_sync_is_off(tmp_path):
    """In a fresh process with no YOLO_CONFIG_DIR, nothing is written under $HOME."""
    import subprocess
    import sys

    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("YOLO_CONFIG_DIR", "YOLO_OFFLINE", "XDG_CONFIG_HOME")}
    env.update(HOME=str(home), TMPDIR=str(tmp))
    code = (
        "from detal.ultra import prepare_ultralytics; prepare_ultralytics(); "
        "from ultralytics.utils import SETTINGS, SETTINGS_FILE; print(SETTINGS_FILE); print(SETTINGS['sync'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    settings_file, sync = out.stdout.strip().splitlines()[-2:]
    assert Path(settings_file).is_file() and tmp in Path(settings_file).parents
    assert sync == "False"
    assert list(home.rglob("*")) == []


# ----------------------------------------------------------------------------- errors (fast)


@pytest.mark.parametrize(
    "changes,call,error,text",
    [
        ({}, "predict_missing", ModelError, "weights file not found"),
        ({"model": "nowhere/yolov8n.pt"}, "train", ModelError, "never downloads"),
        ({"model": "resnet50"}, "train", ModelError, "model YAML"),
        ({}, "train_missing_label", DataError, "label file not found"),
        ({}, "train_empty", DataError, "no training images"),
        ({}, "evaluate_empty", DataError, "no validation images"),
    ],
)
def test_bad_input_raises_detal_errors(tmp_path, changes, call, error, text):
    adapter = UltralyticsAdapter(tiny_config(**changes))
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    label = tmp_path / "a.txt"
    label.write_text("")
    with pytest.raises(error, match=text):
        if call == "predict_missing":
            adapter.predict(tmp_path / "none.pt", [image], conf=0.25, progress=False)
        elif call == "train":
            adapter.train([(image, label)], [], NAMES, tmp_path / "out", epochs=1)
        elif call == "train_missing_label":
            adapter.train([(image, tmp_path / "b.txt")], [], NAMES, tmp_path / "out", epochs=1)
        elif call == "train_empty":
            adapter.train([], [], NAMES, tmp_path / "out", epochs=1)
        else:
            adapter.evaluate(tmp_path / "none.pt", [], NAMES, tmp_path / "out")


def test_importing_the_adapter_loads_neither_ultralytics_nor_torch():
    import subprocess
    import sys

    code = "import sys, detal.ultra, detal.commands.score; print('ultralytics' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_pil_open_keeps_its_own_error_after_ultralytics_is_imported(tmp_path, network_attempts):
    from PIL import Image, UnidentifiedImageError

    from detal.ultra import prepare_ultralytics

    prepare_ultralytics()
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(UnidentifiedImageError):
        Image.open(junk)
    assert network_attempts == []


def test_reserved_train_args_are_rejected():
    with pytest.raises(ConfigError, match="data, project"):
        UltralyticsAdapter(tiny_config(train_args={"project": "/tmp/x", "data": "x.yaml"}))


def test_staging_gives_same_named_images_unique_names(tmp_path):
    items = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        image, label = tmp_path / folder / "same.png", tmp_path / folder / "same.txt"
        cv2.imwrite(str(image), np.zeros((4, 4, 3), np.uint8))
        label.write_text(f"0 0.5 0.5 0.{len(folder)} 0.5\n" if folder == "a" else "")
        items.append((image, label))
    listing = stage_split(items, tmp_path / "stage" / "train")
    staged = [Path(p) for p in listing.read_text().split()]
    assert len(set(staged)) == 2
    assert [p.resolve() for p in staged] == [i.resolve() for i, _ in items]
    labels = [(tmp_path / "stage" / "train" / "labels" / f"{p.stem}.txt").read_text() for p in staged]
    assert labels == [items[0][1].read_text(), ""]
