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
    corrections (image_id, cycle, prelabeled, shipped, returned,
                 verified, adjusted, relabeled, deleted, drawn)
                                               what correcting each returned image took
    shipped_boxes (image_id, box, class_id, confidence, outcome, iou)
                                               each shipped pre-label box and its outcome
    label_studio_tasks (image_id, project, task_id, cycle)
                                               the Label Studio task of each pushed image

``images.relpath`` is relative to the project folder, ``images.key`` is the
name the image has in bundles and label files (unique, no folders). Image ids
are assigned once, at init, and never change. ``scores.embedding`` is the
image's embedding from the scoring pass as little-endian float16 bytes (NULL
when none was computed); databases made before it existed get the column, NULL
everywhere, when first opened (a nullable column added in place, so the schema
version stays 1). ``images.problem`` is ``NULL`` for an image that can be used,
or :data:`IMAGE_PROBLEMS` ``missing`` (its file is gone), ``changed`` (its
content hash differs from the one recorded at init) or ``unreadable``
(Ultralytics cannot use it, :mod:`detal.image_check`): such an image is out of
the pool for good but stays recorded, with the status it had. It is added to
old databases the same way, an older list of problems is widened in place,
and the ``label_studio_tasks``, ``corrections`` and ``shipped_boxes`` tables
are created when missing.

:meth:`Store.open` with ``readonly=True`` opens the database with SQLite's
``mode=ro`` (for ``detal status``): nothing is written, not even the
migration above, and a project the user may only read can still be shown.
A database that lacks a table, or whose meta values are not JSON, is
reported as damaged (:class:`StateError`).

:class:`Store` loads the status columns into a :class:`detal.pool.Pool` and
saves them back; every change of state happens inside :meth:`Store.transaction`
(``BEGIN IMMEDIATE`` ... ``COMMIT``), so a process killed at any point leaves
either the old or the new state, never a mix.

The store is the one place for SQL, one module per concern::

    schema.py       the tables, the state names, the columns read
    connection.py   opening, checks, in-place migrations, transactions, meta
    images.py       image rows and the pool state        (ImageRow)
    cycles.py       cycle and import rows                (CycleRow, ImportRow)
    scores.py       score rows and embeddings            (ScoreRow)
    labelstudio.py  the Label Studio task of each pushed image
    corrections.py  the diff of each returned image     (CorrectionRow, ShippedBoxRow)

What it returns is typed: rows are dataclasses or named tuples, and a
cycle's stored evaluation is a :class:`detal.adapter.Metrics`.
"""

from __future__ import annotations

from detal.store.connection import checkpoint
from detal.store.corrections import CorrectionRow, CorrectionTable, ShippedBoxRow
from detal.store.cycles import CycleRow, CycleTable, ImportRow
from detal.store.images import ImageRow, ImageTable
from detal.store.labelstudio import LabelStudioTable
from detal.store.schema import CYCLE_STATES, DB_NAME, IMAGE_PROBLEMS, SCHEMA_VERSION
from detal.store.scores import ScoreRow, ScoreTable

__all__ = [
    "CYCLE_STATES",
    "DB_NAME",
    "IMAGE_PROBLEMS",
    "SCHEMA_VERSION",
    "CorrectionRow",
    "CycleRow",
    "ImageRow",
    "ImportRow",
    "ScoreRow",
    "ShippedBoxRow",
    "Store",
    "checkpoint",
]


class Store(ImageTable, CycleTable, ScoreTable, LabelStudioTable, CorrectionTable):
    """An open project database. Use :meth:`create` or :meth:`open`, then :meth:`close`.

    Each base class holds the queries of one concern (see the module
    docstring); all share one connection (:class:`~detal.store.connection.StoreConnection`).
    """
