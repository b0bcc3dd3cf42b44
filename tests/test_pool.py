"""Pool state: transitions, counts and persistence."""

from __future__ import annotations

import pytest

from detal.errors import StateError
from detal.pool import Pool, Status


def make_pool() -> Pool:
    return Pool([10, 2, 7, 4, 99], ["unlabeled", "unlabeled", "val", "unlabeled", "unlabeled"])


def test_counts_exclude_validation():
    pool = make_pool()
    assert len(pool) == 5 and pool.size == 4
    assert pool.unlabeled_ids().tolist() == [2, 4, 10, 99]
    assert pool.labeled_fraction == 0.0


def test_transitions_record_cycles():
    pool = make_pool()
    pool.label([2], cycle=0)
    pool.select([4, 10], cycle=1)
    pool.label([4], cycle=1)
    assert pool.status_of(2) is Status.LABELED and pool.labeled_cycle_of(2) == 0
    assert pool.status_of(4) is Status.LABELED and pool.selected_cycle_of(4) == 1
    assert pool.status_of(10) is Status.SELECTED and pool.labeled_cycle_of(10) == -1
    assert pool.labeled_fraction == 0.5
    pool.unselect([10])
    assert pool.status_of(10) is Status.UNLABELED and pool.selected_cycle_of(10) == -1


@pytest.mark.parametrize(
    "action, match",
    [
        (lambda p: p.select([7], 1), r"cannot select image\(s\) 7 \(val\)"),
        (lambda p: p.label([7], 1), "cannot label"),
        (lambda p: p.select([5], 1), "unknown image id"),
        (lambda p: p.select([2, 2], 1), "appears twice"),
        (lambda p: p.unselect([2]), "cannot unselect"),
        (lambda p: (p.label([2], 0), p.select([2], 1)), r"2 \(labeled\)"),
        (lambda p: (p.label([2], 0), p.label([2], 1)), "cannot label"),
    ],
)
def test_illegal_transitions(action, match):
    pool = make_pool()
    with pytest.raises(StateError, match=match):
        action(pool)


def test_failed_transition_changes_nothing():
    pool = make_pool()
    before = pool.state_dict()
    with pytest.raises(StateError):
        pool.select([2, 7], 1)  # 7 is val: the whole call is refused
    assert pool.state_dict() == before


def test_state_dict_round_trip():
    pool = make_pool()
    pool.label([2], 0)
    pool.select([99], 1)
    again = Pool.from_state_dict(pool.state_dict())
    assert again == pool
    assert again.selected_cycle_of(99) == 1
    with pytest.raises(StateError, match="damaged"):
        Pool.from_state_dict({"ids": [1]})
    with pytest.raises(StateError, match="unique"):
        Pool([1, 1])


def test_unknown_status_and_array_inputs():
    import numpy as np

    with pytest.raises(StateError, match="unknown image status 'done'"):
        Pool([1, 2], ["unlabeled", "done"])
    pool = Pool(np.array([3, 1]), np.array(["labeled", "unlabeled"]), np.array([-1, -1]), np.array([0, -1]))
    assert pool.labeled_ids().tolist() == [3] and pool.labeled_cycle_of(3) == 0


def test_rows_of_matches_per_id_queries():
    pool = make_pool()
    pool.label([2], 0)
    pool.select([99, 4], 1)
    ids = [99, 2, 10, 7]
    status, sel, lab = pool.rows_of(ids)
    assert status == [pool.status_of(i).value for i in ids]
    assert sel.tolist() == [pool.selected_cycle_of(i) for i in ids]
    assert lab.tolist() == [pool.labeled_cycle_of(i) for i in ids]
    with pytest.raises(StateError, match="unknown image id"):
        pool.rows_of([5])
