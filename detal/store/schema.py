"""The store's schema: table definitions, the names of its states, and the columns read.

Changing anything here changes the on-disk format of every project: the
schema version is :data:`SCHEMA_VERSION`, and columns added since it shipped
are nullable and added in place when a database is opened
(:meth:`detal.store.connection.StoreConnection.open`).
"""

from __future__ import annotations

__all__ = [
    "CYCLE_STATES", "DB_NAME", "IMAGES_INDEXES", "IMAGES_TABLE", "IMAGE_PROBLEMS", "PROBLEM_CHECK",
    "SCHEMA_VERSION",
]

DB_NAME = "detal.db"
SCHEMA_VERSION = 1

IMAGE_PROBLEMS = ("missing", "changed", "unreadable")
"""Why an image was taken out of the pool after init: its file is gone, its content changed, or
Ultralytics cannot use it (:mod:`detal.image_check`; a project made before that check)."""

PROBLEM_CHECK = "CHECK (problem IN ({}))".format(", ".join(f"'{p}'" for p in IMAGE_PROBLEMS))
"""The constraint on ``images.problem``; databases with an older list are widened in place
(:meth:`detal.store.connection.StoreConnection.open`)."""

CYCLE_STATES = ("started", "trained", "selected", "done")
"""A cycle moves through these states in order; ``done`` is final.

``started``: the row exists with its config snapshot; nothing else is kept.
``trained``: weights and metrics are recorded.
``selected``: scores are recorded and the batch is marked ``selected``.
``done``: pre-labels and the bundle are written.
"""

IMAGES_TABLE = f"""CREATE TABLE images (
    id             INTEGER PRIMARY KEY,
    relpath        TEXT NOT NULL UNIQUE,
    key            TEXT NOT NULL UNIQUE,
    sha256         TEXT NOT NULL,
    width          INTEGER NOT NULL CHECK (width > 0),
    height         INTEGER NOT NULL CHECK (height > 0),
    status         TEXT NOT NULL CHECK (status IN ('unlabeled', 'selected', 'labeled', 'val')),
    selected_cycle INTEGER NOT NULL DEFAULT -1,
    labeled_cycle  INTEGER NOT NULL DEFAULT -1,
    problem        TEXT {PROBLEM_CHECK}
)"""
IMAGES_INDEXES = (
    "CREATE INDEX images_status ON images (status)",
    "CREATE INDEX images_sha256 ON images (sha256)",
)

SCHEMA = f"""
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
{IMAGES_TABLE};
{"; ".join(IMAGES_INDEXES)};
CREATE TABLE cycles (
    id          INTEGER PRIMARY KEY,
    state       TEXT NOT NULL CHECK (state IN ('started', 'trained', 'selected', 'done')),
    config      TEXT NOT NULL,
    weights     TEXT,
    metrics     TEXT,
    timings     TEXT NOT NULL DEFAULT '{{}}',
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

LABEL_STUDIO_SCHEMA = """
CREATE TABLE IF NOT EXISTS label_studio_tasks (
    image_id INTEGER PRIMARY KEY REFERENCES images (id),
    project  INTEGER NOT NULL,
    task_id  INTEGER NOT NULL,
    cycle    INTEGER NOT NULL,
    UNIQUE (project, task_id)
);
"""
"""Added after schema 1 shipped: created when a store is opened, so older databases
gain it without a migration (the schema version stays 1)."""

CORRECTIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS corrections (
    image_id   INTEGER PRIMARY KEY REFERENCES images (id),
    cycle      INTEGER NOT NULL,
    prelabeled INTEGER NOT NULL CHECK (prelabeled IN (0, 1)),
    shipped    INTEGER NOT NULL CHECK (shipped >= 0),
    returned   INTEGER NOT NULL CHECK (returned >= 0),
    verified   INTEGER NOT NULL CHECK (verified >= 0),
    adjusted   INTEGER NOT NULL CHECK (adjusted >= 0),
    relabeled  INTEGER NOT NULL CHECK (relabeled >= 0),
    deleted    INTEGER NOT NULL CHECK (deleted >= 0),
    drawn      INTEGER NOT NULL CHECK (drawn >= 0)
);
CREATE INDEX IF NOT EXISTS corrections_cycle ON corrections (cycle);
CREATE TABLE IF NOT EXISTS shipped_boxes (
    image_id   INTEGER NOT NULL REFERENCES images (id),
    box        INTEGER NOT NULL,
    class_id   INTEGER NOT NULL,
    confidence REAL,
    outcome    TEXT NOT NULL CHECK (outcome IN ('verified', 'adjusted', 'relabeled', 'deleted')),
    iou        REAL NOT NULL,
    PRIMARY KEY (image_id, box)
);
"""
"""Added after schema 1 shipped, like :data:`LABEL_STUDIO_SCHEMA`: what correcting each returned
image took (:mod:`detal.store.corrections`). ``corrections.cycle`` is the cycle that selected the
image and shipped its pre-labels; ``prelabeled`` is 0 where none were shipped (the initial batch);
``shipped_boxes.box`` is the box's index among the image's shipped boxes, ``confidence`` is NULL
where the shipped file carried none."""

CORRECTION_TABLES = ("corrections", "shipped_boxes")

TABLES = ("meta", "images", "cycles", "scores", "imports")
"""The tables every project database has (a database without one is damaged)."""

IMAGE_COLS = "id, relpath, key, sha256, width, height, status, selected_cycle, labeled_cycle"
CYCLE_COLS = "id, state, config, weights, metrics, timings, n_train, n_selected, started_at, finished_at"

CHUNK = 5000
"""Rows written per ``executemany`` and read per ``fetchmany``."""

ID_CHUNK = 900
"""Ids per ``IN (...)`` query (under SQLite's limit on bound parameters)."""
