"""Test-wide guards.

Every test runs with the network closed: any attempt to open a socket to
anything but a local/UNIX address raises and is recorded in
``NETWORK_ATTEMPTS``, so a test can also assert that nothing *tried* (code
that swallows the error would otherwise pass unnoticed). Ultralytics keeps
its settings under a temporary folder, never in the user's home.
"""

from __future__ import annotations

import os
import socket
import tempfile

import pytest

os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="detal-yolo-cfg-"))
os.environ.setdefault("YOLO_OFFLINE", "true")
os.environ.setdefault("MPLBACKEND", "Agg")

NETWORK_ATTEMPTS: list[str] = []

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _is_local(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    if isinstance(address, tuple) and address:
        host = str(address[0])
        return host in ("localhost", "::1") or host.startswith("127.")
    return False


def _guarded_connect(self: socket.socket, address: object):  # type: ignore[no-untyped-def]
    if not _is_local(address):
        NETWORK_ATTEMPTS.append(f"connect {address!r}")
        raise OSError(f"network access blocked in tests: {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object):  # type: ignore[no-untyped-def]
    if not _is_local(address):
        NETWORK_ATTEMPTS.append(f"connect_ex {address!r}")
        raise OSError(f"network access blocked in tests: {address!r}")
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    if host is not None and not _is_local((host,)):
        NETWORK_ATTEMPTS.append(f"getaddrinfo {host!r}")
        raise socket.gaierror(f"name resolution blocked in tests: {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
socket.getaddrinfo = _guarded_getaddrinfo


@pytest.fixture
def network_attempts():
    """The list of blocked network attempts made during the test (cleared first)."""
    NETWORK_ATTEMPTS.clear()
    yield NETWORK_ATTEMPTS
