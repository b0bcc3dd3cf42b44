"""Start and stop a real Label Studio server for the tests and the benchmark.

The server runs from its own virtualenv (``.venv-ls``, built by ``make
label-studio``: Label Studio pins numpy and opencv against detal's stack), on
127.0.0.1 only, with every file it writes inside one throwaway folder, and
with everything that would call out switched off. It is stopped by the PID of
the process group it was started in, never by name.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-ls"
EXECUTABLE = VENV / "bin" / "label-studio"
USERNAME = "annotator@detal.test"
PASSWORD = "detal-test-password"
TOKEN = "0123456789abcdef0123456789abcdef01234567"
TEMPLATE = VENV / "test-data-template"
"""A migrated, empty data dir: a cold start (database migrations) takes minutes on 2 cores,
a start on a copy of this takes seconds. Kept inside .venv-ls, so it goes with it."""


def available() -> bool:
    return EXECUTABLE.is_file() and (VENV / ".installed").is_file()


def build(timeout: float = 900.0) -> tuple[bool, str]:
    """Run ``make label-studio``; ``(ok, last lines of its output)``."""
    try:
        proc = subprocess.run(["make", "label-studio"], check=False, cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
    return proc.returncode == 0 and available(), tail


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(data: Path, document_root: Path | None = None) -> dict[str, str]:
    """The environment that keeps the server offline, on localhost and inside ``data``."""
    tmp = data / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LABEL_STUDIO_", "DJANGO_", "PYTHON"))}
    env.update({
        "LABEL_STUDIO_BASE_DATA_DIR": str(data / "ls-data"),
        "LABEL_STUDIO_USERNAME": USERNAME,
        "LABEL_STUDIO_PASSWORD": PASSWORD,
        "LABEL_STUDIO_USER_TOKEN": TOKEN,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LOCAL_FILES_SERVING_ENABLED": "true",
        "LOCAL_FILES_DOCUMENT_ROOT": str(document_root or data),
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "TMPDIR": str(tmp),
        "XDG_CONFIG_HOME": str(data / "xdg-config"),
        "XDG_DATA_HOME": str(data / "xdg-data"),
        "XDG_CACHE_HOME": str(data / "xdg-cache"),
        "HOME": str(data / "home"),
    })
    return env


def fresh_data(data: Path) -> Path:
    """``data`` made a copy of :data:`TEMPLATE`, building the template on first use."""
    if not (TEMPLATE / "ls-data").is_dir():
        building = TEMPLATE.with_name(f"{TEMPLATE.name}.tmp-{os.getpid()}")
        shutil.rmtree(building, ignore_errors=True)
        server = Server(building)
        try:
            server.start()
        finally:
            server.stop()
        shutil.rmtree(building / "tmp", ignore_errors=True)
        (building / "server.log").unlink(missing_ok=True)
        try:
            os.rename(building, TEMPLATE)
        except OSError:  # another session made it first
            shutil.rmtree(building, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(TEMPLATE, data, symlinks=True)
    return data


class Server:
    """One Label Studio process; :meth:`start` waits until it answers, :meth:`stop` ends it."""

    def __init__(self, data: Path, port: int | None = None) -> None:
        self.data = Path(data)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = TOKEN
        self.proc: subprocess.Popen | None = None
        self.log = self.data / "server.log"

    def start(self, timeout: float = 240.0) -> Server:
        self.data.mkdir(parents=True, exist_ok=True)
        cmd = [str(EXECUTABLE), "start", "--no-browser", "--internal-host", "127.0.0.1",
               "--port", str(self.port), "--log-level", "WARNING"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=self.data, env=server_env(self.data),
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Label Studio exited with {self.proc.returncode}; see {self.log}:\n"
                                   + self.log_tail())
            if self._healthy():
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"Label Studio did not answer within {timeout:.0f} s; see {self.log}")

    def _healthy(self) -> bool:
        req = urllib.request.Request(f"{self.url}/api/projects?page_size=1",
                                     headers={"Authorization": f"Token {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                json.load(resp)
                return resp.status == 200
        except (OSError, ValueError):
            return False

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to the server's process group (by PID), then SIGKILL if it lingers."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
        except ProcessLookupError:
            pass

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def api(self, method: str, path: str, body: object = None) -> object:
        """One JSON request as the test annotator (legacy token), for driving the server in tests."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers={
            "Authorization": f"Token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None
