"""A fake :class:`~detal.adapter.ModelAdapter` for tests and dry runs.

It never touches a network or a GPU. ``predict`` reports each image's real
size (read from its header; ``size`` for a file that is not an image), so
exports that carry sizes (COCO) agree with the project. It returns canned detections:
either the ones given for a path in ``canned``, or a deterministic draw that
depends only on the image's file name and ``seed`` (so the same image always
gets the same boxes and class probabilities). Asked for them, it also gives
every box DFL logits ``(4, reg_max)`` (peaked around a drawn bin, with a drawn
sharpness) and every image an embedding: one of ``n_clusters`` unit-norm centres
(drawn from ``seed``), chosen by the file name's hash, plus a little noise,
L2-normalised, float16. Images of one cluster are near each other, so diversity
selection can be tested without a model. ``train`` writes a small JSON
"weights" file recording what it was trained on, and reports metrics that grow
with the number of training images, so bookkeeping can be checked end to end;
per-class mAP50-95 spreads around the overall figure by class id, and is
``None`` for classes with no instance in the validation labels. Inside
:meth:`FakeAdapter.log_to`, ``train`` and ``evaluate`` write a line per epoch and
per evaluation to the log, as the real adapter routes Ultralytics' log.
``class_names`` reads the names back from such a "weights" file. Built with
``n_classes=None`` (as :func:`detal.adapter.make_adapter` may), it takes the
class count from the first names it trains or evaluates with, or from the
weights it first predicts with, as a real model would.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from detal.adapter import LabeledImage, Metrics, PredictResult, TrainResult
from detal.detections import Detections, Prediction
from detal.errors import ModelError
from detal.image_check import allow_large_images
from detal.image_frame import displayed_size

__all__ = ["FakeAdapter"]


class FakeAdapter:
    def __init__(
        self,
        n_classes: int | None,
        *,
        seed: int = 0,
        canned: Mapping[str, Detections] | None = None,
        size: tuple[int, int] = (64, 64),
        max_boxes: int = 4,
        unreadable: Iterable[str] = (),
        reg_max: int = 16,
        n_clusters: int = 4,
        embedding_dim: int = 32,
    ) -> None:
        self.n_classes = n_classes
        self.seed = seed
        self.canned = dict(canned or {})
        self.size = size
        self.max_boxes = max_boxes
        self.unreadable = set(unreadable)
        self.reg_max = reg_max
        self.n_clusters = n_clusters
        self.embedding_dim = embedding_dim
        self.calls: list[tuple[str, dict]] = []
        self._log: tuple[TextIO, TextIO | None, Callable[[int, int], None] | None] | None = None

    def class_names(self, weights: Path) -> list[str]:
        """The class names recorded in a "weights" file written by :meth:`train`; empty for any other file."""
        try:
            record = json.loads(Path(weights).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return []
        names = record.get("names") if isinstance(record, dict) else None
        return [str(n) for n in names] if isinstance(names, list) else []

    def _learn_classes(self, names: Sequence[str] = (), weights: Path | None = None) -> None:
        """Without ``n_classes``, take it from ``names``, else from the names stored in ``weights``."""
        if self.n_classes is not None:
            return
        n = len(names) if names else len(self.class_names(weights)) if weights is not None else 0
        if n < 1:
            where = f"{weights}: " if weights is not None else ""
            raise ModelError(f"{where}the fake adapter has no class count (no names given or stored)")
        self.n_classes = n

    @contextlib.contextmanager
    def log_to(
        self, path: Path, *, echo: TextIO | None = None, on_epoch: Callable[[int, int], None] | None = None
    ) -> Iterator[FakeAdapter]:
        """Like :meth:`detal.ultra.UltralyticsAdapter.log_to`: while active, ``train`` appends
        one line per epoch to ``path`` (and ``echo``) and calls ``on_epoch(epoch, epochs)``
        with the epochs done (0 first);
        ``evaluate`` appends one line."""
        with open(path, "a", encoding="utf-8") as fh:
            saved, self._log = self._log, (fh, echo, on_epoch)
            try:
                yield self
            finally:
                self._log = saved

    def _say(self, line: str) -> None:
        if self._log is not None:
            for stream in self._log[:2]:
                if stream is not None:
                    stream.write(line + "\n")
                    stream.flush()

    # -- ModelAdapter ---------------------------------------------------------
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
        self._learn_classes(names)
        start = time.perf_counter()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        weights = out_dir / "weights.json"
        record = {
            "train": sorted(str(i) for i, _ in train_items),
            "epochs": epochs,
            "init": str(init_weights) if init_weights else None,
            "names": list(names),
        }
        weights.write_text(json.dumps(record))
        on_epoch = self._log[2] if self._log is not None else None
        if on_epoch is not None:
            on_epoch(0, epochs)
        for epoch in range(1, epochs + 1):
            self._say(f"fake train: epoch {epoch}/{epochs}, {len(train_items)} images")
            if on_epoch is not None:
                on_epoch(epoch, epochs)
        self.calls.append(("train", {"n": len(train_items), "epochs": epochs, "init": init_weights}))
        metrics = self._metrics(len(train_items), val_items) if val_items else None
        return TrainResult(weights, metrics, time.perf_counter() - start, epochs)

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
        """Canned or drawn detections; ``with_dfl=None`` gives DFL logits whenever ``reg_max`` >= 2."""
        if with_dfl is None:
            with_dfl = self.reg_max >= 2
        if with_dfl and self.reg_max < 2:
            raise ModelError(f"{weights}: the model has no DFL head (reg_max {self.reg_max})")
        self._learn_classes(weights=Path(weights))
        preds, failed = [], []
        for image in images:
            image = Path(image)
            if image.name in self.unreadable:
                failed.append((image, "unreadable image"))
                continue
            width, height = self.image_size(image)
            det = self.canned.get(image.name)
            if det is None:
                det = _scaled(self._draw(image.name), self.size, (width, height))
            if not with_dfl and det.dfl is not None:
                det = Detections(det.xyxy, det.class_id, det.confidence, det.class_probs)
            elif with_dfl and det.dfl is None:
                det = Detections(
                    det.xyxy, det.class_id, det.confidence, det.class_probs, self._dfl(image.name, len(det))
                )
            embedding = self.embedding(image.name) if with_embeddings else None
            preds.append(Prediction(image, width, height, det.above(conf), embedding=embedding))
        self.calls.append(("predict", {"n": len(preds), "conf": conf}))
        return PredictResult(preds, failed)

    def evaluate(
        self, weights: Path, val_items: Sequence[LabeledImage], names: Sequence[str], out_dir: Path
    ) -> Metrics:
        record = json.loads(Path(weights).read_text())
        self._learn_classes(names)
        metrics = self._metrics(len(record["train"]), val_items)
        self._say(f"fake evaluate: {len(val_items)} images, mAP50 {metrics.map50:.4f}")
        return metrics

    # -- helpers --------------------------------------------------------------
    def _metrics(self, n_train: int, val_items: Sequence[LabeledImage] = ()) -> Metrics:
        m = 1.0 - 1.0 / (1.0 + n_train / 50.0)
        map50_95 = 0.6 * m
        present = _label_classes(val_items)
        spread = np.linspace(0.5, 1.5, self.n_classes) if self.n_classes > 1 else np.ones(1)
        per_class = tuple(
            round(float(min(1.0, map50_95 * f)), 6) if c in present else None for c, f in enumerate(spread)
        )
        return Metrics(map50=round(m, 6), map50_95=round(map50_95, 6), per_class=per_class)

    def _rng(self, salt: str, name: str) -> np.random.Generator:
        digest = hashlib.sha256(f"{salt}{self.seed}:{name}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def _dfl(self, name: str, n: int) -> np.ndarray:
        """Deterministic DFL logits ``(n, 4, reg_max)``: a peak at a drawn bin, of drawn sharpness."""
        rng = self._rng("dfl:", name)
        bins = np.arange(self.reg_max, dtype=np.float64)
        centre = rng.uniform(0, self.reg_max - 1, (n, 4, 1))
        sharpness = np.exp(rng.uniform(np.log(0.02), np.log(5.0), (n, 4, 1)))
        return (-sharpness * (bins - centre) ** 2).astype(np.float32)

    def cluster_of(self, name: str) -> int:
        """The embedding cluster of an image file name (its hash modulo ``n_clusters``)."""
        digest = hashlib.sha256(f"cluster:{name}".encode()).digest()
        return int.from_bytes(digest[:8], "little") % self.n_clusters

    def embedding(self, name: str) -> np.ndarray:
        """The image's embedding: its cluster centre plus noise, unit L2 norm, float16."""
        centres = np.random.default_rng(self.seed).normal(size=(self.n_clusters, self.embedding_dim))
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        noise = self._rng("embedding:", name).normal(0, 0.05, self.embedding_dim)
        v = centres[self.cluster_of(name)] + noise
        return (v / np.linalg.norm(v)).astype(np.float16)

    def image_size(self, image: Path) -> tuple[int, int]:
        """The image's ``(width, height)`` as displayed (:mod:`detal.image_frame`), as Ultralytics
        reads it; ``size`` for a file that is not an image."""
        from PIL import Image

        allow_large_images()
        try:
            with Image.open(image) as im:
                return displayed_size(im)
        except Exception:  # noqa: BLE001 - not an image, or not there: the canned size
            return self.size

    def _draw(self, name: str) -> Detections:
        """Deterministic detections for an image of ``size`` (``predict`` scales them to the real size)."""
        digest = hashlib.sha256(f"{self.seed}:{name}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        n = int(rng.integers(0, self.max_boxes + 1))
        w, h = self.size
        x1 = rng.uniform(0, w * 0.6, n)
        y1 = rng.uniform(0, h * 0.6, n)
        xyxy = np.stack([x1, y1, x1 + rng.uniform(4, w * 0.4, n), y1 + rng.uniform(4, h * 0.4, n)], axis=1)
        logits = rng.normal(0, rng.uniform(0.5, 4.0), (n, self.n_classes))
        probs = 1.0 / (1.0 + np.exp(-logits))
        dfl = self._dfl(name, n) if self.reg_max >= 2 else None
        return Detections(xyxy, probs.argmax(axis=1), probs.max(axis=1), probs, dfl)


def _scaled(det: Detections, drawn: tuple[int, int], real: tuple[int, int]) -> Detections:
    """``det`` drawn for an image of size ``drawn``, moved onto one of size ``real`` (clipped to it)."""
    if drawn == real or not len(det):
        return det
    w, h = real
    factor = np.array([w / drawn[0], h / drawn[1]] * 2)
    xyxy = np.clip(det.xyxy * factor, 0, [w, h, w, h])
    return Detections(xyxy, det.class_id, det.confidence, det.class_probs, det.dfl)


def _label_classes(items: Sequence[LabeledImage]) -> set[int]:
    """Class ids that occur in the YOLO label files of ``items`` (unreadable lines are skipped)."""
    present: set[int] = set()
    for _, label in items:
        try:
            lines = Path(label).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            head = line.split(maxsplit=1)
            if head and head[0].isdigit():
                present.add(int(head[0]))
    return present
