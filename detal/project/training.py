"""The train and evaluate steps of a cycle (:mod:`detal.project.cycle`), with the train cache.

Training gets the labeled images and no validation items (no per-epoch
validation, no best-by-val weights); the last weights are then evaluated once
on the project's val split. With a :class:`~detal.project.train_cache.TrainCache`,
a training whose inputs were trained before is restored instead, its
evaluation and original timings included.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from detal.adapter import LabeledImage, Metrics, ModelAdapter
from detal.config import Config
from detal.project.folder import pairs
from detal.project.paths import ProjectPaths
from detal.project.train_cache import TrainCache, restore, training_inputs, training_key

__all__ = ["train_and_evaluate"]


def train_and_evaluate(
    adapter: ModelAdapter, project: Path, names: list[str], cfg: Config, labeled: Sequence,
    val_rows: Sequence, k: int, epochs: int, init_weights: Path | None,
    cache: TrainCache | None, on_stage: Callable[..., None], *, name: str = "train",
    extra: Sequence[tuple[LabeledImage, tuple[str, str]]] = (), repeat: int = 1,
) -> tuple[Path, Metrics | None, dict]:
    """Train on ``labeled``, evaluate on ``val_rows`` (in cycle ``k``'s ``train/`` and ``val/``);
    return the weights, metrics and timings.

    ``on_stage(stage, seconds, **figures)`` is called when training and when
    evaluation end (``images``, ``epochs``, ``cached``; ``metrics``).
    ``name`` other than ``train`` (self-training's ``teacher``) trains in
    ``cycles/<k>/<name>`` and evaluates in ``cycles/<k>/<name>-val``.

    Self-training's student (:mod:`detal.project.pseudo`) passes ``extra``:
    ``((image, label file), (image hash, label text))`` of the pseudo-labeled
    images, trained on after the human images, which are listed ``repeat``
    times; both enter the train cache's key.
    """
    paths = ProjectPaths(project)
    if name == "train":
        train_dir, val_dir = paths.train_dir(k), paths.val_dir(k)
    else:
        train_dir, val_dir = paths.cycle_dir(k) / name, paths.cycle_dir(k) / f"{name}-val"
    human = pairs(project, labeled)
    items = [*human * repeat, *(item for item, _ in extra)]
    key = hit = None
    if cache is not None:
        inputs = [*training_inputs(project, labeled) * repeat, *(inp for _, inp in extra)]
        key = training_key(cfg, inputs, training_inputs(project, val_rows), epochs, init_weights)
        hit = cache.get(key)
    if hit is not None:
        cached_weights, result = hit
        weights = restore(train_dir, cached_weights)
        timings = {"train_s": result.get("train_s", 0.0), "eval_s": result.get("eval_s", 0.0),
                   "train_cached": True}
        metrics = Metrics(**result["metrics"]) if result.get("metrics") else None
        on_stage("train", timings["train_s"], images=len(items), epochs=epochs, cached=True)
        on_stage("evaluate", timings["eval_s"], metrics=metrics)
        return weights, metrics, timings
    t0 = time.perf_counter()
    trained = adapter.train(items, [], names, train_dir, epochs=epochs, init_weights=init_weights)
    timings = {"train_s": round(time.perf_counter() - t0, 3)}
    on_stage("train", timings["train_s"], images=len(items), epochs=epochs)
    t0 = time.perf_counter()
    val_items = pairs(project, val_rows)
    metrics = adapter.evaluate(trained.weights, val_items, names, val_dir) if val_items else None
    timings["eval_s"] = round(time.perf_counter() - t0, 3)
    on_stage("evaluate", timings["eval_s"], metrics=metrics)
    if key is not None:
        cache.put(key, Path(trained.weights), {
            "metrics": asdict(metrics) if metrics is not None else None,
            "train_s": timings["train_s"], "eval_s": timings["eval_s"],
        })
    return Path(trained.weights), metrics, timings
