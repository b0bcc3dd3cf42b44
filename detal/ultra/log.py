"""Where Ultralytics' output goes: a log file of plain lines instead of the terminal.

No ML here. :func:`routed` redirects, while a call runs, the three ways
Ultralytics talks (its ``ultralytics`` logger, and ``sys.stdout`` and
``sys.stderr``, which carry its progress bars, prints and warnings) to a
:class:`PlainLines` stream, which writes what a terminal would end up showing:
one plain line per finished progress bar, no escape codes.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from detal.ultra.setup import prepare_ultralytics

__all__ = ["LogRoute", "PlainLines", "first_line", "logged", "routed"]

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")  # CSI sequences and two-byte escapes


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class PlainLines(io.TextIOBase):
    """A text stream that writes what a terminal would end up showing, as plain lines.

    Progress bars redraw one line with ``\\r`` and escape codes; this stream
    strips every escape code, keeps the last state of each line (the text after
    its last non-empty ``\\r`` segment) and writes whole lines to ``log`` (a
    file), so a log holds one line per finished bar. ``echo``, when given, sees
    the same: the raw writes when it is a terminal (bars redraw there as usual),
    else the plain lines. A header line is written before the first line.
    """

    def __init__(self, log: TextIO, echo: TextIO | None, header: str) -> None:
        super().__init__()
        self._log = log
        self._echo = echo
        self._raw_echo = echo is not None and _isatty(echo)
        self._header = header
        self._line = ""  # the unfinished line, redraws included
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, s: str) -> int:
        with self._lock:
            if self._raw_echo:
                self._echo.write(s)  # type: ignore[union-attr]
                self._echo.flush()  # type: ignore[union-attr]
            *done, rest = (self._line + _ANSI.sub("", s)).split("\n")
            # the line's last state, and whether the next text starts it over
            self._line = _shown(rest) + ("\r" if rest.endswith("\r") else "")
            self._emit([_shown(line) for line in done])
        return len(s)

    def flush(self) -> None:
        with self._lock:
            self._log.flush()

    def finish(self) -> None:
        """Write the unfinished line, if it shows anything."""
        with self._lock:
            last = _shown(self._line)
            self._line = ""
            if last.strip():
                self._emit([last])
            self._log.flush()

    def _emit(self, lines: list[str]) -> None:
        if not lines:
            return
        if self._header:
            lines = [self._header, *lines]
            self._header = ""
        text = "".join(line.rstrip() + "\n" for line in lines)
        self._log.write(text)
        self._log.flush()
        if self._echo is not None and not self._raw_echo:
            self._echo.write(text)
            self._echo.flush()


def _shown(line: str) -> str:
    """What a terminal shows of ``line`` after its carriage returns: the last non-empty part."""
    parts = [p for p in line.split("\r") if p]
    return parts[-1] if parts else ""


@dataclass(frozen=True)
class LogRoute:
    """Where a call's output goes (``path``, and ``echo`` live), and who hears about epochs."""

    path: Path
    echo: TextIO | None
    on_epoch: Callable[[int, int], None] | None


@contextlib.contextmanager
def routed(route: LogRoute | None, what: str) -> Iterator[None]:
    """Send everything Ultralytics says while a call runs to ``route.path``.

    Three paths, all redirected: the ``ultralytics`` logger (its handlers are
    swapped for one that writes to the route, at INFO), ``sys.stdout`` and
    ``sys.stderr`` (its progress bars, prints and Python warnings). Without a
    route, nothing changes. Ultralytics is imported inside the redirection, so
    what its first import says lands in the log too; a handler it created
    then is pointed back at the real stdout afterwards.
    """
    if route is None:
        yield
        return
    import logging
    import sys

    route.path.parent.mkdir(parents=True, exist_ok=True)
    with open(route.path, "a", encoding="utf-8") as fh:
        stream = PlainLines(fh, route.echo, f"--- {what}, {time.strftime('%Y-%m-%d %H:%M:%S')} ---")
        real_stdout = sys.stdout
        logger = logging.getLogger("ultralytics")
        saved_handlers, saved_level = list(logger.handlers), logger.level
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                prepare_ultralytics()
                saved_handlers, saved_level = list(logger.handlers), logger.level
                handler = logging.StreamHandler(stream)
                formats = [h.formatter for h in saved_handlers if h.formatter is not None]
                handler.setFormatter(formats[0] if formats else logging.Formatter("%(message)s"))
                logger.handlers = [handler]
                logger.setLevel(logging.INFO)
                yield
        finally:
            logger.handlers = saved_handlers
            logger.setLevel(saved_level)
            for h in saved_handlers:
                if isinstance(h, logging.StreamHandler) and h.stream is stream:
                    h.setStream(real_stdout)
            stream.finish()


def logged(what: str) -> Callable:
    """Decorate an adapter method to run inside :func:`routed` with the adapter's ``_route``."""

    def wrap(method: Callable) -> Callable:
        @functools.wraps(method)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            with routed(self._route, what):
                return method(self, *args, **kwargs)

        return call

    return wrap


def first_line(exc: BaseException) -> str:
    """``ExcType: first line of its message``, for one-line error messages."""
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__
