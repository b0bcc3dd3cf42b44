"""Uncertainty measures and aggregation: hand-computed values and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from detal.errors import ConfigError, DataError
from detal.uncertainty import (
    aggregate,
    aggregate_groups,
    box_scores,
    entropy,
    normalize_probs,
)

LN10 = math.log(10)

# The worked check of METHOD.md (3 classes; entropy there is in log10).
WORKED = [
    # probs,              entropy_log10, least_conf, top1 - top2
    ((0.2, 0.5, 0.3), 0.4472, 0.50, 0.20),
    ((0.9, 0.05, 0.05), 0.1713, 0.10, 0.85),
    ((1 / 3, 1 / 3, 1 / 3), math.log10(3), 2 / 3, 0.00),
]


@pytest.mark.parametrize("probs, h10, lc, gap", WORKED)
def test_worked_check(probs, h10, lc, gap):
    p = np.array([probs])
    assert box_scores(p, "entropy")[0] / LN10 == pytest.approx(h10, abs=5e-5)
    assert box_scores(p, "least_confidence")[0] == pytest.approx(lc, abs=1e-9)
    assert box_scores(p, "margin")[0] == pytest.approx(1 - gap, abs=1e-9)


@pytest.mark.parametrize(
    "probs, measure, normalize, expected",
    [
        ([[1, 0, 0]], "entropy", False, 0.0),
        ([[0.5, 0.5]], "entropy", False, math.log(2)),
        ([[0.5, 0.5]], "entropy", True, 1.0),
        ([[0.25] * 4], "entropy", True, 1.0),
        # independent sigmoids: (0.8, 0.8) renormalises to (0.5, 0.5)
        ([[0.8, 0.8]], "least_confidence", False, 0.5),
        ([[0.8, 0.8]], "margin", False, 1.0),
        ([[0.6, 0.2, 0.2]], "margin", False, 1 - (0.6 - 0.2)),
        # an all-zero row carries no evidence: treated as uniform, no NaN
        ([[0, 0, 0, 0]], "entropy", True, 1.0),
        ([[0, 0]], "least_confidence", False, 0.5),
        ([[0, 0]], "margin", False, 1.0),
        # one class: nothing to be uncertain about
        ([[0.3]], "entropy", True, 0.0),
        ([[0.3]], "margin", False, 0.0),
    ],
)
def test_measure_table(probs, measure, normalize, expected):
    got = box_scores(np.array(probs, dtype=float), measure, normalize=normalize)
    assert got.shape == (1,)
    assert got[0] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "probs, measure, error",
    [
        (np.ones((2, 3)), "variance", ConfigError),
        (np.ones(3), "entropy", DataError),
        (np.ones((2, 0)), "entropy", DataError),
        (np.array([[0.5, -0.1]]), "margin", DataError),
        (np.array([[0.5, np.nan]]), "least_confidence", DataError),
    ],
)
def test_measure_errors(probs, measure, error):
    with pytest.raises(error):
        box_scores(probs, measure)


def test_empty_array_gives_empty_scores():
    for measure in ("entropy", "least_confidence", "margin"):
        assert box_scores(np.zeros((0, 5)), measure).shape == (0,)


@pytest.mark.parametrize(
    "scores, how, empty, expected",
    [
        ([0.1, 0.5, 0.3], "max", 0.0, 0.5),
        ([0.1, 0.5, 0.3], "mean", 0.0, 0.3),
        ([0.1, 0.5, 0.3], "sum", 0.0, 0.9),
        ([], "max", 0.0, 0.0),
        ([], "mean", 1.0, 1.0),
        ([], "sum", 0.7, 0.7),
    ],
)
def test_aggregate_table(scores, how, empty, expected):
    assert aggregate(np.array(scores), how, empty=empty) == pytest.approx(expected)


def test_aggregate_rejects_unknown_reduction():
    with pytest.raises(ConfigError, match="median"):
        aggregate(np.array([0.1]), "median")


@pytest.mark.parametrize("how", ["max", "mean", "sum"])
@pytest.mark.parametrize("n_boxes", [10, 10_000])  # both code paths of the grouped max
def test_aggregate_groups_matches_per_image(how, n_boxes):
    rng = np.random.default_rng(0)
    n_images = 50
    scores = rng.random(n_boxes)
    index = rng.integers(0, n_images - 5, n_boxes)  # the last 5 images get no box
    want = [aggregate(scores[index == j], how, empty=-1.0) for j in range(n_images)]
    for idx, sc in ((index, scores), (np.sort(index), scores[np.argsort(index, kind="stable")])):
        got = aggregate_groups(sc, idx, n_images, how, empty=-1.0)  # unsorted, then grouped
        np.testing.assert_allclose(got, want)
        assert (got[-5:] == -1.0).all()


# ---- properties --------------------------------------------------------------

prob_rows = st.integers(1, 12).flatmap(
    lambda c: arrays(
        np.float64,
        st.tuples(st.integers(1, 20), st.just(c)),
        elements=st.floats(0, 1, allow_nan=False, width=32),
    )
)


@given(prob_rows)
def test_entropy_bounds(probs):
    c = probs.shape[1]
    h = entropy(probs)
    assert np.all(h >= 0)
    assert np.all(h <= math.log(c) + 1e-9)
    hn = entropy(probs, normalize=True)
    assert np.all((hn >= 0) & (hn <= 1))


@given(prob_rows, st.randoms(use_true_random=False))
def test_measures_ignore_class_order(probs, pyrandom):
    perm = list(range(probs.shape[1]))
    pyrandom.shuffle(perm)
    for measure in ("entropy", "least_confidence", "margin"):
        np.testing.assert_allclose(
            box_scores(probs, measure), box_scores(probs[:, perm], measure), atol=1e-12
        )


@given(prob_rows)
def test_measures_ignore_scale_and_stay_in_unit_interval(probs):
    # Renormalisation means scaling a row does not change its uncertainty.
    for measure in ("least_confidence", "margin"):
        a = box_scores(probs, measure)
        assert np.all((a >= 0) & (a <= 1 + 1e-12))
        np.testing.assert_allclose(a, box_scores(probs * 3.0, measure), atol=1e-9)
    rows = normalize_probs(probs)
    np.testing.assert_allclose(rows.sum(axis=1), 1.0)


@given(arrays(np.float64, st.integers(1, 50), elements=st.floats(0, 100, allow_nan=False)))
def test_sum_ge_max_ge_mean(scores):
    s, m, a = aggregate(scores, "sum"), aggregate(scores, "max"), aggregate(scores, "mean")
    assert s >= m - 1e-9
    assert m >= a - 1e-9


@settings(max_examples=50)
@given(prob_rows)
def test_one_hot_rows_are_certain(probs):
    one_hot = np.eye(probs.shape[1])[np.argmax(probs, axis=1)]
    for measure in ("entropy", "least_confidence"):
        np.testing.assert_allclose(box_scores(one_hot, measure), 0.0, atol=1e-12)
    if probs.shape[1] > 1:
        np.testing.assert_allclose(box_scores(one_hot, "margin"), 0.0, atol=1e-12)
