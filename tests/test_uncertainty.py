"""Uncertainty measures and aggregation: hand-computed values and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from detal.errors import ConfigError, DataError, ModelError
from detal.uncertainty import (
    aggregate,
    aggregate_groups,
    binary_entropy,
    box_scores,
    class_weights,
    entropy,
    localization,
    measure_weights,
    multilabel_entropy,
    needs_dfl,
    normalize_probs,
    parse_measure,
)

LN10 = math.log(10)

# The worked check of docs/method.md (3 classes; entropy in log10 is one of its columns).
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


# ---- sigmoid-head measures (docs/method.md, "One score per box") ----

# The worked table: raw sigmoid scores, renormalised entropy / ln 3, binary and
# multi-label entropy. The second row is the pathology the new measures fix.
SIGMOID_WORKED = [
    # s,                   renormalised, binary, multilabel
    ((0.9, 0.05, 0.05), 0.3590, 0.4690, 0.3473),
    ((0.3, 0.02, 0.01), 0.3300, 0.8813, 0.3678),
    ((0.6, 0.55, 0.01), 0.6698, 0.9710, 0.6815),
    ((0.5, 0.5, 0.5), 1.0000, 1.0000, 1.0000),
]


@pytest.mark.parametrize("s, renormalised, binary, multilabel", SIGMOID_WORKED)
def test_sigmoid_worked_check(s, renormalised, binary, multilabel):
    p = np.array([s])
    assert box_scores(p, "entropy", normalize=True)[0] == pytest.approx(renormalised, abs=5e-5)
    assert box_scores(p, "binary_entropy")[0] == pytest.approx(binary, abs=5e-5)
    assert box_scores(p, "multilabel_entropy")[0] == pytest.approx(multilabel, abs=5e-5)


def test_binary_entropy_ranks_the_weak_box_above_the_confident_one():
    confident, weak = np.array([SIGMOID_WORKED[0][0]]), np.array([SIGMOID_WORKED[1][0]])
    assert entropy(weak, normalize=True) < entropy(confident, normalize=True)  # the pathology
    assert binary_entropy(weak) > binary_entropy(confident)


def _side(probs: list[float], bins: int = 16) -> np.ndarray:
    """DFL logits of one box whose 4 sides all have the bin probabilities ``probs`` (zeros elsewhere)."""
    p = np.zeros(bins)
    p[: len(probs)] = probs
    logits = np.where(p > 0, np.log(np.maximum(p, 1e-300)), -1e4)  # exp(-1e4) is exactly 0
    return np.tile(logits, (1, 4, 1))


# docs/method.md's worked check for localization, one side with 16 bins (here all 4 sides alike).
LOCALIZATION_WORKED = [
    ("all mass in one bin", [0, 0, 0, 1.0], 0.0),
    ("half in bin 3, half in bin 4", [0, 0, 0, 0.5, 0.5], 0.25),
    ("uniform", [1 / 16] * 16, 1.0),
]


@pytest.mark.parametrize("case, probs, expected", LOCALIZATION_WORKED)
def test_localization_worked_check(case, probs, expected):
    assert localization(_side(probs))[0] == pytest.approx(expected, abs=1e-9), case


def test_localization_is_the_mean_over_sides_and_uses_reg_max():
    logits = np.concatenate([_side([1.0]), _side([1 / 16] * 16)], axis=0)  # boxes: sharp, flat
    mixed = logits[:1].copy()
    mixed[0, 2:] = logits[1, 2:]  # two sharp sides, two flat ones
    np.testing.assert_allclose(localization(np.concatenate([logits, mixed])), [0.0, 1.0, 0.5], atol=1e-9)
    # 8 bins: half/half is ln 2 / ln 8 = 1/3
    assert localization(_side([0.5, 0.5], bins=8))[0] == pytest.approx(1 / 3, abs=1e-9)


# A combined measure: weights are normalised to sum to 1, so {a: 1, b: 1} is the mean.
COMBINED = [
    # spec, s, dfl probs per side, expected
    ({"binary_entropy": 1, "localization": 1}, (0.3, 0.02, 0.01), [0, 0, 0, 0.5, 0.5], (0.8813 + 0.25) / 2),
    ({"binary_entropy": 3, "localization": 1}, (0.9, 0.05, 0.05), [1.0], 0.75 * 0.4690),
    ({"multilabel_entropy": 2.0, "localization": 2.0}, (0.5, 0.5, 0.5), [1 / 16] * 16, 1.0),
    ({"entropy": 1, "binary_entropy": 1}, (0.9, 0.05, 0.05), [1.0], (0.3590 + 0.4690) / 2),
    ({"binary_entropy": 1, "localization": 0}, (0.6, 0.55, 0.01), [1.0], 0.9710),
]


@pytest.mark.parametrize("spec, s, side, expected", COMBINED)
def test_combined_measure_worked_values(spec, s, side, expected):
    got = box_scores(np.array([s]), spec, dfl=_side(side))
    assert got[0] == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    "spec, expected, error",
    [
        ("margin", {"margin": 1.0}, None),
        ({"binary_entropy": 1, "localization": 3}, {"binary_entropy": 0.25, "localization": 0.75}, None),
        ({"binary_entropy": 2, "margin": 0}, {"binary_entropy": 1.0}, None),
        ("variance", None, "measure must be one of"),
        ({"binary_entropy": -1}, None, "must be >= 0"),
        ({"binary_entropy": 0}, None, "at least one weight"),
        ({"binary_entropy": True}, None, "finite number"),
        ({"binary_entropy": float("nan")}, None, "finite number"),
        ({}, None, "empty mapping"),
        (["entropy"], None, "name or a mapping"),
    ],
)
def test_measure_weights_table(spec, expected, error):
    if error:
        with pytest.raises(ConfigError, match=error):
            measure_weights(spec)
    else:
        assert measure_weights(spec) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text, expected, error",
    [
        ("binary_entropy", "binary_entropy", None),
        ("binary_entropy=1,localization=1", {"binary_entropy": 1.0, "localization": 1.0}, None),
        ("binary_entropy=2, localization", {"binary_entropy": 2.0, "localization": 1.0}, None),
        ("binary_entropy=x", None, "not a number"),
        ("binary_entropy=1,binary_entropy=2", None, "twice"),
        ("bogus=1", None, "measure must be one of"),
        ("=1", None, "empty measure name"),
    ],
)
def test_parse_measure_table(text, expected, error):
    if error:
        with pytest.raises(ConfigError, match=error):
            parse_measure(text)
    else:
        assert parse_measure(text) == expected


def test_localization_without_dfl_is_a_model_error():
    with pytest.raises(ModelError, match="DFL"):
        box_scores(np.array([[0.5, 0.5]]), "localization")
    with pytest.raises(ModelError, match="reg_max 1"):
        localization(np.zeros((2, 4, 1)))
    with pytest.raises(DataError, match="shape"):
        localization(np.zeros((2, 3, 16)))
    assert needs_dfl({"binary_entropy": 1, "localization": 1}) and not needs_dfl("binary_entropy")


@pytest.mark.parametrize("measure", ["binary_entropy", "multilabel_entropy"])
def test_sigmoid_measures_reject_scores_above_one(measure):
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        box_scores(np.array([[1.2, 0.1]]), measure)


# Class difficulty: w_c = 1 + beta * (1 - AP_c); a class without val instances gets 1 + beta.
CLASS_WEIGHTS = [
    # per-class AP,               n, beta, expected,                 error
    ((0.8, 0.2, None), 3, 1.0, (1.2, 1.8, 2.0), None),
    ((0.8, 0.2, None), 3, 0.5, (1.1, 1.4, 1.5), None),
    ((1.0, 0.0), 2, 2.0, (1.0, 3.0), None),
    ((0.3, 0.6), 2, 0.0, (1.0, 1.0), None),
    (None, 3, 1.0, (1.0, 1.0, 1.0), None),  # no evaluation yet: no weighting
    ((0.5,), 2, 1.0, None, DataError),  # stale record for another class count
    ((0.5, 1.5), 2, 1.0, None, DataError),
    ((0.5, 0.5), 2, -1.0, None, ConfigError),
]


@pytest.mark.parametrize("aps, n, beta, expected, error", CLASS_WEIGHTS)
def test_class_weights_table(aps, n, beta, expected, error):
    if error:
        with pytest.raises(error):
            class_weights(aps, n, beta)
    else:
        np.testing.assert_allclose(class_weights(aps, n, beta), expected, atol=1e-12)


def test_class_weights_from_a_hand_made_metrics_record():
    from detal.adapter import Metrics

    record = Metrics(map50=0.7, map50_95=0.45, per_class=[0.6, None, 0.3, 0.45])  # list as read from JSON
    assert record.per_class == (0.6, None, 0.3, 0.45)
    np.testing.assert_allclose(class_weights(record.per_class, 4, 1.0), [1.4, 2.0, 1.7, 1.55])


sigmoid_rows = st.integers(1, 12).flatmap(
    lambda c: arrays(
        np.float64,
        st.tuples(st.integers(1, 20), st.just(c)),
        elements=st.floats(0, 1, allow_nan=False, width=32),
    )
)
dfl_logits = st.integers(2, 20).flatmap(
    lambda r: arrays(
        np.float64,
        st.tuples(st.integers(1, 8), st.just(4), st.just(r)),
        elements=st.floats(-60, 60, allow_nan=False, width=32),
    )
)


@given(sigmoid_rows)
def test_sigmoid_measures_lie_in_unit_interval(s):
    for measure in ("binary_entropy", "multilabel_entropy"):
        v = box_scores(s, measure)
        assert v.shape == (s.shape[0],)
        assert np.all((v >= 0) & (v <= 1))


@given(st.floats(0, 1, allow_nan=False))
def test_binary_entropy_is_symmetric_and_peaks_at_one_half(s):
    here, mirror = binary_entropy(np.array([[s]]))[0], binary_entropy(np.array([[1 - s]]))[0]
    assert here == pytest.approx(mirror, abs=1e-9)
    assert here <= binary_entropy(np.array([[0.5]]))[0] == 1.0


@given(st.floats(0, 0.5, allow_nan=False), st.floats(0, 0.5, allow_nan=False))
def test_binary_entropy_grows_towards_one_half(a, b):
    lo, hi = min(a, b), max(a, b)
    assert binary_entropy(np.array([[lo]]))[0] <= binary_entropy(np.array([[hi]]))[0] + 1e-12


@given(sigmoid_rows, st.randoms(use_true_random=False))
def test_multilabel_entropy_ignores_class_order(s, pyrandom):
    perm = list(range(s.shape[1]))
    pyrandom.shuffle(perm)
    np.testing.assert_allclose(multilabel_entropy(s), multilabel_entropy(s[:, perm]), atol=1e-12)
    np.testing.assert_allclose(binary_entropy(s), binary_entropy(s[:, perm]), atol=1e-12)


@given(dfl_logits)
def test_localization_lies_in_unit_interval(x):
    v = localization(x)
    assert v.shape == (x.shape[0],)
    assert np.all((v >= 0) & (v <= 1))


@given(st.integers(2, 32), st.integers(0, 31), st.floats(-50, 50, allow_nan=False))
def test_localization_is_zero_for_one_hot_and_one_for_uniform(bins, hot, level):
    hot = hot % bins
    one_hot = np.full((1, 4, bins), -1e4)
    one_hot[..., hot] = 0.0
    assert localization(one_hot)[0] == pytest.approx(0.0, abs=1e-12)
    assert localization(np.full((1, 4, bins), level))[0] == pytest.approx(1.0, abs=1e-12)


@given(sigmoid_rows, st.floats(0, 5, allow_nan=False), st.floats(0.01, 5, allow_nan=False))
def test_a_mix_lies_between_its_parts(s, wa, wb):
    spec = {"binary_entropy": wa, "multilabel_entropy": wb}
    mix = box_scores(s, spec)
    a, b = binary_entropy(s), multilabel_entropy(s)
    assert np.all(mix >= np.minimum(a, b) - 1e-12) and np.all(mix <= np.maximum(a, b) + 1e-12)
    np.testing.assert_allclose(box_scores(s, {k: 3 * v for k, v in spec.items()}), mix, atol=1e-12)
