"""``detal simulate``: real projects, with the ground truth as the annotator. Does it beat random?

For each arm and seed, :func:`simulate` drives one real project (the
code ``detal init | cycle | import`` runs, :mod:`detal.project`) under
``OUT/<arm>/seed-<k>/``. An arm is a strategy (:data:`STRATEGIES`), run
without self-training, or ``<strategy>+st``, the same with the config's
``self_training`` block switched on (:func:`parse_arm`): so ``random`` is
always plain random, the baseline every saving is measured against, whatever
the config says about self-training, and one run can hold both.

1. ``init_project`` over the dataset's pool (linked, not copied: the split's
   folder itself, or, for ``.txt`` image lists and lists of folders,
   ``OUT/data/pool``, a folder of symbolic links to the listed images), with the validation split as
   the project's val, the strategy and the seed in its config. At a given
   seed every strategy draws the same initial set (``default_rng(seed)``
   over the same pool).
2. Then, until the schedule ends: ``run_cycle`` (train, evaluate, score,
   select, write the batch), then the simulated annotator writes the
   ground-truth label of every image that is out as its pre-label file name (``<key>.txt``) and hands
   the folder to ``import_labels``, the validated path a person's labels
   take (an image without a ground-truth file gets an empty label: no objects).

The schedule (:func:`detal.selection.schedule_length`): as many trained
cycles as a budget-limited run has on a pool of ``T`` images; every
strategy runs that many cycles, or stops earlier at the budget. The last
cycle of a budget-limited run trains on exactly the budget and selects
nothing.

Resume: after a kill, running the same simulation again resumes every
project with its own crash-safe resume (an interrupted cycle is finished, an
interrupted import is repeated). The outputs, ``results.csv`` (one row per
trained cycle; ``cycle`` counts trained cycles from 0, project cycle
``cycle + 1``; :data:`RESULT_COLUMNS`, with the cumulative annotator seconds
of :func:`project_rows`), ``curves.png`` and ``summary.md``
(:mod:`detal.report`), are derived from the projects' stores after every
cycle.

The vendor bundle zip is not written (``write_bundles=False``, the default
here): it copies the batch's images and no one unpacks it. Everything else
runs as in a real project.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from detal.adapter import ModelAdapter
from detal.config import Config, cycle_epochs
from detal.data_yaml import Dataset, load_dataset
from detal.effort import Effort, batch_cost
from detal.errors import ConfigError, DataError, StateError, unknown
from detal.files import atomic_write
from detal.pool import Status
from detal.project import Hooks, import_labels, init_project, project_config, run_cycle
from detal.project.folder import EVENTS, folder_lock
from detal.project.label_import import pool_names
from detal.project.paths import ProjectPaths, label_relpath, prelabel_file
from detal.project.scan import walk_images
from detal.selection import STRATEGIES, labeling_cap, schedule_length
from detal.store import Store

__all__ = [
    "DRAW_SLOW",
    "RESULT_COLUMNS",
    "SELF_TRAINING_SUFFIX",
    "Arm",
    "Dataset",
    "arm_config",
    "cycle_epochs",
    "default_arms",
    "load_dataset",
    "parse_arm",
    "project_rows",
    "simulate",
    "write_results",
]

RESULT_COLUMNS = (
    "strategy", "seed", "cycle", "n_labeled", "labeled_fraction", "map50", "map50_95",
    "train_s", "score_s", "select_s", "epochs", "n_boxes", "annotator_s", "annotator_s_draw25",
)
DRAW_SLOW = 25.0
"""The second cost profile's seconds per drawn box (``annotator_s_draw25``): a classic two-click box
with quality checks, Su, Deng and Fei-Fei 2012 (docs/method.md, "What a batch costs")."""
RUN_FILE = "simulation.json"
RUN_VERSION = 2
_IGNORED_KEYS = ("seed", "device", "workers", "data", "scoring")  # may change between a run and its resume

AdapterFactory = Callable[[Config], ModelAdapter]
SELF_TRAINING_SUFFIX = "+st"
"""An arm's suffix for "this strategy, with self-training"."""


# -- arms: a strategy, with or without self-training ----------------------------------------
class Arm(NamedTuple):
    """One line of a simulation's curves: a selection strategy, and whether the cycles self-train."""

    name: str  # as given, the results' ``strategy`` column and the project folder's name
    strategy: str
    self_training: bool


def parse_arm(text: str) -> Arm:
    """``hybrid`` (no self-training) or ``hybrid+st`` (the config's self_training block, on)."""
    strategy = text.removesuffix(SELF_TRAINING_SUFFIX)
    if strategy not in STRATEGIES:
        raise ConfigError(f"simulate: {unknown('strategy', strategy, STRATEGIES)} "
                          f"(an arm is a strategy, or <strategy>{SELF_TRAINING_SUFFIX} for it with self-training)")
    return Arm(text, strategy, strategy != text)


def default_arms(cfg: Config) -> list[str]:
    """The config's strategy as it would run in a project (``+st`` when its self-training is on), then
    plain ``random``."""
    mine = cfg.strategy + (SELF_TRAINING_SUFFIX if cfg.self_training["enabled"] else "")
    return list(dict.fromkeys([mine, "random"]))


def arm_config(cfg: Config, arm: Arm, seed: int) -> Config:
    """The project config of ``arm`` at ``seed``: the strategy set, self-training on or off."""
    return cfg.replace(seed=seed, strategy=arm.strategy,
                       self_training={**cfg.self_training, "enabled": arm.self_training})


# -- the dataset as project input --------------------------------------------------------
@dataclass(frozen=True)
class Staged:
    """The dataset laid out for ``init``, and the annotator's answer key."""

    pool: Path
    val: Path
    val_labels: Path
    classes: Path
    truth: dict[str, Path | None]  # image path in the pool folder -> ground-truth label file (None: no objects)
    boxes: dict[str, int]  # image path in the pool folder -> ground-truth boxes

    @property
    def size(self) -> int:
        """``T``, the pool size."""
        return len(self.truth)

    def by_key(self, store: Store, table: dict[str, Any]) -> dict[str, Any]:
        """``table`` (:attr:`truth` or :attr:`boxes`) keyed by the project's image keys.

        Each image is found by the key rule every import uses
        (:class:`~detal.export.keys.PoolNames`), from its path in the pool folder.
        """
        names = pool_names(store)
        out = {}
        for rel, value in table.items():
            key = names.match(rel, file_name=True, by_base=False).key
            if key is not None:
                out[key] = value
        return out


def _relpaths(images: Sequence[Path], where: Path) -> tuple[Path, list[str]]:
    """The images' deepest common folder, and their paths relative to it."""
    absolute = [Path(os.path.abspath(p)) for p in images]
    base = Path(os.path.commonpath([p.parent for p in absolute]))
    rels = [p.relative_to(base).as_posix() for p in absolute]
    hidden = [r for r in rels if any(part.startswith(".") for part in r.split("/"))]
    if hidden:
        raise DataError(f"{where}: {hidden[0]}: a hidden file or folder name; projects skip those")
    return base, rels


def _is_whole_folder(base: Path, rels: list[str]) -> bool:
    """Whether ``init`` on ``base`` would see exactly these images (then no links are needed)."""
    found = iter(walk_images(base))
    wanted = set(rels)
    n = 0
    for rel in found:
        if rel not in wanted:
            return False
        n += 1
    return n == len(wanted)


def _count_boxes(label: Path | None) -> int:
    if label is None or not label.is_file():
        return 0
    return sum(1 for line in label.read_text(encoding="utf-8").splitlines() if line.strip())


def _stage(dataset: Dataset, out: Path) -> Staged:
    """``OUT/data/``: symbolic links to the pool and val images, val labels, classes.txt.

    Built once per dataset (kept while the dataset's fingerprint matches), in
    a temporary folder renamed into place.
    """
    data = out / "data"
    pool_base, pool_rel = _relpaths([i for i, _ in dataset.pool], dataset.source)
    val_base, val_rel = _relpaths([i for i, _ in dataset.val], dataset.source)
    # The common case, a data.yaml naming one folder for each split: init links that
    # folder itself; otherwise (lists, several folders) a folder of links per split.
    direct = {"pool": _is_whole_folder(pool_base, pool_rel), "val": _is_whole_folder(val_base, val_rel)}
    stamp = data / "dataset.json"
    fingerprint = {"dataset": dataset.fingerprint(), "source": str(dataset.source), "direct": direct}
    if not (stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")) == fingerprint):
        for stale in out.glob(".data.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = out / f".data.tmp-{os.getpid()}"
        for folder, items, rels in (("pool", dataset.pool, pool_rel), ("val", dataset.val, val_rel)):
            for (image, label), rel in zip(items, rels):
                if not direct[folder]:
                    link = tmp / folder / rel
                    link.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(os.path.abspath(image), link)
                if folder == "val":
                    target = (tmp / "val-labels" / rel).with_suffix(".txt")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(label.read_text(encoding="utf-8") if label.is_file() else "",
                                      encoding="utf-8")
        (tmp / "val-labels").mkdir(parents=True, exist_ok=True)
        (tmp / "classes.txt").write_text("\n".join(dataset.names) + "\n", encoding="utf-8")
        (tmp / "dataset.json").write_text(json.dumps(fingerprint), encoding="utf-8")
        shutil.rmtree(data, ignore_errors=True)
        os.rename(tmp, data)
    truth = {rel: label if label.is_file() else None for (_, label), rel in zip(dataset.pool, pool_rel)}
    return Staged(pool_base if direct["pool"] else data / "pool", val_base if direct["val"] else data / "val",
                  data / "val-labels", data / "classes.txt", truth, {k: _count_boxes(v) for k, v in truth.items()})


# -- one project ------------------------------------------------------------------------
def _check_run(project: Path, identity: dict, cfg: Config) -> None:
    """Refuse to resume a project that another dataset, strategy, seed or config made."""
    path = project / RUN_FILE
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StateError(f"{path}: missing; this project was not made by detal simulate") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise StateError(f"{path}: damaged run file; delete {project} to restart this run") from None
    mine = {k: v for k, v in cfg.to_dict().items() if k not in _IGNORED_KEYS}
    theirs = {k: v for k, v in project_config(project).to_dict().items() if k not in _IGNORED_KEYS}
    if found != identity or mine != theirs:
        raise StateError(
            f"{project}: this run was made with another config, dataset, strategy or seed; "
            "use another --name or delete the folder"
        )


def _boxes(project: Path, staged: Staged) -> dict[str, int]:
    """The ground-truth box count of every pool image of ``project``, by key."""
    with Store.open(ProjectPaths(project).db) as store:
        return staged.by_key(store, staged.boxes)


def _reveal(project: Path, staged: Staged, hooks: Hooks) -> None:
    """The simulated annotator: the ground truth of every image that is out, through ``import``."""
    with Store.open(ProjectPaths(project).db) as store:
        keys = [r.key for r in store.images(status=Status.SELECTED.value)]
        truth = staged.by_key(store, staged.truth)
    with tempfile.TemporaryDirectory(prefix=".annotator-", dir=project.parent) as tmp:
        for key in keys:
            label = truth[key]
            text = label.read_text(encoding="utf-8") if label is not None else ""
            (Path(tmp) / prelabel_file(key)).write_text(text, encoding="utf-8")
        # the ground truth, even where it equals the model's pre-labels
        import_labels(project, tmp, hooks=hooks, accept_prelabels=True)


class _Progress(NamedTuple):
    interrupted: bool  # the last cycle is not done
    n_trained: int  # trained cycles
    n_labeled: int
    n_out: int  # images selected and not yet labeled
    last_n_train: int  # images the last trained cycle trained on (-1: none)


def _progress(project: Path) -> _Progress:
    with Store.open(ProjectPaths(project).db) as store:
        trained = [c for c in store.cycles() if c.state == "done" and c.weights]
        counts = store.status_counts()
        last = store.last_cycle()
    return _Progress(last is not None and last.state != "done", len(trained), counts[Status.LABELED.value],
                     counts[Status.SELECTED.value], trained[-1].n_train if trained else -1)


def project_rows(project: Path, strategy: str, seed: int, boxes: dict[str, int] | None = None) -> list[dict]:
    """One result row per trained cycle of a project, from its store.

    ``n_boxes`` counts the labeled set's boxes from ``boxes`` (key -> boxes),
    or from the project's label files when not given. ``annotator_s`` is the
    estimated annotator time spent on the labels the cycle trained on: the
    sum, over every batch imported before it, of what correcting its images
    took as ``import`` recorded it (:mod:`detal.project.corrections`; the
    initial batch all drawn), priced with the project's ``effort_seconds``;
    ``annotator_s_draw25`` the same with ``draw`` = :data:`DRAW_SLOW`.
    """
    seconds = project_config(project).effort_seconds
    profiles = {"annotator_s": Effort(**seconds), "annotator_s_draw25": Effort(**{**seconds, "draw": DRAW_SLOW})}
    rows: list[dict[str, Any]] = []
    with Store.open(ProjectPaths(project).db) as store:
        by_batch: dict[int, list] = {}
        for r in store.corrections():
            by_batch.setdefault(r.cycle, []).append(r)
        batch_s = {j: {name: batch_cost(images, effort).annotator_s for name, effort in profiles.items()}
                   for j, images in by_batch.items()}
        images = store.images()
        pool_size = sum(1 for r in images if r.status != Status.VAL.value)
        labeled = [r for r in images if r.status == Status.LABELED.value]
        if boxes is None:
            boxes = {r.key: _count_boxes(project / label_relpath(r.relpath)) for r in labeled}
        trained = [c for c in store.cycles() if c.state == "done" and c.weights]
        for i, c in enumerate(trained):
            m = c.metrics
            timings = c.timings
            cfg = Config(**c.config)
            rows.append({
                "strategy": strategy,
                "seed": seed,
                "cycle": i,
                "n_labeled": c.n_train,
                "labeled_fraction": round(c.n_train / pool_size, 6),
                "map50": round(float(m.map50 if m is not None else float("nan")), 6),
                "map50_95": round(float(m.map50_95 if m is not None else float("nan")), 6),
                "train_s": timings.get("train_s", 0.0),
                "score_s": timings.get("score_s", 0.0),
                "select_s": timings.get("select_s", 0.0),
                "epochs": cycle_epochs(cfg, 0 if i == 0 else c.id, c.n_train),
                "n_boxes": sum(boxes.get(r.key, 0) for r in labeled if r.labeled_cycle < c.id),
                # the batches it trained on: those selected before it
                **{name: round(sum(v[name] for j, v in batch_s.items() if j < c.id), 1) for name in profiles},
                "picked": c.n_selected,
                "reused": bool(timings.get("train_cached")),
            })
    return rows


def _say(log: Callable[[str], None] | None, strategy: str, seed: int, row: dict) -> None:
    if log is not None:
        log(
            f"[{strategy} seed {seed}] cycle {row['cycle']}: {row['n_labeled']} labeled "
            f"({row['labeled_fraction']:.1%}), {row['epochs']} epochs, mAP50 {row['map50']:.3f} "
            f"mAP50-95 {row['map50_95']:.3f}, train {row['train_s']:.0f}s"
            + (" (an identical earlier training, reused)" if row.get("reused") else "")
            + f" score {row['score_s']:.0f}s"
            + (f", picked {row['picked']}" if row["picked"] else "")
        )


def _run_project(
    cfg: Config, adapter: ModelAdapter, strategy: str, project: Path, staged: Staged,
    identity: dict, length: int, hooks: Hooks, write_bundles: bool,
    log: Callable[[str], None] | None, after_cycle: Callable[[], None], train_cache: Path | None = None,
) -> None:
    """Init (or resume) one project and run it to the end of the schedule."""
    # a killed run's answer sheets and half-built project
    for stale in [*project.parent.glob(".annotator-*"), *project.parent.glob(f".{project.name}.init-*")]:
        shutil.rmtree(stale, ignore_errors=True)
    if (ProjectPaths(project).db).is_file():
        _check_run(project, identity, cfg)
    else:
        project.mkdir(parents=True, exist_ok=True)
        atomic_write(project / RUN_FILE, json.dumps(identity))
        # force: no database yet, so what is there is a killed init's leftovers
        init_project(project, staged.pool, staged.classes, val_images=staged.val,
                     val_labels=staged.val_labels, config=cfg, force=True, write_bundle=write_bundles)
    overrides = [f"{k}={json.dumps(getattr(cfg, k))}" for k in ("device", "workers")]
    cap = labeling_cap(cfg.max_labeled_fraction, staged.size)
    while True:
        p = _progress(project)
        if not p.interrupted:  # (an interrupted cycle: run_cycle resumes it)
            if p.n_out:
                _reveal(project, staged, hooks)
                continue
            if p.n_trained >= length:
                return
            if p.n_labeled >= cap and p.last_n_train == p.n_labeled:
                return  # at the budget, and trained on every label
        run_cycle(project, adapter, overrides=overrides, hooks=hooks, write_bundle=write_bundles,
                  train_cache=train_cache)
        rows = project_rows(project, strategy, cfg.seed, _boxes(project, staged))
        _say(log, strategy, cfg.seed, rows[-1])
        after_cycle()


# -- every (strategy, seed) ---------------------------------------------------------------
def _results(out: Path, runs: Sequence[tuple[int, str]], staged: Staged) -> None:
    """``out/results.csv`` from the stores of every project of the run that exists so far."""
    rows = []
    for seed, s in runs:
        project = out / s / f"seed-{seed}"
        if (ProjectPaths(project).db).is_file():
            rows += project_rows(project, s, seed, _boxes(project, staged))
    write_results(rows, out / "results.csv")


@dataclass(frozen=True)
class _Job:
    """One (arm, seed) project of a simulation, picklable for a worker process."""

    cfg: Config  # arm_config(.., arm, seed)
    arm: Arm
    adapter: Any  # a ModelAdapter, or a factory called with cfg
    out: Path
    runs: tuple
    staged: Staged
    identity: dict
    length: int
    write_bundles: bool
    train_cache: Path | None

    def run(self, hooks: Hooks, log: Callable[[str], None] | None) -> None:
        cfg, adapter = self.cfg, self.adapter
        is_instance = isinstance(adapter, ModelAdapter) and not isinstance(adapter, type)
        _run_project(cfg, adapter if is_instance else adapter(cfg), self.arm.name,
                     self.out / self.arm.name / f"seed-{cfg.seed}", self.staged, self.identity, self.length,
                     hooks, self.write_bundles, log, lambda: _results(self.out, self.runs, self.staged),
                     self.train_cache)


def _run_job(job: _Job, log: bool) -> None:
    """A worker process's task: one project, logging to this process's stdout."""
    job.run(Hooks(), (lambda line: print(line, flush=True)) if log else None)


def _run_in_parallel(jobs: Sequence[_Job], workers: int, log: Callable[[str], None] | None) -> None:
    """Run ``jobs`` in ``workers`` spawned processes; the first failure stops what has not started."""
    import concurrent.futures as cf
    import multiprocessing

    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_run_job, job, log is not None) for job in jobs]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def write_results(rows: Sequence[dict[str, Any]], path: Path) -> None:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(RESULT_COLUMNS))
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row[k] for k in RESULT_COLUMNS})
    atomic_write(path, buf.getvalue())


def _hooks(callbacks: dict[str, list[Callable]] | None, strategy: str, seed: int) -> Hooks:
    hooks = Hooks()
    for event, fns in (callbacks or {}).items():
        if event not in EVENTS:
            raise ConfigError(f"simulate: {unknown('event', event, EVENTS)}")
        for fn in fns:
            hooks.add(event, lambda fn=fn, **info: fn(strategy=strategy, seed=seed, **info))
    return hooks


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
    write_bundles: bool = False,
    train_cache: str | Path | None = None,
    jobs: int = 1,
) -> Path:
    """Run every (arm, seed) project to the end of its schedule; write results.csv and the report.

    ``strategies`` are arms (:func:`parse_arm`): ``hybrid`` runs hybrid
    without self-training, ``hybrid+st`` with the config's ``self_training``
    block switched on; each arm's rows carry its name as ``strategy``.

    ``adapter`` is a :class:`ModelAdapter`, or a factory called with each
    seed's config (so that training is seeded with that seed). ``callbacks``
    maps project events (:data:`detal.project.EVENTS`) to functions, called
    with the event's keyword arguments plus ``strategy`` and ``seed``.
    ``train_cache`` is a folder of finished trainings shared by the projects
    (:mod:`detal.project.train_cache`): a training with exactly the same
    inputs as an earlier one (every strategy's first cycle at a seed; the
    ``hold`` control retrained from the same initial weights) is reused.
    Resumable: run it again after an interruption.

    ``jobs`` > 1 runs that many projects at once, each in a process of its
    own (spawned), in the same seed-major order; ``adapter`` must then be a
    picklable factory (a class or a module-level function) and ``callbacks``
    none. Each training is what it would be alone, so the figures do not
    change. On the CPU, Ultralytics trains with ``cpu_count - 1`` threads
    (one on two cores), which is what leaves a core for a second job.
    """
    if jobs < 1:
        raise ConfigError(f"simulate: jobs must be >= 1, got {jobs}")
    if jobs > 1 and callbacks:
        raise ConfigError("simulate: callbacks need jobs=1 (they run in this process)")
    if jobs > 1:
        import pickle

        try:
            pickle.dumps(adapter)
        except (pickle.PicklingError, AttributeError, TypeError) as e:
            raise ConfigError(f"simulate: jobs > 1 needs a picklable adapter factory ({e})") from None
    if not strategies:
        raise ConfigError("simulate: give at least one strategy")
    arms = {s: parse_arm(s) for s in strategies}
    if len(set(strategies)) != len(strategies) or len(set(seeds)) != len(seeds):
        raise ConfigError("simulate: strategies and seeds must not repeat")
    data_path = data or cfg.data
    if data_path is None:
        raise ConfigError("simulate: no dataset; set `data` in the config or pass --data DATA_YAML")
    dataset = load_dataset(data_path)
    for s in strategies:  # unknown events fail before any work
        _hooks(callbacks, s, 0)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, "another detal simulate is running in this folder"):
        staged = _stage(dataset, out)
        atomic_write(out / "config.yaml", yaml.safe_dump({**cfg.to_dict(), "data": str(data_path)}, sort_keys=False))
        T = len(dataset.pool)
        length = schedule_length(T, initial_fraction=cfg.initial_fraction, batch_fraction=cfg.batch_fraction,
                                 max_labeled_fraction=cfg.max_labeled_fraction)
        if log:
            log(
                f"simulate: {T} pool images, {len(dataset.val)} val images, "
                f"{len(dataset.names)} classes; strategies {','.join(strategies)}; "
                f"seeds {','.join(map(str, seeds))}; {length} cycles"
            )
        runs = tuple((int(seed), s) for seed in seeds for s in strategies)
        # seed-major order: every strategy of a seed finishes before the next seed starts,
        # so a partial benchmark is still a paired comparison

        cache = Path(train_cache) if train_cache is not None else None
        fingerprint = dataset.fingerprint()
        jobs_ = [_Job(arm_config(cfg, arms[strategy], seed), arms[strategy], adapter, out, runs, staged,
                      {"version": RUN_VERSION, "dataset": fingerprint, "strategy": strategy, "seed": seed},
                      length, write_bundles, cache)
                 for seed, strategy in runs]
        if jobs == 1 or len(jobs_) == 1:
            for job in jobs_:
                job.run(_hooks(callbacks, job.arm.name, job.cfg.seed), log)
        else:
            _run_in_parallel(jobs_, jobs, log)
        _results(out, runs, staged)
    if report:
        from detal.report import write_report

        write_report(out / "results.csv", out)
    return out

