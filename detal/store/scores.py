"""The ``scores`` table: each cycle's uncertainty score of an image, and its embedding.

A row is ``(image_id, cycle, score, n_boxes, top_class, in_subset, embedding)``;
it is read back as a :class:`ScoreRow`. The embedding is the image's vector
from the scoring pass as little-endian float16 bytes (``NULL`` when none was
computed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from detal.errors import StateError
from detal.store.connection import StoreConnection
from detal.store.schema import ID_CHUNK

__all__ = ["ScoreRow", "ScoreTable"]


class ScoreRow(NamedTuple):
    """An image's score in one cycle, the number of boxes predicted, and the top box's class."""

    score: float
    n_boxes: int
    top_class: int | None


def _embedding_blob(vector: np.ndarray) -> bytes:
    v = np.asarray(vector)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"an embedding must be a non-empty 1-D vector, got shape {v.shape}")
    return v.astype("<f2").tobytes()


class ScoreTable(StoreConnection):
    """Reading and writing score rows (part of :class:`detal.store.Store`)."""

    def add_scores(
        self,
        cycle: int,
        rows: Iterable[tuple[int, float, int, int | None]],
        *,
        in_subset: bool = True,
        embeddings: Sequence[np.ndarray | None] | None = None,
    ) -> None:
        """Record ``(image_id, score, n_boxes, top_class)`` rows for ``cycle``; later rows replace earlier ones.

        ``embeddings``, if given, holds one vector (or ``None``) per row, in
        row order; each is stored as float16.
        """
        rows = list(rows)
        if embeddings is None:
            blobs: list[bytes | None] = [None] * len(rows)
        else:
            embeddings = list(embeddings)
            if len(embeddings) != len(rows):
                raise ValueError(f"{len(embeddings)} embeddings for {len(rows)} score rows")
            blobs = [None if e is None else _embedding_blob(e) for e in embeddings]
        data = [(int(i), cycle, float(s), int(n), None if t is None else int(t), int(in_subset), b)
                for (i, s, n, t), b in zip(rows, blobs)]
        self._conn.executemany(
            "INSERT OR REPLACE INTO scores (image_id, cycle, score, n_boxes, top_class, in_subset, embedding) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            data,
        )

    def embeddings(self, cycle: int, ids: Iterable[int]) -> np.ndarray:
        """The stored embeddings of ``ids`` for ``cycle``, ``(len(ids), d)`` float32, in ``ids`` order.

        Raises :class:`StateError` naming the images that have no score row or
        no embedding in that cycle, or if the vectors differ in length.
        """
        id_list = [int(i) for i in ids]
        found: dict[int, bytes | None] = {}
        for start in range(0, len(id_list), ID_CHUNK):
            part = id_list[start : start + ID_CHUNK]
            marks = ",".join("?" * len(part))
            cur = self._conn.execute(
                f"SELECT image_id, embedding FROM scores WHERE cycle = ? AND image_id IN ({marks})",
                [cycle, *part],
            )
            found.update(cur.fetchall())
        missing = [i for i in id_list if found.get(i) is None]
        if missing:
            shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
            raise StateError(f"cycle {cycle}: no stored embedding for {len(missing)} image(s) (ids {shown})")
        if not id_list:
            return np.zeros((0, 0), np.float32)
        vectors = [np.frombuffer(found[i], dtype="<f2") for i in id_list]
        dims = {v.size for v in vectors}
        if len(dims) != 1:
            raise StateError(f"cycle {cycle}: stored embeddings differ in length ({sorted(dims)})")
        return np.stack(vectors).astype(np.float32)

    def scores(self, cycle: int) -> dict[int, ScoreRow]:
        """``image id -> ScoreRow`` of every image scored in ``cycle``."""
        cur = self._conn.execute(
            "SELECT image_id, score, n_boxes, top_class FROM scores WHERE cycle = ?", (cycle,)
        )
        return {r[0]: ScoreRow(*r[1:]) for r in cur}
