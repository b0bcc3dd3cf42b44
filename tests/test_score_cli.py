"""``detal score`` in-process: the CSV it writes, and one-line errors for bad input.

The weights are an untrained yolov8n (2 classes) whose last class-score
convolutions are drawn at random, so that images get boxes with varied class
vectors without any training run.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from detal.cli import main
from detal.config import Config
from detal.scoring import score_predictions

cv2 = pytest.importorskip("cv2")

SET = ["--set", "imgsz=64", "--set", "device=cpu", "--set", "predict_batch=3"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    import torch

    from detal.ultra import prepare_ultralytics

    prepare_ultralytics()
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel("yolov8n.yaml", nc=2, verbose=False)
    model.names = {0: "cat", 1: "dog"}
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for branch in model.model[-1].cv3:
            branch[-1].weight.copy_(torch.randn(branch[-1].weight.shape, generator=gen) * 0.5)
            branch[-1].bias.fill_(-1.0)
    path = tmp_path_factory.mktemp("weights") / "random.pt"
    torch.save({"model": model.eval(), "train_args": {}}, path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pool")
    rng = np.random.default_rng(0)
    (root / "sub").mkdir()
    for i in range(7):
        folder = root / "sub" if i % 3 == 0 else root
        image = rng.integers(0, 255, (48 + 8 * i, 64, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"im{i}.jpg"), image)
    (root / "notes.txt").write_text("not an image")
    return root


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_score_writes_one_row_per_image_matching_the_python_api(weights, images, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    code = main(["score", "--weights", str(weights), "--images", str(images), "--out", str(out), "--quiet", *SET])
    assert code == 0
    rows = read_csv(out)
    assert list(rows[0]) == ["path", "score", "n_boxes", "top_class"]
    expected_paths = sorted(p for p in images.rglob("*.jpg"))
    assert [Path(r["path"]) for r in rows] == expected_paths
    assert "scored 7 images" in capsys.readouterr().out

    from detal.ultra import UltralyticsAdapter

    cfg = Config(imgsz=64, device="cpu")
    preds = UltralyticsAdapter(cfg).predict(weights, expected_paths, conf=cfg.score_conf, progress=False)
    api = score_predictions(preds.predictions, cfg)
    assert [float(r["score"]) for r in rows] == pytest.approx([s.score for s in api], abs=1e-6)
    assert [int(r["n_boxes"]) for r in rows] == [s.n_boxes for s in api]
    assert [r["top_class"] for r in rows] == ["" if s.top_class is None else str(s.top_class) for s in api]
    assert sum(int(r["n_boxes"]) for r in rows) > 0
    assert all(0.0 <= float(r["score"]) <= 1.0 for r in rows)


@pytest.mark.slow
def test_measure_aggregate_and_set_change_the_scores(weights, images, tmp_path):
    base, margin, none = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    common = ["score", "--weights", str(weights), "--images", str(images), "--quiet", *SET]
    assert main([*common, "--out", str(base)]) == 0
    assert main([*common, "--out", str(margin), "--measure", "margin", "--aggregate", "sum"]) == 0
    assert [r["score"] for r in read_csv(base)] != [r["score"] for r in read_csv(margin)]
    assert main([*common, "--out", str(none), "--set", "score_conf=1.0", "--set", "empty_image_score=0.25"]) == 0
    rows = read_csv(none)
    assert {(r["score"], r["n_boxes"], r["top_class"]) for r in rows} == {("0.250000", "0", "")}


@pytest.mark.slow
def test_unreadable_images_are_skipped_and_reported(weights, images, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = next(images.glob("*.jpg"))
    (folder / "good.jpg").write_bytes(good.read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "s.csv"
    assert main(["score", "--weights", str(weights), "--images", str(folder), "--out", str(out), "--quiet", *SET]) == 0
    assert [Path(r["path"]).name for r in read_csv(out)] == ["good.jpg"]
    err = capsys.readouterr().err
    assert "skipped" in err and "broken.png" in err


def _one_line_error(capsys, *fragments: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("detal: error:"), err
    for fragment in fragments:
        assert fragment in err[0]


@pytest.mark.parametrize(
    "case,fragments",
    [
        ("missing_weights", ("none.pt", "not found")),
        ("missing_dir", ("nowhere", "not found")),
        ("empty_dir", ("no images",)),
        ("bad_key", ("unknown key", "imgsize", "did you mean 'imgsz'")),
    ],
)
def test_bad_input_exits_1_with_one_line(images, tmp_path, capsys, case, fragments):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    args = {"weights": str(weights), "images": str(images), "set": "imgsz=64"}
    if case == "missing_weights":
        args["weights"] = str(tmp_path / "none.pt")
    elif case == "missing_dir":
        args["images"] = str(tmp_path / "nowhere")
    elif case == "empty_dir":
        args["images"] = str(tmp_path / "empty")
    else:
        args["set"] = "imgsize=64"
    argv = ["score", "--weights", args["weights"], "--images", args["images"], "--out", str(tmp_path / "o.csv"), "--set", args["set"]]
    assert main(argv) == 1
    _one_line_error(capsys, *fragments)
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.slow
def test_weights_that_are_not_a_checkpoint_exit_1_with_one_line(images, tmp_path, capsys):
    weights = tmp_path / "junk.pt"
    weights.write_bytes(b"this is not a torch checkpoint")
    assert main(["score", "--weights", str(weights), "--images", str(images), "--out", str(tmp_path / "o.csv"), "--quiet", *SET]) == 1
    _one_line_error(capsys, "junk.pt", "cannot load weights")


@pytest.fixture(scope="module")
def no_dfl_weights(tmp_path_factory) -> Path:
    """A yolov8n whose head has reg_max 1: one distance per side, no DFL distribution."""
    import torch
    import yaml as pyyaml

    from detal.ultra import prepare_ultralytics

    prepare_ultralytics()
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load

    spec = dict(yaml_model_load("yolov8n.yaml"), reg_max=1, nc=2)
    spec.pop("yaml_file", None)
    folder = tmp_path_factory.mktemp("nodfl")
    (folder / "v8-nodfl.yaml").write_text(pyyaml.safe_dump(spec))
    torch.manual_seed(0)
    model = DetectionModel(spec, nc=2, verbose=False)
    model.names = {0: "cat", 1: "dog"}
    assert model.model[-1].reg_max == 1
    path = folder / "nodfl.pt"
    torch.save({"model": model.eval(), "train_args": {}}, path)
    return path


@pytest.mark.slow
def test_a_mix_writes_one_column_per_measure_and_embeddings(weights, images, tmp_path, capsys):
    out, emb = tmp_path / "mix.csv", tmp_path / "emb.npz"
    argv = ["score", "--weights", str(weights), "--images", str(images), "--out", str(out), "--quiet",
            "--measure", "binary_entropy=1,localization=3", "--aggregate", "mean", "--embeddings", str(emb), *SET]
    assert main(argv) == 0
    assert "binary_entropy=0.25,localization=0.75" in capsys.readouterr().out
    rows = read_csv(out)
    assert list(rows[0]) == ["path", "score", "n_boxes", "top_class", "score_binary_entropy", "score_localization"]
    assert sum(int(r["n_boxes"]) for r in rows) > 0
    for r in rows:  # with mean, the score is the weighted mix of the columns
        mix = 0.25 * float(r["score_binary_entropy"]) + 0.75 * float(r["score_localization"])
        assert float(r["score"]) == pytest.approx(mix, abs=2e-6)
        assert 0.0 <= float(r["score_localization"]) <= 1.0
    saved = np.load(emb)
    assert list(saved["paths"]) == [r["path"] for r in rows]
    assert saved["embeddings"].dtype == np.float16 and saved["embeddings"].shape[0] == len(rows)
    np.testing.assert_allclose(np.linalg.norm(saved["embeddings"].astype(np.float32), axis=1), 1.0, atol=2e-3)


@pytest.mark.slow
def test_localization_on_a_head_without_dfl_exits_1_with_one_line(no_dfl_weights, images, tmp_path, capsys):
    out = tmp_path / "o.csv"
    argv = ["score", "--weights", str(no_dfl_weights), "--images", str(images), "--out", str(out), "--quiet", *SET]
    assert main([*argv, "--measure", "binary_entropy=1,localization=1"]) == 1
    _one_line_error(capsys, "nodfl.pt", "no DFL", "reg_max 1")
    assert not out.exists()
    assert main([*argv, "--measure", "binary_entropy"]) == 0  # class measures need no DFL


@pytest.mark.parametrize(
    "measure, fragments",
    [
        ("variance", ("measure must be one of", "variance")),
        ("binary_entropy=x", ("not a number",)),
        ("binary_entropy=0", ("at least one weight",)),
    ],
)
def test_bad_measure_exits_1_with_one_line(images, tmp_path, capsys, measure, fragments):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")
    argv = ["score", "--weights", str(weights), "--images", str(images), "--out", str(tmp_path / "o.csv"),
            "--measure", measure]
    assert main(argv) == 1
    _one_line_error(capsys, *fragments)


@pytest.mark.slow
def test_score_chunk_by_chunk_writes_what_one_whole_pass_gives(weights, images, tmp_path, monkeypatch):
    import detal.score_images
    from detal.score_images import score_pass
    from detal.ultra import UltralyticsAdapter

    cfg = Config(imgsz=64, device="cpu", predict_batch=3)
    paths = sorted(images.rglob("*.jpg"))
    adapter = UltralyticsAdapter(cfg)
    whole = adapter.predict(weights, paths, conf=cfg.score_conf, batch=3, progress=False, with_embeddings=True)
    expected = score_predictions(whole.predictions, cfg)
    table, failed = score_pass(adapter, weights, paths, cfg, progress=False, embeddings=True, chunk=3)
    assert not failed and list(table) == expected  # scores as floats, exactly
    assert np.array_equal(table.embeddings, np.stack([p.embedding for p in whole.predictions]))
    assert sum(s.n_boxes for s in table) > 0

    outs = {}
    for chunk in (3, 10**6):  # three calls of 3, 3 and 1 images; one call
        monkeypatch.setattr(detal.score_images, "SCORE_CHUNK", chunk)
        csv_out, npz_out = tmp_path / f"{chunk}.csv", tmp_path / f"{chunk}.npz"
        args = ["--images", str(images), "--out", str(csv_out), "--embeddings", str(npz_out), "--quiet", *SET]
        assert main(["score", "--weights", str(weights), *args]) == 0
        outs[chunk] = (csv_out.read_text(), np.load(npz_out))
    (text_a, npz_a), (text_b, npz_b) = outs.values()
    assert text_a == text_b
    assert np.array_equal(npz_a["embeddings"], npz_b["embeddings"]) and list(npz_a["paths"]) == list(npz_b["paths"])
