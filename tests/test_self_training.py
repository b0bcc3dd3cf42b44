"""Self-training's rules: the sample, the ambiguous-image rule, the calibrated threshold, the real share."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from detal.self_training import (
    calibrate_threshold,
    cover,
    plan_student,
    pseudo_label,
    pseudo_sample,
    repeat_for_share,
)

# A hand-made corrected batch: confidences (descending) and whether each box matched a returned box
CONF = [0.95, 0.90, 0.85, 0.80, 0.70, 0.60, 0.55, 0.40, 0.30]
OK = [True, True, True, True, False, True, True, False, False]
# precision of "confidence >= c" at each box:  1, 1, 1, 1, 4/5, 5/6, 6/7, 6/8, 6/9


@pytest.mark.parametrize(
    ("conf", "ok", "kwargs", "threshold", "how", "precision"),
    [
        (CONF, OK, {"target": 0.95}, 0.80, "calibrated", 1.0),
        (CONF, OK, {"target": 0.85}, 0.55, "calibrated", 6 / 7),  # lowest reaching it, not the first dip
        (CONF, OK, {"target": 0.80}, 0.55, "calibrated", 6 / 7),  # 0.70 reaches 0.8 too, 0.55 is lower
        (CONF, OK, {"target": 0.60}, 0.50, "clamped-low", 6 / 7),  # 0.30 reaches it: clamped up to lo
        (CONF, OK, {"target": 0.95, "hi": 0.75}, 0.75, "clamped-high", 1.0),
        ([0.9, 0.8, 0.7], [False, True, True], {"target": 0.95, "min_boxes": 3}, 0.9, "unreached", 0.0),
        (CONF, OK, {"min_boxes": 10, "fallback": 0.8}, 0.8, "fallback", None),  # 9 boxes < 10
        ([], [], {}, 0.8, "fallback", None),  # before any corrected batch
    ],
)
def test_calibrate_threshold_by_hand(conf, ok, kwargs, threshold, how, precision):
    kwargs = {"min_boxes": 5, **kwargs}
    c = calibrate_threshold(conf, ok, **kwargs)
    assert c.threshold == pytest.approx(threshold) and c.how == how
    assert (c.precision is None) if precision is None else c.precision == pytest.approx(precision)
    assert c.boxes == len(conf)


def test_calibration_ignores_the_order_of_boxes_and_judges_ties_together():
    rng = np.random.default_rng(0)
    order = rng.permutation(len(CONF))
    a = calibrate_threshold(np.asarray(CONF)[order], np.asarray(OK)[order], min_boxes=5)
    assert a == calibrate_threshold(CONF, OK, min_boxes=5)
    # two boxes at 0.8, one wrong: ">= 0.8" holds both, 5 of 6 correct, so 0.8 does not reach 0.95
    tie = calibrate_threshold([0.95, 0.9, 0.85, 0.8, 0.8, 0.3], [True, True, True, True, False, False],
                              min_boxes=5, lo=0.1)
    assert tie.threshold == pytest.approx(0.85) and tie.precision == 1.0


@pytest.mark.parametrize(
    ("conf", "kept", "reason"),
    [
        ([0.9, 0.85], (0, 1), "kept"),
        ([0.9, 0.05], (0,), "kept"),  # below t_low: background to the teacher
        ([0.9, 0.5], (), "ambiguous"),  # one box in [t_low, t_high): the whole image is left out
        ([0.3], (), "ambiguous"),  # t_low itself is ambiguous
        ([0.05, 0.1], (), "empty"),
        ([], (), "empty"),
        ([0.8], (0,), "kept"),  # t_high itself is kept
    ],
)
def test_pseudo_label_rule(conf, kept, reason):
    v = pseudo_label(np.asarray(conf), t_high=0.8, t_low=0.3)
    assert v.kept == kept and v.reason == reason and v.used == (reason == "kept")


# boxes for the mask rule: a kept box at the left, others placed against it
_KEPT = [0, 0, 10, 10]


@pytest.mark.parametrize(
    ("conf", "boxes", "kept", "masked", "reason"),
    [
        ([0.9, 0.5], [_KEPT, [50, 50, 60, 60]], (0,), (1,), "kept"),  # far apart: painted over, image kept
        ([0.9, 0.5], [_KEPT, [8, 0, 18, 10]], (0,), (1,), "kept"),  # covers 20% of the kept box: allowed
        ([0.9, 0.5], [_KEPT, [7, 0, 17, 10]], (), (), "ambiguous"),  # 30%: it would hide what is taught
        ([0.9, 0.5, 0.4], [_KEPT, [8, 0, 18, 5], [8, 5, 18, 10]], (0,), (1, 2), "kept"),  # 10% + 10%
        ([0.9, 0.5, 0.4], [_KEPT, [7, 0, 17, 5], [8, 0, 18, 10]], (), (), "ambiguous"),  # union 25%, not 35%
        ([0.5, 0.4], [_KEPT, [50, 50, 60, 60]], (), (), "ambiguous"),  # nothing kept: left out as before
        ([0.9, 0.05], [_KEPT, [0, 0, 10, 10]], (0,), (), "kept"),  # below t_low: not painted
        ([0.05], [_KEPT], (), (), "empty"),
    ],
)
def test_pseudo_label_mask_rule(conf, boxes, kept, masked, reason):
    v = pseudo_label(np.asarray(conf), t_high=0.8, t_low=0.3, xyxy=np.asarray(boxes, dtype=float),
                     ambiguous="mask", max_cover=0.2)
    assert (v.kept, v.masked, v.reason) == (kept, masked, reason)
    drop = pseudo_label(np.asarray(conf), t_high=0.8, t_low=0.3)  # the method's rule on the same boxes
    assert drop.masked == () and (drop.used == (reason == "kept" and not masked))


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([[0, 0, 5, 10]], [[0, 0, 10, 10]], [0.5]),
        ([[0, 0, 5, 10], [3, 0, 8, 10]], [[0, 0, 10, 10]], [0.8]),  # overlapping: the union, not the sum
        ([[-5, -5, 20, 20]], [[0, 0, 10, 10]], [1.0]),
        ([[20, 20, 30, 30]], [[0, 0, 10, 10], [20, 20, 40, 40]], [0.0, 0.25]),
        ([], [[0, 0, 10, 10]], [0.0]),
        ([[0, 0, 5, 5]], [[3, 3, 3, 9]], [0.0]),  # an empty box is covered by nothing
    ],
)
def test_cover_is_the_union_share(a, b, expected):
    assert cover(np.asarray(a, dtype=float).reshape(-1, 4), np.asarray(b, dtype=float)) == pytest.approx(expected)


def test_pseudo_label_mask_needs_boxes_and_a_known_rule():
    with pytest.raises(ValueError, match="xyxy"):
        pseudo_label(np.asarray([0.9, 0.5]), t_high=0.8, t_low=0.3, ambiguous="mask")
    with pytest.raises(ValueError, match="ambiguous must be one of"):
        pseudo_label(np.asarray([0.9]), t_high=0.8, t_low=0.3, ambiguous="blur")


def test_pseudo_label_refuses_crossed_thresholds():
    with pytest.raises(ValueError, match="t_low"):
        pseudo_label(np.asarray([0.5]), t_high=0.3, t_low=0.6)


def test_pseudo_sample_is_seeded_capped_and_order_free():
    ids = list(range(100, 0, -1))
    a = pseudo_sample(ids, 10, np.random.default_rng([3, 2]))
    b = pseudo_sample(sorted(ids), 10, np.random.default_rng([3, 2]))
    assert a == b and len(a) == 10 and a == sorted(set(a)) and set(a) <= set(ids)
    assert a != pseudo_sample(ids, 10, np.random.default_rng([4, 2]))
    assert pseudo_sample(ids, None, np.random.default_rng(0)) == sorted(ids)
    assert pseudo_sample(ids, 1000, np.random.default_rng(0)) == sorted(ids)
    assert pseudo_sample(ids, 0, np.random.default_rng(0)) == []


@given(st.integers(1, 500), st.integers(0, 5000), st.floats(0.0, 0.95))
def test_real_images_are_at_least_their_share(n_real, n_pseudo, share):
    r = repeat_for_share(n_real, n_pseudo, share)
    assert r >= 1
    assert r * n_real / (r * n_real + n_pseudo) >= share - 1e-12
    if r > 1:  # and it is the smallest such repeat
        assert (r - 1) * n_real / ((r - 1) * n_real + n_pseudo) < share


def test_real_share_by_hand():
    assert repeat_for_share(20, 280, 0.5) == 14  # 280 real lines against 280 pseudo
    assert repeat_for_share(20, 10, 0.5) == 1
    assert repeat_for_share(20, 0, 0.5) == 1
    with pytest.raises(ValueError, match="real_share"):
        repeat_for_share(20, 10, 1.0)


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        (["self_training.t_hihg=0.5"], "did you mean 't_high'"),
        (["self_training.enabled=yes please"], "self_training.enabled must be true or false"),
        (["self_training.teacher=ema"], "self_training.teacher must be one of supervised, previous"),
        (["self_training.t_low=0.95"], "t_low (0.95) must not exceed the high threshold"),
        (["self_training.t_min=0.9", "self_training.t_max=0.6"], "t_min (0.9) exceeds t_max (0.6)"),
        (["self_training.real_share=1.0"], "self_training.real_share must be a number in [0, 0.99]"),
        (["self_training.max_pseudo_images=-1"], "self_training.max_pseudo_images must be an integer"),
        (["self_training.t_high=.nan"], "self_training.t_high must be a finite number"),
        (["self_training.t_high=1.5"], "self_training.t_high must be a number in [0, 1] or null"),
    ],
)
def test_bad_self_training_config_is_one_clear_error(overrides, error):
    from detal.config import load_config
    from detal.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        load_config(None, overrides)
    assert error in str(exc.value)


def test_self_training_keys_merge_over_the_defaults(tmp_path):
    from detal.config import SELF_TRAINING, load_config

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("self_training:\n  enabled: false\n  t_low: 0.2\n")
    cfg = load_config(cfg_file, ["self_training.real_share=0.7"])
    assert cfg.self_training == {**SELF_TRAINING, "enabled": False, "t_low": 0.2, "real_share": 0.7}
    assert load_config().self_training == SELF_TRAINING and SELF_TRAINING["enabled"] is True


def test_real_share_repeat_is_the_smallest_at_an_exact_boundary():
    # 0.8 * 1532 / 0.2 is 6128 in exact arithmetic and 6128.000000000001 in floats (found by Hypothesis)
    assert repeat_for_share(1, 1532, 0.8) == 6128


@pytest.mark.parametrize(
    ("budget", "n_real", "n_pseudo", "share", "plan"),
    [
        # round 3's digits-hard cycle at 80 labeled (600 steps of 16): 80 x 38 + 760 = 3,800 entries,
        # 238 steps an epoch, would take 3 epochs (714 steps); 3 epochs hold 16 x 200 = 3,200 entries:
        # repeat ceil(0.8 x 3,200 / 80) = 32 (2,560 entries), then 640 pseudo-labeled images
        (600, 80, 760, 0.8, (3, 32, 640)),
        # the default config (20 epochs over 100 human images, 7 steps each: 140): 100 x 80 + 2,000 =
        # 10,000 entries would be 12,500 steps; one epoch holds 2,240: repeat 18 (1,800), 440 pseudo
        (140, 100, 2000, 0.8, (1, 18, 440)),
        # a list the budget holds is left whole: 20 x 2 + 28 = 68 entries, 5 steps an epoch, 120 epochs
        (600, 20, 28, 0.5, (120, 2, 28)),
        (600, 50, 0, 0.8, (150, 1, 0)),  # no pseudo-labeled images: a plain cycle's list and epochs
        # a budget below one pass over the human images: each once, no pseudo-labeled image
        (2, 100, 50, 0.8, (1, 1, 0)),
    ],
)
def test_the_student_is_held_to_a_plain_cycles_steps_by_hand(budget, n_real, n_pseudo, share, plan):
    got = plan_student(budget, n_real, n_pseudo, share, batch=16)
    assert (got.epochs, got.repeat, got.n_pseudo) == plan


@given(st.integers(1, 300), st.integers(1, 400), st.integers(0, 3000), st.sampled_from([0.0, 0.3, 0.5, 0.8, 0.95]),
       st.integers(1, 64))
def test_the_student_never_trains_more_than_the_budget_and_keeps_the_share(epochs, n_real, n_pseudo, share, batch):
    budget = epochs * -(-n_real // batch)  # what a plain cycle trains: whole epochs over the human images
    plan = plan_student(budget, n_real, n_pseudo, share, batch)
    steps = plan.steps(n_real, batch)
    assert steps <= budget
    assert 0 <= plan.n_pseudo <= n_pseudo and plan.repeat >= 1 and plan.epochs >= 1
    if plan.n_pseudo:
        assert plan.repeat * n_real / (plan.repeat * n_real + plan.n_pseudo) >= share
