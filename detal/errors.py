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

``ConfigError`` and ``DataError`` are also ``ValueError``s, so library callers
that pass a bad argument can catch the builtin they expect.

``BatchOutError`` and ``BusyError`` are the two "nothing to do now" states of
``detal cycle``: the CLI exits with their ``exit_code`` (3 and 4) instead of 1, and
``detal cycle --if-ready`` turns them into exit 0, so a cron job needs no wrapper.

Messages name the file (or config key) and what is wrong, so that the one
line is enough to fix the input.
"""

from __future__ import annotations


class DetalError(Exception):
    """Base class of every error detal raises on purpose."""


class ConfigError(DetalError, ValueError):
    """A config file, a config key, or a ``--set`` override is invalid."""


class DataError(DetalError, ValueError):
    """An input file (image, label, classes, data.yaml, bundle) is invalid."""


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
