"""The benchmark protocol through the real engine (fake adapter): hold, hybrid, the train cache,
class-difficulty weighting and the embeddings stored with the scores."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detal.config import Config
from detal.detections import Detections
from detal.fake import FakeAdapter
from detal.project.train_cache import TrainCache, training_key
from detal.simulate import simulate
from detal.store import Store

N_CLASSES = 3


def _dataset(root: Path, n_pool: int = 100, n_val: int = 6) -> Path:
    for split, n in (("train", n_pool), ("val", n_val)):
        (root / "labels" / split).mkdir(parents=True)
        (root / "images" / split).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (10 + i % 5, 10), (i % 256, (3 * i) % 256, 7)).save(
                root / "images" / split / f"{split}{i:03d}.png")
            boxes = "".join(f"{(i + j) % N_CLASSES} 0.5 0.5 0.2 0.2\n" for j in range(1 + i % 3))
            (root / "labels" / split / f"{split}{i:03d}.txt").write_text(boxes)
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: [a, b, c]\n")
    return root / "data.yaml"


class CountingAdapter(FakeAdapter):
    """The fake adapter, counting trainings."""

    trainings = 0

    def train(self, *args, **kwargs):
        type(self).trainings += 1
        return super().train(*args, **kwargs)


@pytest.fixture
def data_yaml(tmp_path):
    return _dataset(tmp_path / "ds")


def _cfg(**kw) -> Config:
    return Config(model="yolov8n.yaml", imgsz=64, epochs_per_cycle=1, **kw)


def _sim(data_yaml, out, strategies, seeds=(0,), cache=None, adapter=None, **kw):
    factory = adapter or (lambda cfg: FakeAdapter(N_CLASSES, seed=cfg.seed))
    return simulate(_cfg(**kw), factory, strategies=list(strategies), seeds=list(seeds), out_dir=out,
                    data=data_yaml, log=None, report=False, train_cache=cache)


def _rows(out: Path) -> list[dict]:
    return list(csv.DictReader((out / "results.csv").open()))


def test_hold_trains_every_cycle_on_the_initial_set_only(data_yaml, tmp_path):
    out = _sim(data_yaml, tmp_path / "run", ["random", "hold"])
    rows = _rows(out)
    hold = [r for r in rows if r["strategy"] == "hold"]
    rand = [r for r in rows if r["strategy"] == "random"]
    assert len(hold) == len(rand) == 5  # the same schedule: 2%, then 4 batches of 10% to 42%
    assert {r["n_labeled"] for r in hold} == {"2"}
    assert [r["n_labeled"] for r in rand] == ["2", "12", "22", "32", "42"]
    assert hold[0]["map50_95"] == rand[0]["map50_95"]  # same initial set
    assert all(int(r["epochs"]) >= 1 for r in hold)
    with sqlite3.connect(out / "hold" / "seed-0" / "detal.db") as conn:
        assert conn.execute("SELECT count(*) FROM images WHERE selected_cycle > 0").fetchone()[0] == 0


def test_hybrid_runs_through_the_engine_and_stores_embeddings(data_yaml, tmp_path):
    out = _sim(data_yaml, tmp_path / "run", ["hybrid"], uncertain_share=1.0, candidate_factor=2.0)
    rows = _rows(out)
    assert [r["n_labeled"] for r in rows] == ["2", "12", "22", "32", "42"]
    store = Store.open(out / "hybrid" / "seed-0" / "detal.db")
    try:
        ids = [i for i, _ in store.scores(1).items()]
        emb = store.embeddings(1, ids)
        assert emb.shape[0] == len(ids) and emb.shape[1] > 1
        assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-2)
    finally:
        store.close()


class ClusteredUncertainty(FakeAdapter):
    """Images of embedding cluster 0 hold one box the model is unsure of (top score 0.5);
    the others one confident box: the most uncertain images are near-duplicates."""

    def _draw(self, name: str) -> Detections:
        top = 0.5 if self.cluster_of(name) == 0 else 0.99
        probs = np.array([[top, 0.01, 0.01]])
        return Detections(np.array([[4.0, 4.0, 20.0, 20.0]]), np.array([0]), np.array([top]), probs,
                          dfl=self._dfl(name, 1))


def test_hybrid_batches_are_more_diverse_than_subset_topk(data_yaml, tmp_path):
    fake = ClusteredUncertainty(N_CLASSES)
    covered = {}
    for strategy in ("subset_topk", "hybrid"):
        out = _sim(data_yaml, tmp_path / strategy, [strategy], uncertain_share=1.0, candidate_factor=3.0,
                   subset_fraction=0.6, batch_fraction=0.1, measure="binary_entropy", max_labeled_fraction=0.12,
                   adapter=lambda cfg: ClusteredUncertainty(N_CLASSES, seed=cfg.seed))
        with sqlite3.connect(out / strategy / "seed-0" / "detal.db") as conn:
            picked = conn.execute("SELECT relpath FROM images WHERE selected_cycle = 1").fetchall()
            initial = conn.execute("SELECT relpath FROM images WHERE selected_cycle = 0").fetchall()
        assert len(picked) == 10
        covered[strategy] = {fake.cluster_of(Path(p).name) for (p,) in picked}
        labeled = {fake.cluster_of(Path(p).name) for (p,) in initial}
    assert covered["subset_topk"] == {0}  # ten near-duplicates from the uncertain cluster
    # hybrid starts from the uncertain cluster, then covers every cluster the labeled set lacks
    assert 0 in covered["hybrid"] and len(covered["hybrid"]) >= 3
    assert covered["hybrid"] | labeled == set(range(fake.n_clusters))


def test_the_train_cache_reuses_identical_trainings_only(data_yaml, tmp_path):
    CountingAdapter.trainings = 0
    adapter = lambda cfg: CountingAdapter(N_CLASSES, seed=cfg.seed)
    cache = tmp_path / "cache"
    cached = _sim(data_yaml, tmp_path / "cached", ["random", "hold", "mixed"], cache=cache, adapter=adapter,
                  warm_start=False)
    n_cached = CountingAdapter.trainings
    # random: 5 trainings; hold: cycle 0 is random's and every later cycle repeats it; mixed: 4 new
    assert n_cached == 5 + 0 + 4
    CountingAdapter.trainings = 0
    plain = _sim(data_yaml, tmp_path / "plain", ["random", "hold", "mixed"], adapter=adapter, warm_start=False)
    assert CountingAdapter.trainings == 15
    strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rows]
    assert strip(_rows(cached)) == strip(_rows(plain))


def test_training_key_changes_with_every_input(tmp_path):
    cfg = _cfg()
    items = [("a" * 64, "0 0.5 0.5 0.1 0.1\n"), ("b" * 64, "")]
    base = training_key(cfg, items, [], 3, None)
    assert base == training_key(cfg, list(items), [], 3, None)
    assert base != training_key(cfg, items[::-1], [], 3, None)  # order is part of a training
    assert base != training_key(cfg, [items[0], ("b" * 64, "1 0.5 0.5 0.1 0.1\n")], [], 3, None)
    assert base != training_key(cfg, items, [], 4, None)
    assert base != training_key(cfg.replace(seed=1), items, [], 3, None)
    assert base != training_key(cfg.replace(train_args={"lr0": 0.01}), items, [], 3, None)
    assert base != training_key(cfg, items, items[:1], 3, None)
    w = tmp_path / "w.pt"
    w.write_bytes(b"weights")
    assert base != training_key(cfg, items, [], 3, w)
    cache = TrainCache(tmp_path / "c")
    assert cache.get(base) is None
    cache.put(base, w, {"metrics": None, "train_s": 1.0})
    got = cache.get(base)
    assert got is not None and got[0].read_bytes() == b"weights" and got[1]["train_s"] == 1.0


def test_difficulty_weighting_changes_the_scores(data_yaml, tmp_path):
    a = _sim(data_yaml, tmp_path / "a", ["mixed"], measure="binary_entropy")
    b = _sim(data_yaml, tmp_path / "b", ["mixed"], measure="binary_entropy", class_weighting="difficulty",
             difficulty_beta=2.0)
    sa = Store.open(a / "mixed" / "seed-0" / "detal.db")
    sb = Store.open(b / "mixed" / "seed-0" / "detal.db")
    try:
        x, y = sa.scores(1), sb.scores(1)
        assert x.keys() == y.keys()
        ratio = [y[i][0] / x[i][0] for i in x if x[i][0] > 0]
        assert ratio and min(ratio) >= 1.0 - 1e-9 and max(ratio) <= 3.0 + 1e-9
        assert max(ratio) > 1.0 + 1e-6
        assert sb.cycle(1).metrics.per_class is not None
    finally:
        sa.close()
        sb.close()


def test_review_works_on_a_simulated_project(data_yaml, tmp_path):
    from detal.review import write_review

    out = _sim(data_yaml, tmp_path / "run", ["mixed"])
    project = out / "mixed" / "seed-0"
    result = write_review(project)
    batch = sqlite3.connect(project / "detal.db").execute(
        "SELECT count(*) FROM images WHERE selected_cycle = ?", (result.cycle,)).fetchone()[0]
    assert result.path.is_file() and result.n_images == batch > 0
    assert result.path.read_text().count('class="card') >= batch


def test_status_shows_per_class_ap(data_yaml, tmp_path, capsys):
    import json

    from detal.cli import main

    out = _sim(data_yaml, tmp_path / "run", ["random"])
    assert main(["status", str(out / "random" / "seed-0"), "--json"]) == 0
    cycles = json.loads(capsys.readouterr().out)["cycles"]
    trained = [c for c in cycles if c["map50_95"] is not None]
    assert trained
    for c in trained:
        per_class = c["per_class_map50_95"]
        assert list(per_class) == ["a", "b", "c"]
        present = [v for v in per_class.values() if v is not None]
        assert present and abs(np.mean(present) - c["map50_95"]) < 0.2
