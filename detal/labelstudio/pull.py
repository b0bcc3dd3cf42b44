"""``detal pull``: annotations of pushed tasks, through the validated import as label files."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from detal.errors import DataError, RemoteError, StateError
from detal.labelstudio.client import Client, read_token
from detal.labelstudio.convert import annotation_to_yolo, chosen_annotation
from detal.labelstudio.state import (
    check_cycles,
    fetch_project,
    linked,
    recorded_tasks,
    resolve_url,
)
from detal.project.folder import folder_lock, open_store
from detal.project.verify import check_pool

__all__ = ["PullReport", "pull_labels"]

_PAGE = 500  # tasks per page
_MAX_PROBLEMS = 20  # problems named in the one error line


@dataclass(frozen=True)
class PullReport:
    url: str
    ls_project: int
    n_labeled: int
    """Images that became labeled."""
    n_unchanged: int
    n_overwritten: int
    n_unannotated: int
    """Tasks of images that are out with no annotation that counts (they stay out)."""
    n_missing: int
    """Images that are out whose task is gone from the server (they stay out)."""
    remaining: int
    """Images still out after the pull."""


def pull_labels(
    project: str | Path,
    url: str | None = None,
    *,
    token: str | None = None,
    token_file: str | Path | None = None,
    overwrite: bool = False,
    client: Client | None = None,
    env: Mapping[str, str] | None = None,
    page_size: int | None = None,
) -> PullReport:
    """Import the annotations of the pushed images that are out (see the module doc).

    With ``overwrite``, the tasks of images already labeled are pulled too, and
    a changed annotation replaces the label (the old file is kept, as in
    :func:`detal.project.import_labels`).
    """
    from detal.project import import_keyed_labels

    project = Path(project)
    env = os.environ if env is None else env
    with open_store(project) as store:
        check_cycles(project, store)
        with folder_lock(project):  # the sizes the annotations are checked against: as displayed
            check_pool(project, store)
        names: list[str] = store.get_meta("classes")
        link = linked(store)
        if link is None:
            raise StateError(f"{project}: nothing pushed to Label Studio yet (run detal push first)")
        url = resolve_url(url, link, env)
        pid = int(link["project"])
        statuses = ("selected", "labeled") if overwrite else ("selected",)
        recorded = recorded_tasks(store, pid)
        rows = [r for r in store.images(ids=list(recorded)) if r.status in statuses]
        n_out = store.image_count("selected")
    if client is None:
        client = Client(url, token or read_token(token_file, env))
    fetch_project(client, pid, project)
    wanted = {recorded[r.id]: r for r in rows}
    found: dict[int, dict] = {}
    for task in client.tasks(pid, page_size=page_size or _PAGE, ids=sorted(wanted)):
        tid = int(task.get("id", -1))
        if tid in wanted:
            found[tid] = task

    texts: dict[str, str] = {}
    wheres: dict[str, str] = {}
    problems: list[str] = []
    unannotated = missing = 0
    for tid, row in wanted.items():
        task = found.get(tid)
        if task is None:
            missing += row.status == "selected"
            continue
        annotations = task.get("annotations") or []
        if not all(isinstance(a, dict) and isinstance(a.get("result"), list)
                   and "was_cancelled" in a for a in annotations):
            raise RemoteError(f"Label Studio at {client.url}: task {tid} came without the results "
                              "of its annotations; is this Label Studio 1.x?")
        chosen = chosen_annotation(annotations)
        if chosen is None:
            unannotated += row.status == "selected"
            continue
        where = f"task {tid} (image {row.key}), annotation {chosen.get('id')}"
        text, probs = annotation_to_yolo(chosen.get("result") or [], names, where, (row.width, row.height))
        problems.extend(probs)
        texts[row.key] = text
        wheres[row.key] = where
    if problems:
        shown = "; ".join(problems[:_MAX_PROBLEMS])
        more = f"; and {len(problems) - _MAX_PROBLEMS} more" if len(problems) > _MAX_PROBLEMS else ""
        raise DataError(f"Label Studio project {pid} at {client.url}: {len(problems)} problem(s), "
                        f"nothing imported: {shown}{more}")
    if not texts:
        return PullReport(url, pid, 0, 0, 0, unannotated, missing, n_out)
    # each task is the image detal pushed it for: the labels go by key, with no file name to match
    report = import_keyed_labels(project, texts, f"Label Studio project {pid} at {client.url}",
                                 sources=wheres, overwrite=overwrite)
    return PullReport(url, pid, report.n_labeled, report.n_unchanged, report.n_overwritten,
                      unannotated, missing, report.remaining)
