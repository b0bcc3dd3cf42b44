"""The predictor's preprocess stage: reader threads that decode and letterbox images.

Paths come from one iterable (:class:`Source`, shared by the threads); each
reader decodes an image with Ultralytics' ``imread``, letterboxes it with its
``LetterBox`` exactly as ``YOLO.predict`` would (:func:`decode_image`), and
puts an :class:`Item` (or the reason it could not) on a bounded queue.

Where the decoding runs is the reader's :class:`Decoder`: in the reader thread
itself (:class:`LocalDecoder`), or in one of N worker processes
(:class:`PoolDecoder`, ``decode_workers: N``), which run the same
:func:`decode_image` and send the letterboxed array back, so the images, and
everything computed from them, are the same bytes either way.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detal.ultra.log import first_line

__all__ = ["DecodePool", "Decoder", "Item", "LocalDecoder", "PoolDecoder", "Source", "decode_image", "decoders", "read_items"]

Decoded = tuple[tuple[int, int], np.ndarray] | str
"""What :func:`decode_image` returns: the original ``(h, w)`` and the letterboxed image, or why not."""

Decoder = Callable[[Path], Decoded]
"""Decodes and letterboxes one image file (:func:`decode_image` with a fixed letterbox)."""


@dataclass
class Item:
    """One decoded image, letterboxed, with its place in the input and its original size."""

    index: int
    path: Path
    shape: tuple[int, int]  # original (h, w)
    image: np.ndarray  # letterboxed, HWC BGR uint8


class Source:
    """Hands ``(index, path)`` pairs from one iterable to any number of reader threads, in order.

    With a ``window``, index ``j`` is handed out only once the consumer has
    :meth:`release`-d every index below ``j - window + 1``: however slow one
    image is, at most ``window`` images are read ahead of the one the
    consumer waits for.
    """

    def __init__(self, paths: Iterable[Path], window: int | None = None) -> None:
        self._pairs = enumerate(paths)
        self._window = window
        self._handed = 0
        self._released = 0
        self._cond = threading.Condition()

    def next(self, stop: threading.Event | None = None) -> tuple[int, Path] | None:
        """The next pair, or ``None`` when the paths are exhausted (or ``stop`` is set)."""
        with self._cond:
            while self._window is not None and self._handed - self._released >= self._window:
                if stop is not None and stop.is_set():
                    return None
                self._cond.wait(0.1)
            pair = next(self._pairs, None)
            if pair is not None:
                self._handed += 1
        return None if pair is None else (pair[0], Path(pair[1]))

    def release(self, upto: int) -> None:
        """The consumer has taken every index below ``upto``."""
        with self._cond:
            self._released = max(self._released, upto)
            self._cond.notify_all()


def letterbox_for(imgsz: tuple[int, int], stride: int) -> Any:
    """Ultralytics' ``LetterBox`` as its predictor builds it for one image at a time.

    It letterboxes to the smallest stride-multiple rectangle (``auto=True``);
    batches are grouped by that rectangle, so every image is letterboxed
    exactly as ``YOLO.predict`` would.
    """
    from ultralytics.data.augment import LetterBox

    return LetterBox(imgsz, auto=True, stride=stride)


def decode_image(path: Path, letterbox: Any) -> Decoded:
    """``path`` decoded (Ultralytics' ``imread``, 3 channels BGR) and letterboxed, or the reason it cannot be."""
    from ultralytics.utils.patches import imread

    if not path.is_file():
        return "file not found"
    im = imread(str(path))
    if im is None or im.ndim != 3 or im.shape[0] == 0 or im.shape[1] == 0:
        return "cannot decode image (empty, corrupt or unsupported)"
    if im.shape[2] == 1:
        im = np.repeat(im, 3, axis=2)
    elif im.shape[2] == 4:
        im = im[..., :3]
    return (int(im.shape[0]), int(im.shape[1])), letterbox(image=im)


class LocalDecoder:
    """Decodes in the calling (reader) thread; one per thread, each with its own ``LetterBox``."""

    def __init__(self, imgsz: tuple[int, int], stride: int) -> None:
        self._letterbox = letterbox_for(imgsz, stride)

    def __call__(self, path: Path) -> Decoded:
        return decode_image(path, self._letterbox)


# A decode worker's letterboxes, one per (imgsz, stride) it was asked for. Each
# worker is a separate process, so this is per process, never shared.
_worker_letterboxes: dict[tuple[tuple[int, int], int], Any] = {}


def _start_worker() -> None:
    """Decode worker initializer: Ultralytics imported offline, before the first image."""
    from detal.ultra.setup import prepare_ultralytics

    prepare_ultralytics()


def _ready() -> None:
    """A no-op task, submitted once per worker so that every worker starts at once."""


@contextlib.contextmanager
def _main_unseen() -> Iterator[None]:
    """While decode workers start, hide the ``__main__`` module from multiprocessing's spawn.

    Spawn re-runs the parent's main script in every child (so that functions
    defined there can be unpickled). The workers run only detal's functions,
    and re-running a user's script there (one that trains, say) would repeat
    its work in every worker, and kill the worker where the script has no
    ``if __name__ == "__main__"`` guard. ``python -m detal`` and notebooks
    are not re-run in any case.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    with _main_lock:
        spec, path = getattr(main, "__spec__", None), main.__dict__.get("__file__")
        try:
            main.__spec__ = None
            main.__dict__.pop("__file__", None)
            yield
        finally:
            main.__spec__ = spec
            if path is not None:
                main.__file__ = path


_main_lock = threading.Lock()


def _decode_in_worker(path: Path, imgsz: tuple[int, int], stride: int) -> Decoded:
    letterbox = _worker_letterboxes.get((imgsz, stride))
    if letterbox is None:
        letterbox = _worker_letterboxes[(imgsz, stride)] = letterbox_for(imgsz, stride)
    return decode_image(path, letterbox)


class PoolDecoder:
    """Decodes in a worker process of ``pool``; the calling thread waits for that one image."""

    def __init__(self, pool: Any, imgsz: tuple[int, int], stride: int) -> None:
        self._pool = pool
        self._imgsz = imgsz
        self._stride = stride

    def __call__(self, path: Path) -> Decoded:
        return self._pool.submit(_decode_in_worker, path, self._imgsz, self._stride).result()


class DecodePool:
    """N spawned decode worker processes, started on first use and kept for later passes.

    Spawned, never forked: a fork of a process that holds a model and torch's
    threads can deadlock. Each worker starts its own Python and imports
    Ultralytics (seconds), so one pool serves every pass of its owner (the
    adapter: a cycle scores, embeds and pre-labels) until :meth:`close`; a
    pass that fails closes it, and the next pass starts a fresh one.
    """

    def __init__(self) -> None:
        self._pool: Any = None
        self._workers = 0
        self._lock = threading.Lock()

    def executor(self, workers: int) -> Any:
        """The live pool of ``workers`` processes (a pool of another size is closed first)."""
        import concurrent.futures as cf
        import multiprocessing

        with self._lock:
            if self._pool is not None and self._workers != workers:
                self._close()
            if self._pool is None:
                with _main_unseen():
                    self._pool = cf.ProcessPoolExecutor(
                        max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                        initializer=_start_worker,
                    )
                    # The pool spawns a process per submit while none is idle: start all of them now.
                    for _ in range(workers):
                        self._pool.submit(_ready)
                self._workers = workers
            return self._pool

    def close(self) -> None:
        """Shut the workers down (waiting for them); the next :meth:`executor` starts new ones."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


@contextlib.contextmanager
def decoders(
    workers: int, imgsz: tuple[int, int], stride: int, pool: DecodePool | None = None
) -> Iterator[Callable[[], Decoder]]:
    """A factory of per-thread decoders: in-process when ``workers`` is 0, else backed by ``workers`` processes.

    The processes come from ``pool`` (kept open afterwards, unless the pass
    fails), or from a pool of this pass alone when none is given.
    """
    if workers < 1:
        yield lambda: LocalDecoder(imgsz, stride)
        return
    owner = pool if pool is not None else DecodePool()
    executor = owner.executor(workers)
    try:
        yield lambda: PoolDecoder(executor, imgsz, stride)
    except BaseException:
        owner.close()  # a dead worker, an interrupt: the next pass starts clean
        raise
    finally:
        if pool is None:
            owner.close()


def read_items(
    source: Source,
    make_decoder: Callable[[], Decoder],
    out: queue.Queue[Item | tuple[int, Path, str] | None],
    stop: threading.Event,
) -> None:
    """Reader thread: decode and letterbox images from ``source`` into ``out`` with ``make_decoder()``.

    Unreadable images are put as ``(index, path, reason)``; a failure of the
    reader itself (or of its decode worker) as ``(-1, path, reason)``.
    ``None`` says this reader is done.
    """
    try:
        decoder = make_decoder()
        while not stop.is_set():
            pair = source.next(stop)
            if pair is None:
                return
            index, path = pair
            decoded = decoder(path)
            if isinstance(decoded, str):
                item: Any = (index, path, decoded)
            else:
                item = Item(index, path, decoded[0], decoded[1])
            _put(out, item, stop)
    except Exception as exc:  # noqa: BLE001 - hand any reader bug to the consumer, never hang it
        _put(out, (-1, Path(""), f"image reader failed: {first_line(exc)}"), stop)
    finally:
        _put(out, None, stop)


def _put(out: queue.Queue, item: Any, stop: threading.Event) -> None:
    """Put ``item`` unless the consumer has stopped listening."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return
        except queue.Full:
            continue
