"""The ``images`` table: the image records, their pool state, and the problems found later.

An image's ``status``, ``selected_cycle`` and ``labeled_cycle`` are loaded
into a :class:`detal.pool.Pool` and saved back from it; ``problem`` takes an
image out of the pool for good (:data:`~detal.store.schema.IMAGE_PROBLEMS`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from detal.pool import Pool, Status
from detal.store.connection import StoreConnection
from detal.store.schema import CHUNK, ID_CHUNK, IMAGE_PROBLEMS, IMAGES_INDEXES

__all__ = ["ImageRow", "ImageTable"]


@dataclass(frozen=True)
class ImageRow:
    id: int
    relpath: str
    key: str
    sha256: str
    width: int
    height: int
    status: str
    selected_cycle: int
    labeled_cycle: int
    problem: str | None = None


class ImageTable(StoreConnection):
    """Reading and writing image rows and the pool state (part of :class:`detal.store.Store`)."""

    def add_images(self, rows: Iterable[tuple]) -> int:
        """Insert ``(id, relpath, key, sha256, width, height, status)`` rows in chunks.

        Call inside a transaction. Raises :class:`sqlite3.IntegrityError` on a
        duplicate id, relpath or key; the caller names the offending file.
        """
        n = 0
        chunk: list[tuple] = []
        sql = (
            "INSERT INTO images (id, relpath, key, sha256, width, height, status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        for row in rows:
            chunk.append(row)
            if len(chunk) >= CHUNK:
                self._conn.executemany(sql, chunk)
                n += len(chunk)
                chunk.clear()
        if chunk:
            self._conn.executemany(sql, chunk)
            n += len(chunk)
        return n

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Defer the ``images`` table's secondary indexes (status, content hash) while rows are added.

        Call inside a transaction: the indexes are dropped and made again, from
        every row at once (a sort), at the end of the block, which for a
        million rows costs a third of inserting into them row by row (the
        content hashes arrive in random order). The unique ids, paths and keys
        are checked as each row goes in, as always. Should the block fail, the
        transaction's rollback brings the indexes back with the rows.
        """
        for index in IMAGES_INDEXES:
            name = index.split()[2]  # "CREATE INDEX <name> ON ..."
            self._conn.execute(f"DROP INDEX {name}")
        yield
        for index in IMAGES_INDEXES:
            self._conn.execute(index)

    def image_count(self, status: str | None = None) -> int:
        """Images that can be used (no :data:`IMAGE_PROBLEMS`), all or those with ``status``."""
        if status is None:
            return self._conn.execute(f"SELECT count(*) FROM images WHERE {self._usable}").fetchone()[0]
        return self._conn.execute(
            f"SELECT count(*) FROM images WHERE status = ? AND {self._usable}", (status,)
        ).fetchone()[0]

    def images(
        self, ids: Iterable[int] | None = None, status: str | None = None, selected_cycle: int | None = None
    ) -> list[ImageRow]:
        """Image rows, by id order: all, those with ``ids``, ``status`` or ``selected_cycle``.

        Rows with ``status`` or ``selected_cycle`` are those that can be used:
        an image taken out of the pool (``problem``) is left out. Asked by
        ``ids`` (or for all), every row is returned, its ``problem`` set.
        """
        if ids is None:
            where, params = "", ()
            if status is not None:
                where, params = f"WHERE status = ? AND {self._usable}", (status,)
            elif selected_cycle is not None:
                where, params = f"WHERE selected_cycle = ? AND {self._usable}", (selected_cycle,)
            cur = self._conn.execute(
                f"SELECT {self._cols} FROM images {where} ORDER BY id", params
            )
            return [ImageRow(*r) for r in cur]
        out: list[ImageRow] = []
        id_list = [int(i) for i in ids]
        for start in range(0, len(id_list), ID_CHUNK):
            part = id_list[start : start + ID_CHUNK]
            marks = ",".join("?" * len(part))
            cur = self._conn.execute(
                f"SELECT {self._cols} FROM images WHERE id IN ({marks})", part
            )
            out.extend(ImageRow(*r) for r in cur)
        out.sort(key=lambda r: r.id)
        return out

    def images_by_key(self) -> dict[str, ImageRow]:
        cur = self._conn.execute(f"SELECT {self._cols} FROM images")
        return {r[2]: ImageRow(*r) for r in cur}

    def mark_problem(self, ids: Iterable[int], problem: str) -> None:
        """Take images out of the pool for good (``missing``, ``changed`` or ``unreadable``); call inside a transaction.

        Their status and cycles stay as they were, for the record.
        """
        if problem not in IMAGE_PROBLEMS:
            raise ValueError(f"unknown image problem {problem!r}")
        self._conn.executemany(
            "UPDATE images SET problem = ? WHERE id = ?", [(problem, int(i)) for i in ids]
        )

    def clear_problem(self, ids: Iterable[int]) -> None:
        """Bring images taken out of the pool back (their file is back as recorded); call inside a
        transaction."""
        self._conn.executemany("UPDATE images SET problem = NULL WHERE id = ?", [(int(i),) for i in ids])

    def set_sizes(self, sizes: Iterable[tuple[int, int, int]]) -> None:
        """Store ``(width, height, id)`` sizes (the displayed frame, :mod:`detal.image_frame`);
        call inside a transaction."""
        self._conn.executemany("UPDATE images SET width = ?, height = ? WHERE id = ?",
                               [(int(w), int(h), int(i)) for w, h, i in sizes])

    def problem_counts(self) -> dict[str, int]:
        """How many images are out of the pool, by :data:`IMAGE_PROBLEMS`."""
        counts = dict.fromkeys(IMAGE_PROBLEMS, 0)
        if self._usable == "1":
            return counts
        for problem, n in self._conn.execute(
            "SELECT problem, count(*) FROM images WHERE problem IS NOT NULL GROUP BY problem"
        ):
            counts[problem] = n
        return counts

    def duplicates(self) -> list[list[str]]:
        """Groups of relpaths whose files have the same content hash."""
        cur = self._conn.execute(
            "SELECT sha256 FROM images GROUP BY sha256 HAVING count(*) > 1 ORDER BY min(id)"
        )
        groups = []
        for (digest,) in cur.fetchall():
            rows = self._conn.execute(
                "SELECT relpath FROM images WHERE sha256 = ? ORDER BY id", (digest,)
            ).fetchall()
            groups.append([r[0] for r in rows])
        return groups

    def status_counts(self) -> dict[str, int]:
        """How many images that can be used have each :class:`~detal.pool.Status`."""
        counts = {s.value: 0 for s in Status}
        for status, n in self._conn.execute(
            f"SELECT status, count(*) FROM images WHERE {self._usable} GROUP BY status"
        ):
            counts[status] = n
        return counts

    def batch_out(self) -> dict[int, tuple[int, int]]:
        """``cycle -> (images still out, images selected in that cycle)`` for batches not fully in."""
        cur = self._conn.execute(
            "SELECT selected_cycle, sum(status = 'selected'), count(*) FROM images "
            f"WHERE selected_cycle >= 0 AND {self._usable} GROUP BY selected_cycle "
            "HAVING sum(status = 'selected') > 0"
        )
        return {int(cycle): (int(remaining), int(total)) for cycle, remaining, total in cur}

    # -- pool ---------------------------------------------------------------------
    def load_pool(self) -> Pool:
        """The status columns of every image that can be used as a :class:`Pool`."""
        n = self.image_count()
        ids = np.empty(n, dtype=np.int64)
        sel = np.empty(n, dtype=np.int64)
        lab = np.empty(n, dtype=np.int64)
        status: list[Status] = []
        members = {s.value: s for s in Status}
        cur = self._conn.execute(
            f"SELECT id, status, selected_cycle, labeled_cycle FROM images WHERE {self._usable} ORDER BY id"
        )
        i = 0
        while rows := cur.fetchmany(CHUNK):
            for image_id, st, s_cycle, l_cycle in rows:
                ids[i], sel[i], lab[i] = image_id, s_cycle, l_cycle
                status.append(members[st])
                i += 1
        return Pool(ids, status, sel, lab)

    def save_pool(self, pool: Pool, ids: Iterable[int] | None = None) -> None:
        """Write the pool's state of ``ids`` (default: every image) back. Call inside a transaction."""
        if ids is None:
            state = pool.state_dict()
            rows = list(zip(state["status"], state["selected_cycle"], state["labeled_cycle"], state["ids"]))
        else:
            id_arr = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids), dtype=np.int64)
            status, sel, lab = pool.rows_of(id_arr)
            rows = list(zip(status, sel.tolist(), lab.tolist(), id_arr.tolist()))
        for start in range(0, len(rows), CHUNK):
            self._conn.executemany(
                "UPDATE images SET status = ?, selected_cycle = ?, labeled_cycle = ? WHERE id = ?",
                rows[start : start + CHUNK],
            )
