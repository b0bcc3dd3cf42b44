"""Opening a project database: connection settings, checks, in-place migrations, meta.

:class:`StoreConnection` is the part of :class:`detal.store.Store` that
every other part builds on: it owns the connection, its transactions and the
``meta`` table.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from detal.errors import StateError, disk_full
from detal.store.schema import (
    CORRECTION_TABLES,
    CORRECTIONS_SCHEMA,
    IMAGE_COLS,
    IMAGES_INDEXES,
    IMAGES_TABLE,
    LABEL_STUDIO_SCHEMA,
    PROBLEM_CHECK,
    SCHEMA,
    SCHEMA_VERSION,
    TABLES,
)

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["StoreConnection", "checkpoint"]


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL: a killed process loses no committed transaction; only a power
    # cut may roll back the last ones, and the database stays consistent either way.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _connect_readonly(path: Path, immutable: bool = False) -> sqlite3.Connection:
    uri = f"file:{quote(str(path.absolute()))}?mode=ro" + ("&immutable=1" if immutable else "")
    return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0)


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def checkpoint(path: str | Path) -> None:
    """Write a database's WAL into it (best effort: a damaged file is left as it is)."""
    try:
        conn = sqlite3.connect(str(path), timeout=5.0, isolation_level=None)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
    except sqlite3.Error:
        pass


_SQLITE_BUSY = 5


def _read_only(path: Path, exc: sqlite3.Error) -> StateError:
    return StateError(
        f"{path}: read-only, cannot write the project database ({exc}); this command changes the "
        "project, so it needs a folder it may write, its database included (detal status only reads)"
    )


@contextmanager
def _disk_errors(path: Path) -> Iterator[None]:
    """Raise an SQLite error caused by a full disk as its one line (:func:`detal.errors.disk_full`)."""
    try:
        yield
    except sqlite3.Error as exc:
        full = disk_full(exc, path)
        if full is None:
            raise
        raise full from exc  # the cause lets a caller name another path (init names the project)


class StoreConnection:
    """An open project database. Use :meth:`create` or :meth:`open`, then :meth:`close`."""

    def __init__(self, conn: sqlite3.Connection, path: Path, readonly: bool = False) -> None:
        self._conn = conn
        self.path = path
        self.readonly = readonly
        self._cols = IMAGE_COLS + ", problem"
        self._usable = "problem IS NULL"
        self._has_corrections = True  # False: an old database opened read-only (no such tables yet)

    # -- opening ------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path) -> Self:
        """Create a new, empty store at ``path`` (which must not exist)."""
        path = Path(path)
        if path.exists():
            raise StateError(f"{path}: a project database already exists")
        with _disk_errors(path):
            conn = _connect(path)
            try:
                conn.executescript(f"BEGIN; {SCHEMA} {LABEL_STUDIO_SCHEMA} {CORRECTIONS_SCHEMA} COMMIT;")
            except BaseException:
                conn.close()
                raise
        store = cls(conn, path)
        with store.transaction():
            store.set_meta("schema_version", SCHEMA_VERSION)
        return store

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False) -> Self:
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
                    conn = _connect_readonly(path, immutable=not wal)
                    tables = _tables(conn)
                except sqlite3.OperationalError:
                    if conn is not None:
                        conn.close()
                    conn = _connect_readonly(path, immutable=True)
                    tables = _tables(conn)
            else:
                conn = _connect(path)
                tables = _tables(conn)
            if "meta" not in tables:
                raise sqlite3.DatabaseError("no meta table")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            full = disk_full(exc, path)
            if full is not None:  # never "not a detal project database": that invites init --force
                raise full from None
            if not readonly and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
                raise _read_only(path, exc) from None
            raise StateError(f"{path}: not a detal project database ({exc})") from None
        try:
            version = json.loads(row[0]) if row is not None else None
        except (json.JSONDecodeError, TypeError):
            version = row[0]
        if version != SCHEMA_VERSION:
            conn.close()
            raise StateError(f"{path}: unsupported schema version {row and row[0]}")
        missing = [t for t in TABLES if t not in tables]
        if missing:
            conn.close()
            raise StateError(f"{path}: damaged project database (table {', '.join(missing)} missing)")
        store = cls(conn, path, readonly)
        try:
            if readonly:
                store._adapt_to_columns()
            else:
                store._probe_write()
                store._add_missing_columns()
        except BaseException:
            store.close()
            raise
        return store

    def _probe_write(self) -> None:
        """Refuse, with one line, a database this process cannot write (a read-only file or mount).

        A write that is rolled back: ``BEGIN IMMEDIATE`` alone succeeds on a
        read-only file in WAL mode, so one row is rewritten to itself and
        the transaction rolled back; nothing reaches the disk. Without this
        the first write of a command fails after it changed files.
        """
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("UPDATE meta SET value = value WHERE key = 'schema_version'")
            finally:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF == _SQLITE_BUSY:
                return  # another process is writing: it can be written; the project's lock decides
            raise disk_full(exc, self.path) or _read_only(self.path, exc) from None

    def _columns(self, table: str) -> set[str]:
        return {r[1] for r in self._conn.execute(f"PRAGMA table_info({table})")}

    def _add_missing_columns(self) -> None:
        """Bring a database made by an older detal up to date (nullable columns only)."""
        if "problem" not in self._columns("images"):
            with self.transaction():
                if "problem" not in self._columns("images"):  # another process may have added it
                    self._conn.execute(f"ALTER TABLE images ADD COLUMN problem TEXT {PROBLEM_CHECK}")
        self._widen_problem_check()
        if "embedding" not in self._columns("scores"):
            with self.transaction():
                if "embedding" not in self._columns("scores"):  # another process may have added it meanwhile
                    self._conn.execute("ALTER TABLE scores ADD COLUMN embedding BLOB")
        tables = _tables(self._conn)
        if "label_studio_tasks" not in tables:
            self._conn.executescript(f"BEGIN IMMEDIATE; {LABEL_STUDIO_SCHEMA} COMMIT;")
        if not set(CORRECTION_TABLES) <= tables:
            self._conn.executescript(f"BEGIN IMMEDIATE; {CORRECTIONS_SCHEMA} COMMIT;")

    def _widen_problem_check(self) -> None:
        """Let ``images.problem`` hold every :data:`~detal.store.schema.IMAGE_PROBLEMS` in an older database.

        SQLite cannot change a CHECK constraint in place, so the table is rebuilt
        as its documentation describes: a new table, every row copied, the old
        one dropped, the new one renamed and its indexes made again, all in one
        transaction (foreign keys off meanwhile, checked before the commit).
        The values the column held stay valid: the list only grows.
        """
        def table_sql() -> str:
            row = self._conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'images'").fetchone()
            return row[0]

        if PROBLEM_CHECK in table_sql():
            return
        cols = IMAGE_COLS + ", problem"
        self._conn.execute("PRAGMA foreign_keys = OFF")  # no effect inside a transaction
        try:
            with self.transaction():
                if PROBLEM_CHECK in table_sql():  # another process widened it meanwhile
                    return
                self._conn.execute(IMAGES_TABLE.replace("CREATE TABLE images (", "CREATE TABLE images_widened (", 1))
                self._conn.execute(f"INSERT INTO images_widened ({cols}) SELECT {cols} FROM images")
                self._conn.execute("DROP TABLE images")
                self._conn.execute("ALTER TABLE images_widened RENAME TO images")
                for index in IMAGES_INDEXES:
                    self._conn.execute(index)
                broken = self._conn.execute("PRAGMA foreign_key_check").fetchone()
                if broken is not None:
                    raise StateError(f"{self.path}: damaged project database (foreign key {broken})")
        except sqlite3.Error as exc:
            raise StateError(
                f"{self.path}: cannot update the project database to this detal ({exc}); this command "
                "changes the project, so it needs a folder it may write (detal status only reads)"
            ) from None
        finally:
            self._conn.execute("PRAGMA foreign_keys = ON")

    def _adapt_to_columns(self) -> None:
        """Read an old database as it is (read-only: no column is added)."""
        if "problem" not in self._columns("images"):
            self._cols = IMAGE_COLS + ", NULL"
            self._usable = "1"
        self._has_corrections = set(CORRECTION_TABLES) <= _tables(self._conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic change: everything inside commits together or not at all.

        A change the disk has no room for (``COMMIT`` or a statement failing
        with "database or disk is full") is rolled back and raised as the one
        line of :func:`detal.errors.disk_full`.
        """
        with _disk_errors(self.path):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:  # SQLite rolls back by itself after some errors
                    self._conn.execute("ROLLBACK")
                raise

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Run raw SQL (for tests and one-off inspection; detal itself calls the methods)."""
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
