"""A fake :class:`~detal.adapter.ModelAdapter` for tests and dry runs.

It never touches a network or a GPU. ``predict`` returns canned detections:
either the ones given for a path in ``canned``, or a deterministic draw that
depends only on the image's file name and ``seed`` (so the same image always
gets the same boxes and class probabilities). ``train`` writes a small JSON
"weights" file recording what it was trained on, and reports metrics that grow
with the number of training images, so bookkeeping can be checked end to end.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from detal.adapter import LabeledImage, Metrics, PredictResult, TrainResult
from detal.detections import Detections, Prediction

__all__ = ["FakeAdapter"]


class FakeAdapter:
    def __init__(
        self,
        n_classes: int,
        *,
        seed: int = 0,
        canned: Mapping[str, Detections] | None = None,
        size: tuple[int, int] = (64, 64),
        max_boxes: int = 4,
        unreadable: Iterable[str] = (),
    ) -> None:
        self.n_classes = n_classes
        self.seed = seed
        self.canned = dict(canned or {})
        self.size = size
        self.max_boxes = max_boxes
        self.unreadable = set(unreadable)
        self.calls: list[tuple[str, dict]] = []

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
        self.calls.append(("train", {"n": len(train_items), "epochs": epochs, "init": init_weights}))
        metrics = self._metrics(len(train_items)) if val_items else None
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
    ) -> PredictResult:
        preds, failed = [], []
        for image in images:
            image = Path(image)
            if image.name in self.unreadable:
                failed.append((image, "unreadable image"))
                continue
            det = self.canned.get(image.name)
            if det is None:
                det = self._draw(image.name)
            preds.append(Prediction(image, self.size[0], self.size[1], det.above(conf)))
        self.calls.append(("predict", {"n": len(preds), "conf": conf}))
        return PredictResult(preds, failed)

    def evaluate(
        self, weights: Path, val_items: Sequence[LabeledImage], names: Sequence[str], out_dir: Path
    ) -> Metrics:
        record = json.loads(Path(weights).read_text())
        return self._metrics(len(record["train"]))

    # -- helpers --------------------------------------------------------------
    @staticmethod
    def _metrics(n_train: int) -> Metrics:
        m = 1.0 - 1.0 / (1.0 + n_train / 50.0)
        return Metrics(map50=round(m, 6), map50_95=round(0.6 * m, 6))

    def _draw(self, name: str) -> Detections:
        digest = hashlib.sha256(f"{self.seed}:{name}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        n = int(rng.integers(0, self.max_boxes + 1))
        w, h = self.size
        x1 = rng.uniform(0, w * 0.6, n)
        y1 = rng.uniform(0, h * 0.6, n)
        xyxy = np.stack([x1, y1, x1 + rng.uniform(4, w * 0.4, n), y1 + rng.uniform(4, h * 0.4, n)], axis=1)
        logits = rng.normal(0, rng.uniform(0.5, 4.0), (n, self.n_classes))
        probs = 1.0 / (1.0 + np.exp(-logits))
        return Detections(xyxy, probs.argmax(axis=1), probs.max(axis=1), probs)
