"""Selection primitives and the composed strategies."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detal.errors import ConfigError, DataError
from detal.selection import (
    Plan,
    fraction_count,
    k_center_greedy,
    random_subset,
    select_batch,
    strategy_plan,
    top_k,
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize(
    "fraction, total, expected",
    [(0.02, 1000, 20), (0.2, 1000, 200), (0.1, 1000, 100), (0.02, 50, 1), (0.1, 15, 2), (0.5, 0, 0), (0.0, 10, 0)],
)
def test_fraction_count(fraction, total, expected):
    assert fraction_count(fraction, total) == expected


@pytest.mark.parametrize(
    "strategy, kwargs, expected",
    [
        # The worked DataHunt numbers: T = 1000, B = 100, subset = 200, 50:50.
        ("mixed", {}, Plan("mixed", 100, 200, 50)),
        ("mixed", {"uncertain_share": 0.3}, Plan("mixed", 100, 200, 30)),
        ("mixed", {"uncertain_share": 1.0}, Plan("mixed", 100, 200, 100)),
        ("subset_topk", {}, Plan("subset_topk", 100, 200, 100)),
        ("topk", {}, Plan("topk", 100, None, 100)),
        ("random", {}, Plan("random", 100, 0, 0)),
    ],
)
def test_strategy_plan(strategy, kwargs, expected):
    assert strategy_plan(strategy, 1000, **kwargs) == expected


@pytest.mark.parametrize(
    "strategy, kwargs, error, match",
    [
        ("greedy", {}, ConfigError, "unknown strategy"),
        ("mixed", {"batch_fraction": 0.0}, ConfigError, "batch_fraction"),
        ("mixed", {"subset_fraction": 1.5}, ConfigError, "subset_fraction"),
        ("mixed", {"uncertain_share": -0.1}, ConfigError, "uncertain_share"),
    ],
)
def test_strategy_plan_errors(strategy, kwargs, error, match):
    with pytest.raises(error, match=match):
        strategy_plan(strategy, 100, **kwargs)


def test_top_k_orders_and_breaks_ties_by_id():
    ids = np.array([7, 3, 9, 1, 5])
    scores = np.array([0.5, 0.9, 0.5, 0.5, np.nan])
    assert top_k(ids, scores, 3).tolist() == [3, 1, 7]
    assert top_k(ids, scores, 5).tolist() == [3, 1, 7, 9, 5]  # NaN ranks last
    assert top_k(ids, scores, 10).tolist() == [3, 1, 7, 9, 5]
    assert top_k(ids, scores, 0).tolist() == []


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: top_k(np.array([1, 1]), np.array([0.1, 0.2]), 1), DataError),
        (lambda: top_k(np.array([1, 2]), np.array([0.1]), 1), DataError),
        (lambda: top_k(np.array([1.5, 2.0]), np.array([0.1, 0.2]), 1), DataError),
        (lambda: top_k(np.array([1, 2]), np.array([0.1, 0.2]), -1), DataError),
        (lambda: random_subset(np.array([1, 2]), 1, np.random.RandomState(0)), TypeError),
        (lambda: random_subset(np.array([1, 2]), 1, None), TypeError),
        (lambda: select_batch(np.array([1, 2, 3]), Plan("mixed", 2, 2, 1), rng(), None), DataError),
        (lambda: select_batch(np.array([1, 2, 3]), Plan("mixed", 2, 2, 1), rng(), lambda ids: np.zeros(1)), DataError),
    ],
)
def test_bad_arguments(call, error):
    with pytest.raises(error):
        call()


def test_mixed_takes_top_of_subset_then_random_rest():
    unlabeled = np.arange(100, 200)
    plan = Plan("mixed", batch_size=10, subset_size=20, n_uncertain=5)
    scorer_calls = []

    def scorer(ids):
        scorer_calls.append(ids.copy())
        return ids.astype(float)  # higher id, more uncertain

    sel = select_batch(unlabeled, plan, rng(1), scorer)
    assert len(scorer_calls) == 1 and scorer_calls[0].size == 20  # only the subset is scored
    subset = scorer_calls[0]
    assert sel.uncertain_ids.tolist() == sorted(subset.tolist(), reverse=True)[:5]
    assert sel.random_ids.size == 5
    assert not set(sel.random_ids) & set(sel.uncertain_ids)
    assert sel.ids.size == 10 and np.unique(sel.ids).size == 10


def test_random_strategy_never_scores():
    def scorer(ids):
        raise AssertionError("random must not score")

    sel = select_batch(np.arange(50), strategy_plan("random", 50), rng(), scorer)
    assert sel.ids.size == 5 and sel.scored_ids.size == 0


def test_topk_scores_everything():
    ids = np.arange(30)
    sel = select_batch(ids, Plan("topk", 4, None, 4), rng(), lambda s: -s.astype(float))
    assert sorted(sel.scored_ids.tolist()) == list(range(30))
    assert sel.ids.tolist() == [0, 1, 2, 3]


def test_ties_are_broken_at_random_not_by_id():
    # An untrained model: every image scores the same (empty_image_score). The
    # uncertain half must not be "the first ids of the pool".
    ids = np.arange(1000)
    flat = lambda s: np.zeros(s.size)
    picks = [select_batch(ids, Plan("topk", 50, None, 50), rng(seed), flat).ids for seed in range(3)]
    assert all(p.max() > 100 for p in picks)  # by id the picks would be exactly 0..49
    assert len({tuple(p) for p in picks}) == 3  # and they change with the seed
    again = select_batch(ids, Plan("topk", 50, None, 50), rng(0), flat).ids
    assert again.tolist() == picks[0].tolist()  # while the same seed repeats them


def test_top_k_tiebreak_argument():
    ids = np.array([5, 6, 7])
    assert top_k(ids, np.zeros(3), 2, tiebreak=np.array([2, 0, 1])).tolist() == [6, 7]
    with pytest.raises(DataError, match="tiebreak"):
        top_k(ids, np.zeros(3), 2, tiebreak=np.array([0, 1]))


def test_fewer_left_than_batch_takes_everything():
    sel = select_batch(np.array([4, 8, 15]), Plan("mixed", 10, 20, 5), rng(), lambda s: s * 1.0)
    assert sorted(sel.ids.tolist()) == [4, 8, 15]
    assert select_batch(np.array([], dtype=int), Plan("mixed", 10, 20, 5), rng(), None).ids.size == 0


def test_same_seed_same_picks_and_order_independent():
    ids = np.arange(1000)
    plan = strategy_plan("mixed", 1000)
    scorer = lambda s: np.sin(s.astype(float))
    a = select_batch(ids, plan, rng(42), scorer)
    b = select_batch(ids[::-1].copy(), plan, rng(42), scorer)
    c = select_batch(ids, plan, rng(43), scorer)
    assert a.ids.tolist() == b.ids.tolist()
    assert a.ids.tolist() != c.ids.tolist()


@settings(max_examples=200, deadline=None)
@given(
    n_pool=st.integers(0, 300),
    labeled_share=st.floats(0, 1),
    strategy=st.sampled_from(["random", "topk", "subset_topk", "mixed"]),
    batch_fraction=st.floats(0.01, 1),
    subset_fraction=st.floats(0.01, 1),
    uncertain_share=st.floats(0, 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_selection_invariants(n_pool, labeled_share, strategy, batch_fraction, subset_fraction, uncertain_share, seed):
    g = np.random.default_rng(seed)
    all_ids = g.permutation(10 * n_pool + 1)[:n_pool]
    n_labeled = int(labeled_share * n_pool)
    labeled, unlabeled = all_ids[:n_labeled], all_ids[n_labeled:]
    plan = strategy_plan(
        strategy, n_pool, batch_fraction=batch_fraction, subset_fraction=subset_fraction, uncertain_share=uncertain_share
    )
    scores = {int(i): float(g.random()) for i in unlabeled}
    sel = select_batch(unlabeled, plan, np.random.default_rng(seed), lambda s: np.array([scores[int(i)] for i in s]))
    picked = sel.ids.tolist()
    assert len(picked) == len(set(picked))  # never repeats an id
    assert set(picked) <= set(unlabeled.tolist())  # never a labeled (or unknown) id
    assert not set(picked) & set(labeled.tolist())
    assert len(picked) == min(plan.batch_size, unlabeled.size)  # full batch, or all that is left
    assert set(sel.scored_ids.tolist()) <= set(unlabeled.tolist())
    if sel.uncertain_ids.size:
        # the uncertain picks are exactly the top of what was scored, ties in draw order
        position = {int(i): n for n, i in enumerate(sel.scored_ids)}
        ranked = sorted(sel.scored_ids.tolist(), key=lambda i: (-scores[i], position[i]))
        assert sel.uncertain_ids.tolist() == ranked[: sel.uncertain_ids.size]
    again = select_batch(unlabeled, plan, np.random.default_rng(seed), lambda s: np.array([scores[int(i)] for i in s]))
    assert again.ids.tolist() == picked  # same seed, same picks


# -- hybrid (greedy k-center among the most uncertain) and the hold control ---------------
def _clusters(n_clusters: int, per: int, dim: int = 16, seed: int = 0, spread: float = 0.05):
    """Unit vectors in tight clusters around random centres; cluster of row i is i // per."""
    g = np.random.default_rng(seed)
    centres = g.normal(size=(n_clusters, dim))
    x = np.repeat(centres, per, axis=0) + spread * g.normal(size=(n_clusters * per, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize(
    "strategy, kwargs, expected",
    [
        ("hybrid", {}, Plan("hybrid", 100, 200, 50, 3.0)),
        ("hybrid", {"candidate_factor": 5, "uncertain_share": 0.3}, Plan("hybrid", 100, 200, 30, 5.0)),
        ("hold", {}, Plan("hold", 0, 0, 0)),
    ],
)
def test_hybrid_and_hold_plans(strategy, kwargs, expected):
    assert strategy_plan(strategy, 1000, **kwargs) == expected


@pytest.mark.parametrize("factor", [0.5, float("nan"), float("inf"), -1.0])
def test_candidate_factor_is_checked(factor):
    with pytest.raises(ConfigError, match="candidate_factor"):
        strategy_plan("hybrid", 1000, candidate_factor=factor)


def test_k_center_starts_from_the_most_uncertain_and_covers_every_cluster():
    x = _clusters(5, 20)  # rows ordered as if by uncertainty: cluster 0 is the most uncertain
    picked = k_center_greedy(x, 5)
    assert picked[0] == 0
    assert sorted(set(picked // 20)) == [0, 1, 2, 3, 4]
    # top-k by uncertainty would take five rows of cluster 0
    assert len(set(np.arange(5) // 20)) == 1


def test_k_center_avoids_what_is_already_labeled():
    x = _clusters(4, 10)
    labeled = x[10:20] + 0.0  # cluster 1 is labeled already
    picked = k_center_greedy(x, 4, reference=labeled)
    assert picked[0] == 0
    assert 1 not in set(picked[1:] // 10)  # the three others come from clusters 0, 2, 3
    assert sorted(set(picked // 10)) == [0, 2, 3]


@pytest.mark.parametrize(
    "candidates, reference, match",
    [
        (np.zeros((3, 4)), None, "all-zero"),
        (np.ones(4), None, "2-D"),
        (np.full((2, 4), np.nan), None, "finite"),
        (np.ones((3, 4)), np.ones((2, 5)), "dimensions"),
    ],
)
def test_k_center_rejects_bad_embeddings(candidates, reference, match):
    with pytest.raises(DataError, match=match):
        k_center_greedy(candidates, 2, reference)


def _hybrid_setup(n=400, n_clusters=8, seed=0):
    emb = _clusters(n_clusters, n // n_clusters, seed=seed)
    g = np.random.default_rng(seed + 1)
    # The most uncertain images all sit in cluster 0 (near-duplicates at the boundary).
    scores = g.random(n) * 0.5
    scores[: n // n_clusters] += 0.5
    return emb, scores


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_labeled=st.integers(0, 60))
def test_hybrid_is_deterministic_and_never_picks_labeled(seed, n_labeled):
    emb, scores = _hybrid_setup()
    ids = np.arange(emb.shape[0])
    labeled = np.random.default_rng(seed).choice(ids, n_labeled, replace=False)
    unlabeled = np.setdiff1d(ids, labeled)
    plan = strategy_plan("hybrid", ids.size)

    def pick():
        return select_batch(unlabeled, plan, np.random.default_rng(seed), lambda i: scores[i],
                            embedder=lambda i: emb[i], labeled_ids=labeled)

    a, b = pick(), pick()
    assert a.ids.tolist() == b.ids.tolist()
    assert a.ids.size == plan.batch_size == len(set(a.ids.tolist()))
    assert not set(a.ids.tolist()) & set(labeled.tolist())
    assert a.uncertain_ids.size == plan.n_uncertain


def _mean_pairwise_distance(x: np.ndarray) -> float:
    d = 1.0 - x @ x.T
    return float(d[np.triu_indices(len(x), 1)].mean())


def test_hybrid_picks_are_more_spread_out_than_topk():
    emb, scores = _hybrid_setup()
    ids = np.arange(emb.shape[0])
    spreads = {}
    for name in ("subset_topk", "hybrid"):
        plan = strategy_plan(name, ids.size, subset_fraction=1.0, batch_fraction=0.05, uncertain_share=1.0)
        sel = select_batch(ids, plan, rng(3), lambda i: scores[i], embedder=lambda i: emb[i],
                           labeled_ids=np.zeros(0, np.int64))
        spreads[name] = (_mean_pairwise_distance(emb[sel.uncertain_ids]), len(set(sel.uncertain_ids // 50)))
    assert spreads["subset_topk"][1] == 1  # every pick from the uncertain cluster
    assert spreads["hybrid"][1] >= 3
    assert spreads["hybrid"][0] > 2 * spreads["subset_topk"][0]


def test_hybrid_candidates_are_the_most_uncertain():
    emb, scores = _hybrid_setup()
    ids = np.arange(emb.shape[0])
    plan = strategy_plan("hybrid", ids.size, candidate_factor=2.0)
    seen = []

    def embedder(i):
        seen.append(np.asarray(i).copy())
        return emb[i]

    sel = select_batch(ids, plan, rng(0), lambda i: scores[i], embedder=embedder, labeled_ids=np.array([5, 6]))
    assert len(seen) == 1
    cand = seen[0][:-2]
    assert seen[0][-2:].tolist() == [5, 6]
    assert cand.size == 2 * plan.n_uncertain
    s = scores[sel.scored_ids]
    threshold = np.sort(s)[::-1][cand.size - 1]
    assert np.all(scores[cand] >= threshold)
    assert set(sel.uncertain_ids.tolist()) <= set(cand.tolist())


def test_hybrid_without_embedder_is_an_error():
    plan = strategy_plan("hybrid", 100)
    with pytest.raises(DataError, match="embeddings"):
        select_batch(np.arange(100), plan, rng(), lambda i: np.ones(i.size))


def test_hold_picks_nothing_and_needs_no_scorer():
    sel = select_batch(np.arange(100), strategy_plan("hold", 100), rng())
    assert sel.ids.size == 0 and sel.scored_ids.size == 0


def test_hybrid_sees_clusters_that_share_one_dominant_direction():
    # Weak detectors give pooled features like these: a huge common component and tiny
    # differences (cosine ~ 0.9999 between any two images). Centring recovers the clusters.
    emb, scores = _hybrid_setup()
    squashed = 1000.0 * np.ones(emb.shape[1]) + emb
    ids = np.arange(emb.shape[0])
    plan = strategy_plan("hybrid", ids.size, subset_fraction=1.0, batch_fraction=0.05, uncertain_share=1.0)
    sel = select_batch(ids, plan, rng(3), lambda i: scores[i], embedder=lambda i: squashed[i],
                       labeled_ids=np.zeros(0, np.int64))
    assert len(set(sel.uncertain_ids // 50)) >= 3


# -- hybrid_max_labeled: the labeled images the distances run to, bounded ------------------
def _bounded_run(labeled, limit, seed=0):
    """A hybrid selection over 400 clustered images, with the ids the embedder was asked for."""
    emb, scores = _hybrid_setup()
    ids = np.arange(emb.shape[0])
    unlabeled = np.setdiff1d(ids, labeled)
    plan = strategy_plan("hybrid", ids.size, max_labeled=limit)
    asked = []

    def embedder(i):
        asked.append(np.asarray(i).copy())
        return emb[i]

    sel = select_batch(unlabeled, plan, np.random.default_rng(seed), lambda i: scores[i],
                       embedder=embedder, labeled_ids=labeled)
    n_cand = math.ceil(plan.candidate_factor * plan.n_uncertain)
    return sel, asked[0][n_cand:]


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"max_labeled": 2000}, Plan("hybrid", 100, 200, 50, 3.0, 2000)),
        ({}, Plan("hybrid", 100, 200, 50, 3.0, None)),
    ],
)
def test_hybrid_plan_carries_the_bound(kwargs, expected):
    assert strategy_plan("hybrid", 1000, **kwargs) == expected


@pytest.mark.parametrize("limit", [0, -3, True, 2.5])
def test_hybrid_bound_is_checked(limit):
    with pytest.raises(ConfigError, match="hybrid_max_labeled must be a positive integer or null"):
        strategy_plan("hybrid", 1000, max_labeled=limit)


@pytest.mark.parametrize("limit", [10, 25, 119])
def test_hybrid_bound_is_respected(limit):
    labeled = np.random.default_rng(5).permutation(400)[:120]
    _, reference = _bounded_run(labeled, limit)
    assert reference.size == limit
    assert len(set(reference.tolist())) == limit
    assert set(reference.tolist()) <= set(labeled.tolist())


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_hybrid_bounded_sample_is_deterministic_per_seed(seed):
    labeled = np.random.default_rng(5).permutation(400)[:120]
    a_sel, a_ref = _bounded_run(labeled, 30, seed)
    b_sel, b_ref = _bounded_run(labeled[::-1].copy(), 30, seed)  # the order labeled ids come in does not matter
    assert a_ref.tolist() == b_ref.tolist()
    assert a_sel.ids.tolist() == b_sel.ids.tolist()
    others = {tuple(_bounded_run(labeled, 30, s)[1].tolist()) for s in range(seed + 1, seed + 4)}
    assert tuple(a_ref.tolist()) not in others  # another seed, another sample


@pytest.mark.parametrize("n_labeled, limit", [(0, 1), (40, 40), (40, 41), (40, 2000)])
def test_hybrid_under_the_bound_is_unbounded_hybrid_bit_for_bit(n_labeled, limit):
    labeled = np.random.default_rng(9).permutation(400)[:n_labeled]
    bounded, bounded_ref = _bounded_run(labeled, limit, seed=4)
    full, full_ref = _bounded_run(labeled, None, seed=4)
    assert bounded_ref.tolist() == full_ref.tolist() == labeled.tolist()  # every labeled image, as given
    assert bounded.ids.tolist() == full.ids.tolist()  # the random share too: the generator was not touched
    assert bounded.uncertain_ids.tolist() == full.uncertain_ids.tolist()


def test_hybrid_under_the_bound_picks_what_hybrid_picked_before_the_bound():
    # The picks of this setup on the code before hybrid_max_labeled existed (commit 50f90ff).
    labeled = np.random.default_rng(9).permutation(400)[:40]
    before = [47, 57, 364, 73, 375, 363, 312, 90, 71, 273, 250, 368, 394, 333, 48, 74, 398, 259, 195, 357,
              383, 211, 266, 127, 33, 133, 213, 17, 245, 287, 191, 224, 23, 231, 249, 146, 324, 220, 16, 247]
    assert _bounded_run(labeled, 2000, seed=4)[0].ids.tolist() == before
