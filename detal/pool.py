"""The pool state: which image is unlabeled, selected, labeled or held out.

:class:`Pool` is the one object that owns that state, for the project store
(``detal.store`` persists it in SQLite) and for the simulation (which saves
:meth:`Pool.state_dict` after every cycle). Images are keyed by stable integer
ids, one index space only. For every image it records the cycle in which it
was selected and the cycle in which it was labeled (``-1``: never; cycle 0 is
the initial batch).

Transitions::

    unlabeled --select--> selected --label--> labeled
    unlabeled ---------------label---------> labeled   (initial random set, existing labels)
    val                                                 (never changes)

Fractions are of the pool size ``T``: every image that is not ``val``.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import Any

import numpy as np

from detal.errors import StateError, unknown

__all__ = ["Pool", "Status"]


class Status(str, Enum):
    UNLABELED = "unlabeled"
    SELECTED = "selected"
    LABELED = "labeled"
    VAL = "val"


_CODES = {s: i for i, s in enumerate(Status)}
_NAMES = list(Status)


class Pool:
    def __init__(
        self,
        ids: Iterable[int],
        status: Iterable[str | Status] | None = None,
        selected_cycle: Iterable[int] | None = None,
        labeled_cycle: Iterable[int] | None = None,
    ) -> None:
        ids_arr = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids), dtype=np.int64)
        if ids_arr.ndim != 1:
            raise StateError("pool ids must be a flat list")
        order = np.argsort(ids_arr, kind="stable")
        if np.any(ids_arr[order][1:] == ids_arr[order][:-1]):
            raise StateError("pool ids must be unique")
        self._ids = ids_arr[order]
        n = self._ids.size
        if status is None:
            codes = np.zeros(n, dtype=np.int8)
        else:
            lookup = {**{s.value: c for s, c in _CODES.items()}, **_CODES}
            try:
                codes = np.fromiter((lookup[s] for s in status), dtype=np.int8)
            except KeyError as exc:
                raise StateError(unknown("image status", exc.args[0], [s.value for s in _CODES])) from None
            if codes.size != n:
                raise StateError(f"pool has {n} ids but {codes.size} statuses")
            codes = codes[order]
        self._status = codes
        self._selected = self._cycles(selected_cycle, n, order)
        self._labeled = self._cycles(labeled_cycle, n, order)

    @staticmethod
    def _cycles(values: Iterable[int] | None, n: int, order: np.ndarray) -> np.ndarray:
        if values is None:
            return np.full(n, -1, dtype=np.int64)
        arr = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=np.int64)
        if arr.size != n:
            raise StateError(f"pool has {n} ids but {arr.size} cycle entries")
        return arr[order]

    # -- queries ----------------------------------------------------------------
    @property
    def ids(self) -> np.ndarray:
        return self._ids.copy()

    def __len__(self) -> int:
        return int(self._ids.size)

    @property
    def size(self) -> int:
        """``T``: the number of pool images (validation excluded)."""
        return int(np.count_nonzero(self._status != _CODES[Status.VAL]))

    def ids_with(self, status: Status | str) -> np.ndarray:
        return self._ids[self._status == _CODES[Status(status)]]

    def count(self, status: Status | str) -> int:
        return int(np.count_nonzero(self._status == _CODES[Status(status)]))

    def unlabeled_ids(self) -> np.ndarray:
        return self.ids_with(Status.UNLABELED)

    def labeled_ids(self) -> np.ndarray:
        return self.ids_with(Status.LABELED)

    @property
    def labeled_fraction(self) -> float:
        return self.count(Status.LABELED) / self.size if self.size else 0.0

    def status_of(self, image_id: int) -> Status:
        return _NAMES[self._status[self._index([image_id])[0]]]

    def selected_cycle_of(self, image_id: int) -> int:
        return int(self._selected[self._index([image_id])[0]])

    def labeled_cycle_of(self, image_id: int) -> int:
        return int(self._labeled[self._index([image_id])[0]])

    def rows_of(self, ids: Iterable[int]) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Status names, selected cycles and labeled cycles of ``ids``, in their order (one lookup)."""
        pos = self._index(ids)
        return [_NAMES[c].value for c in self._status[pos]], self._selected[pos], self._labeled[pos]

    # -- transitions --------------------------------------------------------------
    def _index(self, ids: Iterable[int]) -> np.ndarray:
        arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64).reshape(-1)
        ordered = np.sort(arr)
        if np.any(ordered[1:] == ordered[:-1]):
            raise StateError("the same image id appears twice in one transition")
        pos = np.searchsorted(self._ids, arr)
        pos = np.minimum(pos, max(self._ids.size - 1, 0))
        if arr.size and (self._ids.size == 0 or np.any(self._ids[pos] != arr)):
            missing = arr[self._ids[pos] != arr] if self._ids.size else arr
            raise StateError(f"unknown image id(s): {', '.join(map(str, missing[:5]))}")
        return pos

    def _require(self, pos: np.ndarray, allowed: tuple[Status, ...], action: str) -> None:
        ok = np.isin(self._status[pos], [_CODES[s] for s in allowed])
        if not ok.all():
            bad = pos[~ok][:5]
            desc = ", ".join(f"{self._ids[p]} ({_NAMES[self._status[p]].value})" for p in bad)
            raise StateError(f"cannot {action} image(s) {desc}")

    def select(self, ids: Iterable[int], cycle: int) -> None:
        """Mark unlabeled images as selected (sent out for labeling) in ``cycle``."""
        pos = self._index(ids)
        self._require(pos, (Status.UNLABELED,), "select")
        self._status[pos] = _CODES[Status.SELECTED]
        self._selected[pos] = cycle

    def label(self, ids: Iterable[int], cycle: int) -> None:
        """Mark images as labeled in ``cycle``; they must be unlabeled or selected."""
        pos = self._index(ids)
        self._require(pos, (Status.UNLABELED, Status.SELECTED), "label")
        self._status[pos] = _CODES[Status.LABELED]
        self._labeled[pos] = cycle

    def unselect(self, ids: Iterable[int]) -> None:
        """Return selected images to the unlabeled pool (a batch that was withdrawn)."""
        pos = self._index(ids)
        self._require(pos, (Status.SELECTED,), "unselect")
        self._status[pos] = _CODES[Status.UNLABELED]
        self._selected[pos] = -1

    # -- persistence --------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "ids": self._ids.tolist(),
            "status": [_NAMES[c].value for c in self._status],
            "selected_cycle": self._selected.tolist(),
            "labeled_cycle": self._labeled.tolist(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Pool:
        try:
            return cls(state["ids"], state["status"], state["selected_cycle"], state["labeled_cycle"])
        except (KeyError, ValueError, TypeError) as exc:
            raise StateError(f"pool state is damaged ({exc})") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pool):
            return NotImplemented
        return self.state_dict() == other.state_dict()
