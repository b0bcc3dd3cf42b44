"""The predictor's preprocess stage: reader threads that decode and letterbox images.

Paths come from one iterable (:class:`Source`, shared by the threads); each
reader decodes an image with Ultralytics' ``imread``, letterboxes it with its
``LetterBox`` exactly as ``YOLO.predict`` would, and puts an :class:`Item`
(or the reason it could not) on a bounded queue.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detal.ultra.log import first_line

__all__ = ["Item", "Source", "read_items"]


@dataclass
class Item:
    """One decoded image, letterboxed, with its place in the input and its original size."""

    index: int
    path: Path
    shape: tuple[int, int]  # original (h, w)
    image: np.ndarray  # letterboxed, HWC BGR uint8


class Source:
    """Hands ``(index, path)`` pairs from one iterable to any number of reader threads."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self._pairs = enumerate(paths)
        self._lock = threading.Lock()

    def next(self) -> tuple[int, Path] | None:
        with self._lock:
            pair = next(self._pairs, None)
        return None if pair is None else (pair[0], Path(pair[1]))


def read_items(
    source: Source,
    imgsz: tuple[int, int],
    stride: int,
    out: queue.Queue[Item | tuple[int, Path, str] | None],
    stop: threading.Event,
) -> None:
    """Reader thread: decode and letterbox images from ``source`` into ``out``.

    Unreadable images are put as ``(index, path, reason)``; a failure of the
    reader itself as ``(-1, path, reason)``. ``None`` says this reader is done.
    """
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils.patches import imread

    # Ultralytics' predictor letterboxes to the smallest stride-multiple rectangle
    # (auto=True) when it sees one image at a time; batches here are grouped by
    # that rectangle, so every image is letterboxed exactly as YOLO.predict would.
    letterbox = LetterBox(imgsz, auto=True, stride=stride)
    try:
        while not stop.is_set():
            pair = source.next()
            if pair is None:
                return
            index, path = pair
            if not path.is_file():
                item: Any = (index, path, "file not found")
            else:
                im = imread(str(path))
                if im is None or im.ndim != 3 or im.shape[0] == 0 or im.shape[1] == 0:
                    item = (index, path, "cannot decode image (empty, corrupt or unsupported)")
                else:
                    if im.shape[2] == 1:
                        im = np.repeat(im, 3, axis=2)
                    elif im.shape[2] == 4:
                        im = im[..., :3]
                    item = Item(index, path, (im.shape[0], im.shape[1]), letterbox(image=im))
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
