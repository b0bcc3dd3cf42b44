"""``detal cycle``: the one cycle engine, used by ``detal cycle`` and by ``detal simulate``.

One cycle ``k`` runs these steps, each ending in one store transaction that
moves the cycle row along ``started -> trained -> selected -> done``
(:data:`detal.store.CYCLE_STATES`):

1. **plan** (:meth:`CycleRun.begin`): refuse while a batch is out (unless
   ``force``), before anything is labeled, and at the budget once the model
   has trained on every label; otherwise start cycle ``k`` with the config
   snapshot. A cycle that is not ``done`` is resumed from its state instead.
   The scoring engine the config's ``scoring`` block names (:mod:`detal.engines`:
   this process, or a Ray cluster) is opened here, before the first write, so a
   cluster that cannot be reached leaves the project unchanged.
2. **train** (:meth:`CycleRun.train`, :mod:`detal.project.training`): train on every labeled image, with no
   per-epoch validation (``val_items=[]``), warm-started from the last
   trained cycle when :func:`detal.config.warm_starts` (``warm_start``: auto = only without ``weights``); ``first_cycle_epochs`` for the first
   training, raised to ``min_steps_per_cycle`` steps (:func:`detal.config.cycle_epochs`).
3. **evaluate**: once, the last weights on the project's val split
   (``adapter.evaluate``); a project without val images has no metrics.
   Selecting weights by val fitness would leak the val split into the model
   and bias every benchmark, and validating every epoch costs more than
   training on a small labeled set.
4. **score** and **select** (:meth:`CycleRun.select`): the budget rule
   (:func:`detal.selection.labeling_cap`, floor) cuts the strategy's plan
   (:func:`detal.selection.strategy_plan`, :func:`~detal.selection.cap_plan`);
   :func:`detal.selection.select_batch` draws the subset and calls the
   scorer, which predicts only those images and scores them
   (:meth:`detal.project.predictions.CyclePredictions.score`; with ``class_weighting: difficulty`` the
   per-class AP of this cycle's evaluation weights each box). Every
   prediction carries the image's embedding from the same forward pass; it is
   stored with the score, and ``hybrid`` reads the candidates' embeddings from
   there and predicts the labeled images once more for theirs (at most
   ``hybrid_max_labeled`` of them, a seeded sample when there are more). The generator is seeded with ``(seed, k)``,
   so a resumed selection picks the same images. A batch may be empty (the
   budget is reached, or a strategy that picks nothing): the cycle still
   trains, evaluates and finishes ``done`` with nothing out.
5. **write the batch** (:meth:`CycleRun.write_batch`): pre-labels from the
   predictions made while scoring (the random picks are predicted then, so
   every image is predicted once a cycle), the bundle zip (unless
   ``write_bundle=False``) and any other export format.

Reporting: every step ends with ``on_stage_end(cycle, stage, seconds, **figures)``
for ``stage`` in ``train`` (``images``, ``epochs``), ``evaluate`` (``metrics``, a
:class:`~detal.adapter.Metrics` or ``None`` without val images), ``score``
(``images``), ``select`` (``images``, ``uncertain``, ``random``) and ``export``
(``prelabels``, ``boxes``, ``bundle``, ``exports``); ``detal cycle`` prints one
line per stage from it. The adapter's ``log_to(path, *, echo, on_epoch)``
context manager (part of :class:`~detal.adapter.ModelAdapter`) is held around
the cycle's steps: its own log goes to ``cycles/<k>/train.log`` (and to ``log_echo`` live),
and training emits ``on_train_progress(cycle, epoch, epochs)`` when it starts (epoch 0)
and after each finished epoch.
While a batch is out, the plan step raises :class:`~detal.errors.BatchOutError`.

Images Ultralytics cannot use leave the pool as ``unreadable`` with one warning
line each (:mod:`detal.project.readable`): labeled and validation images the
image check refuses before training (so ``train: N images`` is what
Ultralytics trains on), images the predictor could not read, and picked
images the check refuses before the batch is written (so no bundle holds one).

A process killed at any point leaves the cycle in one of those states;
``run_cycle`` again resumes it: training restarts from scratch, selection
repeats the same picks, and the files are rewritten.

``train_cache`` (only ``detal simulate`` passes one,
:mod:`detal.project.train_cache`) reuses a training that was already done
with exactly the same inputs, weights and evaluation included.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from detal.adapter import ModelAdapter
from detal.config import Config, cycle_epochs, warm_starts
from detal.engines import AdapterFactory, Predictor, open_engine
from detal.errors import BatchOutError, StateError
from detal.labels import prediction_lines
from detal.pool import Pool, Status
from detal.project.bundle import check_formats, export_other, write_bundle, write_prelabels
from detal.project.corrections import uncorrected_rows
from detal.project.folder import (
    NO_HOOKS,
    CycleReport,
    Hooks,
    batch_out,
    folder_lock,
    open_store,
    project_config,
)
from detal.project.paths import LOG_FILE, ProjectPaths
from detal.project.predictions import CyclePredictions
from detal.project.pseudo import self_train, write_shipped
from detal.project.train_cache import TrainCache
from detal.project.training import train_and_evaluate
from detal.project.verify import check_pool
from detal.selection import cap_plan, labeling_cap, select_batch, strategy_plan
from detal.store import Store

__all__ = ["LOG_FILE", "CycleRun", "run_cycle"]


def run_cycle(
    project: str | Path,
    adapter: ModelAdapter,
    *,
    force: bool = False,
    formats: Sequence[str] = ("yolo",),
    overrides: Iterable[str] = (),
    hooks: Hooks | None = None,
    write_bundle: bool = True,
    train_cache: TrainCache | str | Path | None = None,
    log_echo: TextIO | None = None,
    allow_missing: bool = False,
    worker_adapter: AdapterFactory | None = None,
) -> CycleReport:
    """Train on every labeled image, select the next batch and export it with pre-labels.

    Resumes the last cycle if it was interrupted (with the config of this call:
    project config plus ``overrides``); otherwise starts the next one. Raises
    :class:`~detal.errors.BatchOutError` while a batch is out (unless ``force``), before
    anything is labeled, and at the budget once a cycle has trained on every
    labeled image. ``write_bundle=False`` skips the bundle zip;
    ``train_cache`` reuses identical earlier trainings (simulations). The
    adapter's own log goes to ``cycles/<k>/train.log`` when it can route it
    (``log_to``), and also to ``log_echo`` when given (``detal cycle --verbose``).

    Before anything, the image folders must be reachable, and images back
    unchanged are usable again (:func:`detal.project.verify.check_pool`);
    a check that finds a large share of the images missing or changed
    refuses, unless ``allow_missing`` (:func:`detal.project.verify.usable_rows`).
    The config's ``scoring`` block picks where predictions run
    (:mod:`detal.engines`); Ray workers build their adapters with
    ``worker_adapter(cfg)`` (default :func:`detal.adapter.make_adapter`).
    """
    project = Path(project)
    formats = check_formats(formats)
    store = open_store(project)
    try:
        with folder_lock(project):
            check_pool(project, store)
            run = CycleRun(project, store, adapter, project_config(project, overrides), hooks or NO_HOOKS,
                           log_echo=log_echo, allow_missing=allow_missing,
                           worker_adapter=worker_adapter)
            if train_cache is not None:
                run.train_cache = train_cache if isinstance(train_cache, TrainCache) else TrainCache(train_cache)
            try:
                return run.run(force, formats, write_bundle)
            finally:
                run.engines.close()
    finally:
        store.close()


class CycleRun:
    """One cycle of one project, step by step (see the module docstring)."""

    def __init__(self, project: Path, store: Store, adapter: ModelAdapter, cfg: Config, hooks: Hooks,
                 *, log_echo: TextIO | None = None, allow_missing: bool = False,
                 worker_adapter: AdapterFactory | None = None) -> None:
        self.project = project
        self.store = store
        self.adapter = adapter
        self.cfg = cfg
        self.hooks = hooks
        self.names: list[str] = store.get_meta("classes")
        self.scored: dict[int, tuple[float, int, int | None]] = {}
        self.train_cache: TrainCache | None = None
        self.log_echo = log_echo  # also show the adapter's log here
        self.allow_missing = allow_missing  # take a large share of missing images out, not refuse
        self.worker_adapter = worker_adapter
        self.engines = contextlib.ExitStack()  # the scoring engine, open from the plan step on
        self.predictor: Predictor = adapter

    def run(self, force: bool, formats: list[str], bundle: bool) -> CycleReport:
        self.checked, self.dropped = set(), []  # image files verified; those taken out (usable)
        self.preds: CyclePredictions | None = None
        state, resumed_from = self.begin(force)
        if state == "started":  # what training reads: images spoiled since init leave the pool first,
            # then any Ultralytics would not train on (decoded, as its loader will); before a new
            # cycle is recorded, so a check that refuses leaves the project as it was
            rows = self.usable([*self.store.images(status=Status.LABELED.value),
                                *self.store.images(status=Status.VAL.value)])
            self.readable(rows, decode=True)
        if resumed_from is None:
            self.start()
        self.cycle_dir = ProjectPaths(self.project).cycle_dir(self.k)
        self.cycle_dir.mkdir(parents=True, exist_ok=True)
        for stale in [*self.cycle_dir.glob(".*.tmp-*"), *self.cycle_dir.glob(".*.export-tmp")]:
            # left by a killed run
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        self.timings = dict(self.store.cycle(self.k).timings)
        with self.adapter_log():
            if state == "started":
                self.train()
            self.weights = self.project / self.store.cycle(self.k).weights
            self.preds = CyclePredictions(self.project, self.store, self.predictor, self.cfg, self.weights,
                                          self.class_ap())
            if state in ("started", "trained"):
                self.select()
            return self.write_batch(formats, bundle, resumed_from)

    def adapter_log(self) -> contextlib.AbstractContextManager:
        """The adapter's ``log_to`` for this cycle (``cycles/<k>/train.log``)."""
        k = self.k

        def on_epoch(epoch: int, epochs: int) -> None:
            self.hooks.emit("on_train_progress", cycle=k, epoch=epoch, epochs=epochs)

        log = ProjectPaths(self.project).train_log(self.k)
        return self.adapter.log_to(log, echo=self.log_echo, on_epoch=on_epoch)

    # -- 1. plan --------------------------------------------------------------------
    def begin(self, force: bool) -> tuple[str, str | None]:
        """Plan the next cycle (:meth:`start` records it), or pick up the one that was interrupted;
        return its state and the state it is resumed from (``None``: a new cycle)."""
        store, cfg = self.store, self.cfg
        last = store.last_cycle()
        if last is not None and last.state != "done":
            # Resume with the config given to this run (so a failed cycle can be fixed
            # with --set); the cycle's snapshot is updated to match.
            self.k = last.id
            self.open_engine()
            if cfg.to_dict() != last.config:
                with store.transaction():
                    store.update_cycle(self.k, config=cfg.to_dict())
            return last.state, last.state
        pool = store.load_pool()
        out = batch_out(store)
        if out and not force:
            desc = ", ".join(f"cycle {c}: {r} of {t}" for c, (r, t) in sorted(out.items()))
            raise BatchOutError(
                f"{self.project}: a batch is still out ({desc} images unlabeled); "
                "import its labels with detal import, or pass --force",
                out,
            )
        n_labeled = pool.count(Status.LABELED)
        if n_labeled == 0:
            raise StateError(f"{self.project}: no labeled images to train on; import the initial batch first")
        trained = [c for c in store.cycles() if c.state == "done" and c.weights]
        nothing_new = bool(trained) and trained[-1].n_train == n_labeled
        if self.room(pool) <= 0 and nothing_new:
            raise StateError(
                f"{self.project}: labeling budget reached ({n_labeled} labeled and "
                f"{pool.count(Status.SELECTED)} out of {pool.size} images; "
                f"max_labeled_fraction={cfg.max_labeled_fraction}) and the last cycle trained on all of them"
            )
        if not pool.unlabeled_ids().size and nothing_new:
            raise StateError(f"{self.project}: no unlabeled images left to select from")
        self.k = (last.id + 1) if last is not None else 1
        self.open_engine()
        return "started", None

    def start(self) -> None:
        """Record the new cycle ``k`` with the config snapshot."""
        # batches an older detal imported get their correction rows now, before self-training reads them
        late = uncorrected_rows(self.project, self.store, len(self.names), self.cfg.effort_iou)
        with self.store.transaction():
            self.store.record_corrections(*late)
            self.store.start_cycle(self.k, self.cfg.to_dict())
        self.hooks.emit("on_cycle_start", cycle=self.k)

    def open_engine(self) -> None:
        """Open the scoring engine (:mod:`detal.engines`) before the plan writes anything.

        A Ray cluster that cannot be reached is then one error line, with the project unchanged."""
        self.predictor = self.engines.enter_context(
            open_engine(self.cfg, self.adapter, worker_adapter=self.worker_adapter))

    def usable(self, rows: Sequence, again: bool = False) -> list:
        """``rows`` whose files are unchanged; the others leave the pool (:mod:`detal.project.verify`).

        ``again``: check files verified earlier in this run too (they are about to be copied)."""
        from detal.project.verify import usable_rows

        return usable_rows(self.project, self.store, rows, set() if again else self.checked, self.dropped,
                           allow_missing=self.allow_missing)

    def readable(self, rows: Sequence, *, decode: bool) -> list:
        """``rows`` Ultralytics can use; the others, and those the predictor could not read, leave the
        pool (:mod:`detal.project.readable`)."""
        from detal.project.readable import readable_rows

        failed = self.preds.failed if self.preds is not None else None
        return readable_rows(self.project, self.store, rows, decode=decode, failed=failed, dropped=self.dropped)

    def room(self, pool: Pool) -> int:
        """Images that may still be sent out under ``max_labeled_fraction`` (the one budget rule)."""
        cap = labeling_cap(self.cfg.max_labeled_fraction, pool.size)
        return cap - pool.count(Status.LABELED) - pool.count(Status.SELECTED)

    # -- 2. train and 3. evaluate -------------------------------------------------------
    def train(self) -> None:
        store, cfg, k = self.store, self.cfg, self.k
        train_dir = ProjectPaths(self.project).train_dir(k)
        if train_dir.exists():
            shutil.rmtree(train_dir)
        labeled = store.images(status=Status.LABELED.value)
        if not labeled:
            raise StateError(f"{self.project}: no labeled images left to train on (all were taken out of "
                             "the pool; detal status counts them)")
        val_rows = store.images(status=Status.VAL.value)
        trained_before = [c for c in store.cycles() if c.id < k and c.state == "done" and c.weights]
        init_weights = self.project / trained_before[-1].weights if warm_starts(cfg) and trained_before else None
        on_stage = lambda stage, seconds, **f: self.hooks.emit(
            "on_stage_end", cycle=k, stage=stage, seconds=seconds, **f)
        if cfg.self_training["enabled"]:
            previous = self.project / trained_before[-1].weights if trained_before else None
            weights, metrics, timings, _ = self_train(
                self.adapter, self.project, store, self.names, cfg, k, self.cycle_dir, labeled, val_rows,
                init_weights, previous, not trained_before, self.train_cache, on_stage, emit=self.hooks.emit)
        else:
            epochs = cycle_epochs(cfg, 0 if not trained_before else k, len(labeled))
            weights, metrics, timings = train_and_evaluate(
                self.adapter, self.project, self.names, cfg, labeled, val_rows, k, epochs,
                init_weights, self.train_cache, on_stage)
        self.timings.update(timings)
        with store.transaction():
            store.update_cycle(
                k,
                state="trained",
                weights=_rel_to_project(self.project, weights),
                metrics=metrics,
                n_train=len(labeled),
                timings=self.timings,
            )
        self.hooks.emit("on_train_end", cycle=k, metrics=metrics)

    # -- 4. score and select --------------------------------------------------------------
    def class_ap(self) -> tuple[float | None, ...] | None:
        """Per-class mAP50-95 of this cycle's evaluation (``None``: not evaluated, or not asked for)."""
        if self.cfg.class_weighting == "none":
            return None
        metrics = self.store.cycle(self.k).metrics
        return None if metrics is None else metrics.per_class

    def select(self) -> None:
        store, cfg, k = self.store, self.cfg, self.k
        t0 = time.perf_counter()
        pool = store.load_pool()
        plan = strategy_plan(
            cfg.strategy, pool.size, batch_fraction=cfg.batch_fraction,
            subset_fraction=cfg.subset_fraction, uncertain_share=cfg.uncertain_share,
            candidate_factor=cfg.candidate_factor, max_labeled=cfg.hybrid_max_labeled,
        )
        plan = cap_plan(plan, self.room(pool))
        score_s = 0.0

        def scorer(ids: np.ndarray) -> np.ndarray:
            nonlocal score_s
            s0 = time.perf_counter()
            id_list = ids.tolist()
            self.preds.predict(self.usable(store.images(id_list)))
            self.scored.update(self.preds.score(id_list))
            score_s += time.perf_counter() - s0
            return np.array([self.scored[i][0] if i in self.scored else np.nan for i in id_list])

        selection = select_batch(
            pool.unlabeled_ids(), plan, np.random.default_rng([cfg.seed, k]), scorer,
            embedder=self.preds.embedder, labeled_ids=pool.labeled_ids(),
        )
        self.timings["score_s"] = round(score_s, 3)
        self.timings["select_s"] = round(time.perf_counter() - t0 - score_s, 3)
        unread = np.array(sorted(self.preds.failed), dtype=np.int64)
        if unread.size:  # the predictor could not read them: they leave the pool, and no batch takes them
            self.readable(store.images(unread.tolist()), decode=False)
        keep = lambda ids: ids[~np.isin(ids, unread)]
        ids, uncertain, randoms = keep(selection.ids), keep(selection.uncertain_ids), keep(selection.random_ids)
        with store.transaction():
            store.add_scores(k, [(i, *v) for i, v in self.scored.items()],
                             embeddings=self.preds.embeddings_of(list(self.scored)))
            pool.select(ids, k)
            store.save_pool(pool, ids)
            store.update_cycle(k, state="selected", n_selected=int(ids.size), timings=self.timings)
        self.hooks.emit("on_stage_end", cycle=k, stage="score", seconds=self.timings["score_s"],
                        images=len(self.scored))
        self.hooks.emit("on_stage_end", cycle=k, stage="select", seconds=self.timings["select_s"],
                        images=int(ids.size), uncertain=int(uncertain.size), random=int(randoms.size))
        self.hooks.emit("on_select_end", cycle=k, ids=ids)

    # -- 5. write the batch ------------------------------------------------------------
    def write_batch(self, formats: list[str], bundle: bool, resumed_from: str | None) -> CycleReport:
        store, cfg, k = self.store, self.cfg, self.k
        t0 = time.perf_counter()
        batch = self.usable(store.images(selected_cycle=k), again=True)
        cache = self.preds.cache
        missing = [r for r in batch if r.id not in cache]
        if missing:
            self.preds.predict(missing)
        # nothing goes out that nobody can train on: an image the predictor could not
        # read, or one the image check refuses (a truncated JPEG it decoded in part)
        batch = self.readable(batch, decode=False)
        preds = {r.id: cache[r.id] for r in batch if r.id in cache}
        stored = store.scores(k)
        # Only the random picks lack a score from selection; score just those.
        computed = self.preds.score([i for i in preds if i not in stored])
        prelabels = {i: "".join(line + "\n" for line in prediction_lines(p, cfg.prelabel_conf))
                     for i, p in preds.items()}
        manifest: dict[int, tuple[float, int, int | None]] = {}
        for i in preds:
            score, _, top = stored[i] if i in stored else computed[i]
            manifest[i] = (score, prelabels[i].count("\n"), top)

        write_shipped(self.cycle_dir, batch, preds, cfg.prelabel_conf)
        pre_dir = write_prelabels(self.cycle_dir, batch, prelabels)
        self.hooks.emit("on_prelabels_written", cycle=k, path=pre_dir)
        zip_path, exported = None, []
        if bundle and batch:
            zip_path = write_bundle(self.project, k, batch, self.names, prelabels, manifest,
                                    images_root=store.get_meta("images_root"))
            self.hooks.emit("on_bundle_written", cycle=k, path=zip_path)
            exported.append("yolo")
        others = [f for f in formats if f != "yolo"]
        if others and batch:
            exported += export_other(self.project, self.cycle_dir, k, batch, preds, manifest,
                                     self.names, cfg, others)
        self.timings["export_s"] = round(time.perf_counter() - t0, 3)
        with store.transaction():
            store.add_scores(k, [(i, *v) for i, v in computed.items()], in_subset=False,
                             embeddings=self.preds.embeddings_of(list(computed)))
            store.update_cycle(k, state="done", n_selected=len(batch), timings=self.timings,
                               finished_at=time.time())
        self.hooks.emit("on_export_end", cycle=k, bundle=zip_path)
        self.hooks.emit("on_stage_end", cycle=k, stage="export", seconds=self.timings["export_s"],
                        prelabels=len(prelabels), boxes=sum(v[1] for v in manifest.values()),
                        bundle=zip_path, exports=exported)
        final = store.cycle(k)
        return CycleReport(
            cycle=k,
            resumed_from=resumed_from,
            n_train=final.n_train,
            metrics=final.metrics,
            n_selected=len(batch),
            prelabels=pre_dir,
            bundle=zip_path,
            exports=exported,
            timings=self.timings,
            dropped=self.dropped,
        )


def _rel_to_project(project: Path, path: Path) -> str:
    try:
        return Path(path).resolve().relative_to(project.resolve()).as_posix()
    except ValueError:
        return str(Path(path).resolve())

