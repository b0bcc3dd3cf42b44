"""A cache of finished trainings, so that a simulation never trains the same thing twice.

Training is seeded and deterministic: the same labeled images and labels, in
the same order, with the same training settings, initial weights and epochs
give the same weights. In a simulation that happens often: at a given seed
every strategy starts from the same initial set, so every strategy's first
cycle is one and the same training, and the ``hold`` control, which retrains
on the initial set, repeats it every cycle when cycles start from the same
initial weights. :class:`TrainCache` keys a training by everything that
determines it (:func:`training_key`) and keeps its weights and its
evaluation (the evaluation is just as determined: same weights, same val
split).

Only ``detal simulate`` passes a cache (``--train-cache``); a project's own
``detal cycle`` always trains. An entry is written to a temporary folder and
renamed into place, so a killed run leaves no half entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from detal.config import Config
from detal.project.paths import label_relpath

__all__ = ["TrainCache", "restore", "training_inputs", "training_key"]

# Config keys that decide what training produces (and how it is evaluated).
_TRAINING_KEYS = ("model", "imgsz", "device", "batch", "workers", "seed", "train_args")


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def training_key(
    cfg: Config,
    train: Iterable[tuple[str, str]],
    val: Iterable[tuple[str, str]],
    epochs: int,
    init_weights: Path | None,
) -> str:
    """A digest of everything that determines a training and its evaluation.

    ``train`` and ``val`` are ``(image content hash, label text)`` pairs in the
    order they are given to the adapter; ``init_weights`` is the warm start
    (or ``None``: the config's ``weights`` file, or the model YAML).
    """
    h = hashlib.sha256()

    def part(obj: Any) -> None:
        h.update(json.dumps(obj, sort_keys=True, default=str).encode())
        h.update(b"\0")

    part({k: getattr(cfg, k) for k in _TRAINING_KEYS})
    part(int(epochs))
    start = init_weights if init_weights is not None else (Path(cfg.weights) if cfg.weights else None)
    part(_file_digest(start) if start is not None and Path(start).is_file() else None)
    for name, items in (("train", train), ("val", val)):
        part(name)
        for digest, label in items:
            h.update(digest.encode())
            h.update(hashlib.sha256(label.encode()).digest())
    return h.hexdigest()[:32]


class TrainCache:
    """Finished trainings under ``root/<key>/``: ``weights.pt`` and ``result.json``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def get(self, key: str) -> tuple[Path, dict] | None:
        entry = self.root / key
        try:
            result = json.loads((entry / "result.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        weights = entry / "weights.pt"
        return (weights, result) if weights.is_file() else None

    def put(self, key: str, weights: Path, result: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if (self.root / key).exists():
            return
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-{os.getpid()}-", dir=self.root))
        try:
            shutil.copyfile(weights, tmp / "weights.pt")
            (tmp / "result.json").write_text(json.dumps(result), encoding="utf-8")
            os.rename(tmp, self.root / key)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not (self.root / key).exists():
                raise


def training_inputs(project: Path, rows: Iterable) -> list[tuple[str, str]]:
    """``(image content hash, label text)`` of image ``rows``, in order: a training's data for its key."""
    out = []
    for r in rows:
        label = project / label_relpath(r.relpath)
        out.append((r.sha256, label.read_text(encoding="utf-8") if label.is_file() else ""))
    return out


def restore(train_dir: Path, weights: Path) -> Path:
    """Copy a cached training's weights into ``train_dir/weights/last.pt``; return that path."""
    (train_dir / "weights").mkdir(parents=True)
    target = train_dir / "weights" / "last.pt"
    shutil.copyfile(weights, target)
    return target
