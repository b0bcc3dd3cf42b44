"""Label Studio, live: push the batch that is out to a running server, pull the corrections back.

This is the Python API behind ``detal push`` and ``detal pull``. It talks to
Label Studio's REST API with the standard library only (``urllib``); the
official SDK is not used, because it pins numpy and opencv against detal's
stack.

Push (:func:`push_batch`)
    Every image that is out (status ``selected``) and has no task yet becomes
    one Label Studio task:

    * the Label Studio project is the one this project is linked to (its id
      and server are kept in the store's ``meta`` under ``label_studio``), or
      ``ls_project`` when given, or a new one titled after the project folder.
      Its labeling config must hold the project's classes, in order, in one
      ``RectangleLabels`` control (the config of
      :func:`detal.export.labelstudio.labeling_config`); a mismatch is an error,
      never a silent remap;
    * the image is **uploaded**, not served from local files. Upload works with
      any server (remote, in a container, on another machine), needs no server
      setting, and copies only the batch (a few percent of the pool), once per
      image. Local files would avoid that copy but need
      ``LOCAL_FILES_SERVING_ENABLED`` and a document root holding the pool on
      the server's own file system;
    * the task's data holds ``image`` (the uploaded file), ``detal_key`` (the
      image's key) and ``uncertainty`` (the image's score in the cycle that
      selected it); its one prediction has ``model_version`` ``cycle-<k>``,
      a task ``score`` of ``1 - uncertainty`` normalised over the cycle's batch
      (Label Studio sorts ascending, so the most uncertain come first), and one
      region per pre-label box from ``PROJECT/cycles/<k>/prelabels/<key>.txt``,
      whose ``score`` is the box's confidence when the file has that 6th column.
      The initial random batch (cycle 0) has no pre-labels and no scores.

    The task id of each pushed image is recorded in the store's
    ``label_studio_tasks`` table, in the same database and transaction
    discipline as every other state, so pushing again adds no duplicate. A
    push killed between the server's import and that record is healed by the
    next push, which adopts the server's tasks whose ``detal_key`` names an
    image that is out.

Pull (:func:`pull_labels`)
    The annotations of the tasks of the images that are out are fetched,
    converted to YOLO label files named ``<key>.txt`` in a temporary folder,
    and handed to :func:`detal.project.import_labels`: the same validated,
    all-or-nothing import as label files, with its partial-import rule (images
    whose task is unannotated stay out). Labels are mapped by class **name**,
    never by index (Label Studio's own YOLO export sorts classes
    alphabetically). A label that is not one of the project's classes, a
    rotated box, or a box without a label is an error that imports nothing.

    Which annotation counts (:func:`chosen_annotation`): skipped (cancelled)
    annotations and drafts never count; of the rest, one marked ground truth
    wins, otherwise the most recently updated one (ties: the higher id). An
    annotation with no boxes means "this image has no objects" and imports an
    empty label file.

Auth (:class:`Client`)
    The token comes from the environment (``LABEL_STUDIO_API_KEY``) or a file,
    never from the command line. A legacy token is sent as
    ``Authorization: Token ...``. A personal access token (a JWT refresh token,
    Label Studio >= 1.16) is exchanged at ``/api/token/refresh/`` for a
    short-lived access token sent as ``Bearer``; on a 401 it is refreshed once
    and the request retried.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import http.client
import json
import math
import os
import shutil
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from detal.errors import ConfigError, DataError, RemoteError, StateError
from detal.export.labelstudio import labeling_config, normalise_uncertainty
from detal.labels import format_line, parse_label_text
from detal.store import DB_NAME, ImageRow, Store

__all__ = [
    "TOKEN_ENV",
    "URL_ENV",
    "Client",
    "PullReport",
    "PushReport",
    "annotation_to_yolo",
    "chosen_annotation",
    "config_classes",
    "pull_labels",
    "push_batch",
    "read_token",
    "token_kind",
]

TOKEN_ENV = "LABEL_STUDIO_API_KEY"
URL_ENV = "LABEL_STUDIO_URL"
FROM_NAME = "label"
TO_NAME = "image"
META_KEY = "label_studio"
LOCK_FILE = ".detal.lock"  # the lock file of detal.project's cycle and import
_UPLOAD_FILES = 50  # images per upload request
_UPLOAD_BYTES = 32 * 1024 * 1024
_IMPORT_TASKS = 500  # tasks per import request
_PAGE = 500  # tasks per page when listing
_MAX_PROBLEMS = 20


# -- token and URL --------------------------------------------------------------------
def read_token(token_file: str | Path | None = None, env: Mapping[str, str] | None = None) -> str:
    """The API token: the first line of ``token_file`` if given, else ``$LABEL_STUDIO_API_KEY``."""
    env = os.environ if env is None else env
    if token_file is not None:
        path = Path(token_file)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: token file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the token file ({exc})") from None
        token = text.strip().splitlines()[0].strip() if text.strip() else ""
        if not token:
            raise ConfigError(f"{path}: token file is empty")
        return token
    token = env.get(TOKEN_ENV, "").strip()
    if not token:
        raise ConfigError(
            f"no Label Studio token: set {TOKEN_ENV} or pass --token-file FILE "
            "(the token is never taken from the command line)"
        )
    return token


def token_kind(token: str) -> str:
    """``"refresh"`` (personal access token), ``"access"`` (a JWT access token) or ``"legacy"``."""
    parts = token.split(".")
    if len(parts) == 3:
        try:
            payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except (ValueError, binascii.Error):
            return "legacy"
        if isinstance(payload, dict) and payload.get("token_type") in ("refresh", "access"):
            return str(payload["token_type"])
    return "legacy"


def normalise_url(url: str) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing slash; :class:`ConfigError` otherwise."""
    text = str(url).strip()
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.query or parsed.fragment:
        raise ConfigError(f"Label Studio URL must look like http://host:8080, got {url!r}")
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path.rstrip("/"), "", ""))


# -- HTTP client -----------------------------------------------------------------------
class _NotFound(RemoteError):
    """HTTP 404; callers turn it into a message about what is missing."""


class Client:
    """A minimal Label Studio REST client over ``urllib`` (JSON in, JSON out)."""

    def __init__(self, url: str, token: str, *, timeout: float = 120.0) -> None:
        self.url = normalise_url(url)
        self.kind = token_kind(token)
        self.timeout = timeout
        self._token = token
        self._access: str | None = None
        self.n_refreshes = 0

    # -- auth
    def _authorization(self) -> str:
        if self.kind == "legacy":
            return f"Token {self._token}"
        if self.kind == "access":
            return f"Bearer {self._token}"
        if self._access is None:
            self._refresh()
        return f"Bearer {self._access}"

    def _refresh(self) -> None:
        try:
            answer = self._send("POST", "/api/token/refresh/", json.dumps({"refresh": self._token}).encode(),
                                "application/json", None)
        except urllib.error.HTTPError as exc:
            if exc.code in (400, 401, 403):
                raise RemoteError(
                    f"Label Studio at {self.url} rejected the personal access token "
                    f"(HTTP {exc.code}: {_detail(exc)}); check {TOKEN_ENV} or --token-file"
                ) from None
            raise self._http_error(exc, "POST", "/api/token/refresh/") from None
        access = answer.get("access") if isinstance(answer, dict) else None
        if not isinstance(access, str) or not access:
            raise RemoteError(f"Label Studio at {self.url}: /api/token/refresh/ returned no access token")
        self._access = access
        self.n_refreshes += 1

    # -- transport
    def _send(self, method: str, path: str, body: bytes | None, content_type: str | None,
              authorization: str | None) -> Any:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if authorization:
            headers["Authorization"] = authorization
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        where = f"{method} {path.split('?')[0]}"
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError:
            raise
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ConnectionRefusedError):
                raise RemoteError(f"cannot reach Label Studio at {self.url}: connection refused "
                                  "(is the server running, and is the URL right?)") from None
            if isinstance(reason, TimeoutError):
                raise RemoteError(f"Label Studio at {self.url} did not answer {where} within "
                                  f"{self.timeout:g} s") from None
            if isinstance(reason, socket.gaierror):
                raise RemoteError(f"cannot reach Label Studio at {self.url}: unknown host "
                                  f"({reason})") from None
            raise RemoteError(f"cannot reach Label Studio at {self.url}: {reason}") from None
        except TimeoutError:
            raise RemoteError(f"Label Studio at {self.url} did not answer {where} within "
                              f"{self.timeout:g} s") from None
        except (http.client.HTTPException, ConnectionError, OSError) as exc:
            raise RemoteError(f"the connection to Label Studio at {self.url} was lost during {where} "
                              f"({type(exc).__name__}: {exc or 'no answer'}); nothing was changed "
                              "in the project") from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise RemoteError(f"Label Studio at {self.url} answered {where} with something that is "
                              "not JSON (is this a Label Studio server?)") from None

    def _http_error(self, exc: urllib.error.HTTPError, method: str, path: str) -> RemoteError:
        where = f"{method} {path.split('?')[0]}"
        detail = _detail(exc)
        if exc.code in (401, 403):
            return RemoteError(f"Label Studio at {self.url} rejected the token (HTTP {exc.code}: "
                               f"{detail}); check {TOKEN_ENV} or --token-file")
        if exc.code == 404:
            return _NotFound(f"Label Studio at {self.url}: {where} not found ({detail})")
        return RemoteError(f"Label Studio at {self.url} refused {where} (HTTP {exc.code}: {detail})")

    def request(self, method: str, path: str, *, json_body: Any = None, body: bytes | None = None,
                content_type: str | None = None) -> Any:
        """One API call; a 401 with a personal access token refreshes it once and retries."""
        if json_body is not None:
            body, content_type = json.dumps(json_body).encode(), "application/json"
        for attempt in (0, 1):
            try:
                return self._send(method, path, body, content_type, self._authorization())
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and self.kind == "refresh" and attempt == 0:
                    self._access = None
                    continue
                raise self._http_error(exc, method, path) from None
        raise AssertionError("unreachable")  # pragma: no cover

    # -- endpoints
    def project(self, ls_project: int) -> dict:
        return self.request("GET", f"/api/projects/{int(ls_project)}")

    def create_project(self, title: str, label_config: str) -> dict:
        return self.request("POST", "/api/projects", json_body={
            "title": title, "label_config": label_config,
            "description": "Created by detal push: pre-labels and uncertainty from detal's cycles.",
        })

    def tasks(self, ls_project: int, include: str | None = None,
              page_size: int = _PAGE) -> Iterator[dict]:
        """Every task of a project, page by page, whole or with the ``include`` keys only.

        ``include`` trims nested objects too: annotations come as bare ids with it.
        """
        page, seen = 1, 0
        trim = f"&include={include}" if include else ""
        while True:
            answer = self.request(
                "GET", f"/api/tasks?project={int(ls_project)}&fields=all{trim}"
                f"&page_size={int(page_size)}&page={page}")
            if not isinstance(answer, dict) or not isinstance(answer.get("tasks"), list):
                raise RemoteError(f"Label Studio at {self.url}: unexpected answer to GET /api/tasks")
            batch = answer["tasks"]
            yield from batch
            seen += len(batch)
            if not batch or seen >= int(answer.get("total", 0)):
                return
            page += 1

    def upload(self, ls_project: int, files: Sequence[tuple[str, bytes]]) -> list[str]:
        """Upload image files (not yet tasks); their paths under ``/data/``, in input order."""
        boundary = uuid.uuid4().hex
        parts = []
        for n, (name, content) in enumerate(files):
            mime = _MIME.get(PurePosixPath(name).suffix.lower(), "application/octet-stream")
            quoted = name.replace('"', "_").replace("\r", "_").replace("\n", "_")
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="file{n}"; '
                f'filename="{quoted}"\r\nContent-Type: {mime}\r\n\r\n'.encode() + content + b"\r\n"
            )
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        answer = self.request("POST", f"/api/projects/{int(ls_project)}/import?commit_to_project=false",
                              body=body, content_type=f"multipart/form-data; boundary={boundary}")
        ids = answer.get("file_upload_ids") if isinstance(answer, dict) else None
        if not isinstance(ids, list) or len(ids) != len(files):
            raise RemoteError(f"Label Studio at {self.url}: the upload of {len(files)} images returned "
                              f"{len(ids) if isinstance(ids, list) else 'no'} file ids")
        query = urllib.parse.quote(json.dumps([int(i) for i in ids]))
        listed = self.request("GET", f"/api/projects/{int(ls_project)}/file-uploads?ids={query}")
        by_id = {int(f["id"]): str(f["file"]) for f in listed or [] if "id" in f and "file" in f}
        out = []
        for i, (name, _) in zip(ids, files):
            stored = by_id.get(int(i))
            if stored is None or not PurePosixPath(stored).name.endswith(name):
                raise RemoteError(f"Label Studio at {self.url}: uploaded {name} but the server lists "
                                  f"{stored!r} for it")
            out.append(stored)
        return out

    def import_tasks(self, ls_project: int, tasks: Sequence[dict]) -> list[int]:
        answer = self.request("POST", f"/api/projects/{int(ls_project)}/import?return_task_ids=true",
                              json_body=list(tasks))
        ids = answer.get("task_ids") if isinstance(answer, dict) else None
        if not isinstance(ids, list) or len(ids) != len(tasks):
            raise RemoteError(f"Label Studio at {self.url}: importing {len(tasks)} tasks returned "
                              f"{len(ids) if isinstance(ids, list) else 'no'} task ids")
        return [int(i) for i in ids]


_MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".bmp": "image/bmp",
         ".webp": "image/webp", ".tif": "image/tiff", ".tiff": "image/tiff"}


def _detail(exc: urllib.error.HTTPError) -> str:
    """The server's own words for an HTTP error, on one short line."""
    try:
        raw = exc.read()
    except (OSError, http.client.HTTPException):
        raw = b""
    text = ""
    try:
        data = json.loads(raw)
        if isinstance(data, dict):
            text = str(data.get("detail") or "")
            if data.get("validation_errors"):
                text += f" {json.dumps(data['validation_errors'])}"
    except ValueError:
        text = raw.decode("utf-8", "replace")
    text = " ".join((text or exc.reason or "").split())
    return text[:300] + ("..." if len(text) > 300 else "")


# -- labeling config, predictions, annotations ----------------------------------------
def config_classes(label_config: str) -> list[str] | None:
    """The label values of the config's one ``RectangleLabels`` control, in order (None: none)."""
    try:
        root = ET.fromstring(label_config)
    except ET.ParseError:
        return None
    controls = [el for el in root.iter() if el.tag == "RectangleLabels"]
    if len(controls) != 1:
        return None
    return [str(el.get("value")) for el in controls[0] if el.tag == "Label"]


def _pct(v: float) -> float:
    return round(v * 100.0, 6) + 0.0


def prediction_regions(text: str, names: Sequence[str], width: int, height: int,
                       where: str) -> list[dict]:
    """Label Studio regions (percent, top-left origin) of a pre-label file's text."""
    boxes, problems = parse_label_text(text, len(names), where, allow_confidence=True)
    if problems:
        first = problems[0]
        raise DataError(f"{first.path}: line {first.line}: {first.message}")
    regions = []
    for k, b in enumerate(boxes):
        region: dict[str, Any] = {
            "id": f"p{k}",
            "type": "rectanglelabels",
            "from_name": FROM_NAME,
            "to_name": TO_NAME,
            "original_width": int(width),
            "original_height": int(height),
            "image_rotation": 0,
            "value": {
                "x": _pct(b.cx - b.w / 2), "y": _pct(b.cy - b.h / 2),
                "width": _pct(b.w), "height": _pct(b.h), "rotation": 0,
                "rectanglelabels": [str(names[b.class_id])],
            },
        }
        if b.confidence is not None:
            region["score"] = round(float(b.confidence), 6)
        regions.append(region)
    return regions


def _when(annotation: Mapping) -> datetime:
    for key in ("updated_at", "created_at"):
        value = annotation.get(key)
        if isinstance(value, str):
            try:
                when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return datetime.min.replace(tzinfo=timezone.utc)


def chosen_annotation(annotations: Sequence[Mapping]) -> Mapping | None:
    """The annotation that counts for a task (see the module doc), or None if there is none."""
    submitted = [a for a in annotations if isinstance(a, Mapping) and not a.get("was_cancelled")]
    if not submitted:
        return None
    pool = [a for a in submitted if a.get("ground_truth")] or submitted
    return max(pool, key=lambda a: (_when(a), int(a.get("id") or 0)))


def annotation_to_yolo(result: Sequence[Mapping], names: Sequence[str],
                       where: str) -> tuple[str, list[str]]:
    """YOLO label text of one annotation's ``result``, and the problems found (label by name)."""
    index = {n: i for i, n in enumerate(names)}
    lines, problems = [], []
    for k, region in enumerate(result):
        kind = region.get("type")
        if kind not in ("rectanglelabels", "rectangle"):
            continue  # other controls (choices, text) carry no box
        value = region.get("value") or {}
        at = f"{where}, region {region.get('id', k)}"
        labels = value.get("rectanglelabels") or []
        if len(labels) != 1:
            problems.append(f"{at}: a box needs exactly one label, it has {len(labels)}")
            continue
        label = str(labels[0])
        if label not in index:
            problems.append(f"{at}: label {label!r} is not one of the project's classes "
                            f"({', '.join(names)})")
            continue
        try:
            x, y, w, h = (float(value[key]) for key in ("x", "y", "width", "height"))
            rotation = float(value.get("rotation") or 0.0)
        except (KeyError, TypeError, ValueError):
            problems.append(f"{at}: box without numeric x, y, width, height")
            continue
        if not all(math.isfinite(v) for v in (x, y, w, h, rotation)):
            problems.append(f"{at}: box coordinates are not finite")
            continue
        if abs(rotation) > 1e-6 and abs(rotation - 360.0) > 1e-6:
            problems.append(f"{at}: box is rotated by {rotation:g} degrees; YOLO boxes are axis-aligned")
            continue
        x1, y1 = max(0.0, x / 100.0), max(0.0, y / 100.0)
        x2, y2 = min(1.0, (x + w) / 100.0), min(1.0, (y + h) / 100.0)
        if x2 <= x1 or y2 <= y1:
            problems.append(f"{at}: box [{x:g}, {y:g}, {w:g}, {h:g}]% has no area inside the image")
            continue
        lines.append(format_line(index[label], (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1))
    return "".join(line + "\n" for line in lines), problems


# -- project side ------------------------------------------------------------------------
@contextmanager
def _open(project: Path) -> Iterator[Store]:
    if not (project / DB_NAME).is_file():
        raise StateError(f"{project}: not a detal project (no {DB_NAME}; run detal init first)")
    store = Store.open(project / DB_NAME)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def _locked(project: Path) -> Iterator[None]:
    with open(project / LOCK_FILE, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateError(f"{project}: another detal command is running on this project") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _check_cycles(project: Path, store: Store) -> None:
    last = store.last_cycle()
    if last is not None and last.state != "done":
        raise StateError(f"{project}: cycle {last.id} was interrupted; rerun detal cycle to finish it first")


def _recorded(store: Store, ls_project: int) -> dict[int, int]:
    """``image id -> task id`` recorded for ``ls_project``."""
    cur = store.execute("SELECT image_id, task_id FROM label_studio_tasks WHERE project = ?",
                        (int(ls_project),))
    return {int(i): int(t) for i, t in cur}


def _record(store: Store, ls_project: int, rows: Sequence[tuple[ImageRow, int]]) -> None:
    with store.transaction():
        for row, task_id in rows:
            store.execute(
                "INSERT OR REPLACE INTO label_studio_tasks (image_id, project, task_id, cycle) "
                "VALUES (?, ?, ?, ?)", (row.id, int(ls_project), int(task_id), row.selected_cycle))


def _link(store: Store) -> dict | None:
    link = store.get_meta(META_KEY)
    return link if isinstance(link, dict) and "url" in link and "project" in link else None


def _resolve_url(url: str | None, link: dict | None, env: Mapping[str, str]) -> str:
    if url:
        return normalise_url(url)
    if link:
        return normalise_url(link["url"])
    if env.get(URL_ENV, "").strip():
        return normalise_url(env[URL_ENV])
    raise ConfigError(f"no Label Studio URL: pass --label-studio URL or set {URL_ENV}")


def _check_config(client: Client, info: Mapping, names: Sequence[str]) -> None:
    found = config_classes(str(info.get("label_config") or ""))
    if found != list(names):
        shown = "no single RectangleLabels control" if found is None else ", ".join(found) or "none"
        raise StateError(
            f"Label Studio project {info.get('id')} at {client.url} labels with ({shown}), "
            f"not the project's classes in order ({', '.join(names)}); fix its labeling config "
            "or push with --relink to create a new Label Studio project"
        )


def _fetch_project(client: Client, ls_project: int, project: Path) -> dict:
    try:
        return client.project(ls_project)
    except _NotFound:
        raise StateError(
            f"Label Studio project {ls_project} at {client.url} no longer exists (deleted on the "
            f"server?); detal push {project} --relink creates a new one and pushes the batch that "
            "is out again"
        ) from None


def _title(project: Path) -> str:
    name = f"detal {project.resolve().name}"
    return name[:50] if len(name) >= 3 else f"{name} project"


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


def _scores_by_cycle(store: Store, rows: Sequence[ImageRow]) -> dict[int, float]:
    """``image id -> uncertainty normalised to [0, 1]`` over each cycle's scored images."""
    out: dict[int, float] = {}
    for cycle in sorted({r.selected_cycle for r in rows if r.selected_cycle > 0}):
        raw = {str(i): s for i, (s, _, _) in store.scores(cycle).items() if math.isfinite(s)}
        if raw:
            out.update({int(k): v for k, v in normalise_uncertainty(raw).items()})
    return out


def _task(project: Path, row: ImageRow, names: Sequence[str], image_url: str,
          uncertainty: float | None, raw_score: float | None) -> dict:
    data: dict[str, Any] = {TO_NAME: image_url, "detal_key": row.key}
    if raw_score is not None:
        data["uncertainty"] = round(float(raw_score), 6)
    task: dict[str, Any] = {"data": data}
    k = row.selected_cycle
    if k >= 1:
        path = project / "cycles" / str(k) / "prelabels" / f"{row.key}.txt"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(f"{path}: pre-label file of image {row.key} (cycle {k}) is missing") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read the pre-labels ({exc})") from None
        prediction: dict[str, Any] = {"model_version": f"cycle-{k}"}
        if uncertainty is not None:
            prediction["score"] = round(1.0 - uncertainty, 6)
        prediction["result"] = prediction_regions(text, names, row.width, row.height, str(path))
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
    with _open(project) as store, _locked(project):
        _check_cycles(project, store)
        names: list[str] = store.get_meta("classes")
        link = None if relink else _link(store)
        url = _resolve_url(url, link, env)
        if link and normalise_url(link["url"]) != url:
            raise StateError(
                f"{project} is linked to Label Studio project {link['project']} at {link['url']}, "
                f"not {url}; pass --relink to push the batch that is out to {url} as new tasks"
            )
        out = store.images(status="selected")
        if not out:
            raise StateError(f"{project}: no batch is out, nothing to push (run detal cycle first)")
        if client is None:
            client = Client(url, token or read_token(token_file, env))

        if link and ls_project is not None and int(ls_project) != int(link["project"]):
            raise StateError(
                f"{project} is linked to Label Studio project {link['project']}, not {ls_project}; "
                f"pass --relink to push the batch that is out to project {ls_project} instead"
            )
        created = False
        target = link["project"] if link else ls_project
        if target is not None:
            info = _fetch_project(client, int(target), project)
            _check_config(client, info, names)
        else:
            info = client.create_project(_title(project), labeling_config(names, FROM_NAME, TO_NAME))
            created = True
        pid = int(info["id"])
        if not link or int(link["project"]) != pid:
            with store.transaction():
                store.set_meta(META_KEY, {"url": url, "project": pid})
                store.execute("DELETE FROM label_studio_tasks")

        recorded = _recorded(store, pid)
        todo = [r for r in out if r.id not in recorded]
        adopted: list[tuple[ImageRow, int]] = []
        if todo and not created:
            by_key = {r.key: r for r in todo}
            for task in client.tasks(pid, include="id,data"):
                key = (task.get("data") or {}).get("detal_key")
                if key in by_key:
                    adopted.append((by_key.pop(key), int(task["id"])))
            if adopted:
                _record(store, pid, adopted)
            todo = list(by_key.values())

        scores = _scores_by_cycle(store, todo)
        raw = {}
        for cycle in sorted({r.selected_cycle for r in todo if r.selected_cycle > 0}):
            raw.update({i: s for i, (s, _, _) in store.scores(cycle).items()})
        prefix = urllib.parse.urlsplit(url).path
        n_pushed = n_pred = 0
        # Build every task first: a bad pre-label file stops the push before any upload.
        planned = {r.id: _task(project, r, names, "", scores.get(r.id), raw.get(r.id)) for r in todo}
        for chunk in _chunks(todo, project):
            stored = client.upload(pid, [(f"{r.key}{PurePosixPath(r.relpath).suffix}", b)
                                         for r, b in chunk])
            tasks = []
            for (r, _), path in zip(chunk, stored):
                task = planned[r.id]
                task["data"][TO_NAME] = f"{prefix}/data/{path}"
                tasks.append(task)
            for start in range(0, len(tasks), _IMPORT_TASKS):
                part = chunk[start : start + _IMPORT_TASKS]
                ids = client.import_tasks(pid, tasks[start : start + _IMPORT_TASKS])
                _record(store, pid, [(r, t) for (r, _), t in zip(part, ids)])
            n_pushed += len(tasks)
            n_pred += sum(1 for t in tasks if "predictions" in t)
            if on_chunk is not None:
                on_chunk(n_pushed)
        return PushReport(url, pid, created, n_pushed, len(out) - len(todo), len(adopted), n_pred)


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
    from detal.project import import_labels

    project = Path(project)
    env = os.environ if env is None else env
    with _open(project) as store:
        _check_cycles(project, store)
        names: list[str] = store.get_meta("classes")
        link = _link(store)
        if link is None:
            raise StateError(f"{project}: nothing pushed to Label Studio yet (run detal push first)")
        url = _resolve_url(url, link, env)
        pid = int(link["project"])
        statuses = ("selected", "labeled") if overwrite else ("selected",)
        recorded = _recorded(store, pid)
        rows = [r for r in store.images(ids=list(recorded)) if r.status in statuses]
        n_out = store.image_count("selected")
    if client is None:
        client = Client(url, token or read_token(token_file, env))
    _fetch_project(client, pid, project)
    wanted = {recorded[r.id]: r for r in rows}
    found: dict[int, dict] = {}
    for task in client.tasks(pid, page_size=page_size or _PAGE):
        tid = int(task.get("id", -1))
        if tid in wanted:
            found[tid] = task

    texts: dict[str, str] = {}
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
        text, probs = annotation_to_yolo(chosen.get("result") or [], names, where)
        problems.extend(probs)
        texts[row.key] = text
    if problems:
        shown = "; ".join(problems[:_MAX_PROBLEMS])
        more = f"; and {len(problems) - _MAX_PROBLEMS} more" if len(problems) > _MAX_PROBLEMS else ""
        raise DataError(f"Label Studio project {pid} at {client.url}: {len(problems)} problem(s), "
                        f"nothing imported: {shown}{more}")
    if not texts:
        return PullReport(url, pid, 0, 0, 0, unannotated, missing, n_out)
    folder = Path(tempfile.mkdtemp(prefix=f"label-studio-{pid}-pull-"))
    try:
        for key, text in texts.items():
            (folder / f"{key}.txt").write_text(text, encoding="utf-8")
        report = import_labels(project, folder, overwrite=overwrite)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return PullReport(url, pid, report.n_labeled, report.n_unchanged, report.n_overwritten,
                      unannotated, missing, report.remaining)
