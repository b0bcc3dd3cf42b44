"""The Ray engine: predictions sharded over a Ray cluster with Ray Data.

:func:`ray_engine` connects to the cluster ``cfg.scoring["address"]`` names
(``null``: a new Ray instance on this machine, for this run only; ``auto``:
the cluster ``ray start`` left here or ``RAY_ADDRESS``; ``HOST:PORT`` or
``ray://HOST:PORT``) and yields a :class:`RayEngine`, whose ``predict`` has
the signature of :meth:`detal.adapter.ModelAdapter.predict`:

1. the images become a Ray dataset of ``(index, path)`` rows, one block per
   ``batch`` images;
2. ``map_batches`` runs :class:`_Worker` over them in a fixed pool of
   ``scoring.workers`` actors. Each actor builds one adapter (one model,
   loaded once) with the workers' factory and predicts its batches with the
   same ``predict`` the local engine runs; it asks Ray for one GPU where the
   cluster has GPUs (and ``device`` is not ``cpu``), and runs on that GPU;
3. every row comes back as the image's :class:`~detal.detections.Prediction`
   (boxes, class vectors, DFL logits, embedding) or its read error, and the
   driver puts them back in input order.

Workers read only the images and the weights, by path (several machines
need a filesystem that every node mounts at the same path); they never open
the project's store. Everything after prediction (scores, selection,
pre-labels, the store transaction) stays on the driver, exactly as with the
local engine.

A worker that dies mid-run (killed, out of memory, its node lost) is
restarted by Ray and its batch run again, up to :data:`RETRIES` times; the
result does not change, since a batch's predictions depend only on its images
and the weights. A :class:`~detal.errors.DetalError` raised in a worker (an
unreadable weights file, a head without DFL) is sent back as a result and
raised by the driver as itself, the same line the local engine gives; any
other worker error is a :class:`~detal.errors.ModelError` quoting it.

Without the ``ray`` package, opening the engine is one
:class:`~detal.errors.ConfigError` line naming the extra to install.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import os
import pickle
import re
import socket
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from detal.adapter import ModelAdapter, PredictResult, fake_adapter_requested, make_adapter
from detal.config import Config, from_mapping
from detal.engines import AdapterFactory
from detal.errors import ConfigError, DetalError, ModelError, RemoteError

__all__ = ["RETRIES", "RayEngine", "import_ray", "ray_engine"]

RETRIES = 3
"""Times a batch is run again after its worker died (each time on a restarted actor)."""

CONNECT_TIMEOUT_S = 5.0
"""How long the reachability check of ``scoring.address`` waits for a TCP connection."""

_RAY_CLIENT_PORT = 10001  # ray:// without a port


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or one :class:`ConfigError` line naming the extra to install."""
    try:
        import ray
        import ray.data  # needs pyarrow and pandas: the [data] extra of ray
    except ImportError as exc:
        missing = f" ({exc.name} is missing)" if exc.name and exc.name != "ray" else ""
        raise ConfigError(
            f"scoring.engine: ray needs the ray package with Ray Data, which is not installed{missing}; "
            "install it with pip install 'detal[ray]'"
        ) from None
    return ray


def build_worker_adapter(cfg: Config, *, fake: bool) -> ModelAdapter:
    """A worker's adapter: the fake one when the driver runs the fake (``fake``), else :func:`make_adapter`."""
    if fake:
        from detal.fake import FakeAdapter

        return FakeAdapter(None, seed=cfg.seed)  # the class count comes from the weights
    return make_adapter(cfg)


@contextlib.contextmanager
def ray_engine(cfg: Config, worker_adapter: AdapterFactory | None = None) -> Iterator[RayEngine]:
    """Connect to the cluster of ``cfg.scoring``, yield a :class:`RayEngine`, disconnect.

    Connecting is the first thing it does: an unreachable address is a
    :class:`~detal.errors.RemoteError` before the caller writes anything.
    A process already connected to Ray (``ray.init`` in a notebook) is used
    as it is, and left connected.
    """
    ray = import_ray()
    started = _connect(ray, cfg.scoring["address"])
    try:
        factory = worker_adapter or functools.partial(build_worker_adapter, fake=fake_adapter_requested())
        yield RayEngine(ray, cfg, factory)
    finally:
        if started:
            ray.shutdown()


def _connect(ray: Any, address: str | None) -> bool:
    """Connect this process to the Ray cluster at ``address``; True when this call connected it."""
    if address not in (None, "auto"):
        _check_reachable(address)
    if ray.is_initialized():
        current = ray.get_runtime_context().gcs_address
        if address not in (None, "auto") and not address.startswith("ray://") and not _same(address, current):
            raise ConfigError(f"scoring.address {address}: this process is already connected to the Ray "
                              f"cluster at {current}")
        return False
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    env: dict[str, str] = {}
    if address is None:
        kwargs["include_dashboard"] = False
        env = {"RAY_USAGE_STATS_ENABLED": "0"}  # a Ray instance for this run only: no usage report
    try:
        with _environ(env):
            ray.init(address="local" if address is None else address, **kwargs)
    except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError ...
        where = "a local Ray instance" if address is None else f"the Ray cluster at {address}"
        raise RemoteError(f"scoring: cannot connect to {where} ({_first_line(exc)})") from None
    return True


def _same(address: str, current: str) -> bool:
    """Whether ``HOST:PORT`` names the cluster at ``current`` (a loopback host matches this node's address)."""
    host, _, port = address.rpartition(":")
    current_host, _, current_port = current.rpartition(":")
    loopback = host == "localhost" or host.startswith("127.")
    return port == current_port and (loopback or host == current_host)


def _check_reachable(address: str) -> None:
    """One :class:`RemoteError` line, fast, when nothing listens at ``address`` (Ray would retry for a minute)."""
    client = address.startswith("ray://")
    rest = address.removeprefix("ray://")
    host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", str(_RAY_CLIENT_PORT))
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        what = "Ray Client server" if client else "Ray cluster"
        raise RemoteError(f"scoring.address {address}: cannot reach the {what} ({reason})") from None


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """``values`` set in ``os.environ`` (unless already set) while Ray starts its processes."""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class RayEngine:
    """:class:`~detal.engines.Predictor` over a connected Ray cluster (see the module docstring).

    The pool's size and each actor's share of the cluster are fixed here, from
    ``cfg.scoring["workers"]`` and the cluster's resources: with GPUs (and a
    ``device`` other than ``cpu``), one GPU per actor and ``workers`` at most
    the GPUs; without, the CPUs split evenly between the actors.
    """

    def __init__(self, ray: Any, cfg: Config, factory: AdapterFactory) -> None:
        self.ray = ray
        self.cfg = cfg
        self.factory = factory
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0)) if cfg.device.strip().lower() != "cpu" else 0
        cpus = int(resources.get("CPU", 0))
        asked = cfg.scoring["workers"]
        self.workers = asked or max(gpus, 1)
        if gpus:
            if self.workers > gpus:
                raise ConfigError(f"scoring.workers: {self.workers} workers, but the Ray cluster has {gpus} "
                                  "GPUs (one model per GPU)")
            self.num_gpus, self.num_cpus = 1, 1
        else:
            if self.workers > cpus:
                raise ConfigError(f"scoring.workers: {self.workers} workers, but the Ray cluster has {cpus} "
                                  "CPUs and no GPU")
            node_cpus = [int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]
            self.num_gpus = 0
            self.num_cpus = max(1, min(cpus // self.workers, max(node_cpus, default=1)))

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
        """As :meth:`detal.adapter.ModelAdapter.predict`, computed by the actor pool."""
        from tqdm import tqdm

        images = list(images)
        if batch < 1:
            raise ConfigError(f"predict: batch must be a positive integer, got {batch!r}")
        weights = Path(weights)
        if not weights.is_file():
            raise ModelError(f"{weights}: weights file not found")
        if not images:
            return PredictResult([], [])
        options = {"conf": conf, "iou": iou, "batch": batch, "with_dfl": with_dfl,
                   "with_embeddings": with_embeddings}
        bar = tqdm(total=len(images), desc="predict (ray)", unit="img", disable=not progress, leave=False)
        try:
            with _calm():
                results = self._run(images, weights, batch, options, bar)
        except DetalError:
            raise
        except Exception as exc:  # noqa: BLE001 - Ray wraps a worker's error in its own types
            raise ModelError(f"scoring on Ray failed ({_worker_error(exc)})") from None
        finally:
            bar.close()
        predictions, failed = [], []
        for entry in results:
            if entry is not None and entry[0] == "error":
                raise entry[1]  # the DetalError a worker met, as the local engine raises it
        for i, entry in enumerate(results):
            if entry is None:
                raise ModelError(f"{images[i]}: the Ray workers returned no result for this image")
            if entry[0] == "ok":
                predictions.append(dataclasses.replace(entry[1], path=images[i]))
            else:
                failed.append((images[i], entry[1]))
        return PredictResult(predictions, failed)

    def _run(self, images: list[Path], weights: Path, batch: int, options: dict, bar: Any) -> list[Any]:
        """Each image's ``("ok", Prediction)``, ``("failed", reason)`` or ``("error", DetalError)``."""
        ray = self.ray
        n_batches = math.ceil(len(images) / batch)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        rows = [{"index": i, "path": str(p)} for i, p in enumerate(images)]
        dataset = ray.data.from_items(rows, override_num_blocks=n_batches)
        mapped = dataset.map_batches(
            _Worker,
            batch_size=batch,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=min(self.workers, n_batches)),
            fn_constructor_kwargs={"cfg": self.cfg.to_dict(), "factory": self.factory,
                                   "weights": str(weights.resolve()), "options": options,
                                   "threads": _torch_threads()},
            num_cpus=self.num_cpus,
            num_gpus=self.num_gpus,
            max_restarts=-1,
            max_task_retries=RETRIES,
        )
        results: list[Any] = [None] * len(images)
        for row in mapped.iter_rows():
            entry = pickle.loads(row["payload"])
            results[int(row["index"])] = entry
            bar.update(1)
            if entry[0] == "error":
                break  # the run stops here; the driver raises it
        return results


def _worker_error(exc: BaseException) -> str:
    """The worker's own exception line (``TypeError: ...``) in the traceback text Ray wraps it in."""
    lines = [line.strip() for line in str(exc).splitlines()]
    own = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*: ", line)
           and not line.startswith("ray.")]
    return own[-1] if own else _first_line(exc)


@contextlib.contextmanager
def _calm() -> Iterator[None]:
    """Ray Data without its INFO lines (plan, "execution finished") and its deprecation warnings.

    Ray 2.60 takes ``max_restarts`` / ``max_task_retries`` (Ray remote arguments) through
    ``map_batches``' keyword arguments with a deprecation warning, and warns about its own
    deprecated context fields when it copies the context; ray is pinned in constraints.txt.
    """
    logger = logging.getLogger("ray.data")
    saved = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(saved)


def _torch_threads() -> int | None:
    """The driver's torch thread count (Ultralytics sets it when it trains), for the actors to match."""
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_threads()


class _Worker:
    """One actor of the pool: one adapter (one model), on the GPU Ray gave it, if any."""

    def __init__(self, cfg: dict, factory: AdapterFactory, weights: str, options: dict,
                 threads: int | None = None) -> None:
        import ray

        if threads is not None:  # the driver's: a CPU conv sums in another order with another count
            import torch

            torch.set_num_threads(threads)

        config = from_mapping(cfg, source="scoring worker")
        if ray.get_gpu_ids():
            device = "0"  # Ray narrowed CUDA_VISIBLE_DEVICES to this actor's GPU
        elif config.device == "auto" or config.device[:1].isdigit():
            device = "cpu"
        else:
            device = config.device
        self.adapter = factory(config.replace(device=device))
        self.weights = Path(weights)
        self.options = options

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        paths = [Path(str(p)) for p in batch["path"]]
        try:
            result = self.adapter.predict(self.weights, paths, progress=False, **self.options)
        except DetalError as exc:  # returned, not raised: Ray would keep only its traceback text
            return self._rows(batch, [pickle.dumps(("error", exc))] * len(paths))
        failed = Counter(str(p) for p, _ in result.failed)
        reasons = {str(p): reason for p, reason in result.failed}
        predictions = iter(result.predictions)
        payload = []
        for path in paths:
            key = str(path)
            if failed[key]:
                failed[key] -= 1
                payload.append(pickle.dumps(("failed", reasons[key])))
                continue
            prediction = next(predictions, None)
            if prediction is None:
                raise ModelError(f"{path}: the adapter returned fewer predictions than images")
            payload.append(pickle.dumps(("ok", prediction)))
        return self._rows(batch, payload)

    @staticmethod
    def _rows(batch: dict[str, np.ndarray], payload: list[bytes]) -> dict[str, np.ndarray]:
        out = np.empty(len(payload), dtype=object)
        out[:] = payload
        return {"index": np.asarray(batch["index"]), "payload": out}
