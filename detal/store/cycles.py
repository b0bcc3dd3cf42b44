"""The ``cycles`` and ``imports`` tables: the project's history.

A cycle row holds its config snapshot, weights, evaluation (as
:class:`detal.adapter.Metrics`), timings and counts, and moves through
:data:`~detal.store.schema.CYCLE_STATES`. An import row records one
``detal import``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from detal.adapter import Metrics
from detal.errors import StateError
from detal.store.connection import StoreConnection
from detal.store.schema import CYCLE_COLS, CYCLE_STATES

__all__ = ["CycleRow", "CycleTable", "ImportRow"]


@dataclass(frozen=True)
class CycleRow:
    id: int
    state: str
    config: dict
    weights: str | None
    metrics: Metrics | None
    timings: dict
    n_train: int
    n_selected: int
    started_at: float
    finished_at: float | None


class ImportRow(NamedTuple):
    """One ``detal import``: where from, when, and how many labels it added, kept or replaced."""

    id: int
    source: str
    at: float
    n_labeled: int
    n_unchanged: int
    n_overwritten: int


_CYCLE_FIELDS = {"state", "config", "weights", "metrics", "timings", "n_train", "n_selected",
                 "finished_at", "started_at"}


def _cycle_row(row: tuple) -> CycleRow:
    return CycleRow(
        id=row[0],
        state=row[1],
        config=json.loads(row[2]),
        weights=row[3],
        metrics=Metrics(**json.loads(row[4])) if row[4] else None,
        timings=json.loads(row[5]),
        n_train=row[6],
        n_selected=row[7],
        started_at=row[8],
        finished_at=row[9],
    )


class CycleTable(StoreConnection):
    """Reading and writing cycle and import rows (part of :class:`detal.store.Store`)."""

    def start_cycle(self, cycle: int, config: dict) -> None:
        self._conn.execute(
            "INSERT INTO cycles (id, state, config, started_at) VALUES (?, 'started', ?, ?)",
            (cycle, json.dumps(config, sort_keys=True), time.time()),
        )

    def update_cycle(self, cycle: int, **fields: Any) -> None:
        """Set columns of a cycle row; dict values, and ``metrics`` (a :class:`Metrics`), are stored as JSON."""
        unknown = set(fields) - _CYCLE_FIELDS
        if unknown:
            raise ValueError(f"unknown cycle columns {sorted(unknown)}")
        if "state" in fields and fields["state"] not in CYCLE_STATES:
            raise ValueError(f"unknown cycle state {fields['state']!r}")
        sets, params = [], []
        for name, value in fields.items():
            if isinstance(value, Metrics):
                value = asdict(value)
            if isinstance(value, (dict, list)):
                value = json.dumps(value, sort_keys=True)
            sets.append(f"{name} = ?")
            params.append(value)
        params.append(cycle)
        self._conn.execute(f"UPDATE cycles SET {', '.join(sets)} WHERE id = ?", params)

    def _cycle(self, row: tuple) -> CycleRow:
        try:
            return _cycle_row(row)
        except (json.JSONDecodeError, TypeError):
            raise StateError(
                f"{self.path}: damaged project database (cycle {row[0]} holds invalid JSON)"
            ) from None

    def delete_cycle(self, cycle: int) -> None:
        self._conn.execute("DELETE FROM scores WHERE cycle = ?", (cycle,))
        self._conn.execute("DELETE FROM cycles WHERE id = ?", (cycle,))

    def cycles(self) -> list[CycleRow]:
        cur = self._conn.execute(f"SELECT {CYCLE_COLS} FROM cycles ORDER BY id")
        return [self._cycle(r) for r in cur]

    def cycle(self, cycle: int) -> CycleRow | None:
        row = self._conn.execute(f"SELECT {CYCLE_COLS} FROM cycles WHERE id = ?", (cycle,)).fetchone()
        return self._cycle(row) if row else None

    def last_cycle(self) -> CycleRow | None:
        row = self._conn.execute(f"SELECT {CYCLE_COLS} FROM cycles ORDER BY id DESC LIMIT 1").fetchone()
        return self._cycle(row) if row else None

    # -- imports ------------------------------------------------------------------
    def record_import(self, source: str, n_labeled: int, n_unchanged: int, n_overwritten: int) -> None:
        self._conn.execute(
            "INSERT INTO imports (source, at, n_labeled, n_unchanged, n_overwritten) VALUES (?, ?, ?, ?, ?)",
            (source, time.time(), n_labeled, n_unchanged, n_overwritten),
        )

    def imports(self) -> list[ImportRow]:
        cur = self._conn.execute(
            "SELECT id, source, at, n_labeled, n_unchanged, n_overwritten FROM imports ORDER BY id"
        )
        return [ImportRow(*r) for r in cur]
