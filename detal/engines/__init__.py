"""Scoring engines: where the cycle's and ``detal score``'s predictions are computed.

The ``scoring`` block of the config picks one (``engine: local | ray``):

- ``local`` (the default): this process, through the model adapter itself
  (:meth:`detal.adapter.ModelAdapter.predict`).
- ``ray``: sharded over a Ray cluster (:mod:`detal.engines.ray_data`): Ray
  Data ``map_batches`` with a pool of ``scoring.workers`` actors, one model
  per actor, on its own GPU where the cluster has GPUs. Ray is an optional
  extra (``pip install 'detal[ray]'``).

Either way the result is a :class:`~detal.adapter.PredictResult` in input
order, so everything after prediction (scores, selection, pre-labels, the
one store transaction) runs on the driver, unchanged. An engine is a
:class:`Predictor`: the ``predict`` of :class:`~detal.adapter.ModelAdapter`,
and nothing else. :func:`open_engine` opens the one ``cfg`` asks for, as a
context manager: the Ray engine connects to its cluster on entry (an
unreachable cluster is one :class:`~detal.errors.RemoteError` line, before
the caller has written anything) and disconnects on exit.

``ENGINES`` is the registry the config reads its choices from.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from detal.adapter import ModelAdapter, PredictResult
    from detal.config import Config

__all__ = ["ENGINES", "AdapterFactory", "Predictor", "open_engine"]

AdapterFactory = Callable[["Config"], "ModelAdapter"]
"""Builds a worker's adapter from the config (picklable: Ray ships it to every worker)."""


class Predictor(Protocol):
    def predict(
        self,
        weights: Path,
        images: Iterable[Path],
        *,
        conf: float,
        iou: float = 0.7,
        batch: int = 32,
        progress: bool = True,
        with_dfl: bool | None = None,
        with_embeddings: bool = False,
    ) -> PredictResult:
        """As :meth:`detal.adapter.ModelAdapter.predict`."""
        ...


@contextlib.contextmanager
def _local(cfg: Config, adapter: ModelAdapter, worker_adapter: AdapterFactory | None) -> Iterator[Predictor]:
    yield adapter


def _ray(cfg: Config, adapter: ModelAdapter, worker_adapter: AdapterFactory | None):
    from detal.engines.ray_data import ray_engine

    return ray_engine(cfg, worker_adapter)


ENGINES: dict[str, Callable[..., contextlib.AbstractContextManager[Predictor]]] = {
    "local": _local,
    "ray": _ray,
}
"""``scoring.engine`` -> the context manager that opens it (``cfg``, the driver's adapter, the workers' factory)."""


def open_engine(
    cfg: Config, adapter: ModelAdapter, *, worker_adapter: AdapterFactory | None = None
) -> contextlib.AbstractContextManager[Predictor]:
    """The predictor ``cfg.scoring["engine"]`` names, opened (a context manager).

    ``adapter`` is the driver's: the local engine predicts with it. Ray
    workers build their own with ``worker_adapter(cfg)`` (default
    :func:`detal.adapter.make_adapter`, the fake adapter included when the
    driver's environment asks for it).
    """
    return ENGINES[cfg.scoring["engine"]](cfg, adapter, worker_adapter)
