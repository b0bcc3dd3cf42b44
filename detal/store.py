"""The project store: one SQLite database (WAL mode) holding a project's state.

``PROJECT/detal.db`` is the single source of truth for which image is
unlabeled, selected, labeled or held out for validation, for the cycles run so
far and for the scores they computed. Files under the project (labels, cycle
outputs) are derived from or registered in it; a label file only counts once
its image is marked ``labeled`` here.

Tables::

    meta    (key, value)                       schema version, class names, paths
    images  (id, relpath, key, sha256, width, height,
             status, selected_cycle, labeled_cycle, problem)
    cycles  (id, state, config, weights, metrics, timings, n_train, n_selected,
             started_at, finished_at)
    scores  (image_id, cycle, score, n_boxes, top_class, in_subset, embedding)
    imports (id, source, at, n_labeled, n_unchanged, n_overwritten)
    label_studio_tasks (image_id, project, task_id, cycle)
                                               the Label Studio task of each pushed image

``images.relpath`` is relative to the project folder, ``images.key`` is the
name the image has in bundles and label files (unique, no folders). Image ids
are assigned once, at init, and never change. ``scores.embedding`` is the
image's embedding from the scoring pass as little-endian float16 bytes (NULL
when none was computed); databases made before it existed get the column, NULL
everywhere, when first opened (a nullable column added in place, so the schema
version stays 1). ``images.problem`` is ``NULL`` for an image that can be used,
or :data:`IMAGE_PROBLEMS` ``missing`` (its file is gone) or ``changed`` (its
content hash differs from the one recorded at init): such an image is out of
the pool for good but stays recorded, with the status it had. It is added to
old databases the same way.

:meth:`Store.open` with ``readonly=True`` opens the database with SQLite's
``mode=ro`` (for ``detal status``): nothing is written, not even the
migration above, and a project the user may only read can still be shown.
A database that lacks a table, or whose meta values are not JSON, is
reported as damaged (:class:`StateError`).

:class:`Store` loads the status columns into a :class:`detal.pool.Pool` and
saves them back; every change of state happens inside :meth:`Store.transaction`
(``BEGIN IMMEDIATE`` ... ``COMMIT``), so a process killed at any point leaves
either the old or the new state, never a mix.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from detal.errors import StateError
from detal.pool import Pool, Status

__all__ = ["CYCLE_STATES", "DB_NAME", "IMAGE_PROBLEMS", "SCHEMA_VERSION", "CycleRow", "ImageRow", "Store"]

DB_NAME = "detal.db"
SCHEMA_VERSION = 1

IMAGE_PROBLEMS = ("missing", "changed")
"""Why an image was taken out of the pool after init: its file is gone, or its content changed."""

CYCLE_STATES = ("started", "trained", "selected", "done")
"""A cycle moves through these states in order; ``done`` is final.

``started``: the row exists with its config snapshot; nothing else is kept.
``trained``: weights and metrics are recorded.
``selected``: scores are recorded and the batch is marked ``selected``.
``done``: pre-labels and the bundle are written.
"""

_SCHEMA = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE images (
    id             INTEGER PRIMARY KEY,
    relpath        TEXT NOT NULL UNIQUE,
    key            TEXT NOT NULL UNIQUE,
    sha256         TEXT NOT NULL,
    width          INTEGER NOT NULL CHECK (width > 0),
    height         INTEGER NOT NULL CHECK (height > 0),
    status         TEXT NOT NULL CHECK (status IN ('unlabeled', 'selected', 'labeled', 'val')),
    selected_cycle INTEGER NOT NULL DEFAULT -1,
    labeled_cycle  INTEGER NOT NULL DEFAULT -1,
    problem        TEXT CHECK (problem IN ('missing', 'changed'))
);
CREATE INDEX images_status ON images (status);
CREATE INDEX images_sha256 ON images (sha256);
CREATE TABLE cycles (
    id          INTEGER PRIMARY KEY,
    state       TEXT NOT NULL CHECK (state IN ('started', 'trained', 'selected', 'done')),
    config      TEXT NOT NULL,
    weights     TEXT,
    metrics     TEXT,
    timings     TEXT NOT NULL DEFAULT '{}',
    n_train     INTEGER NOT NULL DEFAULT 0,
    n_selected  INTEGER NOT NULL DEFAULT 0,
    started_at  REAL NOT NULL,
    finished_at REAL
);
CREATE TABLE scores (
    image_id  INTEGER NOT NULL REFERENCES images (id),
    cycle     INTEGER NOT NULL REFERENCES cycles (id),
    score     REAL NOT NULL,
    n_boxes   INTEGER NOT NULL,
    top_class INTEGER,
    in_subset INTEGER NOT NULL DEFAULT 1,
    embedding BLOB,
    PRIMARY KEY (image_id, cycle)
);
CREATE TABLE imports (
    id            INTEGER PRIMARY KEY,
    source        TEXT NOT NULL,
    at            REAL NOT NULL,
    n_labeled     INTEGER NOT NULL,
    n_unchanged   INTEGER NOT NULL,
    n_overwritten INTEGER NOT NULL
);
"""

# Added after schema 1 shipped: created when a store is opened, so older databases
# gain it without a migration (the schema version stays 1).
_LABEL_STUDIO_SCHEMA = """
CREATE TABLE IF NOT EXISTS label_studio_tasks (
    image_id INTEGER PRIMARY KEY REFERENCES images (id),
    project  INTEGER NOT NULL,
    task_id  INTEGER NOT NULL,
    cycle    INTEGER NOT NULL,
    UNIQUE (project, task_id)
);
"""

_CHUNK = 5000


def _embedding_blob(vector: np.ndarray) -> bytes:
    v = np.asarray(vector)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"an embedding must be a non-empty 1-D vector, got shape {v.shape}")
    return v.astype("<f2").tobytes()


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


@dataclass(frozen=True)
class CycleRow:
    id: int
    state: str
    config: dict
    weights: str | None
    metrics: dict | None
    timings: dict
    n_train: int
    n_selected: int
    started_at: float
    finished_at: float | None


_IMAGE_COLS = "id, relpath, key, sha256, width, height, status, selected_cycle, labeled_cycle"
_TABLES = ("meta", "images", "cycles", "scores", "imports")
_CYCLE_COLS = (
    "id, state, config, weights, metrics, timings, n_train, n_selected, started_at, finished_at"
)


def _cycle(row: tuple) -> CycleRow:
    return CycleRow(
        id=row[0],
        state=row[1],
        config=json.loads(row[2]),
        weights=row[3],
        metrics=json.loads(row[4]) if row[4] else None,
        timings=json.loads(row[5]),
        n_train=row[6],
        n_selected=row[7],
        started_at=row[8],
        finished_at=row[9],
    )


class Store:
    """An open project database. Use :meth:`create` or :meth:`open`, then :meth:`close`."""

    def __init__(self, conn: sqlite3.Connection, path: Path, readonly: bool = False) -> None:
        self._conn = conn
        self.path = path
        self.readonly = readonly
        self._cols = _IMAGE_COLS + ", problem"
        self._usable = "problem IS NULL"

    # -- opening ------------------------------------------------------------------
    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a killed process loses no committed transaction; only a power
        # cut may roll back the last ones, and the database stays consistent either way.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @classmethod
    def create(cls, path: str | Path) -> Store:
        """Create a new, empty store at ``path`` (which must not exist)."""
        path = Path(path)
        if path.exists():
            raise StateError(f"{path}: a project database already exists")
        conn = cls._connect(path)
        conn.executescript(f"BEGIN; {_SCHEMA} {_LABEL_STUDIO_SCHEMA} COMMIT;")
        store = cls(conn, path)
        with store.transaction():
            store.set_meta("schema_version", SCHEMA_VERSION)
        return store

    @staticmethod
    def _connect_readonly(path: Path, immutable: bool = False) -> sqlite3.Connection:
        uri = f"file:{quote(str(path.absolute()))}?mode=ro" + ("&immutable=1" if immutable else "")
        return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0)

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False) -> Store:
        """Open an existing store, checking that it is a detal project database.

        ``readonly`` opens it with ``mode=ro``: no write, no migration. With
        no ``-wal`` file beside it, no process has the database open for
        writing (a writer keeps that file while connected), so it is read as
        ``immutable``: SQLite then creates no ``-wal`` or ``-shm`` file either,
        and a folder the user may not write is no obstacle. The same fallback
        serves a folder that cannot be written while a ``-wal`` exists without
        its ``-shm`` (left by a killed writer; what it holds is then not shown).
        """
        path = Path(path)
        if not path.is_file():
            raise StateError(f"{path}: no project database (run detal init first)")
        if path.stat().st_size == 0:
            raise StateError(f"{path}: not a detal project database (empty file)")
        conn = None
        try:
            if readonly:
                try:
                    wal = Path(f"{path}-wal").exists()
                    conn = cls._connect_readonly(path, immutable=not wal)
                    tables = cls._tables(conn)
                except sqlite3.OperationalError:
                    if conn is not None:
                        conn.close()
                    conn = cls._connect_readonly(path, immutable=True)
                    tables = cls._tables(conn)
            else:
                conn = cls._connect(path)
                tables = cls._tables(conn)
            if "meta" not in tables:
                raise sqlite3.DatabaseError("no meta table")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            if not readonly and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
                raise StateError(
                    f"{path}: cannot write the project database ({exc}); this command changes the "
                    "project, so it needs a folder it may write (detal status only reads)"
                ) from None
            raise StateError(f"{path}: not a detal project database ({exc})") from None
        try:
            version = json.loads(row[0]) if row is not None else None
        except (json.JSONDecodeError, TypeError):
            version = row[0]
        if version != SCHEMA_VERSION:
            conn.close()
            raise StateError(f"{path}: unsupported schema version {row and row[0]}")
        missing = [t for t in _TABLES if t not in tables]
        if missing:
            conn.close()
            raise StateError(f"{path}: damaged project database (table {', '.join(missing)} missing)")
        store = cls(conn, path, readonly)
        if readonly:
            store._adapt_to_columns()
        else:
            store._add_missing_columns()
        return store

    @property
    def usable(self) -> str:
        """The SQL condition on ``images`` rows that can be used (for queries outside the store)."""
        return self._usable

    @staticmethod
    def _tables(conn: sqlite3.Connection) -> set[str]:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def _columns(self, table: str) -> set[str]:
        return {r[1] for r in self._conn.execute(f"PRAGMA table_info({table})")}

    def _add_missing_columns(self) -> None:
        """Bring a database made by an older detal up to date (nullable columns only)."""
        if "problem" not in self._columns("images"):
            with self.transaction():
                if "problem" not in self._columns("images"):  # another process may have added it
                    self._conn.execute(
                        "ALTER TABLE images ADD COLUMN problem TEXT CHECK (problem IN ('missing', 'changed'))"
                    )
        columns = {r[1] for r in self._conn.execute("PRAGMA table_info(scores)")}
        if "embedding" not in columns:
            with self.transaction():
                columns = {r[1] for r in self._conn.execute("PRAGMA table_info(scores)")}
                if "embedding" not in columns:  # another process may have added it meanwhile
                    self._conn.execute("ALTER TABLE scores ADD COLUMN embedding BLOB")
        if self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'label_studio_tasks'"
        ).fetchone() is None:
            self._conn.executescript(f"BEGIN IMMEDIATE; {_LABEL_STUDIO_SCHEMA} COMMIT;")

    def _adapt_to_columns(self) -> None:
        """Read an old database as it is (read-only: no column is added)."""
        if "problem" not in self._columns("images"):
            self._cols = _IMAGE_COLS + ", NULL"
            self._usable = "1"

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic change: everything inside commits together or not at all."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Run raw SQL (for status queries and tests)."""
        return self._conn.execute(sql, params)

    def integrity_check(self) -> str:
        return self._conn.execute("PRAGMA integrity_check").fetchone()[0]

    # -- meta ---------------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if not row:
            return default
        try:
            return json.loads(row[0])
        except (json.JSONDecodeError, TypeError):
            raise StateError(
                f"{self.path}: damaged project database (meta {key!r} is not valid JSON)"
            ) from None

    # -- images -------------------------------------------------------------------
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
            if len(chunk) >= _CHUNK:
                self._conn.executemany(sql, chunk)
                n += len(chunk)
                chunk.clear()
        if chunk:
            self._conn.executemany(sql, chunk)
            n += len(chunk)
        return n

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
        for start in range(0, len(id_list), 900):
            part = id_list[start : start + 900]
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
        """Take images out of the pool for good (``missing`` or ``changed``); call inside a transaction.

        Their status and cycles stay as they were, for the record.
        """
        if problem not in IMAGE_PROBLEMS:
            raise ValueError(f"unknown image problem {problem!r}")
        self._conn.executemany(
            "UPDATE images SET problem = ? WHERE id = ?", [(problem, int(i)) for i in ids]
        )

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
        while rows := cur.fetchmany(_CHUNK):
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
        for start in range(0, len(rows), _CHUNK):
            self._conn.executemany(
                "UPDATE images SET status = ?, selected_cycle = ?, labeled_cycle = ? WHERE id = ?",
                rows[start : start + _CHUNK],
            )

    # -- cycles -------------------------------------------------------------------
    def start_cycle(self, cycle: int, config: dict) -> None:
        self._conn.execute(
            "INSERT INTO cycles (id, state, config, started_at) VALUES (?, 'started', ?, ?)",
            (cycle, json.dumps(config, sort_keys=True), time.time()),
        )

    def update_cycle(self, cycle: int, **fields: Any) -> None:
        """Set columns of a cycle row; dict values are stored as JSON."""
        allowed = {"state", "config", "weights", "metrics", "timings", "n_train", "n_selected",
                   "finished_at", "started_at"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown cycle columns {sorted(unknown)}")
        if "state" in fields and fields["state"] not in CYCLE_STATES:
            raise ValueError(f"unknown cycle state {fields['state']!r}")
        sets, params = [], []
        for name, value in fields.items():
            if isinstance(value, (dict, list)):
                value = json.dumps(value, sort_keys=True)
            sets.append(f"{name} = ?")
            params.append(value)
        params.append(cycle)
        self._conn.execute(f"UPDATE cycles SET {', '.join(sets)} WHERE id = ?", params)

    def _cycle(self, row: tuple) -> CycleRow:
        try:
            return _cycle(row)
        except (json.JSONDecodeError, TypeError):
            raise StateError(
                f"{self.path}: damaged project database (cycle {row[0]} holds invalid JSON)"
            ) from None

    def delete_cycle(self, cycle: int) -> None:
        self._conn.execute("DELETE FROM scores WHERE cycle = ?", (cycle,))
        self._conn.execute("DELETE FROM cycles WHERE id = ?", (cycle,))

    def cycles(self) -> list[CycleRow]:
        cur = self._conn.execute(f"SELECT {_CYCLE_COLS} FROM cycles ORDER BY id")
        return [self._cycle(r) for r in cur]

    def cycle(self, cycle: int) -> CycleRow | None:
        row = self._conn.execute(f"SELECT {_CYCLE_COLS} FROM cycles WHERE id = ?", (cycle,)).fetchone()
        return self._cycle(row) if row else None

    def last_cycle(self) -> CycleRow | None:
        row = self._conn.execute(f"SELECT {_CYCLE_COLS} FROM cycles ORDER BY id DESC LIMIT 1").fetchone()
        return self._cycle(row) if row else None

    # -- scores -------------------------------------------------------------------
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
        for start in range(0, len(id_list), 900):
            part = id_list[start : start + 900]
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

    def scores(self, cycle: int) -> dict[int, tuple[float, int, int | None]]:
        cur = self._conn.execute(
            "SELECT image_id, score, n_boxes, top_class FROM scores WHERE cycle = ?", (cycle,)
        )
        return {r[0]: (r[1], r[2], r[3]) for r in cur}

    # -- imports ------------------------------------------------------------------
    def record_import(self, source: str, n_labeled: int, n_unchanged: int, n_overwritten: int) -> None:
        self._conn.execute(
            "INSERT INTO imports (source, at, n_labeled, n_unchanged, n_overwritten) VALUES (?, ?, ?, ?, ?)",
            (source, time.time(), n_labeled, n_unchanged, n_overwritten),
        )

    def imports(self) -> list[dict]:
        cur = self._conn.execute(
            "SELECT id, source, at, n_labeled, n_unchanged, n_overwritten FROM imports ORDER BY id"
        )
        keys = ("id", "source", "at", "n_labeled", "n_unchanged", "n_overwritten")
        return [dict(zip(keys, r)) for r in cur]

    def status_counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Status}
        for status, n in self._conn.execute(
            f"SELECT status, count(*) FROM images WHERE {self._usable} GROUP BY status"
        ):
            counts[status] = n
        return counts
