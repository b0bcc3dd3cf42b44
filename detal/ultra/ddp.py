"""Training on several GPUs through Ultralytics' own DDP, with detal's settings alive in its fresh processes.

With ``device: 0,1,...`` Ultralytics' trainer does not train in the calling
process: it pickles a state (the trainer's class, its args, the model and the
callbacks, with cloudpickle) and a script that rebuilds the trainer from it
into its settings folder (``USER_CONFIG_DIR/DDP``), and launches
``python -m torch.distributed.run --nproc_per_node N script`` (its
``utils/dist.py``). Every worker is a fresh Python: nothing detal set up in
the calling process by code (rather than by data) is there. :class:`DetalTrainer`,
the trainer detal always trains with, keeps each setting alive:

- **The run's paths and options** (``data``, ``project``, ``name``,
  ``exist_ok``, ``val``, which is off in a cycle so that no epoch validates,
  ``plots``, ``amp``, ``seed``) are trainer args: they travel in Ultralytics'
  pickled args, ``save_dir`` included, so the workers write where the caller
  reads.
- **No downloads.** ``YOLO_CONFIG_DIR`` and ``YOLO_OFFLINE`` are in the
  environment the workers inherit (:func:`~detal.ultra.setup.prepare_ultralytics`
  sets them). The checks that would download (the font check, the AMP check)
  are patched by code, so the workers patch them again: the pickled trainer
  class is this one, imported by name in every worker, and there (the launch
  sets ``DETAL_DDP_WORKER=1``) it installs the offline checks before any setup.
- **The log.** The workers' stdout and stderr are a pipe that the calling
  process reads and writes to its own ``sys.stdout``, which detal's log route
  (``cycles/<k>/train.log``) has captured: the workers' log lands where an
  in-process training's would, progress bars included.
- **Callbacks.** A callback that pickle can name (a function of an
  importable module, like Ultralytics' defaults) travels and runs in the
  workers. One that it cannot name (a lambda, a closure: detal's epoch
  progress) would travel as a copy that reports to nobody, or not at all; it
  stays in the calling process, and runs there when rank 0 reports
  ``on_train_start``, ``on_fit_epoch_end`` or ``on_train_end`` (one marker
  line each on its stdout, with ``epoch`` and ``epochs`` set on the trainer);
  it is not run for other events.
- **Metrics.** Rank 0 also reports detal's :class:`~detal.adapter.Metrics`
  of its final validation (:attr:`DetalTrainer.reported_metrics`), which the
  calling process cannot read from a validator it never ran.

Outside DDP, :class:`DetalTrainer` is Ultralytics' ``DetectionTrainer`` (save
that it reads ``results.csv`` without polars where polars is not installed).

Importing this module imports ``ultralytics`` (the trainer is subclassed), so
it first calls :func:`~detal.ultra.setup.prepare_ultralytics`; the adapter
imports it lazily, inside ``train``.
"""

from __future__ import annotations

import codecs
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from typing import Any

from detal.adapter import Metrics
from detal.ultra.metrics import metrics_from
from detal.ultra.setup import install_offline_checks, prepare_ultralytics

prepare_ultralytics()

from ultralytics.models.yolo.detect import DetectionTrainer  # after the offline import
from ultralytics.utils import LOGGER, RANK, colorstr
from ultralytics.utils.dist import ddp_cleanup, generate_ddp_command
from ultralytics.utils.torch_utils import unset_deterministic

__all__ = ["MARK", "REPLAYED", "WORKER_ENV", "DetalTrainer", "results_columns", "start_workers", "travels"]

WORKER_ENV = "DETAL_DDP_WORKER"
"""Set to ``1`` in the environment of the workers that :class:`DetalTrainer` launches."""

MARK = "\x1edetal-ddp "
"""Starts a report of rank 0 to the launching process: the marker, then one JSON object, then a newline."""

REPLAYED = ("on_train_start", "on_fit_epoch_end", "on_train_end")
"""The events that rank 0 reports, for which the launching process runs the callbacks that stayed with it."""


def travels(callback: Any) -> bool:
    """Whether pickle names ``callback`` (a function or class of an importable module) rather than copying it."""
    module = sys.modules.get(getattr(callback, "__module__", None) or "")
    qualname = getattr(callback, "__qualname__", "")
    if module is None or module.__name__ == "__main__" or not qualname or "<" in qualname:
        return False
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found is callback


class DetalTrainer(DetectionTrainer):
    """Ultralytics' detection trainer, with detal's settings surviving its DDP workers (module docstring)."""

    def __init__(self, cfg: Any = None, overrides: dict | None = None, _callbacks: dict | None = None) -> None:
        if os.environ.get(WORKER_ENV) == "1":  # a DDP worker: a fresh process that only trains
            install_offline_checks()
        if cfg is None:
            from ultralytics.utils import DEFAULT_CFG

            cfg = DEFAULT_CFG
        super().__init__(cfg, overrides, _callbacks)
        self.reported_metrics: Metrics | None = None
        if os.environ.get(WORKER_ENV) == "1" and RANK in (-1, 0):
            for event in REPLAYED:
                self.add_callback(event, _REPORTERS[event])

    def read_results_csv(self) -> dict:
        """``results.csv`` as columns, as Ultralytics reads it into every checkpoint (``train_results``).

        Ultralytics reads it with polars, a binary package of some 170 MB that
        nothing else in a training needs; where polars is not installed (a GPU
        machine given only pure-Python wheels, ``benchmarks/gpu_check.sh``),
        the csv module reads the same columns and types.
        """
        try:
            import polars  # noqa: F401 - only whether it is there
        except ImportError:
            return results_columns(self.csv)
        return super().read_results_csv()

    def train(self) -> None:
        """Train here, or (``self.ddp``) launch Ultralytics' DDP workers and relay their log and reports.

        The DDP branch is Ultralytics' own (its argument checks, its
        ``generate_ddp_command`` and ``ddp_cleanup``); only the launch differs:
        the workers' output is read here instead of going to the terminal, and
        the callbacks that cannot travel are held back from the pickled state.
        """
        if not self.ddp:
            super().train()
            return
        if self.args.rect:
            LOGGER.warning("'rect=True' is incompatible with Multi-GPU training, setting 'rect=False'")
            self.args.rect = False
        if self.args.batch < 1.0:
            raise ValueError(f"AutoBatch (batch<1) cannot run on {self.world_size} GPUs: give a batch size")
        everything = self.callbacks
        self.callbacks = {event: [cb for cb in cbs if travels(cb)] for event, cbs in everything.items()}
        staying = {event: [cb for cb in cbs if not travels(cb)] for event, cbs in everything.items()}
        dropped = sorted(e for e, cbs in staying.items() if cbs and e not in REPLAYED)
        if dropped:
            LOGGER.warning(f"DDP: callbacks of this process for {', '.join(dropped)} cannot reach the workers "
                           "and are not run")
        file = None
        try:
            cmd, file = generate_ddp_command(self)
            LOGGER.info(f"{colorstr('DDP:')} debug command {' '.join(cmd)}")
            self._relay(start_workers(cmd), staying)
        finally:
            self.callbacks = everything
            if file is not None:
                ddp_cleanup(self, str(file))
            unset_deterministic()

    def _relay(self, proc: Any, staying: dict[str, list[Callable]]) -> None:
        """Copy the workers' output to ``sys.stdout`` and act on rank 0's reports until they exit."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        try:
            for chunk in iter(lambda: proc.stdout.read1(65536) if hasattr(proc.stdout, "read1")
                              else proc.stdout.read(65536), b""):
                pending += decoder.decode(chunk)
                pending = self._take_lines(pending, staying)
            pending += decoder.decode(b"", final=True)
            self._take_lines(pending + ("\n" if pending else ""), staying)
            code = proc.wait()
        finally:
            if proc.poll() is None:  # interrupted, or a callback failed: stop the workers
                proc.terminate()
                proc.wait()
        if code != 0:
            raise subprocess.CalledProcessError(code, proc.args)

    def _take_lines(self, text: str, staying: dict[str, list[Callable]]) -> str:
        """Write the finished lines of ``text`` (reports acted on, not written); return the unfinished rest.

        A progress bar redraws with ``\\r`` and ends its line late: what
        precedes the last ``\\r`` of the unfinished rest is written at once.
        """
        *lines, rest = text.split("\n")
        out = []
        for line in lines:
            before, mark, report_text = line.partition(MARK)
            if mark:
                out.append(before)
                self._write("".join(out))
                out = []
                self._on_report(report_text, staying)
            else:
                out.append(line + "\n")
        cut = rest.rfind("\r")
        if cut > 0 and MARK[0] not in rest:
            out.append(rest[:cut])
            rest = rest[cut:]
        self._write("".join(out))
        return rest

    @staticmethod
    def _write(text: str) -> None:
        if text:
            sys.stdout.write(text)
            sys.stdout.flush()

    def _on_report(self, text: str, staying: dict[str, list[Callable]]) -> None:
        try:
            report_ = json.loads(text)
        except ValueError:
            LOGGER.warning(f"DDP: unreadable report from rank 0: {text[:80]!r}")
            return
        if report_.get("metrics") is not None:
            self.reported_metrics = Metrics(**report_["metrics"])
        event = report_.get("event")
        if event not in REPLAYED:
            return
        self.epoch, self.epochs = int(report_["epoch"]), int(report_["epochs"])
        for callback in staying.get(event, []):
            callback(self)


def results_columns(path: Any) -> dict[str, list]:
    """A CSV as ``{column: values}``: a column of integers as ints, of numbers as floats, else text.

    What polars' ``read_csv(...).to_dict(as_series=False)`` gives for
    Ultralytics' ``results.csv`` (column names as in the file); an
    unreadable file gives ``{}``, as there.
    """
    import csv
    from pathlib import Path

    try:
        with Path(path).open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}
    if not rows:
        return {}
    header, body = rows[0], rows[1:]
    out: dict[str, list] = {}
    for i, name in enumerate(header):
        cells = [row[i] if i < len(row) else "" for row in body]
        out[name] = _typed(cells)
    return out


def _typed(cells: list[str]) -> list:
    """One column's cells as polars infers them: all integers, else all numbers, else strings (empty: None)."""
    present = [c for c in cells if c != ""]
    for kind in (int, float):
        try:
            values = [kind(c) for c in present]
        except ValueError:
            continue
        it = iter(values)
        return [next(it) if c != "" else None for c in cells]
    return [c if c != "" else None for c in cells]


def _report(trainer: Any, event: str) -> None:
    """One marker line for the launching process (see :data:`MARK`); on ``on_train_end`` with the metrics."""
    epoch = int(getattr(trainer, "epoch", trainer.start_epoch))  # set once the first epoch begins
    payload: dict[str, Any] = {"event": event, "epoch": epoch, "epochs": int(trainer.epochs)}
    if event == "on_train_end":
        metrics = metrics_from(trainer.metrics, trainer.validator, len(trainer.data.get("names", {})))
        payload["metrics"] = None if metrics is None else {
            "map50": metrics.map50, "map50_95": metrics.map50_95,
            "per_class": None if metrics.per_class is None else list(metrics.per_class),
        }
    sys.stdout.write(f"{MARK}{json.dumps(payload)}\n")
    sys.stdout.flush()


def report_train_start(trainer: Any) -> None:
    """Rank 0's ``on_train_start``: reported to the launching process."""
    _report(trainer, "on_train_start")


def report_fit_epoch_end(trainer: Any) -> None:
    """Rank 0's ``on_fit_epoch_end``: reported to the launching process."""
    _report(trainer, "on_fit_epoch_end")


def report_train_end(trainer: Any) -> None:
    """Rank 0's ``on_train_end``: reported, with detal's metrics of the final validation."""
    _report(trainer, "on_train_end")


_REPORTERS = {
    "on_train_start": report_train_start,
    "on_fit_epoch_end": report_fit_epoch_end,
    "on_train_end": report_train_end,
}


def start_workers(cmd: Iterable[str]) -> Any:
    """Launch Ultralytics' DDP command with its output on a pipe, marked as detal's workers."""
    env = {**os.environ, WORKER_ENV: "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
