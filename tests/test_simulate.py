"""The simulation's bookkeeping (with the fake adapter), resume, dataset loading, the CLI."""

from __future__ import annotations

import csv
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from detal.config import Config
from detal.errors import ConfigError, DataError, StateError
from detal.fake import FakeAdapter
from detal.simulate import Simulation, cycle_epochs, load_dataset, simulate

N_CLASSES = 3


def _make_dataset(root: Path, n_pool: int = 50, n_val: int = 6) -> Path:
    for split, n in (("train", n_pool), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            (root / "images" / split / f"{split}{i:03d}.png").write_bytes(b"not decoded by the fake")
            (root / "labels" / split / f"{split}{i:03d}.txt").write_text(f"{i % N_CLASSES} 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text(
        f"path: {root}\ntrain: images/train\nval: images/val\nnames: [a, b, c]\n"
    )
    return root / "data.yaml"


@pytest.fixture
def data_yaml(tmp_path):
    return _make_dataset(tmp_path / "ds")


def _cfg(**kw) -> Config:
    return Config(model="yolov8n.yaml", imgsz=64, epochs_per_cycle=1, **kw)


def _factory(cfg: Config) -> FakeAdapter:
    return FakeAdapter(N_CLASSES, seed=cfg.seed)


def _sim(data_yaml, run_dir, strategy="mixed", seed=0, **kw) -> Simulation:
    return Simulation(_cfg(seed=seed, **kw), load_dataset(data_yaml), _factory(_cfg(seed=seed)), strategy, run_dir, log=None)


def _batches(run_dir: Path) -> list[list[int]]:
    out = []
    for c in range(100):
        p = run_dir / f"cycle{c}" / "batch.json"
        if p.is_file():
            b = json.loads(p.read_text())
            out.append(b["uncertain"] + b["random"])
    return out


def _no_time(rows):
    return [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rows]


# -- bookkeeping --------------------------------------------------------------------------
def test_strategies_share_the_initial_set(data_yaml, tmp_path):
    initial = {}
    for seed in (0, 1):
        for strategy in ("mixed", "random", "topk"):
            sim = _sim(data_yaml, tmp_path / strategy / str(seed), strategy, seed)
            initial[strategy, seed] = sim.pool.labeled_ids().tolist()
    for seed in (0, 1):
        assert initial["mixed", seed] == initial["random", seed] == initial["topk", seed]
        assert len(initial["mixed", seed]) == 1  # 2% of 50
    big = tmp_path / "big"
    ds = _make_dataset(big, n_pool=400)
    a = _sim(ds, tmp_path / "b0", "random", 0).pool.labeled_ids()
    b = _sim(ds, tmp_path / "b1", "random", 1).pool.labeled_ids()
    assert a.size == 8 and a.tolist() != b.tolist()


@pytest.mark.parametrize("strategy", ["mixed", "random", "topk", "subset_topk"])
def test_schedule_fractions_and_no_repeats(data_yaml, tmp_path, strategy):
    run_dir = tmp_path / "run"
    sim = _sim(data_yaml, run_dir, strategy)
    initial = sim.pool.labeled_ids().tolist()
    rows = sim.run()
    assert [r["labeled_fraction"] for r in rows] == [0.02, 0.12, 0.22, 0.32, 0.42]
    assert [r["cycle"] for r in rows] == [0, 1, 2, 3, 4]
    picked = initial + [i for b in _batches(run_dir) for i in b]
    assert len(picked) == len(set(picked)) == 21
    assert sorted(picked) == sim.pool.labeled_ids().tolist()
    assert sim.done and sim.pool.count("selected") == 0
    # every selected image was labeled in the cycle it was selected for
    for c, batch in enumerate(_batches(run_dir), start=1):
        assert all(sim.pool.labeled_cycle_of(i) == c == sim.pool.selected_cycle_of(i) for i in batch)
        # the batch's pre-labels went out: one file per image
        pre = run_dir / f"cycle{c - 1}" / "prelabels"
        assert len([p for p in pre.glob("*.txt") if p.name != "classes.txt"]) == len(batch) == 5
    with pytest.raises(StateError):
        sim.step()


def test_mixed_takes_half_from_the_top_of_the_subset(data_yaml, tmp_path):
    seen = []
    sim = _sim(data_yaml, tmp_path / "run", "mixed")
    sim.add_callback("on_select_end", lambda s, info: seen.append(info["selection"]))
    sim.run()
    assert len(seen) == 4
    for c, sel in enumerate(seen):
        record = json.loads((tmp_path / "run" / f"cycle{c}" / "batch.json").read_text())
        assert record["scored"] == sel.scored_ids.tolist()
        assert record["scores"] == pytest.approx(sel.scores.tolist(), abs=1e-6)
        assert sel.uncertain_ids.size == 3 and sel.random_ids.size == 2  # round(0.5 * 5) = 3
        assert sel.scored_ids.size == 10  # 20% of 50
        assert set(sel.uncertain_ids.tolist()) <= set(sel.scored_ids.tolist())
        assert np.sort(sel.scores)[-3] <= sel.scores[np.isin(sel.scored_ids, sel.uncertain_ids)].min()


def test_last_batch_stops_at_the_budget(tmp_path):
    ds = _make_dataset(tmp_path / "ds", n_pool=40)  # 2% -> 1, B=4, 42% -> 17
    rows = _sim(ds, tmp_path / "run", "mixed").run()
    assert [r["n_labeled"] for r in rows] == [1, 5, 9, 13, 17]


def test_warm_start_and_first_cycle_epochs(data_yaml, tmp_path):
    sim = _sim(data_yaml, tmp_path / "run", "random", first_cycle_epochs=3)
    ad = sim.adapter
    sim.run()
    trains = [kw for name, kw in ad.calls if name == "train"]
    assert [t["epochs"] for t in trains] == [3, 1, 1, 1, 1]
    assert trains[0]["init"] is None
    assert all(t["init"] is not None and "cycle" in str(t["init"]) for t in trains[1:])
    assert [t["n"] for t in trains] == [1, 6, 11, 16, 21]


@pytest.mark.parametrize(
    ("cycle", "n", "kw", "expected"),
    [
        (0, 10, {}, 1),
        (0, 10, {"first_cycle_epochs": 5}, 5),
        (1, 10, {"first_cycle_epochs": 5}, 1),
        (0, 20, {"min_steps_per_cycle": 30}, 15),  # batch 16: 2 steps/epoch
        (2, 320, {"min_steps_per_cycle": 30}, 2),  # 20 steps/epoch
        (2, 1000, {"min_steps_per_cycle": 30}, 1),
    ],
)
def test_cycle_epochs(cycle, n, kw, expected):
    assert cycle_epochs(_cfg(batch=16, **kw), cycle, n) == expected


# -- resume ---------------------------------------------------------------------------------
class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("event", ["on_train_end", "on_select_end", "on_export_end"])
def test_resume_after_interruption_gives_identical_results(data_yaml, tmp_path, event):
    whole = _sim(data_yaml, tmp_path / "whole", "mixed", seed=4)
    full_rows = whole.run()

    run_dir = tmp_path / "broken"
    sim = _sim(data_yaml, run_dir, "mixed", seed=4)

    def boom(s, info):
        if info["cycle"] == 2:
            raise Boom("killed")

    sim.add_callback(event, boom)
    with pytest.raises(Boom):
        sim.run()
    state = json.loads((run_dir / "state.json").read_text())
    assert state["next_cycle"] == 2 and len(state["rows"]) == 2
    finished = _no_time(state["rows"])

    resumed = _sim(data_yaml, run_dir, "mixed", seed=4)
    assert resumed.next_cycle == 2
    rows = resumed.run()
    assert _no_time(rows[:2]) == finished
    assert _no_time(rows) == _no_time(full_rows)
    assert resumed.pool == whole.pool
    assert _batches(run_dir) == _batches(tmp_path / "whole")


def test_simulate_resumes_and_keeps_finished_rows(data_yaml, tmp_path):
    out = tmp_path / "sim"
    calls = {"n": 0}

    def stop(s, info):
        calls["n"] += 1
        if s.strategy == "random" and info["cycle"] == 1:
            raise Boom("killed")

    with pytest.raises(Boom):
        simulate(_cfg(), _factory, strategies=["mixed", "random"], seeds=[0], out_dir=out,
                 data=data_yaml, callbacks={"on_cycle_start": [stop]}, log=None)
    partial = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["strategy"], r["cycle"]) for r in partial] == [("mixed", str(c)) for c in range(5)] + [("random", "0")]
    simulate(_cfg(), _factory, strategies=["mixed", "random"], seeds=[0], out_dir=out, data=data_yaml, log=None)
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 10
    key = lambda r: {k: v for k, v in r.items() if not k.endswith("_s")}
    assert [key(r) for r in rows[:6]] == [key(r) for r in partial]
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Label savings" in (out / "summary.md").read_text()


def test_resume_refuses_another_config(data_yaml, tmp_path):
    _sim(data_yaml, tmp_path / "run", "mixed").run(max_cycles=1)
    with pytest.raises(StateError, match="another config"):
        _sim(data_yaml, tmp_path / "run", "mixed", batch_fraction=0.2)


def test_damaged_state_is_one_clear_error(data_yaml, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "state.json").write_text("{not json")
    with pytest.raises(StateError, match="state.json"):
        _sim(data_yaml, tmp_path / "run")


# -- datasets -----------------------------------------------------------------------------
def test_txt_lists_and_missing_labels(tmp_path):
    y = _make_dataset(tmp_path / "ds", n_pool=5, n_val=2)
    imgs = sorted((tmp_path / "ds" / "images" / "train").glob("*.png"))
    (tmp_path / "ds" / "train.txt").write_text("\n".join(str(p) for p in imgs[:3]) + "\n")
    (imgs[0].parent.parent.parent / "labels" / "train" / f"{imgs[1].stem}.txt").unlink()
    y.write_text(f"path: {tmp_path / 'ds'}\ntrain: train.txt\nval: images/val\nnames: {{0: a, 1: b, 2: c}}\n")
    ds = load_dataset(y)
    assert [p for p, _ in ds.pool] == imgs[:3]
    assert ds.names == ["a", "b", "c"]
    assert ds.pool[0][1] == tmp_path / "ds" / "labels" / "train" / f"{imgs[0].stem}.txt"


@pytest.mark.parametrize(
    ("yaml_text", "label", "match"),
    [
        ("train: images/train\nnames: [a, b, c]\n", None, "missing `val`"),
        ("train: images/train\nval: images/val\n", None, "missing `names`"),
        ("train: nowhere\nval: images/val\nnames: [a, b, c]\n", None, "train path"),
        ("train: images/train\nval: images/val\nnames: [a, b, c]\n", "7 0.5 0.5 0.1 0.1\n", "malformed label file"),
        ("train: images/train\nval: images/val\nnames: [a, b, c]\n", "0 0.5 0.5\n", "train001.txt:1"),
        ("train: images/train\nval: images/train\nnames: [a, b, c]\n", None, "both train and val"),
        ("- just\n- a list\n", None, "mapping"),
    ],
)
def test_bad_datasets(tmp_path, yaml_text, label, match):
    y = _make_dataset(tmp_path / "ds", n_pool=3, n_val=2)
    y.write_text(f"path: {tmp_path / 'ds'}\n" + yaml_text if not yaml_text.startswith("-") else yaml_text)
    if label is not None:
        (tmp_path / "ds" / "labels" / "train" / "train001.txt").write_text(label)
    with pytest.raises(DataError, match=match) as err:
        load_dataset(y)
    assert str(y) in str(err.value) or "train001.txt" in str(err.value)


def test_unknown_strategy_and_no_data(data_yaml, tmp_path):
    with pytest.raises(ConfigError):
        simulate(_cfg(), _factory, strategies=["best"], out_dir=tmp_path / "x", data=data_yaml, log=None)
    with pytest.raises(ConfigError, match="--data"):
        simulate(_cfg(), _factory, strategies=["random"], out_dir=tmp_path / "x", log=None)


# -- CLI --------------------------------------------------------------------------------------
@pytest.fixture
def fake_ultra(monkeypatch):
    module = types.ModuleType("detal.ultra")
    module.UltralyticsAdapter = _factory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "detal.ultra", module)


def test_cli_simulate_in_process(data_yaml, tmp_path, capsys, fake_ultra):
    from detal.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: yolov8n.yaml\nimgsz: 64\nepochs_per_cycle: 1\n")
    argv = ["simulate", str(cfg), "--strategies", "mixed,random", "--seeds", "0,1",
            "--data", str(data_yaml), "--runs", str(tmp_path / "runs"), "--name", "t"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Label savings" in out and "cycle 4" in out
    rows = list(csv.DictReader((tmp_path / "runs" / "t" / "results.csv").open()))
    assert len(rows) == 20
    assert {(r["strategy"], r["seed"]) for r in rows} == {(s, k) for s in ("mixed", "random") for k in "01"}


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--seeds", "a,b"], "--seeds"),
        (["--strategies", "best"], "unknown strategy"),
        (["--set", "batch_fraction=2"], "batch_fraction"),
    ],
)
def test_cli_errors_are_one_line(data_yaml, tmp_path, capsys, fake_ultra, extra, match):
    from detal.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("imgsz: 64\n")
    assert main(["simulate", str(cfg), "--data", str(data_yaml), "--runs", str(tmp_path / "r"), *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("detal: error:") and match in err and "\n" not in err


# -- one real run ------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_smoke_simulation(tmp_path):
    """Real Ultralytics train, evaluate, score, select and export on a tiny digits-det."""
    pytest.importorskip("ultralytics")
    from detal.digits import DigitsSpec, build_digits
    from detal.ultra import UltralyticsAdapter

    data = build_digits(tmp_path / "digits", DigitsSpec(pool=24, val=8, imgsz=64, seed=0))
    cfg = Config(
        model="yolov8n.yaml", imgsz=64, batch=8, workers=0, device="cpu", epochs_per_cycle=1,
        initial_fraction=0.25, batch_fraction=0.25, subset_fraction=0.5, max_labeled_fraction=0.5,
        score_conf=0.0, empty_image_score=1.0,
    )
    out = simulate(cfg, UltralyticsAdapter, strategies=["mixed", "random"], seeds=[0],
                   out_dir=tmp_path / "sim", data=data, log=None)
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["strategy"], int(r["n_labeled"])) for r in rows] == [
        ("mixed", 6), ("mixed", 12), ("random", 6), ("random", 12)
    ]
    assert all(0.0 <= float(r["map50_95"]) <= float(r["map50"]) <= 1.0 for r in rows)
    pre = out / "mixed" / "seed0" / "cycle0" / "prelabels"
    assert len([p for p in pre.glob("*.txt") if p.name != "classes.txt"]) == 6
    assert (out / "curves.png").is_file() and (out / "summary.md").is_file()


def test_images_without_labels_train_as_background(tmp_path):
    y = _make_dataset(tmp_path / "ds", n_pool=10, n_val=2)
    (tmp_path / "ds" / "labels" / "train" / "train003.txt").unlink()
    seen = []

    class Spy(FakeAdapter):
        def train(self, train_items, val_items, names, out_dir, **kw):
            seen.extend(train_items)
            return super().train(train_items, val_items, names, out_dir, **kw)

    simulate(_cfg(initial_fraction=0.2, max_labeled_fraction=1.0, batch_fraction=0.5), Spy(N_CLASSES),
             strategies=["random"], out_dir=tmp_path / "o", data=y, log=None, report=False)
    assert all(lbl.is_file() for _, lbl in seen)
    assert any(lbl.name == "empty_label.txt" and lbl.read_text() == "" for _, lbl in seen)


def test_a_run_folder_is_locked_while_it_runs(data_yaml, tmp_path):
    import subprocess

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (run_dir / "run.lock").write_text(str(other.pid))
        with pytest.raises(StateError, match=f"process {other.pid}"):
            _sim(data_yaml, run_dir).run()
    finally:
        other.kill()
        other.wait()
    rows = _sim(data_yaml, run_dir).run()  # a stale lock is taken over
    assert len(rows) == 5 and not (run_dir / "run.lock").exists()


def test_prelabels_of_images_sharing_a_name_do_not_overwrite(tmp_path):
    root = tmp_path / "same-names"
    for sub in ("a", "b"):
        (root / "images" / sub).mkdir(parents=True)
        (root / "labels" / sub).mkdir(parents=True)
        for i in range(10):  # images/a/img000.png and images/b/img000.png, ...
            (root / "images" / sub / f"img{i:03d}.png").write_bytes(b"x")
            (root / "labels" / sub / f"img{i:03d}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "images" / "val").mkdir()
    (root / "labels" / "val").mkdir()
    (root / "images" / "val" / "v.png").write_bytes(b"x")
    (root / "labels" / "val" / "v.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text(f"path: {root}\ntrain: [images/a, images/b]\nval: images/val\nnames: [a, b, c]\n")
    cfg = _cfg(strategy="random", batch_fraction=1.0, max_labeled_fraction=1.0)
    sim = Simulation(cfg, load_dataset(root / "data.yaml"), _factory(cfg), "random", tmp_path / "run", log=None)
    sim.run(max_cycles=1)
    batch = json.loads((tmp_path / "run" / "cycle0" / "batch.json").read_text())
    picked = batch["uncertain"] + batch["random"]
    files = list((tmp_path / "run" / "cycle0" / "prelabels").glob("img*.txt"))
    assert len(picked) == 19  # everything left after the 1 initial image
    assert len(files) == len(picked)  # one pre-label file per picked image, none overwritten
