"""The exception tree of detal.

Every error that detal raises on purpose derives from :class:`DetalError`.
The CLI catches ``DetalError`` and prints its message as one line on stderr,
exiting with status 1 and no traceback. Anything else is a bug and keeps its
traceback.

::

    DetalError            base class; never raised directly
    ├── ConfigError       a config file or --set override is wrong
    ├── DataError         an image, label, classes file or dataset is wrong
    ├── StateError        the project store is not in a state that allows the action
    │   ├── BatchOutError a cycle was asked for while a batch is still out (exit 3)
    │   └── BusyError     another detal command holds the project's lock (exit 4)
    ├── ModelError        training, prediction or evaluation failed, or weights are bad
    └── RemoteError       a server detal talks to (Label Studio) is unreachable or refused
        └── NotFound      the server answered HTTP 404

``ConfigError`` and ``DataError`` are also ``ValueError``s, so library callers
that pass a bad argument can catch the builtin they expect.

``BatchOutError`` and ``BusyError`` are the two "nothing to do now" states of
``detal cycle``: the CLI exits with their ``exit_code`` (3 and 4) instead of 1, and
``detal cycle --if-ready`` turns them into exit 0, so a cron job needs no wrapper.

A ``DataError`` about many inputs at once (a folder of labels, a bundle) keeps
them all in ``.problems``; its message lists the first few.

A write that fails because the disk is full is not a damaged input: the
store and the CLI pass every ``OSError`` and ``sqlite3.Error`` they do not
expect through :func:`disk_full`, which turns the ones caused by a full disk
(``ENOSPC``, ``EDQUOT``, SQLite's "database or disk is full", and its "disk
I/O error" while the disk has no room left) into one ``StateError`` line
naming the path, so a full disk is never reported as a foreign or damaged
database.

Messages name the file (or config key) and what is wrong, so that the one
line is enough to fix the input. A name that is not among the choices is
reported with :func:`unknown` (or :func:`did_you_mean` where a message has its
own wording), which adds the likeliest intended choice.
"""

from __future__ import annotations

import difflib
import errno
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = [
    "BatchOutError", "BusyError", "ConfigError", "DataError", "DetalError", "ModelError", "NotFound",
    "RemoteError", "StateError", "did_you_mean", "disk_full", "unknown",
]


class DetalError(Exception):
    """Base class of every error detal raises on purpose."""


class ConfigError(DetalError, ValueError):
    """A config file, a config key, or a ``--set`` override is invalid."""


class DataError(DetalError, ValueError):
    """An input file (image, label, classes, data.yaml, bundle) is invalid.

    ``problems`` holds every problem found when there were many (the message
    lists the first ones); it is empty for a single one.
    """

    def __init__(self, message: str, *, problems: Sequence[object] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class StateError(DetalError):
    """The project is not in a state that allows the requested action."""


class BatchOutError(StateError):
    """A cycle cannot start: a batch is still out (selected and not yet labeled).

    ``out`` maps each cycle with images still out to ``(images unlabeled,
    images selected)``.
    """

    exit_code = 3

    def __init__(self, message: str, out: dict[int, tuple[int, int]]) -> None:
        super().__init__(message)
        self.out = dict(out)


class BusyError(StateError):
    """Another detal command (a cycle, an import, a simulation) holds the folder's lock."""

    exit_code = 4


class ModelError(DetalError):
    """The detector could not be built, trained, run or evaluated."""


class RemoteError(DetalError):
    """A server detal talks to (Label Studio) could not be reached, or refused a request."""


class NotFound(RemoteError):
    """HTTP 404; callers turn it into a message about what is missing."""


def did_you_mean(name: object, choices: Iterable[object]) -> str:
    """``"; did you mean 'x'?"`` for the choice closest to ``name``, or ``""`` if none is close.

    Close means a :func:`difflib.get_close_matches` ratio of at least 0.5.
    """
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown(kind: str, name: object, choices: Iterable[object], *, list_choices: bool = True) -> str:
    """The message for a ``name`` that is not one of ``choices``, with a "did you mean" hint.

    ``"unknown strategy 'topp'; expected one of random, topk; did you mean 'topk'?"``;
    ``list_choices=False`` leaves out the list (when it is long, as config keys are).
    """
    choices = [str(c) for c in choices]
    expected = f"; expected one of {', '.join(choices)}" if list_choices else ""
    return f"unknown {kind} {name!r}{expected}{did_you_mean(name, choices)}"


DISK_FULL_ERRNOS = {errno.ENOSPC: "the disk is full (no space left on device)",
                    errno.EDQUOT: "the disk quota is full (disk quota exceeded)"}
"""The ``errno`` values of a write refused for want of space, with what the message says."""

LOW_SPACE_BYTES = 1 << 20
"""Below this many free bytes, SQLite's "disk I/O error" is taken for a full disk (it reports a
``-shm`` file it cannot grow that way)."""

_SQLITE_FULL = 13
_SQLITE_IOERR = 10


def _free_bytes(path: Path) -> int | None:
    """Free bytes (for an unprivileged user) on the file system of ``path`` or its nearest existing parent."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def disk_full(
    exc: BaseException, path: str | os.PathLike[str] | None = None, *, name_file: bool = True
) -> StateError | None:
    """The one line for ``exc`` when it means the disk is full, or ``None`` when it means something else.

    ``"<path>: the disk is full (no space left on device); free space and rerun"``,
    where ``path`` is the file the error names (an ``OSError``'s ``filename``,
    unless ``name_file`` is false: a temporary file the caller removed), else
    the one given (the database, the project). Recognised: an ``OSError``
    with errno ``ENOSPC`` or ``EDQUOT`` (:data:`DISK_FULL_ERRNOS`), SQLite's
    ``SQLITE_FULL`` ("database or disk is full"), its ``SQLITE_IOERR`` ("disk
    I/O error") while less than :data:`LOW_SPACE_BYTES` are free there, and a
    :class:`DetalError` raised from one of these (a line this function made,
    said again of another path).
    """
    what = None
    if isinstance(exc, DetalError):
        return None if exc.__cause__ is None else disk_full(exc.__cause__, path, name_file=name_file)
    if isinstance(exc, OSError):
        what = DISK_FULL_ERRNOS.get(exc.errno)
        if exc.filename is not None and name_file:
            path = exc.filename
    elif isinstance(exc, sqlite3.Error):
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
        text = str(exc)
        if code == _SQLITE_FULL or "database or disk is full" in text:
            what = DISK_FULL_ERRNOS[errno.ENOSPC]
        elif (code == _SQLITE_IOERR or "disk I/O error" in text) and path is not None:
            free = _free_bytes(Path(path))
            if free is not None and free < LOW_SPACE_BYTES:
                what = DISK_FULL_ERRNOS[errno.ENOSPC]
    if what is None:
        return None
    where = f"{os.fsdecode(path)}: " if path is not None else ""
    return StateError(f"{where}{what}; free space and rerun")
