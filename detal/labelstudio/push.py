"""``detal push``: the images that are out become Label Studio tasks with predictions."""

from __future__ import annotations

import json
import math
import os
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from detal.errors import DataError, StateError
from detal.export.labelstudio import labeling_config, normalize_uncertainty
from detal.files import short_name
from detal.labelstudio.client import Client, normalize_url, read_token
from detal.labelstudio.convert import (
    FROM_NAME,
    TO_NAME,
    attach_scores,
    box_regions,
    prediction_regions,
)
from detal.labelstudio.state import (
    META_KEY,
    check_config,
    check_cycles,
    fetch_project,
    linked,
    record_tasks,
    recorded_tasks,
    resolve_url,
    title,
)
from detal.project.bundle import bundle_name
from detal.project.folder import folder_lock, open_store
from detal.project.paths import ProjectPaths
from detal.project.pseudo import read_shipped
from detal.project.verify import check_pool
from detal.store import ImageRow, Store

__all__ = ["PushReport", "push_batch"]

_UPLOAD_FILES = 50  # images per upload request (Label Studio refuses more than 100)
_UPLOAD_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class PushReport:
    url: str
    ls_project: int
    created: bool
    """Whether this push created the Label Studio project."""
    n_pushed: int
    """Tasks created by this push."""
    n_present: int
    """Images that are out and already had a task (recorded, or adopted from the server)."""
    n_adopted: int
    """Of those, tasks found on the server that the store had not recorded (a killed push)."""
    n_predictions: int
    """Pushed tasks that carry a prediction (images of cycles >= 1)."""


def _uncertainties(store: Store, rows: Sequence[ImageRow]) -> tuple[dict[int, float], dict[int, float]]:
    """``(raw, normalised)``: image id -> its score in the cycle that selected it, as stored
    and mapped into [0, 1] over that cycle's scored images (:func:`normalize_uncertainty`)."""
    raw: dict[int, float] = {}
    unit: dict[int, float] = {}
    for cycle in sorted({r.selected_cycle for r in rows if r.selected_cycle > 0}):
        scores = {i: s for i, (s, _, _) in store.scores(cycle).items() if math.isfinite(s)}
        raw.update(scores)
        if scores:
            normalised = normalize_uncertainty({str(i): s for i, s in scores.items()})
            unit.update({int(k): v for k, v in normalised.items()})
    return raw, unit


def _scored_regions(project: Path, cycle: int, names: Sequence[str]) -> dict[str, list[dict]]:
    """``short_name(image key) -> regions with a score`` for the cycle's pre-labels (their files carry no confidence).

    From ``exports/label-studio/tasks.json`` where ``detal cycle --format
    label-studio`` wrote one (scores to 6 decimals), else from
    ``cycles/<k>/shipped.json`` (every cycle keeps its batch's boxes with their
    confidences, to 4). A missing or unreadable file only costs the per-box scores.
    """
    out: dict[str, list[dict]] = {}
    path = ProjectPaths(project).labelstudio_tasks(cycle)
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        tasks = []
    for task in tasks if isinstance(tasks, list) else []:  # 6 decimals there, 4 in shipped.json
        try:
            key = PurePosixPath(str(task["data"][TO_NAME])).stem
            out[key] = [r for r in task["predictions"][0]["result"] if "score" in r]
        except (KeyError, IndexError, TypeError):
            continue
    for key, boxes in read_shipped(project, cycle).items():
        if short_name(key) not in out:
            out[short_name(key)] = box_regions([b for b in boxes if 0 <= b.class_id < len(names)], names, 0, 0)
    return out


def _task(project: Path, row: ImageRow, names: Sequence[str], image_url: str,
          uncertainty: float | None, raw_score: float | None,
          exported: Mapping[str, list[dict]]) -> dict:
    data: dict[str, Any] = {TO_NAME: image_url, "detal_key": row.key}
    if raw_score is not None:
        data["uncertainty"] = round(float(raw_score), 6)
    task: dict[str, Any] = {"data": data}
    k = row.selected_cycle
    if k >= 1:
        path = ProjectPaths(project).prelabel(k, row.key)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(f"{path}: pre-label file of image {row.key} (cycle {k}) is missing") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read the pre-labels ({exc})") from None
        prediction: dict[str, Any] = {"model_version": f"cycle-{k}"}
        if uncertainty is not None:
            prediction["score"] = round(1.0 - uncertainty, 6)
        regions = prediction_regions(text, names, row.width, row.height, str(path))
        prediction["result"] = attach_scores(regions, exported.get(short_name(row.key), ()))
        task["predictions"] = [prediction]
    return task


def _chunks(rows: Sequence[ImageRow], project: Path) -> Iterator[list[tuple[ImageRow, bytes]]]:
    chunk: list[tuple[ImageRow, bytes]] = []
    size = 0
    for row in rows:
        path = project / row.relpath
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise DataError(f"{path}: cannot read image {row.key} ({exc.strerror or exc})") from None
        if chunk and (len(chunk) >= _UPLOAD_FILES or size + len(content) > _UPLOAD_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append((row, content))
        size += len(content)
    if chunk:
        yield chunk


def push_batch(
    project: str | Path,
    url: str | None = None,
    *,
    token: str | None = None,
    token_file: str | Path | None = None,
    ls_project: int | None = None,
    relink: bool = False,
    client: Client | None = None,
    env: Mapping[str, str] | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> PushReport:
    """Push every image that is out and has no task yet to Label Studio (see the module doc).

    ``url`` defaults to the server the project is linked to, then ``$LABEL_STUDIO_URL``;
    ``token`` to :func:`read_token` (``token_file`` or ``$LABEL_STUDIO_API_KEY``).
    ``relink`` forgets the linked Label Studio project and its task ids (for a
    project deleted on the server, or a move to another server).
    """
    project = Path(project)
    env = os.environ if env is None else env
    with open_store(project) as store, folder_lock(project):
        check_cycles(project, store)
        check_pool(project, store)  # the images are uploaded: their folder must be there
        names: list[str] = store.get_meta("classes")
        link = None if relink else linked(store)
        url = resolve_url(url, link, env)
        if link and normalize_url(link["url"]) != url:
            raise StateError(
                f"{project} is linked to Label Studio project {link['project']} at {link['url']}, "
                f"not {url}; pass --relink to push the batch that is out to {url} as new tasks"
            )
        out = store.images(status="selected")
        if not out:
            raise StateError(f"{project}: no batch is out, nothing to push (run detal cycle first)")
        if link and ls_project is not None and int(ls_project) != int(link["project"]):
            raise StateError(
                f"{project} is linked to Label Studio project {link['project']}, not {ls_project}; "
                f"pass --relink to push the batch that is out to project {ls_project} instead"
            )
        if client is None:
            client = Client(url, token or read_token(token_file, env))

        created = False
        target = link["project"] if link else ls_project
        if target is not None:
            info = fetch_project(client, int(target), project)
            check_config(client, info, names)
        else:
            info = client.create_project(title(project), labeling_config(names, FROM_NAME, TO_NAME))
            created = True
        pid = int(info["id"])
        if not link or int(link["project"]) != pid:
            with store.transaction():
                store.set_meta(META_KEY, {"url": url, "project": pid})
                store.forget_label_studio_tasks()

        recorded = recorded_tasks(store, pid)
        todo = [r for r in out if r.id not in recorded]
        adopted: list[tuple[ImageRow, int]] = []
        if todo and not created:
            by_key = {r.key: r for r in todo}
            for task in client.tasks(pid, include="id,data"):
                key = (task.get("data") or {}).get("detal_key")
                if key in by_key:
                    adopted.append((by_key.pop(key), int(task["id"])))
            if adopted:
                record_tasks(store, pid, adopted)
            todo = list(by_key.values())

        raw, unit = _uncertainties(store, todo)
        prefix = urllib.parse.urlsplit(url).path
        n_pushed = n_pred = 0
        # Build every task first: a bad pre-label file stops the push before any upload.
        cycles = {r.selected_cycle for r in todo if r.selected_cycle > 0}
        exported = {c: _scored_regions(project, c, names) for c in cycles}
        planned = {r.id: _task(project, r, names, "", unit.get(r.id), raw.get(r.id),
                               exported.get(r.selected_cycle, {})) for r in todo}
        for chunk in _chunks(todo, project):
            stored = client.upload(pid, [(bundle_name(r), b)
                                         for r, b in chunk])
            tasks = []
            for (r, _), path in zip(chunk, stored):
                task = planned[r.id]
                task["data"][TO_NAME] = f"{prefix}/data/{path}"
                tasks.append(task)
            # One import per upload: a push killed here leaves at most one chunk of
            # uploads without tasks, and tasks the next push adopts by detal_key.
            ids = client.import_tasks(pid, tasks)
            record_tasks(store, pid, [(r, t) for (r, _), t in zip(chunk, ids)])
            n_pushed += len(tasks)
            n_pred += sum(1 for t in tasks if "predictions" in t)
            if on_chunk is not None:
                on_chunk(n_pushed)
        return PushReport(url, pid, created, n_pushed, len(out) - len(todo), len(adopted), n_pred)
