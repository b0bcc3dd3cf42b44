"""A minimal Label Studio REST client over ``urllib``, and where its URL and token come from.

The token comes from ``$LABEL_STUDIO_API_KEY`` or a file (:func:`read_token`),
never from the command line. A legacy token is sent as ``Authorization:
Token ...``. A personal access token (a JWT refresh token, Label Studio >=
1.16) is exchanged at ``/api/token/refresh/`` for a short-lived access token
sent as ``Bearer``; on a 401 it is refreshed once and the request retried.
Every failure is a :class:`~detal.errors.RemoteError` with one line that says
what went wrong where.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from detal.errors import ConfigError, NotFound, RemoteError
from detal.files import read_small_text

__all__ = ["TOKEN_ENV", "URL_ENV", "Client", "normalize_url", "read_token", "token_kind"]

TOKEN_ENV = "LABEL_STUDIO_API_KEY"
URL_ENV = "LABEL_STUDIO_URL"
_PAGE = 500  # tasks per page when listing
_IDS_PER_QUERY = 500  # task ids per filtered listing (they go in the URL)


# -- token and URL --------------------------------------------------------------------
def read_token(token_file: str | Path | None = None, env: Mapping[str, str] | None = None) -> str:
    """The API token: the first line of ``token_file`` if given, else ``$LABEL_STUDIO_API_KEY``."""
    env = os.environ if env is None else env
    if token_file is not None:
        path = Path(token_file)
        text = read_small_text(path, ConfigError, "token file")
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


def normalize_url(url: str) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing slash; :class:`ConfigError` otherwise."""
    text = str(url).strip()
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.query or parsed.fragment:
        raise ConfigError(f"Label Studio URL must look like http://host:8080, got {url!r}")
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path.rstrip("/"), "", ""))


# -- HTTP client -----------------------------------------------------------------------
class Client:
    """A minimal Label Studio REST client over ``urllib`` (JSON in, JSON out)."""

    def __init__(self, url: str, token: str, *, timeout: float = 120.0) -> None:
        self.url = normalize_url(url)
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
            return NotFound(f"Label Studio at {self.url}: {where} not found ({detail})")
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

    def tasks(self, ls_project: int, include: str | None = None, page_size: int = _PAGE,
              ids: Sequence[int] | None = None) -> Iterator[dict]:
        """The tasks of a project (only those in ``ids`` if given), page by page.

        ``include`` keeps only those keys; it trims nested objects too (annotations
        then come as bare ids), so leave it out to read annotations.
        """
        trim = f"&include={include}" if include else ""
        if ids is None:
            yield from self._pages(f"/api/tasks?project={int(ls_project)}&fields=all{trim}", page_size)
            return
        id_list = [int(i) for i in ids]
        for start in range(0, len(id_list), _IDS_PER_QUERY):
            selected = {"selectedItems": {"all": False,
                                          "included": id_list[start : start + _IDS_PER_QUERY]}}
            query = urllib.parse.quote(json.dumps(selected, separators=(",", ":")))
            yield from self._pages(
                f"/api/tasks?project={int(ls_project)}&fields=all{trim}&query={query}", page_size)

    def _pages(self, path: str, page_size: int) -> Iterator[dict]:
        page, seen = 1, 0
        while True:
            answer = self.request("GET", f"{path}&page_size={int(page_size)}&page={page}")
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
