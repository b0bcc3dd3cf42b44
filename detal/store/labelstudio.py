"""The ``label_studio_tasks`` table: the Label Studio task of each pushed image.

The link itself (server URL and Label Studio project id) is kept in ``meta``
(see :mod:`detal.labelstudio.state`); the tasks are kept here, so both share
the store's transactions.
"""

from __future__ import annotations

from collections.abc import Iterable

from detal.store.connection import StoreConnection
from detal.store.images import ImageRow

__all__ = ["LabelStudioTable"]


class LabelStudioTable(StoreConnection):
    """Reading and writing Label Studio task rows (part of :class:`detal.store.Store`)."""

    def label_studio_tasks(self, ls_project: int) -> dict[int, int]:
        """``image id -> task id`` recorded for Label Studio project ``ls_project``."""
        cur = self._conn.execute(
            "SELECT image_id, task_id FROM label_studio_tasks WHERE project = ?", (int(ls_project),)
        )
        return {int(i): int(t) for i, t in cur}

    def record_label_studio_tasks(self, ls_project: int, rows: Iterable[tuple[ImageRow, int]]) -> None:
        """Record ``(image row, task id)`` pairs for ``ls_project``, with the cycle that selected each image.

        Call inside a transaction; a row recorded before for the image is replaced.
        """
        self._conn.executemany(
            "INSERT OR REPLACE INTO label_studio_tasks (image_id, project, task_id, cycle) "
            "VALUES (?, ?, ?, ?)",
            [(row.id, int(ls_project), int(task_id), row.selected_cycle) for row, task_id in rows],
        )

    def forget_label_studio_tasks(self) -> None:
        """Drop every recorded task (the project is linked to another Label Studio project)."""
        self._conn.execute("DELETE FROM label_studio_tasks")
