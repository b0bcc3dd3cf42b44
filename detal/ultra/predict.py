"""The prediction loop: preprocess threads feeding batched forward passes, with bounded memory.

:func:`predict_stream` starts the reader threads of
:mod:`detal.ultra.preprocess` (decoding themselves, or each feeding a pool of
decode worker processes), groups what they read by letterboxed shape and
hands each group to ``run`` (forward and postprocess). At most ``2 * batch``
images wait in the queue and ``4 * batch`` in shape buckets, however many
images there are; only the predictions accumulate.

Every :data:`TRIM_EVERY` batches the C heap hands the memory freed since back
to the system (glibc's ``malloc_trim``; nothing where the C library has
none). Each batch allocates and frees large tensors between the small
objects of the predictions it keeps; glibc then keeps the freed pages, and
raises its threshold for mapping large blocks on their own, so the resident
size grew by about 8 KiB an image for the 1-2 KiB an image actually kept
(100,000 64-pixel images: +771 MiB; trimmed, +294 MiB; trimmed and scored in chunks by
:func:`detal.score_images.score_pass`, +135 MiB). Trimming costs well under 1% of the
pass; fixing the mmap threshold instead (``M_MMAP_THRESHOLD``) cost 20-45%.
"""

from __future__ import annotations

import ctypes
import functools
import os
import queue
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from detal.adapter import PredictResult
from detal.detections import Prediction
from detal.errors import ModelError
from detal.ultra.forward import Loaded
from detal.ultra.preprocess import DecodePool, Item, Source, decoders, read_items

__all__ = ["TRIM_EVERY", "predict_stream", "release_freed_memory"]

TRIM_EVERY = 8
"""Batches between two :func:`release_freed_memory` calls of the prediction loop."""


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or ``None`` where the C library has none (macOS, musl, Windows)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


def release_freed_memory() -> bool:
    """Give the C heap's free pages back to the system; whether the C library could."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def predict_stream(
    images: Iterable[Path],
    loaded: Loaded,
    run: Callable[[list[Item]], list[tuple[int, Prediction]]],
    *,
    batch: int,
    progress: bool,
    readers: int | None,
    workers: int = 0,
    pool: DecodePool | None = None,
) -> PredictResult:
    """Predictions for ``images`` in input order, and the unreadable ones with the reason.

    ``run`` turns a group of at most ``batch`` images of one shape into
    ``(input index, Prediction)`` pairs. With ``workers`` 0, ``readers``
    threads decode (default: one on the CPU, where the forward pass needs the
    cores, up to eight on a GPU). With ``workers`` N >= 1, N spawned processes
    decode, fed by ``2 * N`` threads (one image each in flight), so that a
    worker has its next image while its last one travels back. ``pool``
    keeps those processes for the next call (see :class:`DecodePool`).
    """
    total = len(images) if hasattr(images, "__len__") else None  # type: ignore[arg-type]
    items: queue.Queue = queue.Queue(maxsize=2 * batch)
    stop = threading.Event()
    gpu_readers = min(8, max(1, (os.cpu_count() or 2) // 2))
    if workers:
        n_readers = 2 * workers
    else:
        n_readers = readers or (1 if loaded.device.type == "cpu" else gpu_readers)
    source = Source(images, window=2 * batch + n_readers)
    with decoders(workers, loaded.imgsz, loaded.stride, pool) as make_decoder:
        threads = [
            threading.Thread(target=read_items, args=(source, make_decoder, items, stop), daemon=True)
            for _ in range(n_readers)
        ]
        return _consume(source, threads, items, stop, run, batch, total, progress)


def _consume(
    source: Source,
    threads: list[threading.Thread],
    items: queue.Queue,
    stop: threading.Event,
    run: Callable[[list[Item]], list[tuple[int, Prediction]]],
    batch: int,
    total: int | None,
    progress: bool,
) -> PredictResult:
    """Start the reader threads, run what they read in batches of one shape, and stop them.

    Whatever order the threads finish in, images enter the shape buckets in
    input order (a reorder buffer of at most the source's window), so the
    batches, and so every float of every prediction, are the same for any
    number of threads or decode workers.
    """
    from tqdm import tqdm

    running = len(threads)
    done: list[tuple[int, Prediction]] = []
    failed: list[tuple[int, Path, str]] = []
    buckets: dict[tuple[int, int], list[Item]] = {}
    held = 0
    batches = 0
    limit = 4 * batch  # images held across shape buckets before the fullest is run
    bar = tqdm(total=total, desc="predict", unit="img", disable=not progress, leave=False)
    for thread in threads:
        thread.start()
    pending: dict[int, Item | tuple[int, Path, str]] = {}
    expect = 0  # the next input index to take, in order
    try:
        while running:
            entry = items.get()
            if entry is None:
                running -= 1
                continue
            index = entry.index if isinstance(entry, Item) else entry[0]
            if index < 0:
                raise ModelError(f"predict: {entry[2]}")  # type: ignore[index]
            pending[index] = entry
            while expect in pending:
                item = pending.pop(expect)
                expect += 1
                source.release(expect)
                if isinstance(item, tuple):
                    failed.append(item)
                    bar.update(1)
                    continue
                key = item.image.shape[:2]
                buckets.setdefault(key, []).append(item)
                held += 1
                if len(buckets[key]) >= batch:
                    group = buckets.pop(key)
                elif held >= limit:
                    group = buckets.pop(max(buckets, key=lambda k: len(buckets[k])))
                else:
                    continue
                held -= len(group)
                done.extend(run(group))
                bar.update(len(group))
                batches += 1
                if batches % TRIM_EVERY == 0:
                    release_freed_memory()
        if pending:  # a reader ended without handing its image over: a bug, never a silent loss
            raise ModelError(f"predict: image reader lost image {expect}")
        for group in buckets.values():
            done.extend(run(group))
            bar.update(len(group))
    finally:
        stop.set()
        bar.close()
        for thread in threads:
            thread.join(timeout=5)
    done.sort(key=lambda pair: pair[0])
    failed.sort(key=lambda entry: entry[0])
    return PredictResult([p for _, p in done], [(path, reason) for _, path, reason in failed])
