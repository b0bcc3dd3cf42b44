"""The adapter itself: :class:`UltralyticsAdapter`, tying setup, staging, predict and metrics together.

``train`` and ``evaluate`` stage the data (:mod:`detal.ultra.staging`) and call
Ultralytics' trainer and validator offline (:mod:`detal.ultra.setup`);
``predict`` runs detal's own loop (:mod:`detal.ultra.predict`) over the
preprocess, forward and postprocess stages. Every call runs inside the
adapter's log route (:mod:`detal.ultra.log`).
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from detal.adapter import LabeledImage, Metrics, PredictResult, TrainResult
from detal.config import Config
from detal.detections import Prediction
from detal.errors import ConfigError, DataError, ModelError
from detal.ultra import heads
from detal.ultra.forward import Loaded, forward, load_model
from detal.ultra.log import LogRoute, first_line, logged
from detal.ultra.metrics import metrics_from, per_class_ap
from detal.ultra.postprocess import postprocess
from detal.ultra.predict import predict_stream
from detal.ultra.preprocess import DecodePool, Item
from detal.ultra.setup import check_gpus, offline, prepare_ultralytics
from detal.ultra.staging import stage_split, write_data_yaml
from detal.uncertainty import needs_dfl

__all__ = ["UltralyticsAdapter"]

# Keys of Ultralytics' train() that detal sets itself; cfg.train_args may not override them.
_RESERVED_TRAIN_ARGS = frozenset({"data", "project", "name", "exist_ok", "model", "resume", "epochs"})


class UltralyticsAdapter:
    """:class:`~detal.adapter.ModelAdapter` backed by Ultralytics YOLO.

    ``cfg`` supplies the model (a YAML such as ``yolov5s.yaml``, ``yolov8n.yaml``
    or ``yolo11n.yaml``, built and trained from scratch, or a local ``.pt``),
    optional first-cycle ``weights``, ``imgsz``, ``batch``, ``workers``,
    ``device`` (``auto``: Ultralytics picks), ``seed`` and extra
    ``train_args``.

    ``readers`` is the number of threads that decode and letterbox images for
    ``predict``; by default one on the CPU (the forward pass needs the cores)
    and up to eight on a GPU, where decoding is what limits throughput.
    With ``cfg.decode_workers`` N >= 1, N worker processes decode instead
    (fed by ``2 * N`` threads; ``readers`` is then unused). The predictions
    are the same bytes either way. The workers start with the first
    ``predict`` and serve every later one until :meth:`close` (or until the
    adapter is garbage-collected, or the interpreter exits).
    """

    def __init__(self, cfg: Config, *, readers: int | None = None) -> None:
        self.cfg = cfg
        bad = sorted(_RESERVED_TRAIN_ARGS & set(cfg.train_args))
        if bad:
            raise ConfigError(f"train_args: {', '.join(bad)} are set by detal and cannot be overridden")
        if readers is not None and readers < 1:
            raise ConfigError(f"readers must be a positive integer, got {readers!r}")
        check_gpus(cfg.device)  # GPUs this machine lacks: one line before any command starts
        self.readers = readers
        self._decode_pool = DecodePool()
        weakref.finalize(self, self._decode_pool.close)
        self._cache: tuple[tuple[str, float, str], Loaded] | None = None
        self._route: LogRoute | None = None

    def close(self) -> None:
        """Stop the decode worker processes, if any (a later ``predict`` starts new ones)."""
        self._decode_pool.close()

    @contextlib.contextmanager
    def log_to(
        self,
        path: Path,
        *,
        echo: TextIO | None = None,
        on_epoch: Callable[[int, int], None] | None = None,
    ) -> Iterator[UltralyticsAdapter]:
        """While active, Ultralytics' own log goes to ``path`` instead of the terminal.

        Every ``train``, ``evaluate`` and ``predict`` call appends to ``path``
        (a header line, then what Ultralytics logs, prints and draws: one plain
        line per finished progress bar, no escape codes) and, when ``echo`` is
        given, shows it there too (live, bars included, when ``echo`` is a
        terminal). ``on_epoch(epoch, epochs)`` is called with the epochs done:
        0 when training starts, then after each finished epoch. Outside this context Ultralytics writes to the terminal
        as it always does. The optional ``log_to`` of a
        :class:`~detal.adapter.ModelAdapter`; ``detal cycle`` routes each
        cycle's log to ``cycles/<k>/train.log`` with it.
        """
        saved = self._route
        self._route = LogRoute(Path(path), echo, on_epoch)
        try:
            yield self
        finally:
            self._route = saved

    # -- helpers ---------------------------------------------------------------
    @property
    def _device_arg(self) -> str | None:
        """The ``device`` argument for Ultralytics' training; ``None`` lets it pick."""
        return None if self.cfg.device == "auto" else self.cfg.device

    @property
    def _one_device(self) -> str:
        """The device of evaluation and prediction: the first of several GPUs (DDP is for training)."""
        return self.cfg.device.split(",")[0].strip() if "," in self.cfg.device else self.cfg.device

    def _start_model(self, init_weights: Path | None) -> str:
        """What to build the model from: warm-start weights, cfg.weights, or cfg.model."""
        start = init_weights if init_weights is not None else self.cfg.weights
        if start is not None:
            start = Path(start)
            if not start.is_file():
                raise ModelError(f"{start}: weights file not found")
            return str(start)
        model = self.cfg.model
        if model.endswith(".pt"):
            if not Path(model).is_file():
                raise ModelError(f"{model}: model weights not found (detal never downloads weights)")
            return model
        if not model.endswith((".yaml", ".yml")):
            raise ModelError(f"model {model!r}: expected a model YAML (yolov8n.yaml) or a local .pt")
        return model

    @staticmethod
    def _build(source: str) -> Any:
        from ultralytics import YOLO

        try:
            return YOLO(source, task="detect")
        except Exception as exc:
            raise ModelError(f"{source}: cannot build or load the model ({first_line(exc)})") from exc

    # -- ModelAdapter ------------------------------------------------------------
    @logged("train")
    def train(
        self,
        train_items: Sequence[LabeledImage],
        val_items: Sequence[LabeledImage],
        names: Sequence[str],
        out_dir: Path,
        *,
        epochs: int,
        init_weights: Path | None = None,
    ) -> TrainResult:
        """Train on exactly ``train_items``; validate on ``val_items`` if any.

        The model starts from ``init_weights`` (warm start), else
        ``cfg.weights``, else ``cfg.model``; its number of classes is always
        ``len(names)``. Without ``val_items``, Ultralytics still validates the
        last epoch: it gets the first training image as a nominal val set,
        those metrics are discarded (``metrics`` is ``None``), and the last
        weights are returned. With ``val_items``, the best weights by
        Ultralytics' fitness are returned with their metrics.
        """
        if not train_items:
            raise DataError("train: no training images given")
        if epochs < 1:
            raise ConfigError(f"train: epochs must be a positive integer, got {epochs!r}")
        check_gpus(self.cfg.device)
        prepare_ultralytics()
        out_dir = Path(out_dir).resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        source = self._start_model(init_weights)

        dataset = out_dir / "dataset"
        train_list = stage_split(train_items, dataset / "train")
        has_val = bool(val_items)
        val_list = stage_split(val_items if has_val else train_items[:1], dataset / "val")
        data = write_data_yaml(dataset / "data.yaml", train_list, val_list, names)

        args: dict[str, Any] = {
            "data": str(data),
            "epochs": int(epochs),
            "imgsz": self.cfg.imgsz,
            "batch": self.cfg.batch,
            "workers": self.cfg.workers,
            "device": self._device_arg,
            "seed": self.cfg.seed,
            "deterministic": True,
            "project": str(out_dir),
            "name": "train",
            "exist_ok": True,
            "plots": False,
            "val": has_val,
            "amp": self._cuda_requested(),
            "verbose": False,
        }
        args.update(self.cfg.train_args)

        model = self._build(source)
        on_epoch = self._route.on_epoch if self._route is not None else None
        if on_epoch is not None:  # closures: under DDP they stay here, driven by rank 0 (detal.ultra.ddp)
            model.add_callback("on_train_start", lambda t: on_epoch(0, int(t.epochs)))
            model.add_callback("on_fit_epoch_end", lambda t: on_epoch(int(t.epoch) + 1, int(t.epochs)))
        start = time.perf_counter()
        try:
            with offline():
                from detal.ultra.ddp import DetalTrainer

                model.train(trainer=DetalTrainer, **args)
        except Exception as exc:
            raise ModelError(f"training in {out_dir / 'train'} failed ({first_line(exc)})") from exc
        seconds = time.perf_counter() - start

        trainer = model.trainer
        best, last = Path(trainer.best), Path(trainer.last)
        weights = best if has_val and best.is_file() else last
        if not weights.is_file():
            raise ModelError(f"training in {out_dir / 'train'} wrote no weights ({best.name}, {last.name})")
        metrics = None
        if has_val and trainer.ddp:  # the validator ran in rank 0, which reported its figures
            metrics = trainer.reported_metrics
        elif has_val:
            metrics = metrics_from(trainer.metrics, getattr(trainer, "validator", None), len(names))
        return TrainResult(weights=weights, metrics=metrics, seconds=seconds, epochs=int(epochs))

    def _cuda_requested(self) -> bool:
        """True when training will run on CUDA (AMP is only used there)."""
        import torch

        if self.cfg.device == "auto":
            return torch.cuda.is_available()
        dev = self.cfg.device.strip().lower()
        return dev not in ("cpu", "mps", "") and torch.cuda.is_available()

    @logged("evaluate")
    def evaluate(
        self, weights: Path, val_items: Sequence[LabeledImage], names: Sequence[str], out_dir: Path
    ) -> Metrics:
        """mAP50 and mAP50-95 of ``weights`` on ``val_items``, from Ultralytics' validator.

        The validator keeps its own thresholds (conf 0.001, NMS IoU 0.7), the
        ones the training-time validation uses, so figures are comparable
        across cycles and configs whatever ``score_conf`` and ``iou`` are.
        """
        if not val_items:
            raise DataError("evaluate: no validation images given")
        weights = Path(weights)
        if not weights.is_file():
            raise ModelError(f"{weights}: weights file not found")
        prepare_ultralytics()
        out_dir = Path(out_dir).resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        dataset = out_dir / "dataset"
        val_list = stage_split(val_items, dataset / "val")
        data = write_data_yaml(dataset / "data.yaml", val_list, val_list, names)
        model = self._build(str(weights))
        try:
            with offline():
                result = model.val(
                    data=str(data),
                    split="val",
                    imgsz=self.cfg.imgsz,
                    batch=self.cfg.batch,
                    workers=self.cfg.workers,
                    device=None if self._one_device == "auto" else self._one_device,
                    project=str(out_dir),
                    name="val",
                    exist_ok=True,
                    plots=False,
                    save_json=False,
                    verbose=False,
                )
        except Exception as exc:
            raise ModelError(f"{weights}: evaluation in {out_dir / 'val'} failed ({first_line(exc)})") from exc
        return Metrics(
            map50=float(result.box.map50),
            map50_95=float(result.box.map),
            per_class=per_class_ap(result.box, len(names)),
        )

    # -- predict -------------------------------------------------------------------
    def class_names(self, weights: Path) -> list[str]:
        """The class names stored in ``weights``, in class-id order."""
        names = self.load(weights).model.names
        if isinstance(names, dict):
            return [str(names[k]) for k in sorted(names)]
        return [str(n) for n in names]

    def load(self, weights: Path) -> Loaded:
        """Load ``weights`` as Ultralytics' predictor does (fused, float32, eval); cached."""
        weights = Path(weights)
        if not weights.is_file():
            raise ModelError(f"{weights}: weights file not found")
        key = (str(weights.resolve()), weights.stat().st_mtime, self._one_device)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        prepare_ultralytics()
        loaded = load_model(weights, self._one_device, self.cfg.imgsz)
        self._cache = (key, loaded)
        return loaded

    @logged("predict")
    def predict(
        self,
        weights: Path,
        images: Iterable[Path],
        *,
        conf: float,
        iou: float = 0.7,
        batch: int = 32,
        progress: bool = True,
        with_dfl: bool | None = None,
        with_embeddings: bool = False,
    ) -> PredictResult:
        """Detections with full class-probability vectors for every readable image.

        ``with_dfl`` adds the raw DFL logits ``(n, 4, reg_max)`` of every kept
        box (:class:`ModelError` for a head without DFL, reg_max 1); ``None``
        means "when ``cfg.measure`` needs them" (it uses ``localization``);
        ``with_embeddings`` adds each image's embedding. Both are read from the
        same forward pass; left off, they cost nothing.

        ``images`` is consumed lazily (a generator works). Reader threads
        decode and letterbox images into a bounded queue, and the main thread
        runs batches of up to ``batch`` images that share one letterboxed
        shape: at most ``2 * batch`` images wait in the queue and ``4 * batch``
        in shape buckets, however many images there are. Unreadable images are
        listed in ``failed`` with the reason. Predictions come back in input
        order; only they (not the images) accumulate.
        """
        if batch < 1:
            raise ConfigError(f"predict: batch must be a positive integer, got {batch!r}")
        if not 0.0 <= conf <= 1.0 or not 0.0 <= iou <= 1.0:
            raise ConfigError(f"predict: conf and iou must lie in [0, 1], got conf={conf!r} iou={iou!r}")
        if with_dfl is None:
            with_dfl = needs_dfl(self.cfg.measure)
        loaded = self.load(weights)
        if with_dfl and loaded.reg_max < 2:
            raise ModelError(
                f"{weights}: the model's detection head has no DFL (reg_max {loaded.reg_max}); "
                "the localization measure needs one"
            )
        return predict_stream(
            images,
            loaded,
            lambda group: self._run(loaded, group, conf, iou, with_dfl, with_embeddings),
            batch=batch,
            progress=progress,
            readers=self.readers,
            workers=self.cfg.decode_workers,
            pool=self._decode_pool,
        )

    def _run(
        self,
        loaded: Loaded,
        group: list[Item],
        conf: float,
        iou: float,
        with_dfl: bool = False,
        with_embeddings: bool = False,
    ) -> list[tuple[int, Prediction]]:
        """One forward pass over images of one letterboxed shape, then NMS per image."""
        import torch

        with torch.inference_mode():
            batch, output = forward(loaded, group)
            return postprocess(
                group,
                batch,
                heads.decoded(output),
                conf,
                iou,
                reg_max=loaded.reg_max,
                dfl=heads.dfl_logits(output, loaded.reg_max) if with_dfl else None,
                embeddings=heads.embeddings(output) if with_embeddings else None,
            )
