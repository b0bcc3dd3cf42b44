"""The Ultralytics adapter: the only module of detal that imports ``ultralytics``.

:class:`UltralyticsAdapter` implements :class:`~detal.adapter.ModelAdapter`
with Ultralytics YOLO (v5u, v8, 11 heads). ``ultralytics`` and ``torch`` are
imported lazily, inside the methods, so ``import detal`` stays light and the
rest of the package (and its tests) never loads them.

What it guarantees:

- **Exact training lists.** ``train`` stages the given ``(image, label)`` pairs
  under ``out_dir/dataset`` (images symlinked, labels copied, every file under a
  unique name), writes list files and a ``data.yaml`` with the project's class
  names, and trains on those lists. The pool directory is never globbed.
- **Explicit outputs.** Every Ultralytics call gets ``project``, ``name`` and
  ``data``; outputs land under ``out_dir``.
- **No network, no home directory.** Before ``ultralytics`` is first imported,
  ``YOLO_CONFIG_DIR`` is pointed away from the user's home (unless the caller
  set it) and ``YOLO_OFFLINE`` is set; settings sync and the logging
  integrations are switched off. During training and evaluation the two checks
  that would download files (the font check and, on CUDA, the AMP check, which
  fetches a model) are replaced by offline versions. A ``.pt`` that is not on
  disk is an error, never a download.
- **Full class-probability vectors.** ``predict`` runs the network itself on
  batches from a streaming loader, applies Ultralytics' own NMS with
  ``return_idxs=True`` and reads, at each surviving anchor, the sigmoid score
  of every class from the raw head output. Preprocessing (decode, letterbox),
  NMS and box rescaling are Ultralytics' functions, so the boxes and top-1
  classes are those of ``YOLO(weights).predict(...)`` and the confidences
  agree to float rounding (batched NHWC convolutions differ from its
  one-image forward pass in the last bits; the tests allow 1e-5).
- **DFL logits and embeddings from the same pass.** In inference the Detect
  head returns, next to its decoded output, its raw outputs: the box-branch
  logits ``(B, 4 * reg_max, anchors)`` and the feature maps it was given. Asked
  for (``with_dfl``), the ``4 x reg_max`` logits at each kept anchor become
  :attr:`Detections.dfl`; asked for (``with_embeddings``), each feature map is
  average-pooled over space, the levels concatenated and L2-normalised into
  :attr:`Prediction.embedding` (float16). No hook, no second pass.
- **Its log where the caller wants it.** Inside :meth:`UltralyticsAdapter.log_to`,
  everything Ultralytics says during ``train``, ``evaluate`` and ``predict``
  (its ``ultralytics`` logger, its progress bars, prints and warnings on
  ``sys.stdout``/``sys.stderr``) is appended to a log file as plain lines, one
  per finished progress bar, and nothing reaches the terminal unless an echo
  stream is given. ``detal cycle`` writes ``cycles/<k>/train.log`` this way.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import queue
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import yaml

from detal.adapter import LabeledImage, Metrics, PredictResult, TrainResult
from detal.config import Config
from detal.detections import Detections, Prediction
from detal.errors import ConfigError, DataError, ModelError
from detal.files import IMAGE_SUFFIXES
from detal.uncertainty import needs_dfl

__all__ = ["IMAGE_SUFFIXES", "UltralyticsAdapter", "default_config_dir", "prepare_ultralytics"]

# Keys of Ultralytics' train() that detal sets itself; cfg.train_args may not override them.
_RESERVED_TRAIN_ARGS = frozenset({"data", "project", "name", "exist_ok", "model", "resume", "epochs"})
# Settings that make Ultralytics talk to servers or third-party loggers.
_SETTINGS_OFF = (
    "sync", "clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb",
    "vscode_msg", "openvino_msg",
)


def default_config_dir() -> Path:
    """Where Ultralytics keeps its settings when the caller did not set ``YOLO_CONFIG_DIR``.

    A per-user folder under the system temp dir, never the user's home.
    """
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"detal-ultralytics-{uid}"


_import_lock = threading.Lock()
_imported = False


def prepare_ultralytics() -> None:
    """Import ultralytics once, offline, with its settings outside the home directory.

    Sets ``YOLO_CONFIG_DIR`` (to :func:`default_config_dir` unless already
    set) and ``YOLO_OFFLINE`` before the first import, then switches settings
    sync and the third-party logger integrations off. The adapter calls it
    itself; call it first when using ``ultralytics`` directly next to detal.
    It also undoes Ultralytics' patch of ``PIL.Image.open`` (see
    :func:`_restore_pil_open`); its ``torch.save`` wrapper (retries on
    failure) stays. Ultralytics reads the environment only on its first import, so if
    something imported it earlier, its settings folder stays where that
    import put it (sync and integrations are still switched off).
    """
    global _imported
    with _import_lock:
        if _imported:
            return
        os.environ.setdefault("YOLO_CONFIG_DIR", str(default_config_dir()))
        os.environ.setdefault("YOLO_OFFLINE", "true")
        Path(os.environ["YOLO_CONFIG_DIR"]).mkdir(parents=True, exist_ok=True)
        from ultralytics.utils import SETTINGS

        on = {key: False for key in _SETTINGS_OFF if SETTINGS.get(key)}
        if on:
            SETTINGS.update(on)
        _restore_pil_open()
        _imported = True


def _restore_pil_open() -> None:
    """Undo Ultralytics' process-wide patch of ``PIL.Image.open``.

    On import, Ultralytics replaces ``PIL.Image.open`` with a wrapper that, on
    an unidentifiable file, tries to pip-install ``pi-heif`` and then raises
    ``ModuleNotFoundError`` instead of ``PIL.UnidentifiedImageError``. That
    breaks code elsewhere in detal that opens images with PIL in the same
    process. Ultralytics needs it only for HEIC files, which detal does not
    list as images.
    """
    from PIL import Image
    from ultralytics.utils import patches

    original = getattr(patches, "_image_open", None)
    if original is not None and Image.open is getattr(patches, "image_open", None):
        Image.open = original


def _local_font(font: str = "Arial.ttf") -> Path | None:
    """Ultralytics' font lookup without its download: the config dir or matplotlib's list."""
    from ultralytics.utils import USER_CONFIG_DIR

    candidate = USER_CONFIG_DIR / Path(font).name
    if candidate.exists():
        return candidate
    try:
        from matplotlib import font_manager

        for entry in font_manager.fontManager.ttflist:
            if Path(font).name in entry.fname and os.path.exists(entry.fname):
                return Path(entry.fname)
    except Exception:  # noqa: BLE001 - best effort: no matplotlib or no font cache means no font
        return None
    return None


def _amp_without_download(model: Any) -> bool:
    """AMP on CUDA without Ultralytics' check, which downloads a model to compare against."""
    return next(model.parameters()).device.type == "cuda"


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """Swap Ultralytics' downloading checks for offline ones while a call runs."""
    import ultralytics.data.utils as data_utils
    from ultralytics.engine import trainer
    from ultralytics.utils import checks

    patches = [
        (data_utils, "check_font", _local_font),
        (checks, "check_font", _local_font),
        (trainer, "check_amp", _amp_without_download),
    ]
    saved = [(mod, name, getattr(mod, name)) for mod, name, _ in patches]
    try:
        for mod, name, value in patches:
            setattr(mod, name, value)
        yield
    finally:
        for mod, name, value in saved:
            setattr(mod, name, value)


# --------------------------------------------------------------------------- log routing

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")  # CSI sequences and two-byte escapes


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class _PlainLines(io.TextIOBase):
    """A text stream that writes what a terminal would end up showing, as plain lines.

    Progress bars redraw one line with ``\\r`` and escape codes; this stream
    strips every escape code, keeps the last state of each line (the text after
    its last non-empty ``\\r`` segment) and writes whole lines to ``log`` (a
    file), so a log holds one line per finished bar. ``echo``, when given, sees
    the same: the raw writes when it is a terminal (bars redraw there as usual),
    else the plain lines. A header line is written before the first line.
    """

    def __init__(self, log: TextIO, echo: TextIO | None, header: str) -> None:
        super().__init__()
        self._log = log
        self._echo = echo
        self._raw_echo = echo is not None and _isatty(echo)
        self._header = header
        self._line = ""  # the unfinished line, redraws included
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, s: str) -> int:
        with self._lock:
            if self._raw_echo:
                self._echo.write(s)  # type: ignore[union-attr]
                self._echo.flush()  # type: ignore[union-attr]
            *done, rest = (self._line + _ANSI.sub("", s)).split("\n")
            # the line's last state, and whether the next text starts it over
            self._line = _shown(rest) + ("\r" if rest.endswith("\r") else "")
            self._emit([_shown(line) for line in done])
        return len(s)

    def flush(self) -> None:
        with self._lock:
            self._log.flush()

    def finish(self) -> None:
        """Write the unfinished line, if it shows anything."""
        with self._lock:
            last = _shown(self._line)
            self._line = ""
            if last.strip():
                self._emit([last])
            self._log.flush()

    def _emit(self, lines: list[str]) -> None:
        if not lines:
            return
        if self._header:
            lines = [self._header, *lines]
            self._header = ""
        text = "".join(line.rstrip() + "\n" for line in lines)
        self._log.write(text)
        self._log.flush()
        if self._echo is not None and not self._raw_echo:
            self._echo.write(text)
            self._echo.flush()


def _shown(line: str) -> str:
    """What a terminal shows of ``line`` after its carriage returns: the last non-empty part."""
    parts = [p for p in line.split("\r") if p]
    return parts[-1] if parts else ""


@dataclass(frozen=True)
class _LogRoute:
    path: Path
    echo: TextIO | None
    on_epoch: Callable[[int, int], None] | None


@contextlib.contextmanager
def _routed(route: _LogRoute | None, what: str) -> Iterator[None]:
    """Send everything Ultralytics says while a call runs to ``route.path``.

    Three paths, all redirected: the ``ultralytics`` logger (its handlers are
    swapped for one that writes to the route, at INFO), ``sys.stdout`` and
    ``sys.stderr`` (its progress bars, prints and Python warnings). Without a
    route, nothing changes. Ultralytics is imported inside the redirection, so
    what its first import says lands in the log too; a handler it created
    then is pointed back at the real stdout afterwards.
    """
    if route is None:
        yield
        return
    import logging
    import sys

    route.path.parent.mkdir(parents=True, exist_ok=True)
    with open(route.path, "a", encoding="utf-8") as fh:
        stream = _PlainLines(fh, route.echo, f"--- {what}, {time.strftime('%Y-%m-%d %H:%M:%S')} ---")
        real_stdout = sys.stdout
        logger = logging.getLogger("ultralytics")
        saved_handlers, saved_level = list(logger.handlers), logger.level
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                prepare_ultralytics()
                saved_handlers, saved_level = list(logger.handlers), logger.level
                handler = logging.StreamHandler(stream)
                formats = [h.formatter for h in saved_handlers if h.formatter is not None]
                handler.setFormatter(formats[0] if formats else logging.Formatter("%(message)s"))
                logger.handlers = [handler]
                logger.setLevel(logging.INFO)
                yield
        finally:
            logger.handlers = saved_handlers
            logger.setLevel(saved_level)
            for h in saved_handlers:
                if isinstance(h, logging.StreamHandler) and h.stream is stream:
                    h.setStream(real_stdout)
            stream.finish()


def _logged(what: str) -> Callable:
    """Decorate an adapter method to run inside :func:`_routed` with the adapter's route."""

    def wrap(method: Callable) -> Callable:
        @functools.wraps(method)
        def call(self: UltralyticsAdapter, *args: Any, **kwargs: Any) -> Any:
            with _routed(self._route, what):
                return method(self, *args, **kwargs)

        return call

    return wrap


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__


# --------------------------------------------------------------------------- staging


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        dst.symlink_to(src)
    except OSError:
        shutil.copy2(src, dst)


def stage_split(items: Sequence[LabeledImage], root: Path) -> Path:
    """Lay ``items`` out as ``root/images`` + ``root/labels`` and write ``root.txt``.

    Images are symlinked (copied where links are not possible) and labels
    copied, each under a unique name ``<index>_<stem><suffix>``, so two images
    with the same file name in different folders do not collide. Returns the
    list file, which holds the staged image paths, one a line.
    """
    if root.exists():
        shutil.rmtree(root)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir(parents=True)
    lines = []
    for index, (image, label) in enumerate(items):
        image, label = Path(image), Path(label)
        if not image.is_file():
            raise DataError(f"{image}: image file not found")
        if image.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{image}: not an image file ({', '.join(IMAGE_SUFFIXES)})")
        if not label.is_file():
            raise DataError(f"{label}: label file not found (for image {image})")
        stem = f"{index:06d}_{image.stem}"
        staged = root / "images" / f"{stem}{image.suffix}"
        _link_or_copy(image.resolve(), staged)
        shutil.copyfile(label, root / "labels" / f"{stem}.txt")
        lines.append(str(staged))
    list_file = root.with_suffix(".txt")
    list_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return list_file


def write_data_yaml(path: Path, train_list: Path, val_list: Path, names: Sequence[str]) -> Path:
    """A ``data.yaml`` for Ultralytics, with absolute paths and the project's class names."""
    names = [str(n) for n in names]
    if not names:
        raise DataError(f"{path}: no class names given")
    data = {
        "path": str(path.parent.resolve()),
        "train": str(train_list.resolve()),
        "val": str(val_list.resolve()),
        "nc": len(names),
        "names": dict(enumerate(names)),
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class _Loaded:
    model: Any  # torch.nn.Module, fused, eval, float32
    device: Any  # torch.device
    stride: int
    imgsz: tuple[int, int]
    reg_max: int  # DFL bins per box side of the Detect head; 1 means no DFL


@dataclass
class _Item:
    index: int
    path: Path
    shape: tuple[int, int]  # original (h, w)
    image: np.ndarray  # letterboxed, HWC BGR uint8


class _Source:
    """Hands ``(index, path)`` pairs from one iterable to any number of reader threads."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self._pairs = enumerate(paths)
        self._lock = threading.Lock()

    def next(self) -> tuple[int, Path] | None:
        with self._lock:
            pair = next(self._pairs, None)
        return None if pair is None else (pair[0], Path(pair[1]))


def _read_items(
    source: _Source,
    imgsz: tuple[int, int],
    stride: int,
    out: queue.Queue[_Item | tuple[int, Path, str] | None],
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
                    item = _Item(index, path, (im.shape[0], im.shape[1]), letterbox(image=im))
            _put(out, item, stop)
    except Exception as exc:  # noqa: BLE001 - hand any reader bug to the consumer, never hang it
        _put(out, (-1, Path(""), f"image reader failed: {_first_line(exc)}"), stop)
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


# --------------------------------------------------------------------------- adapter


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
    """

    def __init__(self, cfg: Config, *, readers: int | None = None) -> None:
        self.cfg = cfg
        bad = sorted(_RESERVED_TRAIN_ARGS & set(cfg.train_args))
        if bad:
            raise ConfigError(f"train_args: {', '.join(bad)} are set by detal and cannot be overridden")
        if readers is not None and readers < 1:
            raise ConfigError(f"readers must be a positive integer, got {readers!r}")
        self.readers = readers
        self._cache: tuple[tuple[str, float, str], _Loaded] | None = None
        self._route: _LogRoute | None = None

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
        self._route = _LogRoute(Path(path), echo, on_epoch)
        try:
            yield self
        finally:
            self._route = saved

    # -- helpers ---------------------------------------------------------------
    @property
    def _device_arg(self) -> str | None:
        """The ``device`` argument for Ultralytics; ``None`` lets it pick."""
        return None if self.cfg.device == "auto" else self.cfg.device

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
            raise ModelError(f"{source}: cannot build or load the model ({_first_line(exc)})") from exc

    # -- ModelAdapter ------------------------------------------------------------
    @_logged("train")
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
        if on_epoch is not None:
            model.add_callback("on_train_start", lambda t: on_epoch(0, int(t.epochs)))
            model.add_callback("on_fit_epoch_end", lambda t: on_epoch(int(t.epoch) + 1, int(t.epochs)))
        start = time.perf_counter()
        try:
            with _offline():
                model.train(**args)
        except Exception as exc:
            raise ModelError(f"training in {out_dir / 'train'} failed ({_first_line(exc)})") from exc
        seconds = time.perf_counter() - start

        trainer = model.trainer
        best, last = Path(trainer.best), Path(trainer.last)
        weights = best if has_val and best.is_file() else last
        if not weights.is_file():
            raise ModelError(f"training in {out_dir / 'train'} wrote no weights ({best.name}, {last.name})")
        metrics = None
        if has_val:
            metrics = _metrics_from(trainer.metrics, getattr(trainer, "validator", None), len(names))
        return TrainResult(weights=weights, metrics=metrics, seconds=seconds, epochs=int(epochs))

    def _cuda_requested(self) -> bool:
        """True when training will run on CUDA (AMP is only used there)."""
        import torch

        if self.cfg.device == "auto":
            return torch.cuda.is_available()
        dev = self.cfg.device.strip().lower()
        return dev not in ("cpu", "mps", "") and torch.cuda.is_available()

    @_logged("evaluate")
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
            with _offline():
                result = model.val(
                    data=str(data),
                    split="val",
                    imgsz=self.cfg.imgsz,
                    batch=self.cfg.batch,
                    workers=self.cfg.workers,
                    device=self._device_arg,
                    project=str(out_dir),
                    name="val",
                    exist_ok=True,
                    plots=False,
                    save_json=False,
                    verbose=False,
                )
        except Exception as exc:
            raise ModelError(f"{weights}: evaluation in {out_dir / 'val'} failed ({_first_line(exc)})") from exc
        return Metrics(
            map50=float(result.box.map50),
            map50_95=float(result.box.map),
            per_class=_per_class_ap(result.box, len(names)),
        )

    # -- predict -------------------------------------------------------------------
    def class_names(self, weights: Path) -> list[str]:
        """The class names stored in ``weights``, in class-id order."""
        names = self.load(weights).model.names
        if isinstance(names, dict):
            return [str(names[k]) for k in sorted(names)]
        return [str(n) for n in names]

    def load(self, weights: Path) -> _Loaded:
        """Load ``weights`` as Ultralytics' predictor does (fused, float32, eval); cached."""
        weights = Path(weights)
        if not weights.is_file():
            raise ModelError(f"{weights}: weights file not found")
        key = (str(weights.resolve()), weights.stat().st_mtime, self.cfg.device)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        prepare_ultralytics()
        import torch
        from ultralytics.nn.tasks import load_checkpoint
        from ultralytics.utils.checks import check_imgsz
        from ultralytics.utils.torch_utils import select_device

        device = select_device("" if self.cfg.device == "auto" else self.cfg.device, verbose=False)
        try:
            model, _ = load_checkpoint(str(weights), device=device)
        except Exception as exc:
            raise ModelError(f"{weights}: cannot load weights ({_first_line(exc)})") from exc
        if not hasattr(model, "stride") or getattr(model, "task", "detect") != "detect":
            raise ModelError(f"{weights}: not a detection model (task {getattr(model, 'task', '?')!r})")
        if hasattr(model, "end2end"):
            model.end2end = False  # one-to-many head + NMS, as YOLO.predict does by default
        model = model.fuse(verbose=False).to(device).float().eval()
        # NHWC convolutions are faster on CPU (oneDNN) and CUDA; outputs agree with the
        # default layout to float rounding (tested against YOLO.predict).
        model = model.to(memory_format=torch.channels_last)
        for p in model.parameters():
            p.requires_grad = False
        stride = max(int(model.stride.max()), 32)
        h, w = check_imgsz(self.cfg.imgsz, stride=stride, min_dim=2)
        reg_max = int(getattr(model.model[-1], "reg_max", 1) or 1)
        loaded = _Loaded(model, device, stride, (int(h), int(w)), reg_max)
        self._cache = (key, loaded)
        return loaded

    @_logged("predict")
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
        extras = (with_dfl, with_embeddings)
        from tqdm import tqdm

        total = len(images) if hasattr(images, "__len__") else None  # type: ignore[arg-type]
        items: queue.Queue = queue.Queue(maxsize=2 * batch)
        stop = threading.Event()
        source = _Source(images)
        gpu_readers = min(8, max(1, (os.cpu_count() or 2) // 2))
        n_readers = self.readers or (1 if loaded.device.type == "cpu" else gpu_readers)
        readers = [
            threading.Thread(
                target=_read_items, args=(source, loaded.imgsz, loaded.stride, items, stop), daemon=True
            )
            for _ in range(n_readers)
        ]
        running = n_readers
        done: list[tuple[int, Prediction]] = []
        failed: list[tuple[int, Path, str]] = []
        buckets: dict[tuple[int, int], list[_Item]] = {}
        held = 0
        limit = 4 * batch  # images held across shape buckets before the fullest is run
        bar = tqdm(total=total, desc="predict", unit="img", disable=not progress, leave=False)
        for reader in readers:
            reader.start()
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
                done.extend(self._run(loaded, group, conf, iou, *extras))
                bar.update(len(group))
            for group in buckets.values():
                done.extend(self._run(loaded, group, conf, iou, *extras))
                bar.update(len(group))
        finally:
            stop.set()
            bar.close()
            for reader in readers:
                reader.join(timeout=5)
        done.sort(key=lambda pair: pair[0])
        failed.sort(key=lambda entry: entry[0])
        return PredictResult([p for _, p in done], [(path, reason) for _, path, reason in failed])

    def _run(
        self,
        loaded: _Loaded,
        group: list[_Item],
        conf: float,
        iou: float,
        with_dfl: bool = False,
        with_embeddings: bool = False,
    ) -> list[tuple[int, Prediction]]:
        """One forward pass over images of one letterboxed shape, then NMS per image."""
        import torch
        from ultralytics.utils import nms, ops

        with torch.inference_mode():
            # BHWC BGR uint8 -> BCHW RGB float in [0, 1], kept NHWC in memory (channels_last).
            batch = torch.from_numpy(np.stack([it.image[..., ::-1] for it in group])).to(loaded.device)
            batch = batch.permute(0, 3, 1, 2).float().div_(255)
            output = loaded.model(batch)
            raw = output[0] if isinstance(output, (list, tuple)) else output  # (B, 4 + nc, anchors)
            nc = int(raw.shape[1]) - 4
            dfl_raw, embeddings = None, None
            if with_dfl or with_embeddings:
                head = _head_outputs(output)
                reg_max = loaded.reg_max
                if with_dfl:
                    dfl_raw = head["boxes"]  # (B, 4 * reg_max, anchors), side-major like Ultralytics' DFL
                    if dfl_raw.shape[1] != 4 * reg_max or dfl_raw.shape[2] != raw.shape[2]:
                        raise ModelError(f"predict: unexpected DFL output shape {tuple(dfl_raw.shape)}")
                if with_embeddings:
                    pooled = torch.cat([f.float().mean(dim=(2, 3)) for f in head["feats"]], dim=1)
                    embeddings = torch.nn.functional.normalize(pooled, dim=1).half().cpu().numpy()
            out = []
            for b, it in enumerate(group):
                # NMS gets a copy (it may rewrite boxes in place); class scores are read from `raw`.
                kept, idx = nms.non_max_suppression(
                    raw[b : b + 1].clone(), conf, iou, max_det=300, return_idxs=True
                )
                det = kept[0]
                keep = idx[0].view(-1).long()
                embedding = None if embeddings is None else embeddings[b]
                if det.shape[0] == 0:
                    empty = Detections.empty(nc, loaded.reg_max if with_dfl else None)
                    out.append((it.index, Prediction(it.path, it.shape[1], it.shape[0], empty, embedding=embedding)))
                    continue
                boxes = ops.scale_boxes(batch.shape[2:], det[:, :4].clone(), it.shape)
                probs = raw[b, 4 : 4 + nc][:, keep].T
                parts = [boxes, det[:, 4:6], probs]
                if dfl_raw is not None:
                    parts.append(dfl_raw[b][:, keep].T)  # (k, 4 * reg_max)
                # One device-to-host copy: [x1 y1 x2 y2 | conf class | C probabilities | DFL logits].
                rows = torch.cat(parts, dim=1).cpu().numpy()
                detections = Detections(
                    xyxy=rows[:, :4],
                    class_id=rows[:, 5].astype(np.int64),
                    confidence=rows[:, 4],
                    class_probs=rows[:, 6 : 6 + nc],
                    dfl=None if dfl_raw is None else rows[:, 6 + nc :].reshape(-1, 4, loaded.reg_max),
                )
                out.append(
                    (it.index, Prediction(it.path, it.shape[1], it.shape[0], detections, embedding=embedding))
                )
        return out


def _head_outputs(output: Any) -> dict:
    """The Detect head's raw outputs (``boxes``, ``scores``, ``feats``) from an inference forward.

    In inference (not export) the head returns ``(decoded, raw)``; an
    end-to-end head nests ``raw`` as ``{"one2many": ..., "one2one": ...}``, and
    detal runs the one-to-many branch (``end2end = False``).
    """
    raw = output[1] if isinstance(output, (list, tuple)) and len(output) > 1 else None
    if isinstance(raw, dict) and "one2many" in raw:
        raw = raw["one2many"]
    if not isinstance(raw, dict) or "boxes" not in raw or "feats" not in raw:
        raise ModelError("predict: the model's head does not expose its raw box logits and feature maps")
    return raw


def _metrics_from(metrics: Any, validator: Any = None, n_classes: int = 0) -> Metrics | None:
    """mAP50 and mAP50-95 from the dict Ultralytics' trainer keeps after its final validation.

    Per-class figures come from the validator's last ``DetMetrics`` (the same
    final validation), when it has them.
    """
    if not isinstance(metrics, dict):
        return None
    box = getattr(getattr(validator, "metrics", None), "box", None)
    try:
        return Metrics(
            map50=float(metrics["metrics/mAP50(B)"]),
            map50_95=float(metrics["metrics/mAP50-95(B)"]),
            per_class=_per_class_ap(box, n_classes) if box is not None and n_classes else None,
        )
    except (KeyError, TypeError, ValueError):
        return None


def _per_class_ap(box: Any, n_classes: int) -> tuple[float | None, ...] | None:
    """Per-class mAP50-95 from an Ultralytics box ``Metric``; ``None`` for classes without instances.

    ``box.ap`` holds one mAP50-95 per class listed in ``box.ap_class_index``,
    the classes with at least one ground-truth instance. (``box.maps`` fills
    the other classes with the overall mAP, which would hide that they were
    never measured.)
    """
    try:
        index = [int(c) for c in np.asarray(box.ap_class_index).reshape(-1)]
        ap = np.asarray(box.ap, dtype=np.float64).reshape(-1)
    except (AttributeError, TypeError, ValueError):
        return None
    if len(index) != ap.size:
        return None
    out: list[float | None] = [None] * n_classes
    for c, value in zip(index, ap.tolist()):
        if 0 <= c < n_classes:
            out[c] = float(value)
    return tuple(out)
