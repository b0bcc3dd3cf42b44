"""Scoring predictions: measure mixes, class-difficulty weights, components, embeddings.

Runs against hand-made detections and :class:`detal.fake.FakeAdapter`; no model.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from detal.config import Config
from detal.detections import Detections, Prediction
from detal.errors import DataError, ModelError, StateError
from detal.fake import FakeAdapter
from detal.scoring import score_prediction, score_predictions
from detal.store import Store
from detal.uncertainty import binary_entropy, localization


def _dfl(probs_per_box: list[list[float]], bins: int = 16) -> np.ndarray:
    out = np.full((len(probs_per_box), 4, bins), -1e4)
    for i, probs in enumerate(probs_per_box):
        p = np.zeros(bins)
        p[: len(probs)] = probs
        out[i] = np.where(p > 0, np.log(np.maximum(p, 1e-300)), -1e4)
    return out


def _pred(name: str = "a.png", with_dfl: bool = True, embedding=None) -> Prediction:
    probs = np.array([[0.9, 0.05, 0.05], [0.3, 0.02, 0.01], [0.1, 0.6, 0.55]])
    det = Detections(
        np.tile([0.0, 0.0, 10.0, 10.0], (3, 1)),
        probs.argmax(1),
        probs.max(1),
        probs,
        _dfl([[1.0], [0, 0, 0, 0.5, 0.5], [1 / 16] * 16]) if with_dfl else None,
    )
    return Prediction(Path(name), 32, 32, det, embedding=embedding)


BE = [0.4690, 0.8813, 0.9710]  # binary entropy of the three boxes (docs/method.md rows 1-2, 3 permuted)
LOC = [0.0, 0.25, 1.0]
# box confidences 0.9, 0.3, 0.6; top classes 0, 0, 1


@pytest.mark.parametrize(
    "measure, how, conf, weights, expected",
    [
        ("binary_entropy", "max", 0.25, None, max(BE)),
        ("binary_entropy", "mean", 0.25, None, np.mean(BE)),
        ("localization", "sum", 0.25, None, sum(LOC)),
        ("localization", "max", 0.5, None, 1.0),  # the 0.3 box does not count
        ({"binary_entropy": 1, "localization": 1}, "mean", 0.25, None, np.mean([(b + c) / 2 for b, c in zip(BE, LOC)])),
        ({"binary_entropy": 1, "localization": 1}, "max", 0.25, None, (0.9710 + 1.0) / 2),
        # class weights (w0 = 2, w1 = 1): boxes of class 0 count double
        ("binary_entropy", "max", 0.25, [2.0, 1.0, 1.5], 2 * 0.8813),
        ("localization", "sum", 0.25, [2.0, 1.0, 1.5], 2 * 0.25 + 1.0),
    ],
)
def test_score_prediction_table(measure, how, conf, weights, expected):
    s = score_prediction(_pred(), measure=measure, how=how, score_conf=conf, weights=weights)
    assert s.score == pytest.approx(expected, abs=1e-4)
    assert s.n_boxes == (3 if conf < 0.3 else 2) and s.top_class == 0


def test_components_hold_each_measure_aggregated_alone():
    s = score_prediction(_pred(), measure={"binary_entropy": 1, "localization": 3}, how="mean")
    assert s.components == pytest.approx({"binary_entropy": np.mean(BE), "localization": np.mean(LOC)}, abs=1e-4)
    # with mean, the mix of the components is the score (weights normalised: 1/4, 3/4)
    mixed = 0.25 * s.components["binary_entropy"] + 0.75 * s.components["localization"]
    assert s.score == pytest.approx(mixed, abs=1e-12)


def test_an_image_without_counted_boxes_gets_the_empty_score_everywhere():
    s = score_prediction(_pred(), measure={"binary_entropy": 1, "localization": 1}, score_conf=0.95, empty=0.7)
    assert (s.score, s.n_boxes, s.top_class) == (0.7, 0, None)
    assert s.components == {"binary_entropy": 0.7, "localization": 0.7}


def test_localization_without_dfl_logits_is_a_model_error():
    with pytest.raises(ModelError, match="DFL"):
        score_prediction(_pred(with_dfl=False), measure={"binary_entropy": 1, "localization": 1})
    # measures of the class vector do not need them
    assert score_prediction(_pred(with_dfl=False), measure="binary_entropy").score == pytest.approx(max(BE), abs=1e-4)


def test_class_weights_of_the_wrong_length_are_rejected():
    with pytest.raises(DataError, match="class weights"):
        score_prediction(_pred(), measure="binary_entropy", weights=[1.0, 2.0])


def test_score_predictions_applies_difficulty_from_per_class_ap():
    pred = _pred(embedding=np.ones(4) / 2)
    plain = Config(measure="binary_entropy", score_conf=0.25)
    hard = plain.replace(class_weighting="difficulty", difficulty_beta=1.0)
    base = score_predictions([pred], plain, class_ap=(0.0, 1.0, None))[0]
    assert base.score == pytest.approx(max(BE), abs=1e-4)  # weighting none: class_ap ignored
    # AP (0, 1, None) -> w = (2, 1, 2): the class-0 boxes count double
    weighted = score_predictions([pred], hard, class_ap=(0.0, 1.0, None))[0]
    assert weighted.score == pytest.approx(2 * 0.8813, abs=1e-4)
    # no evaluation yet: every weight is 1
    assert score_predictions([pred], hard)[0].score == pytest.approx(base.score)
    np.testing.assert_array_equal(weighted.embedding, np.full(4, 0.5, np.float16))


def test_seed_measures_are_unchanged_by_the_new_path():
    pred = _pred()
    for measure in ("entropy", "least_confidence", "margin"):
        cfg = Config(measure=measure, score_conf=0.25)
        s = score_predictions([pred], cfg)[0]
        assert s.components == {measure: s.score}


# ---- FakeAdapter: DFL logits, embeddings, per-class AP -------------------------


def test_fake_adapter_gives_dfl_and_clustered_embeddings_only_when_asked(tmp_path):
    fake = FakeAdapter(3, seed=1, max_boxes=6)
    paths = [tmp_path / f"img{i:03d}.png" for i in range(40)]
    plain = fake.predict(tmp_path / "w", paths, conf=0.0, with_dfl=False).predictions
    default = fake.predict(tmp_path / "w", paths[:5], conf=0.0).predictions
    assert all(p.detections.dfl is not None and p.embedding is None for p in default)
    rich = fake.predict(tmp_path / "w", paths, conf=0.0, with_dfl=True, with_embeddings=True).predictions
    again = FakeAdapter(3, seed=1, max_boxes=6).predict(tmp_path / "w", paths, conf=0.0, with_embeddings=True)
    for p, r, a in zip(plain, rich, again.predictions):
        assert p.embedding is None and p.detections.dfl is None
        np.testing.assert_array_equal(p.detections.class_probs, r.detections.class_probs)
        assert r.detections.dfl.shape == (len(r.detections), 4, 16)
        assert r.embedding.dtype == np.float16 and r.embedding.shape == (32,)
        assert np.linalg.norm(r.embedding.astype(np.float32)) == pytest.approx(1.0, abs=2e-3)
        np.testing.assert_array_equal(r.embedding, a.embedding)  # deterministic
    loc = np.concatenate([localization(r.detections.dfl) for r in rich if len(r.detections)])
    assert loc.min() < 0.3 and loc.max() > 0.7  # sharp and flat sides both occur
    # embeddings cluster: same-cluster pairs are much closer than other pairs
    emb = np.stack([r.embedding.astype(np.float32) for r in rich])
    cluster = np.array([fake.cluster_of(p.name) for p in paths])
    cos = emb @ emb.T
    same = cluster[:, None] == cluster[None, :]
    off_diag = ~np.eye(len(paths), dtype=bool)
    assert len(set(cluster)) == 4
    assert cos[same & off_diag].min() > cos[~same].max()


def test_fake_adapter_without_dfl_head_refuses_with_dfl(tmp_path):
    with pytest.raises(ModelError, match="no DFL head"):
        FakeAdapter(2, reg_max=1).predict(tmp_path / "w", [tmp_path / "a.png"], conf=0.0, with_dfl=True)


def test_fake_metrics_have_per_class_ap_and_none_for_absent_classes(tmp_path):
    items = []
    for i, text in enumerate(["0 0.5 0.5 0.1 0.1\n", "2 0.5 0.5 0.1 0.1\n0 0.2 0.2 0.1 0.1\n", ""]):
        (tmp_path / f"{i}.txt").write_text(text)
        items.append((tmp_path / f"{i}.png", tmp_path / f"{i}.txt"))
    fake = FakeAdapter(4)
    result = fake.train(items, items, ["a", "b", "c", "d"], tmp_path / "run", epochs=1)
    per_class = result.metrics.per_class
    assert len(per_class) == 4 and per_class[1] is None and per_class[3] is None
    assert 0 < per_class[0] < per_class[2] <= 1
    assert fake.evaluate(result.weights, items, ["a", "b", "c", "d"], tmp_path).per_class == per_class
    assert binary_entropy(np.array([[0.5]]))[0] == 1.0


# ---- store: embeddings with the scores ---------------------------------------


def _store(tmp_path, n=5) -> Store:
    store = Store.create(tmp_path / "detal.db")
    with store.transaction():
        store.add_images([(i, f"images/im{i}.png", f"im{i}", f"{i:064x}", 8, 6, "unlabeled") for i in range(n)])
        store.start_cycle(0, {})
    return store


def test_store_round_trips_embeddings_as_float16(tmp_path):
    store = _store(tmp_path)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3, 7)).astype(np.float32)
    with store.transaction():
        store.add_scores(0, [(1, 0.5, 2, 0), (3, 0.1, 0, None), (4, 0.9, 1, 1)], embeddings=list(vectors))
        store.add_scores(0, [(2, 0.3, 1, 0)])  # no embedding
    got = store.embeddings(0, [4, 1])
    assert got.dtype == np.float32 and got.shape == (2, 7)
    np.testing.assert_array_equal(got, vectors[[2, 0]].astype(np.float16).astype(np.float32))
    assert store.scores(0)[1] == (0.5, 2, 0)
    with pytest.raises(StateError, match="ids 2, 0"):
        store.embeddings(0, [1, 2, 0])
    with pytest.raises(ValueError, match="2 embeddings for 1"):
        store.add_scores(0, [(1, 0.5, 2, 0)], embeddings=list(vectors[:2]))
    store.close()


def test_a_database_without_the_embedding_column_gets_it_on_open(tmp_path):
    store = _store(tmp_path)
    with store.transaction():
        store.add_scores(0, [(1, 0.5, 2, 0)])
    store.close()
    conn = sqlite3.connect(tmp_path / "detal.db")
    conn.execute("ALTER TABLE scores DROP COLUMN embedding")  # as made by the first detal release
    conn.commit()
    conn.close()
    store = Store.open(tmp_path / "detal.db")
    assert store.scores(0) == {1: (0.5, 2, 0)}
    with store.transaction():
        store.add_scores(0, [(2, 0.2, 1, 1)], embeddings=[np.ones(3)])
    np.testing.assert_array_equal(store.embeddings(0, [2]), np.ones((1, 3), np.float32))
    store.close()


@pytest.mark.parametrize("chunk,calls", [(1, 5), (2, 5), (5, 3), (6, 2), (100, 1)])
@pytest.mark.parametrize("measure", ["entropy", {"binary_entropy": 1.0, "localization": 1.0}])
def test_scoring_chunk_by_chunk_equals_one_whole_pass(tmp_path, chunk, calls, measure):
    from PIL import Image

    from detal.score_images import score_pass

    paths = []
    for i in range(10):
        paths.append(tmp_path / f"im{i}.png")
        Image.new("RGB", (64, 64), (i, 0, 0)).save(paths[-1])
    adapter = FakeAdapter(3, unreadable={"im4.png"})
    cfg = Config(measure=measure, score_conf=0.1, predict_batch=2)
    whole = adapter.predict(tmp_path / "w.pt", paths, conf=cfg.score_conf, with_dfl=True, with_embeddings=True)
    expected = score_predictions(whole.predictions, cfg)
    table, failed = score_pass(adapter, tmp_path / "w.pt", paths, cfg, progress=False, embeddings=True, chunk=chunk)
    assert failed == whole.failed and len(failed) == 1
    assert len(adapter.calls) == 1 + calls  # the whole pass, then one call a chunk (whole batches of 2)
    assert list(table) == expected  # path, score, n_boxes, top_class, exactly
    assert [s.components for s in table] == [s.components for s in expected]
    assert table.embeddings.dtype == np.float16
    assert np.array_equal(table.embeddings[: len(table)], np.stack([s.embedding for s in expected]))
    assert any(s.top_class is None for s in expected) or any(s.n_boxes for s in expected)
