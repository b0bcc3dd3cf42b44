"""The SQLite project store: schema, pool round trip, atomic transactions."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from detal.adapter import Metrics
from detal.errors import StateError
from detal.pool import Pool, Status
from detal.store import Store


def _rows(n):
    return [(i, f"images/im{i}.png", f"im{i}", f"{i:064x}", 8, 6, "unlabeled") for i in range(n)]


@pytest.fixture
def store(tmp_path):
    s = Store.create(tmp_path / "detal.db")
    with s.transaction():
        s.add_images(_rows(12))
    yield s
    s.close()


def test_new_store_is_wal_and_versioned(tmp_path, store):
    assert store.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.get_meta("schema_version") == 1
    assert store.integrity_check() == "ok"
    with pytest.raises(StateError, match="already exists"):
        Store.create(tmp_path / "detal.db")


def test_open_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(StateError, match="no project database"):
        Store.open(tmp_path / "nope.db")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match="not a detal project database"):
        Store.open(junk)


def test_pool_round_trip(store):
    pool = store.load_pool()
    assert len(pool) == 12 and pool.count(Status.UNLABELED) == 12
    pool.select([3, 5, 7], cycle=0)
    pool.label([1], cycle=0)
    with store.transaction():
        store.save_pool(pool, [1, 3, 5, 7])
    again = store.load_pool()
    assert again == pool
    assert again.selected_cycle_of(5) == 0 and again.labeled_cycle_of(1) == 0
    assert store.status_counts() == {"unlabeled": 8, "selected": 3, "labeled": 1, "val": 0}


def test_save_whole_pool(store):
    pool = store.load_pool()
    pool.label(np.arange(12), cycle=2)
    with store.transaction():
        store.save_pool(pool)
    assert store.load_pool().count(Status.LABELED) == 12


def test_failed_transaction_changes_nothing(store):
    before = store.load_pool()
    pool = store.load_pool()
    pool.select([0, 1], cycle=1)
    with pytest.raises(RuntimeError), store.transaction():
        store.save_pool(pool, [0, 1])
        store.start_cycle(1, {"seed": 0})
        raise RuntimeError("killed half way")
    assert store.load_pool() == before
    assert store.cycles() == []


def test_duplicate_key_is_rejected_by_the_schema(store):
    with pytest.raises(sqlite3.IntegrityError), store.transaction():
        store.add_images([(99, "images/other.png", "im3", "0" * 64, 8, 6, "unlabeled")])


def test_bad_status_is_rejected_by_the_schema(store):
    with pytest.raises(sqlite3.IntegrityError), store.transaction():
        store.add_images([(99, "images/x.png", "x", "0" * 64, 8, 6, "lost")])


def test_cycle_rows_and_scores(store):
    with store.transaction():
        store.start_cycle(1, {"seed": 3})
        store.update_cycle(1, state="trained", weights="cycles/1/w.pt", metrics=Metrics(0.5, 0.25),
                           n_train=4, timings={"train_s": 1.5})
        store.add_scores(1, [(2, 0.9, 3, 1), (4, 0.1, 0, None)])
    row = store.last_cycle()
    assert (row.id, row.state, row.weights, row.n_train) == (1, "trained", "cycles/1/w.pt", 4)
    assert row.metrics == Metrics(0.5, 0.25) and row.config == {"seed": 3}
    assert store.scores(1) == {2: (0.9, 3, 1), 4: (0.1, 0, None)}
    with pytest.raises(ValueError, match="unknown cycle state"):
        store.update_cycle(1, state="halfway")
    with pytest.raises(sqlite3.IntegrityError), store.transaction():
        store.add_scores(7, [(2, 0.5, 1, 0)])  # no cycle 7


def test_typed_rows_keep_the_stored_format(store):
    # Metrics and ScoreRow are how rows come back; on disk they are the JSON and columns of before.
    with store.transaction():
        store.start_cycle(1, {})
        store.update_cycle(1, metrics=Metrics(0.5, 0.25, (0.1, None)))
        store.add_scores(1, [(2, 0.9, 3, 1)])
    raw = store.execute("SELECT metrics FROM cycles WHERE id = 1").fetchone()[0]
    assert raw == '{"map50": 0.5, "map50_95": 0.25, "per_class": [0.1, null]}'
    assert store.cycle(1).metrics.per_class == (0.1, None)
    row = store.scores(1)[2]
    assert (row.score, row.n_boxes, row.top_class) == (0.9, 3, 1)


def test_duplicates_grouped_by_hash(tmp_path):
    s = Store.create(tmp_path / "d.db")
    rows = _rows(4)
    rows[3] = (3, "images/im3.png", "im3", rows[1][3], 8, 6, "unlabeled")
    with s.transaction():
        s.add_images(rows)
    assert s.duplicates() == [["images/im1.png", "images/im3.png"]]
    s.close()


def test_store_pool_matches_pool_state_dict(store):
    pool = store.load_pool()
    assert Pool.from_state_dict(pool.state_dict()) == pool


def test_images_filtered_by_selected_cycle(store):
    pool = store.load_pool()
    pool.select([2, 9], cycle=3)
    with store.transaction():
        store.save_pool(pool, [2, 9])
    assert [r.id for r in store.images(selected_cycle=3)] == [2, 9]
    assert [r.id for r in store.images(ids=[9, 2])] == [2, 9]
    assert len(store.images(status="unlabeled")) == 10


# -- corrections: what correcting each returned image took ------------------------------
def _correction(image_id, cycle=1, **counts):
    from detal.store import CorrectionRow

    c = {"verified": 0, "adjusted": 0, "relabeled": 0, "deleted": 0, "drawn": 0, **counts}
    shipped = c["verified"] + c["adjusted"] + c["relabeled"] + c["deleted"]
    returned = c["verified"] + c["adjusted"] + c["relabeled"] + c["drawn"]
    return CorrectionRow(image_id, cycle, shipped > 0, shipped, returned, **c)


def _labeled(store, ids, cycle=1):
    pool = store.load_pool()
    pool.select(ids, cycle)
    pool.label(ids, cycle)
    with store.transaction():
        store.save_pool(pool, ids)


def test_correction_rows_round_trip_and_replace(store):
    from detal.store import ShippedBoxRow

    _labeled(store, [2, 5])
    with store.transaction():
        store.record_corrections([_correction(2, verified=1, deleted=1), _correction(5, drawn=3)],
                                 [ShippedBoxRow(2, 0, 1, 0.9, "verified", 0.8),
                                  ShippedBoxRow(2, 1, 0, None, "deleted", 0.0)])
    assert [r.counts() for r in store.corrections(1)] == [
        {"verified": 1, "adjusted": 0, "relabeled": 0, "deleted": 1, "drawn": 0},
        {"verified": 0, "adjusted": 0, "relabeled": 0, "deleted": 0, "drawn": 3}]
    assert store.corrections(2) == []
    assert [r.prelabeled for r in store.corrections()] == [True, False]
    assert store.shipped_boxes(1) == [ShippedBoxRow(2, 0, 1, 0.9, "verified", 0.8),
                                      ShippedBoxRow(2, 1, 0, None, "deleted", 0.0)]
    # written again (an --overwrite import): the image's rows are replaced, not added
    with store.transaction():
        store.record_corrections([_correction(2, adjusted=1)], [ShippedBoxRow(2, 0, 1, 0.9, "adjusted", 0.6)])
    assert [(r.image_id, r.adjusted, r.verified) for r in store.corrections(1)] == [(2, 1, 0), (5, 0, 0)]
    assert store.shipped_boxes(1) == [ShippedBoxRow(2, 0, 1, 0.9, "adjusted", 0.6)]


def test_uncorrected_lists_labeled_batch_images_without_a_row(store):
    _labeled(store, [1, 3, 4])
    with store.transaction():
        store.record_corrections([_correction(3, drawn=1)], [])
    assert [r.id for r in store.uncorrected()] == [1, 4]
    assert [r.id for r in store.uncorrected(exclude=[4])] == [1]


@pytest.mark.parametrize("bad", [{"drawn": -1}, {"prelabeled": 2}])
def test_bad_correction_is_rejected_by_the_schema(store, bad):
    from dataclasses import replace

    _labeled(store, [1])
    row = replace(_correction(1, drawn=1), **bad)
    with pytest.raises(sqlite3.IntegrityError), store.transaction():
        store.record_corrections([row], [])
    assert store.corrections() == []


def test_an_old_database_gains_the_correction_tables(tmp_path):
    """A database made before the tables existed: read-only it has no rows; opened to write, it gains them."""
    path = tmp_path / "detal.db"
    s = Store.create(path)
    with s.transaction():
        s.add_images(_rows(3))
    s.execute("DROP TABLE shipped_boxes")
    s.execute("DROP TABLE corrections")
    s.close()
    with Store.open(path, readonly=True) as ro:
        assert ro.corrections() == [] and ro.shipped_boxes(1) == [] and ro.uncorrected() == []
        assert ro.image_count() == 3
    conn = sqlite3.connect(path)
    assert "corrections" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}  # read-only wrote nothing
    conn.close()
    with Store.open(path) as rw:
        _labeled(rw, [0])
        with rw.transaction():
            rw.record_corrections([_correction(0, drawn=2)], [])
        assert [r.drawn for r in rw.corrections(1)] == [2]
        assert rw.integrity_check() == "ok"
