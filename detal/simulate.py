"""Simulated active learning on a fully labeled dataset: does it beat random?

A :class:`Simulation` runs the schedule of METHOD.md for one strategy and one
seed. A simulated annotator stands in for people: when a batch is picked, the
ground-truth labels of its images are revealed. :func:`simulate` runs every
(strategy, seed) pair and writes ``results.csv``, ``curves.png`` and
``summary.md`` (see :mod:`detal.report`).

One cycle ``c`` (``c = 0, 1, ...``):

1. train on the labeled set: cycle 0 from ``cfg.weights`` (or scratch) for
   ``first_cycle_epochs``, later cycles warm-started from the previous weights
   for ``epochs_per_cycle`` (either raised, when ``min_steps_per_cycle`` is
   set, so that a small labeled set still gets that many gradient steps);
2. evaluate mAP50 and mAP50-95 on the fixed validation split;
3. unless the budget ``max_labeled_fraction`` is reached: score the subset,
   select the batch (:func:`detal.selection.select_batch`), write the batch's
   YOLO pre-labels to ``cycle<c>/prelabels/``, reveal its labels.

Pairing: at a given seed every strategy starts from the same initial set,
drawn by the first call on ``numpy.random.default_rng(seed)``; that generator
then drives every later random choice of the run.

Resume: after every finished cycle the pool's ``state_dict``, the generator's
``bit_generator.state``, the weights path and the result rows are written to
``state.json`` atomically (tmp file, then ``os.replace``). Running the same
simulation again carries on from the last finished cycle; the rows of the
finished cycles are kept as they were.

Events (callbacks held on the instance, ``sim.add_callback(event, fn)``;
``fn(sim, info)`` with ``info`` a dict): ``on_cycle_start``, ``on_train_end``,
``on_select_end``, ``on_export_end``, ``on_cycle_end``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from detal.adapter import LabeledImage, ModelAdapter
from detal.config import Config, cycle_epochs
from detal.errors import ConfigError, DataError, StateError
from detal.files import atomic_write
from detal.labels import parse_label_text, prediction_lines
from detal.pool import Pool
from detal.scoring import score_predictions
from detal.selection import (
    STRATEGIES,
    Plan,
    fraction_count,
    random_subset,
    select_batch,
    strategy_plan,
)

__all__ = [
    "EVENTS",
    "RESULT_COLUMNS",
    "Dataset",
    "Simulation",
    "cycle_epochs",
    "load_dataset",
    "simulate",
]

IMAGE_SUFFIXES = (".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm")
EVENTS = ("on_cycle_start", "on_train_end", "on_select_end", "on_export_end", "on_cycle_end")
RESULT_COLUMNS = (
    "strategy", "seed", "cycle", "n_labeled", "labeled_fraction", "map50", "map50_95",
    "train_s", "score_s", "select_s", "epochs",
)
STATE_VERSION = 1

AdapterFactory = Callable[[Config], ModelAdapter]


# -- dataset -----------------------------------------------------------------------
@dataclass(frozen=True)
class Dataset:
    """A fully labeled dataset: the pool (``train``) and validation items, and class names."""

    names: list[str]
    pool: list[LabeledImage]
    val: list[LabeledImage]
    source: Path

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps(self.names).encode())
        for image, _ in self.pool:
            h.update(f"p:{image}\n".encode())
        for image, _ in self.val:
            h.update(f"v:{image}\n".encode())
        return h.hexdigest()[:16]


def _label_path(image: Path) -> Path:
    """Ultralytics' convention: the last ``/images/`` in the path becomes ``/labels/``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _images_of(entry: str, root: Path, yaml_path: Path, key: str) -> list[Path]:
    p = Path(entry)
    if not p.is_absolute():
        p = root / p
    if p.is_dir():
        return sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file())
    if p.is_file() and p.suffix == ".txt":
        out = []
        for line in p.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line:
                continue
            q = Path(line)
            if not q.is_absolute():
                q = (p.parent / line) if line.startswith("./") else (root / line)
            out.append(q)
        missing = [q for q in out if not q.is_file()]
        if missing:
            raise DataError(f"{p}: image {missing[0]} listed but not found ({len(missing)} missing)")
        return out
    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
        return [p]
    raise DataError(f"{yaml_path}: {key} path {p} not found (expected a folder or a .txt list of images)")


def _items(entries: Any, root: Path, yaml_path: Path, key: str, n_classes: int) -> list[LabeledImage]:
    if isinstance(entries, str):
        entries = [entries]
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise DataError(f"{yaml_path}: {key} must be a path or a list of paths")
    images: list[Path] = []
    for entry in entries:
        images.extend(_images_of(entry, root, yaml_path, key))
    if not images:
        raise DataError(f"{yaml_path}: {key} holds no images")
    if len(set(images)) != len(images):
        raise DataError(f"{yaml_path}: {key} lists the same image twice")
    items = [(img, _label_path(img)) for img in images]
    if not any(lbl.is_file() for _, lbl in items):
        raise DataError(
            f"{yaml_path}: no label files found for {key} (looked at {items[0][1]}); "
            "simulate needs a fully labeled dataset"
        )
    for _, lbl in items:
        if lbl.is_file():
            _, problems = parse_label_text(lbl.read_text(encoding="utf-8"), n_classes, str(lbl))
            if problems:
                raise DataError(f"malformed label file {problems[0]}")
    return items


def load_dataset(data_yaml: str | Path) -> Dataset:
    """Read an Ultralytics ``data.yaml`` (``path``, ``train``, ``val``, ``names``).

    ``train`` and ``val`` may be folders, ``.txt`` lists of images, or lists of
    either. Labels sit at the ``images -> labels`` path convention; an image
    without a label file has no objects. Every label file is checked.
    """
    yaml_path = Path(data_yaml)
    if not yaml_path.is_file():
        raise DataError(f"{yaml_path}: data.yaml not found (build the digits with `detal data digits`)")
    try:
        data = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"{yaml_path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise DataError(f"{yaml_path}: top level must be a mapping")
    for key in ("train", "val", "names"):
        if key not in data or data[key] in (None, "", []):
            raise DataError(f"{yaml_path}: missing `{key}`")
    names = data["names"]
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise DataError(f"{yaml_path}: names keys must be class ids 0..n-1") from None
        if keys != list(range(len(keys))):
            raise DataError(f"{yaml_path}: names keys must be 0..{len(keys) - 1}")
        names = [str(names[k] if k in names else names[str(k)]) for k in keys]
    elif isinstance(names, list):
        names = [str(n) for n in names]
    else:
        raise DataError(f"{yaml_path}: names must be a list or a mapping of id: name")
    root = Path(data.get("path") or yaml_path.parent)
    if not root.is_absolute():
        root = (yaml_path.parent / root).resolve()
    pool = _items(data["train"], root, yaml_path, "train", len(names))
    val = _items(data["val"], root, yaml_path, "val", len(names))
    overlap = {i for i, _ in pool} & {i for i, _ in val}
    if overlap:
        raise DataError(f"{yaml_path}: {len(overlap)} image(s) are in both train and val, e.g. {min(overlap)}")
    return Dataset(names, pool, val, yaml_path)




def _config_fingerprint(cfg: Config) -> dict[str, Any]:
    d = cfg.to_dict()
    d.pop("seed", None)
    d.pop("device", None)
    d.pop("workers", None)
    d.pop("data", None)
    return d


# -- one run -----------------------------------------------------------------------
class Simulation:
    """One strategy at one seed, cycle by cycle, resumable from ``run_dir/state.json``."""

    def __init__(
        self,
        cfg: Config,
        dataset: Dataset,
        adapter: ModelAdapter,
        strategy: str,
        run_dir: str | Path,
        *,
        log: Callable[[str], None] | None = print,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ConfigError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
        self.cfg = cfg
        self.dataset = dataset
        self.adapter = adapter
        self.strategy = strategy
        self.seed = cfg.seed
        self.run_dir = Path(run_dir)
        self.log = log
        self.callbacks: dict[str, list[Callable[[Simulation, dict], None]]] = {e: [] for e in EVENTS}
        self.T = len(dataset.pool)
        self.max_labeled = fraction_count(cfg.max_labeled_fraction, self.T)
        # state (set by _start or _load)
        self.pool: Pool
        self.rng: np.random.Generator
        self.next_cycle = 0
        self.weights: Path | None = None
        self.rows: list[dict[str, Any]] = []
        self.done = False
        if not self._load():
            self._start()

    # -- hooks ------------------------------------------------------------------------
    def add_callback(self, event: str, fn: Callable[[Simulation, dict], None]) -> None:
        if event not in self.callbacks:
            raise ConfigError(f"unknown event {event!r}; expected one of {', '.join(EVENTS)}")
        self.callbacks[event].append(fn)

    def _emit(self, event: str, info: dict) -> None:
        for fn in self.callbacks[event]:
            fn(self, info)

    # -- state --------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.run_dir / "state.json"

    def _identity(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "strategy": self.strategy,
            "seed": self.seed,
            "dataset": self.dataset.fingerprint(),
            "config": _config_fingerprint(self.cfg),
        }

    def _start(self) -> None:
        self.pool = Pool(range(self.T))
        self.rng = np.random.default_rng(self.seed)
        n0 = fraction_count(self.cfg.initial_fraction, self.T)
        initial = random_subset(self.pool.unlabeled_ids(), n0, self.rng)
        self.pool.label(initial, cycle=0)

    def _load(self) -> bool:
        if not self.state_path.is_file():
            return False
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise StateError(f"{self.state_path}: damaged state file; delete it to restart this run") from None
        if state.get("identity") != json.loads(json.dumps(self._identity())):
            raise StateError(
                f"{self.state_path}: this run was made with another config, dataset, strategy or seed; "
                "use another --name or delete the folder"
            )
        self.pool = Pool.from_state_dict(state["pool"])
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]
        self.next_cycle = int(state["next_cycle"])
        self.weights = Path(state["weights"]) if state.get("weights") else None
        self.rows = list(state["rows"])
        self.done = bool(state["done"])
        return True

    def _save(self) -> None:
        state = {
            "identity": self._identity(),
            "pool": self.pool.state_dict(),
            "rng": self.rng.bit_generator.state,
            "next_cycle": self.next_cycle,
            "weights": str(self.weights) if self.weights else None,
            "rows": self.rows,
            "done": self.done,
        }
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.state_path, json.dumps(state, indent=1, default=_json_default))

    # -- helpers --------------------------------------------------------------------------
    def _items(self, ids: Iterable[int]) -> list[LabeledImage]:
        return [self.dataset.pool[int(i)] for i in ids]

    def _say(self, text: str) -> None:
        if self.log is not None:
            self.log(text)

    def _plan(self) -> Plan:
        n_labeled = self.pool.count("labeled")
        plan = strategy_plan(
            self.strategy,
            self.T,
            batch_fraction=self.cfg.batch_fraction,
            subset_fraction=self.cfg.subset_fraction,
            uncertain_share=self.cfg.uncertain_share,
        )
        room = self.max_labeled - n_labeled
        if plan.batch_size > room:  # the last batch stops exactly at the budget
            share = plan.n_uncertain / plan.batch_size if plan.batch_size else 0.0
            plan = dataclasses.replace(plan, batch_size=room, n_uncertain=math.floor(share * room + 0.5))
        return plan

    def _scorer(self, weights: Path) -> Callable[[np.ndarray], np.ndarray]:
        cfg = self.cfg

        def score(ids: np.ndarray) -> np.ndarray:
            images = [self.dataset.pool[int(i)][0] for i in ids]
            result = self.adapter.predict(
                weights, images, conf=cfg.score_conf, iou=cfg.iou, batch=cfg.predict_batch, progress=True
            )
            by_path = {Path(s.path): s.score for s in score_predictions(result.predictions, cfg)}
            return np.asarray([by_path.get(Path(p), np.nan) for p in images], dtype=np.float64)

        return score

    def _export(self, weights: Path, ids: np.ndarray, out: Path) -> int:
        """Write the batch's pre-labels (what annotators would receive); return the box count.

        ``out`` lies in this cycle's folder, which ``step`` has just created (an
        interrupted attempt's folder is removed first), so plain writes suffice.
        """
        out.mkdir(parents=True)
        images = [self.dataset.pool[int(i)][0] for i in ids]
        result = self.adapter.predict(
            weights, images, conf=self.cfg.prelabel_conf, iou=self.cfg.iou,
            batch=self.cfg.predict_batch, progress=False,
        )
        id_of = {Path(path): int(i) for i, path in zip(ids, images)}
        n_boxes = 0
        written: set[str] = set()
        for pred in result.predictions:
            lines = prediction_lines(pred, conf=self.cfg.prelabel_conf)
            n_boxes += len(lines)
            # Named like the image; two images with one stem (other folders) get their id too.
            name = Path(pred.path).stem
            if name in written:
                name = f"{name}__{id_of[Path(pred.path)]}"
            written.add(name)
            (out / f"{name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
        (out / "classes.txt").write_text("\n".join(self.dataset.names) + "\n", encoding="utf-8")
        return n_boxes

    # -- the loop ---------------------------------------------------------------------------
    def run(self, max_cycles: int | None = None) -> list[dict[str, Any]]:
        """Run cycles until the budget is reached (or ``max_cycles`` more have finished)."""
        ran = 0
        with self._lock():
            while not self.done and (max_cycles is None or ran < max_cycles):
                self.step()
                ran += 1
        return self.rows

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Refuse to run while another live process runs the same folder; take over stale locks."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        lock = self.run_dir / "run.lock"
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(lock.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and pid != os.getpid() and _alive(pid):
                    raise StateError(f"{self.run_dir}: process {pid} is running this simulation") from None
                lock.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            break
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)

    def step(self) -> dict[str, Any]:
        """Run one cycle: train, evaluate, and (unless at the budget) select and reveal."""
        if self.done:
            raise StateError(f"{self.run_dir}: the simulation has already reached its budget")
        cfg, c = self.cfg, self.next_cycle
        cycle_dir = self.run_dir / f"cycle{c}"
        if cycle_dir.exists():  # left over from an interrupted attempt at this cycle
            shutil.rmtree(cycle_dir)
        cycle_dir.mkdir(parents=True)
        labeled = self.pool.labeled_ids()
        n_labeled = int(labeled.size)
        self._emit("on_cycle_start", {"cycle": c, "n_labeled": n_labeled})

        epochs = cycle_epochs(cfg, c, n_labeled)
        init = self.weights if (c > 0 and cfg.warm_start) else (Path(cfg.weights) if cfg.weights else None)
        t0 = time.perf_counter()
        trained = self.adapter.train(
            self._items(labeled), [], self.dataset.names, cycle_dir / "train", epochs=epochs, init_weights=init
        )
        train_s = time.perf_counter() - t0
        metrics = self.adapter.evaluate(trained.weights, self.dataset.val, self.dataset.names, cycle_dir / "val")
        self._emit("on_train_end", {"cycle": c, "weights": trained.weights, "metrics": metrics, "epochs": epochs})

        score_s = select_s = 0.0
        batch = np.zeros(0, dtype=np.int64)
        at_budget = n_labeled >= self.max_labeled or self.pool.count("unlabeled") == 0
        if not at_budget:
            plan = self._plan()
            t0 = time.perf_counter()
            scorer = self._scorer(trained.weights)
            timed: dict[str, float] = {"score": 0.0}

            def timed_scorer(ids: np.ndarray) -> np.ndarray:
                s0 = time.perf_counter()
                out = scorer(ids)
                timed["score"] += time.perf_counter() - s0
                return out

            sel = select_batch(self.pool.unlabeled_ids(), plan, self.rng, timed_scorer)
            score_s = timed["score"]
            select_s = time.perf_counter() - t0 - score_s
            batch = sel.ids
            self._emit("on_select_end", {"cycle": c, "selection": sel, "plan": plan})
            n_boxes = self._export(trained.weights, batch, cycle_dir / "prelabels")
            self._emit("on_export_end", {"cycle": c, "ids": batch, "n_boxes": n_boxes, "dir": cycle_dir / "prelabels"})
            # the simulated annotator: the batch's ground truth is revealed
            self.pool.select(batch, cycle=c + 1)
            self.pool.label(batch, cycle=c + 1)
            atomic_write(
                cycle_dir / "batch.json",
                json.dumps({
                    "uncertain": sel.uncertain_ids.tolist(),
                    "random": sel.random_ids.tolist(),
                    "scored": sel.scored_ids.tolist(),
                    "scores": [None if np.isnan(v) else round(float(v), 6) for v in sel.scores],
                }),
            )

        row = {
            "strategy": self.strategy,
            "seed": self.seed,
            "cycle": c,
            "n_labeled": n_labeled,
            "labeled_fraction": round(n_labeled / self.T, 6),
            "map50": round(float(metrics.map50), 6),
            "map50_95": round(float(metrics.map50_95), 6),
            "train_s": round(train_s, 3),
            "score_s": round(score_s, 3),
            "select_s": round(select_s, 3),
            "epochs": epochs,
        }
        self.rows.append(row)
        self.weights = Path(trained.weights)
        self.next_cycle = c + 1
        self.done = at_budget
        self._save()
        self._say(
            f"[{self.strategy} seed {self.seed}] cycle {c}: {n_labeled} labeled "
            f"({n_labeled / self.T:.1%}), {epochs} epochs, mAP50 {row['map50']:.3f} "
            f"mAP50-95 {row['map50_95']:.3f}, train {train_s:.0f}s score {score_s:.0f}s"
            + ("" if at_budget else f", picked {batch.size}")
        )
        self._emit("on_cycle_end", {"cycle": c, "row": row})
        return row


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def _fill_missing_labels(dataset: Dataset, empty: Path) -> Dataset:
    """Point images without a label file (no objects, by Ultralytics' convention) at an empty file."""
    if all(lbl.is_file() for _, lbl in dataset.pool + dataset.val):
        return dataset
    empty.write_text("", encoding="utf-8")
    fix = lambda items: [(img, lbl if lbl.is_file() else empty) for img, lbl in items]
    return dataclasses.replace(dataset, pool=fix(dataset.pool), val=fix(dataset.val))


# -- every (strategy, seed) ---------------------------------------------------------------
def write_results(rows: Sequence[dict[str, Any]], path: Path) -> None:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(RESULT_COLUMNS))
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row[k] for k in RESULT_COLUMNS})
    atomic_write(path, buf.getvalue())


def simulate(
    cfg: Config,
    adapter: ModelAdapter | AdapterFactory,
    *,
    strategies: Sequence[str] = ("mixed", "random"),
    seeds: Sequence[int] = (0,),
    out_dir: str | Path = "runs/simulate/default",
    data: str | Path | None = None,
    callbacks: dict[str, list[Callable]] | None = None,
    log: Callable[[str], None] | None = print,
    report: bool = True,
) -> Path:
    """Run every (strategy, seed) to its budget; write results.csv (and the report). Resumable.

    ``adapter`` is a :class:`ModelAdapter`, or a factory called with each
    seed's config (so that training is seeded with that seed).
    """
    if not strategies:
        raise ConfigError("simulate: give at least one strategy")
    for s in strategies:
        if s not in STRATEGIES:
            raise ConfigError(f"simulate: unknown strategy {s!r}; expected one of {', '.join(STRATEGIES)}")
    if len(set(strategies)) != len(strategies) or len(set(seeds)) != len(seeds):
        raise ConfigError("simulate: strategies and seeds must not repeat")
    data_path = data or cfg.data
    if data_path is None:
        raise ConfigError("simulate: no dataset; set `data` in the config or pass --data DATA_YAML")
    dataset = load_dataset(data_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dataset = _fill_missing_labels(dataset, out / "empty_label.txt")
    atomic_write(out / "config.yaml", yaml.safe_dump({**cfg.to_dict(), "data": str(data_path)}, sort_keys=False))
    if log:
        log(
            f"simulate: {len(dataset.pool)} pool images, {len(dataset.val)} val images, "
            f"{len(dataset.names)} classes; strategies {','.join(strategies)}; seeds {','.join(map(str, seeds))}"
        )
    all_rows: list[dict[str, Any]] = []
    # seed-major order: every strategy of a seed finishes before the next seed starts,
    # so a partial benchmark is still a paired comparison
    for seed in seeds:
        scfg = cfg.replace(seed=int(seed))
        for strategy in strategies:
            is_instance = isinstance(adapter, ModelAdapter) and not isinstance(adapter, type)
            ad = adapter if is_instance else adapter(scfg)
            sim = Simulation(scfg, dataset, ad, strategy, out / strategy / f"seed{seed}", log=log)
            for event, fns in (callbacks or {}).items():
                for fn in fns:
                    sim.add_callback(event, fn)
            sim.add_callback("on_cycle_end", lambda s, info: write_results(all_rows + s.rows, out / "results.csv"))
            sim.run()
            all_rows.extend(sim.rows)
    write_results(all_rows, out / "results.csv")
    if report:
        from detal.report import write_report

        write_report(out / "results.csv", out)
    return out
