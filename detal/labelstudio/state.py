"""The project side of push and pull: the store, its lock, the link to a Label Studio project.

The link (server URL and Label Studio project id) is kept in the store's
``meta`` under ``label_studio``; the task id of every pushed image in its
``label_studio_tasks`` table, so both share the store's transactions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from detal.errors import ConfigError, NotFound, StateError
from detal.labelstudio.client import URL_ENV, Client, normalize_url
from detal.labelstudio.convert import config_classes
from detal.store import ImageRow, Store

META_KEY = "label_studio"


def check_cycles(project: Path, store: Store) -> None:
    last = store.last_cycle()
    if last is not None and last.state != "done":
        raise StateError(f"{project}: cycle {last.id} was interrupted; rerun detal cycle to finish it first")


def recorded_tasks(store: Store, ls_project: int) -> dict[int, int]:
    """``image id -> task id`` recorded for ``ls_project``."""
    return store.label_studio_tasks(ls_project)


def record_tasks(store: Store, ls_project: int, rows: Sequence[tuple[ImageRow, int]]) -> None:
    with store.transaction():
        store.record_label_studio_tasks(ls_project, rows)


def linked(store: Store) -> dict | None:
    link = store.get_meta(META_KEY)
    return link if isinstance(link, dict) and "url" in link and "project" in link else None


def resolve_url(url: str | None, link: dict | None, env: Mapping[str, str]) -> str:
    if url:
        return normalize_url(url)
    if link:
        return normalize_url(link["url"])
    if env.get(URL_ENV, "").strip():
        return normalize_url(env[URL_ENV])
    raise ConfigError(f"no Label Studio URL: pass --label-studio URL or set {URL_ENV}")


def check_config(client: Client, info: Mapping, names: Sequence[str]) -> None:
    found = config_classes(str(info.get("label_config") or ""))
    if found != list(names):
        shown = "no single RectangleLabels control" if found is None else ", ".join(found) or "none"
        raise StateError(
            f"Label Studio project {info.get('id')} at {client.url} labels with ({shown}), "
            f"not the project's classes in order ({', '.join(names)}); fix its labeling config "
            "or push with --relink to create a new Label Studio project"
        )


def fetch_project(client: Client, ls_project: int, project: Path) -> dict:
    try:
        return client.project(ls_project)
    except NotFound:
        raise StateError(
            f"Label Studio project {ls_project} at {client.url} no longer exists (deleted on the "
            f"server?); detal push {project} --relink creates a new one and pushes the batch that "
            "is out again"
        ) from None


def title(project: Path) -> str:
    """The title of a new Label Studio project (it takes 3 to 50 characters)."""
    return f"detal {project.resolve().name}"[:50]
