"""The simulation driver (with the fake adapter): real projects, ground truth as the annotator."""

from __future__ import annotations

import csv
import fcntl
import sqlite3
import sys
import types
from pathlib import Path

import pytest
from PIL import Image
from projectkit import selected_keys

from detal.config import Config
from detal.errors import ConfigError, DataError, StateError
from detal.fake import FakeAdapter
from detal.project import import_labels, init_project, project_config, run_cycle
from detal.project.pseudo import read_summary
from detal.simulate import cycle_epochs, load_dataset, parse_arm, simulate

N_CLASSES = 3
ST_ON = {"enabled": True, "t_high": 0.5, "t_low": 0.2, "min_boxes": 3, "ambiguous": "drop"}


def _png(path: Path, i: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (10 + i % 5, 10), (i % 256, (3 * i) % 256, 7)).save(path)


def _make_dataset(root: Path, n_pool: int = 50, n_val: int = 6) -> Path:
    for split, n in (("train", n_pool), ("val", n_val)):
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            _png(root / "images" / split / f"{split}{i:03d}.png", i)
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


def _run(data_yaml, out, strategies=("mixed",), seeds=(0,), adapter=_factory, **kw):
    return simulate(_cfg(**kw), adapter, strategies=list(strategies), seeds=list(seeds), out_dir=out,
                    data=data_yaml, log=None, report=False)


def _rows(out: Path) -> list[dict]:
    return list(csv.DictReader((out / "results.csv").open()))


def _db(project: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{project / 'detal.db'}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _batches(project: Path) -> list[list[str]]:
    """Keys selected per cycle (cycle 0: the initial set), in id order."""
    rows = _db(project, "SELECT selected_cycle, key FROM images WHERE selected_cycle >= 0 ORDER BY id")
    n = max((c for c, _ in rows), default=-1) + 1
    return [[k for c, k in rows if c == cycle] for cycle in range(n)]


def _no_time(rows):
    return [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rows]


# -- bookkeeping --------------------------------------------------------------------------
def test_strategies_share_the_initial_set(data_yaml, tmp_path):
    out = _run(data_yaml, tmp_path / "sim", ("mixed", "random", "topk"), (0, 1), max_labeled_fraction=0.12)
    initial = {(s, k): _batches(out / s / f"seed-{k}")[0] for s in ("mixed", "random", "topk") for k in (0, 1)}
    for seed in (0, 1):
        assert initial["mixed", seed] == initial["random", seed] == initial["topk", seed]
        assert len(initial["mixed", seed]) == 1  # 2% of 50
    big = _make_dataset(tmp_path / "big", n_pool=400)
    out = _run(big, tmp_path / "b", ("random",), (0, 1), max_labeled_fraction=0.02)
    a, b = (_batches(out / "random" / f"seed-{k}")[0] for k in (0, 1))
    assert len(a) == 8 and a != b
    assert [int(r["n_labeled"]) for r in _rows(out)] == [8, 8]  # one cycle: the budget is the initial set


@pytest.mark.parametrize("strategy", ["mixed", "random", "topk", "subset_topk"])
def test_schedule_fractions_and_no_repeats(data_yaml, tmp_path, strategy):
    out = _run(data_yaml, tmp_path / "sim", (strategy,))
    project = out / strategy / "seed-0"
    rows = _rows(out)
    assert [float(r["labeled_fraction"]) for r in rows] == [0.02, 0.12, 0.22, 0.32, 0.42]
    assert [int(r["cycle"]) for r in rows] == [0, 1, 2, 3, 4]
    assert [int(r["n_boxes"]) for r in rows] == [1, 6, 11, 16, 21]  # one GT box per image
    batches = _batches(project)
    picked = [k for b in batches for k in b]
    assert [len(b) for b in batches] == [1, 5, 5, 5, 5]  # the last cycle (5) trains at the budget
    assert len(picked) == len(set(picked)) == 21
    labeled = _db(project, "SELECT key, selected_cycle, labeled_cycle FROM images WHERE status = 'labeled'")
    assert sorted(k for k, _, _ in labeled) == sorted(picked)
    assert all(s == lab for _, s, lab in labeled)  # labeled in the cycle it was selected for
    assert _db(project, "SELECT count(*) FROM images WHERE status = 'selected'") == [(0,)]
    for c in range(1, 5):  # the batch's pre-labels went out: one file per image
        pre = project / "cycles" / str(c) / "prelabels"
        assert sorted(p.stem for p in pre.glob("*.txt")) == sorted(batches[c])
    assert list((project / "cycles/5/prelabels").iterdir()) == []
    assert not list(project.rglob("*.zip"))  # no bundles in a simulation by default
    assert _db(project, "SELECT state, n_selected FROM cycles ORDER BY id")[-1] == ("done", 0)


def test_mixed_takes_half_from_the_top_of_the_subset(data_yaml, tmp_path):
    seen = []
    simulate(_cfg(), _factory, strategies=["mixed"], seeds=[0], out_dir=tmp_path / "sim", data=data_yaml,
             log=None, report=False,
             callbacks={"on_select_end": [lambda **info: seen.append((info["cycle"], list(info["ids"])))]})
    project = tmp_path / "sim/mixed/seed-0"
    assert [c for c, _ in seen] == [1, 2, 3, 4, 5]
    for c, ids in seen[:4]:
        subset = dict(_db(project, f"SELECT image_id, score FROM scores WHERE cycle = {c} AND in_subset = 1"))
        assert len(subset) == 10  # 20% of 50
        assert len(ids) == 5
        third = sorted(subset.values(), reverse=True)[2]
        # round(0.5 * 5) = 3 from the top of the subset, the other 2 at random
        assert sum(1 for i in ids[:3] if i in subset and subset[i] >= third) == 3
    assert seen[4][1] == []  # at the budget: nothing


def test_last_batch_stops_at_the_budget(tmp_path):
    ds = _make_dataset(tmp_path / "ds", n_pool=40)  # 2% -> 1, B=4, floor(42% of 40) = 16
    out = _run(ds, tmp_path / "sim")
    assert [int(r["n_labeled"]) for r in _rows(out)] == [1, 5, 9, 13, 16]


def test_warm_start_and_first_cycle_epochs(data_yaml, tmp_path):
    ad = FakeAdapter(N_CLASSES)
    _run(data_yaml, tmp_path / "sim", ("random",), adapter=ad, first_cycle_epochs=3)
    trains = [kw for name, kw in ad.calls if name == "train"]
    assert [t["epochs"] for t in trains] == [3, 1, 1, 1, 1]
    assert trains[0]["init"] is None
    assert all(t["init"] is not None and "cycles" in str(t["init"]) for t in trains[1:])
    assert [t["n"] for t in trains] == [1, 6, 11, 16, 21]
    assert [int(r["epochs"]) for r in _rows(tmp_path / "sim")] == [3, 1, 1, 1, 1]


def test_every_image_is_predicted_once_a_cycle(data_yaml, tmp_path):
    ad = FakeAdapter(N_CLASSES)
    _run(data_yaml, tmp_path / "sim", ("mixed",), adapter=ad)
    predicted = [kw["n"] for name, kw in ad.calls if name == "predict"]
    # per selecting cycle: the subset of 10, then the 2 random picks (those not in the subset)
    assert len(predicted) <= 8 and sum(predicted) <= 4 * 12


@pytest.mark.parametrize(
    ("cycles", "n", "kw", "expected"),
    [
        (0, 10, {}, 1),
        (0, 10, {"first_cycle_epochs": 5}, 5),
        (1, 10, {"first_cycle_epochs": 5}, 1),
        (0, 20, {"min_steps_per_cycle": 30}, 15),  # batch 16: 2 steps/epoch
        (2, 320, {"min_steps_per_cycle": 30}, 2),  # 20 steps/epoch
        (2, 1000, {"min_steps_per_cycle": 30}, 1),
    ],
)
def test_cycle_epochs(cycles, n, kw, expected):
    assert cycle_epochs(_cfg(batch=16, **kw), cycles, n) == expected


# -- the same loop as a person's --------------------------------------------------------------
def test_results_carry_the_cumulative_annotator_seconds(data_yaml, tmp_path):
    """annotator_s: every batch so far, its shipped pre-labels costed against the ground truth (the files)."""
    import json

    from detal.effort import Effort, diff_boxes, from_yolo

    out = _run(data_yaml, tmp_path / "sim", ("mixed",))
    project = out / "mixed" / "seed-0"
    rows = _rows(out)
    truth = data_yaml.parent / "labels" / "train"

    def boxes(items):
        return from_yolo([b[1:5] for b in items]), [int(b[0]) for b in items]

    per_batch = {}
    for j, keys in enumerate(_batches(project)):
        shipped = json.loads((project / f"cycles/{j}/shipped.json").read_text())["images"] if j else {}
        spent = [0.0, 0.0]
        for key in keys:
            gt = [[float(v) for v in line.split()] for line in (truth / f"{key}.txt").read_text().splitlines()]
            d = diff_boxes(*boxes(shipped.get(key, [])), *boxes(gt))
            spent[0] += Effort().seconds(d.counts())
            spent[1] += Effort(draw=25.0).seconds(d.counts())
        per_batch[j] = spent
    assert per_batch[0] == [3 + 7.0, 3 + 25.0]  # the initial image: one box, drawn
    drawn_only = {j: len(keys) * (3 + 7.0) for j, keys in enumerate(_batches(project))}
    assert any(per_batch[j][0] != drawn_only[j] for j in per_batch if j)  # pre-labels were shipped and costed
    for r in rows:  # trained cycle c trained on the batches 0..c
        c = int(r["cycle"])
        assert float(r["annotator_s"]) == pytest.approx(sum(per_batch[j][0] for j in range(c + 1)), abs=0.06)
        assert float(r["annotator_s_draw25"]) == pytest.approx(sum(per_batch[j][1] for j in range(c + 1)), abs=0.06)
    seconds = [float(r["annotator_s"]) for r in rows]
    assert seconds == sorted(seconds) and seconds[-1] > seconds[0]


@pytest.mark.parametrize("arm", ["mixed", "mixed+st"])
def test_simulation_is_the_hand_driven_project(data_yaml, tmp_path, arm):
    st = {**_cfg().self_training, **ST_ON, "enabled": arm.endswith("+st")}
    cfg = _cfg(strategy="mixed", seed=3).replace(self_training=st)
    out = simulate(cfg.replace(self_training={**st, "enabled": not st["enabled"]}), _factory, strategies=[arm],
                   seeds=[3], out_dir=tmp_path / "sim", data=data_yaml, log=None, report=False)
    sim = out / arm / "seed-3"

    ds = data_yaml.parent
    (tmp_path / "classes.txt").write_text("a\nb\nc\n")
    hand = tmp_path / "hand"
    init_project(hand, ds / "images/train", tmp_path / "classes.txt", val_images=ds / "images/val",
                 val_labels=ds / "labels/val", config=cfg)
    adapter = FakeAdapter(N_CLASSES, seed=3)
    reports = []
    for k in range(100):
        returned = tmp_path / f"returned{k}"
        returned.mkdir()
        for key in selected_keys(hand):
            (returned / f"{key}.txt").write_text((ds / "labels/train" / f"{key}.txt").read_text())
        if any(returned.iterdir()):
            import_labels(hand, returned)
        try:
            reports.append(run_cycle(hand, adapter))
        except StateError as exc:
            assert "budget reached" in str(exc)
            break
    assert len(reports) == 5
    assert _batches(sim) == _batches(hand)  # the same images, cycle for cycle
    assert [len(b) for b in _batches(hand)] == [1, 5, 5, 5, 5]
    rows = _rows(out)
    assert [float(r["map50"]) for r in rows] == [r.metrics.map50 for r in reports]
    scores = "SELECT image_id, cycle, round(score, 9), in_subset FROM scores ORDER BY cycle, image_id"
    assert _db(sim, scores) == _db(hand, scores)

    def pseudo(project):
        return {str(f.relative_to(project)): f.read_text() for f in sorted(project.glob("cycles/*/pseudo/labels/*"))}

    assert pseudo(sim) == pseudo(hand)  # the same pseudo-labels, or none in both
    assert bool(pseudo(hand)) == arm.endswith("+st")


# -- resume ---------------------------------------------------------------------------------
class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("event", ["on_train_end", "on_select_end", "on_export_end", "on_label_written"])
def test_resume_after_interruption_gives_identical_results(data_yaml, tmp_path, event):
    whole = _run(data_yaml, tmp_path / "whole", ("mixed",), (4,))

    def boom(**info):
        if info["cycle"] == 3:
            raise Boom("killed")

    calls = {"n": 0}

    def count(**info):  # the 3rd label written: in the import of cycle 1's batch
        calls["n"] += 1
        if calls["n"] == 3:
            raise Boom("killed")

    broken = tmp_path / "broken"
    with pytest.raises(Boom):
        simulate(_cfg(), _factory, strategies=["mixed"], seeds=[4], out_dir=broken, data=data_yaml, log=None,
                 report=False, callbacks={event: [count if event == "on_label_written" else boom]})
    finished = _no_time(_rows(broken))
    assert len(finished) == (1 if event == "on_label_written" else 2)
    _run(data_yaml, broken, ("mixed",), (4,))
    rows = _no_time(_rows(broken))
    assert rows[: len(finished)] == finished
    assert rows == _no_time(_rows(whole))
    assert _batches(broken / "mixed/seed-4") == _batches(whole / "mixed/seed-4")


def test_simulate_resumes_and_keeps_finished_rows(data_yaml, tmp_path):
    out = tmp_path / "sim"

    def stop(strategy, cycle, **info):
        if strategy == "random" and cycle == 2:
            raise Boom("killed")

    with pytest.raises(Boom):
        simulate(_cfg(), _factory, strategies=["mixed", "random"], seeds=[0], out_dir=out,
                 data=data_yaml, callbacks={"on_cycle_start": [stop]}, log=None)
    partial = _rows(out)
    assert [(r["strategy"], r["cycle"]) for r in partial] == [("mixed", str(c)) for c in range(5)] + [("random", "0")]
    simulate(_cfg(), _factory, strategies=["mixed", "random"], seeds=[0], out_dir=out, data=data_yaml, log=None)
    rows = _rows(out)
    assert len(rows) == 10
    key = lambda r: {k: v for k, v in r.items() if not k.endswith("_s")}
    assert [key(r) for r in rows[:6]] == [key(r) for r in partial]
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Label savings" in (out / "summary.md").read_text()


def test_resume_refuses_another_config(data_yaml, tmp_path):
    _run(data_yaml, tmp_path / "sim", max_labeled_fraction=0.12)
    with pytest.raises(StateError, match="another config"):
        _run(data_yaml, tmp_path / "sim", max_labeled_fraction=0.12, batch_fraction=0.2)


def test_damaged_run_file_is_one_clear_error(data_yaml, tmp_path):
    _run(data_yaml, tmp_path / "sim", max_labeled_fraction=0.12)
    (tmp_path / "sim/mixed/seed-0/simulation.json").write_text("{not json")
    with pytest.raises(StateError, match="simulation.json"):
        _run(data_yaml, tmp_path / "sim", max_labeled_fraction=0.12)


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


# -- arms: a strategy, with or without self-training -------------------------------------------------


@pytest.mark.parametrize(("text", "strategy", "st"), [
    ("random", "random", False), ("random+st", "random", True), ("hybrid+st", "hybrid", True),
    ("hold", "hold", False),
])
def test_an_arm_is_a_strategy_with_or_without_self_training(text, strategy, st):
    assert parse_arm(text) == (text, strategy, st)


@pytest.mark.parametrize("text", ["best", "best+st", "random+", "random+ST", "+st", "random+st+st"])
def test_unknown_arms_are_refused(text):
    with pytest.raises(ConfigError, match="unknown strategy"):
        parse_arm(text)


def test_plain_arms_never_self_train_whatever_the_config_says(data_yaml, tmp_path):
    on = _cfg(max_labeled_fraction=0.12).replace(self_training={**_cfg().self_training, **ST_ON})
    out = simulate(on, _factory, strategies=["random", "random+st"], seeds=[0], out_dir=tmp_path / "sim",
                   data=data_yaml, log=None, report=False)
    plain = _run(data_yaml, tmp_path / "plain", ("random",), max_labeled_fraction=0.12)
    rows = _rows(out)
    assert {r["strategy"] for r in rows} == {"random", "random+st"}
    # plain random here is plain random of a config without self-training, cycle for cycle
    assert _no_time([r for r in rows if r["strategy"] == "random"]) == _no_time(_rows(plain))
    assert not list((out / "random" / "seed-0" / "cycles").glob("*/pseudo"))
    assert project_config(out / "random" / "seed-0").self_training["enabled"] is False
    st_project = out / "random+st" / "seed-0"
    assert project_config(st_project).self_training == {**on.self_training, "enabled": True}
    summaries = [read_summary(d) for d in sorted((st_project / "cycles").iterdir()) if read_summary(d)]
    assert summaries and sum(s["pseudo_images"] for s in summaries) > 0
    # the same draw of the initial set, and (teacher: previous) the same first training
    assert _batches(st_project)[0] == _batches(out / "random" / "seed-0")[0]
    first = [r for r in rows if r["cycle"] == "0"]
    assert len({(r["map50_95"], r["n_labeled"]) for r in first}) == 1


def test_an_arm_resumes_only_as_itself(data_yaml, tmp_path):
    """A project that self-trained is not resumed as the plain arm of the same strategy."""
    on = _cfg().replace(self_training={**_cfg().self_training, **ST_ON})
    out = tmp_path / "sim"
    simulate(on, _factory, strategies=["random+st"], seeds=[0], out_dir=out, data=data_yaml, log=None,
             report=False)
    (out / "random").mkdir()
    (out / "random+st").rename(out / "random")
    with pytest.raises(StateError, match="another config, dataset, strategy or seed"):
        simulate(on, _factory, strategies=["random"], seeds=[0], out_dir=out, data=data_yaml, log=None,
                 report=False)


# -- jobs: projects in parallel processes ---------------------------------------------------------
def test_parallel_jobs_give_the_sequential_results(data_yaml, tmp_path):
    one = _run(data_yaml, tmp_path / "one", strategies=("mixed", "random", "hybrid"), seeds=(0, 1))
    two = simulate(_cfg(), _factory, strategies=["mixed", "random", "hybrid"], seeds=[0, 1],
                   out_dir=tmp_path / "two", data=data_yaml, log=None, report=False, jobs=2)
    assert _no_time(_rows(two)) == _no_time(_rows(one))
    for project in (tmp_path / "one").glob("*/seed-*"):
        twin = tmp_path / "two" / project.relative_to(tmp_path / "one")
        assert _batches(twin) == _batches(project)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"jobs": 0}, "jobs must be >= 1"),
        ({"jobs": 2, "callbacks": {"on_cycle_start": [print]}}, "callbacks need jobs=1"),
        ({"jobs": 2, "adapter": lambda cfg: FakeAdapter(N_CLASSES)}, "picklable adapter factory"),
    ],
)
def test_bad_jobs_are_refused_before_any_project(data_yaml, tmp_path, kw, match):
    adapter = kw.pop("adapter", _factory)
    with pytest.raises(ConfigError, match=match):
        simulate(_cfg(), adapter, strategies=["mixed", "random"], seeds=[0], out_dir=tmp_path / "o",
                 data=data_yaml, log=None, report=False, **kw)
    assert not (tmp_path / "o").exists()


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


@pytest.mark.parametrize(("strategy", "st", "expected"), [
    ("topk", "false", ["random", "topk"]), ("random", "false", ["random"]),
    ("topk", "true", ["random", "topk+st"]), ("random", "true", ["random", "random+st"]),
])
def test_cli_simulate_defaults_to_the_configs_strategy_and_random(data_yaml, tmp_path, fake_ultra, strategy, st,
                                                                    expected):
    from detal.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model: yolov8n.yaml\nimgsz: 64\nepochs_per_cycle: 1\nstrategy: {strategy}\n"
                   f"self_training: {{enabled: {st}, t_high: 0.5}}\n")
    argv = ["simulate", str(cfg), "--data", str(data_yaml), "--runs", str(tmp_path / "runs"), "--name", "t"]
    assert main(argv) == 0
    rows = list(csv.DictReader((tmp_path / "runs" / "t" / "results.csv").open()))
    assert sorted({r["strategy"] for r in rows}) == expected


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--seeds", "a,b"], "--seeds"),
        (["--strategies", "best"], "unknown strategy"),
        (["--jobs", "0"], "jobs must be >= 1"),
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
    pre = out / "mixed" / "seed-0" / "cycles" / "1" / "prelabels"
    assert len(list(pre.glob("*.txt"))) == 6
    assert (out / "curves.png").is_file() and (out / "summary.md").is_file()


def test_images_without_labels_train_as_background(tmp_path):
    y = _make_dataset(tmp_path / "ds", n_pool=10, n_val=2)
    (tmp_path / "ds" / "labels" / "train" / "train003.txt").unlink()
    seen = []

    class Spy(FakeAdapter):
        def train(self, train_items, val_items, names, out_dir, **kw):
            assert list(val_items) == []  # no per-epoch validation: evaluated once afterwards
            seen.extend(train_items)
            return super().train(train_items, val_items, names, out_dir, **kw)

    simulate(_cfg(initial_fraction=0.2, max_labeled_fraction=1.0, batch_fraction=0.5), Spy(N_CLASSES),
             strategies=["random"], out_dir=tmp_path / "o", data=y, log=None, report=False)
    assert all(lbl.is_file() for _, lbl in seen)
    assert any(img.name == "train003.png" and lbl.read_text() == "" for img, lbl in seen)
    rows = _rows(tmp_path / "o")
    assert [int(r["n_labeled"]) for r in rows] == [2, 7, 10]
    assert int(rows[-1]["n_boxes"]) == 9  # train003 has no box


def test_a_run_folder_is_locked_while_it_runs(data_yaml, tmp_path):
    out = tmp_path / "sim"
    out.mkdir()
    with open(out / ".detal.lock", "a+") as fh:  # another simulate holds the folder
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(StateError, match="another detal simulate"):
            _run(data_yaml, out)
    assert not (out / "mixed").exists()
    _run(data_yaml, out)  # released (as the kernel does when a process dies): runs
    assert len(_rows(out)) == 5


def test_txt_list_datasets_run_and_unreadable_suffixes_are_refused(tmp_path):
    y = _make_dataset(tmp_path / "ds", n_pool=20, n_val=3)
    imgs = sorted((tmp_path / "ds" / "images" / "train").glob("*.png"))
    (tmp_path / "ds" / "train.txt").write_text("\n".join(str(p) for p in imgs[:15]) + "\n")
    y.write_text(f"path: {tmp_path / 'ds'}\ntrain: train.txt\nval: images/val\nnames: [a, b, c]\n")
    out = _run(y, tmp_path / "sim", ("random",))
    assert len(_rows(out)) >= 1
    keys = {k for (k,) in _db(out / "random/seed-0", "SELECT key FROM images WHERE status != 'val'")}
    assert keys == {p.stem for p in imgs[:15]}
    (tmp_path / "ds" / "train.txt").write_text(str(imgs[0].with_suffix(".dng")) + "\n")
    imgs[0].with_suffix(".dng").write_bytes(b"raw")
    with pytest.raises(DataError, match="not an image detal reads"):
        load_dataset(y)


def test_prelabels_of_images_sharing_a_name_do_not_overwrite(tmp_path):
    root = tmp_path / "same-names"
    for sub in ("a", "b"):
        (root / "labels" / sub).mkdir(parents=True)
        for i in range(10):  # images/a/img000.png and images/b/img000.png, ...
            _png(root / "images" / sub / f"img{i:03d}.png", i)
            (root / "labels" / sub / f"img{i:03d}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "labels" / "val").mkdir()
    _png(root / "images" / "val" / "v.png", 1)
    (root / "labels" / "val" / "v.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text(f"path: {root}\ntrain: [images/a, images/b]\nval: images/val\nnames: [a, b, c]\n")
    out = _run(root / "data.yaml", tmp_path / "sim", ("random",), batch_fraction=1.0, max_labeled_fraction=1.0)
    project = out / "random" / "seed-0"
    picked = _batches(project)[1]
    files = list((project / "cycles" / "1" / "prelabels").glob("*.txt"))
    assert len(picked) == 19  # everything left after the 1 initial image
    assert len(files) == len(picked)  # one pre-label file per picked image, none overwritten
    assert {p.stem for p in files} == set(picked) and any(k.startswith("b__") for k in picked)


KILL_SCRIPT = """
import os, signal, sys
from detal.config import Config
from detal.fake import FakeAdapter
from detal.simulate import simulate

data, out, event, at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
calls = []

def die(**info):
    calls.append(1)
    if len(calls) == at:
        os.kill(os.getpid(), signal.SIGKILL)

cfg = Config(model="yolov8n.yaml", imgsz=64, epochs_per_cycle=1, seed=2)
simulate(cfg, lambda c: FakeAdapter(3, seed=c.seed), strategies=["mixed"], seeds=[2],
         out_dir=out, data=data, callbacks={event: [die]}, log=None, report=False)
print("finished without a crash")
"""


@pytest.mark.parametrize(("event", "at"), [("on_label_written", 9), ("on_prelabels_written", 2)])
def test_kill_9_then_rerun_equals_an_uninterrupted_simulation(data_yaml, tmp_path, event, at):
    import signal
    import subprocess

    """A subprocess SIGKILLs itself in an import (the 9th label) or a cycle; the rerun resumes."""
    whole = _run(data_yaml, tmp_path / "whole", ("mixed",), (2,))
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT)
    out = tmp_path / "killed"
    proc = subprocess.run([sys.executable, str(script), str(data_yaml), str(out), event, str(at)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    _run(data_yaml, out, ("mixed",), (2,))
    assert _no_time(_rows(out)) == _no_time(_rows(whole))
    assert _batches(out / "mixed/seed-2") == _batches(whole / "mixed/seed-2")
    assert not list(out.rglob(".annotator-*")) and not list(out.rglob("*.tmp-*"))


def test_the_annotator_labels_deep_images_by_the_key_rule(tmp_path):
    """Issue 22 (defect 16 and the annotator's key rule): pool images so deep that their keys are
    longer than a file name; each one labeled gets its own ground truth."""
    root = tmp_path / "ds"
    truth = {}
    for i in range(12):
        deep = f"{'de'[i % 2] * 200}/{'xy'[i % 2] * 200}"  # two trees: the pool is staged from train/
        rel = f"{deep}/im{i:03d}{'f' * 230}"
        _png(root / "images" / "train" / f"{rel}.png", i)
        label = root / "labels" / "train" / f"{rel}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text(f"{i % N_CLASSES} 0.500000 0.500000 0.{i + 10}0000 0.200000\n")
        truth[label.name] = label.read_text()
    for i in range(3):
        _png(root / "images" / "val" / f"v{i}.png", i)
        (root / "labels" / "val").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "val" / f"v{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: [a, b, c]\n")
    _run(root / "data.yaml", tmp_path / "out", strategies=("random",), initial_fraction=0.25,
         batch_fraction=0.25, max_labeled_fraction=0.75)
    project = tmp_path / "out" / "random" / "seed-0"
    labeled = project / "labels" / "images"
    got = {p.name: p.read_text() for p in labeled.rglob("*.txt")}
    assert len(got) == 9 and all(got[name] == truth[name] for name in got)
    assert int(_rows(tmp_path / "out")[-1]["n_labeled"]) == 9
