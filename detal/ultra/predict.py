"""The prediction loop: preprocess threads feeding batched forward passes, with bounded memory.

:func:`predict_stream` starts the reader threads of
:mod:`detal.ultra.preprocess`, groups what they read by letterboxed shape and
hands each group to ``run`` (forward and postprocess). At most ``2 * batch``
images wait in the queue and ``4 * batch`` in shape buckets, however many
images there are; only the predictions accumulate.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from detal.adapter import PredictResult
from detal.detections import Prediction
from detal.errors import ModelError
from detal.ultra.forward import Loaded
from detal.ultra.preprocess import Item, Source, read_items

__all__ = ["predict_stream"]


def predict_stream(
    images: Iterable[Path],
    loaded: Loaded,
    run: Callable[[list[Item]], list[tuple[int, Prediction]]],
    *,
    batch: int,
    progress: bool,
    readers: int | None,
) -> PredictResult:
    """Predictions for ``images`` in input order, and the unreadable ones with the reason.

    ``run`` turns a group of at most ``batch`` images of one shape into
    ``(input index, Prediction)`` pairs. ``readers`` threads decode (default:
    one on the CPU, where the forward pass needs the cores, up to eight on a GPU).
    """
    from tqdm import tqdm

    total = len(images) if hasattr(images, "__len__") else None  # type: ignore[arg-type]
    items: queue.Queue = queue.Queue(maxsize=2 * batch)
    stop = threading.Event()
    source = Source(images)
    gpu_readers = min(8, max(1, (os.cpu_count() or 2) // 2))
    n_readers = readers or (1 if loaded.device.type == "cpu" else gpu_readers)
    threads = [
        threading.Thread(target=read_items, args=(source, loaded.imgsz, loaded.stride, items, stop), daemon=True)
        for _ in range(n_readers)
    ]
    running = n_readers
    done: list[tuple[int, Prediction]] = []
    failed: list[tuple[int, Path, str]] = []
    buckets: dict[tuple[int, int], list[Item]] = {}
    held = 0
    limit = 4 * batch  # images held across shape buckets before the fullest is run
    bar = tqdm(total=total, desc="predict", unit="img", disable=not progress, leave=False)
    for thread in threads:
        thread.start()
    try:
        while running:
            item = items.get()
            if item is None:
                running -= 1
                continue
            if isinstance(item, tuple):
                index, _path, reason = item
                if index < 0:
                    raise ModelError(f"predict: {reason}")
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
