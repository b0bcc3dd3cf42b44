"""This cycle's predictions: every image predicted once, scored, and its embedding kept.

Part of the cycle engine (:mod:`detal.project.cycle`): selection asks for the
subset's scores, ``hybrid`` for embeddings (of the candidates, which the
scoring pass already holds, and of the labeled images, predicted here once),
and the batch writer for the pre-labels of every picked image. All of them go
through one :class:`CyclePredictions`, so no image is predicted twice in a cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from detal.config import Config
from detal.detections import Prediction
from detal.engines import Predictor
from detal.errors import ModelError
from detal.scoring import score_predictions
from detal.store import Store

__all__ = ["CyclePredictions"]


class CyclePredictions:
    """Predictions of one cycle's ``weights``, by image id (``cache``).

    ``predictor`` is the scoring engine's (:mod:`detal.engines`: the adapter
    itself, or the Ray engine). ``class_ap`` is the per-class mAP50-95 the
    class-difficulty weights use (``None``: no weighting).
    """

    def __init__(self, project: Path, store: Store, predictor: Predictor, cfg: Config, weights: Path,
                 class_ap: list | None) -> None:
        self.project = project
        self.store = store
        self.predictor = predictor
        self.cfg = cfg
        self.weights = weights
        self.class_ap = class_ap
        self.cache: dict[int, Prediction] = {}
        self.failed: dict[int, str] = {}
        """Images the adapter could not read, by id: the reason it gave."""

    def predict(self, image_rows: Sequence) -> dict[int, Prediction]:
        """Predictions of this cycle's weights for ``image_rows``, by image id (cached)."""
        project = self.project
        by_path = {str(project / r.relpath): r.id for r in image_rows}
        resolved: dict[str, int] = {}
        result = self.predictor.predict(
            self.weights,
            [project / r.relpath for r in image_rows],
            conf=min(self.cfg.score_conf, self.cfg.prelabel_conf),
            iou=self.cfg.iou,
            batch=self.cfg.predict_batch,
            progress=False,
            with_embeddings=True,
        )
        def id_of(path: Path) -> int:
            image_id = by_path.get(str(path))
            if image_id is None:  # an adapter that reports resolved paths
                if not resolved:
                    resolved.update({str(Path(k).resolve()): v for k, v in by_path.items()})
                image_id = resolved.get(str(Path(path).resolve()))
            if image_id is None:
                raise ModelError(f"{path}: the adapter returned a prediction for an image it was not given")
            return image_id

        out = {id_of(p.path): p for p in result.predictions}
        self.failed.update({id_of(path): reason for path, reason in result.failed})
        self.cache.update(out)
        return out

    def score(self, ids: Sequence[int]) -> dict[int, tuple[float, int, int | None]]:
        """``id -> (score, n_boxes, top_class)`` for the predicted images among ``ids``.

        The one place the engine scores: :func:`detal.scoring.score_predictions`
        with the config's measure, aggregation and thresholds.
        """
        ordered = [i for i in ids if i in self.cache]
        scores = score_predictions([self.cache[i] for i in ordered], self.cfg, class_ap=self.class_ap)
        return {i: (s.score, s.n_boxes, s.top_class) for i, s in zip(ordered, scores)}

    def embeddings_of(self, ids: Sequence[int]) -> list:
        """The embedding of each id's prediction this cycle (``None`` where there is none)."""
        return [getattr(self.cache.get(i), "embedding", None) for i in ids]

    def embedder(self, ids: np.ndarray) -> np.ndarray:
        """Embeddings of ``ids`` under this cycle's weights, predicting the ones not seen yet."""
        id_list = ids.tolist()
        todo = [i for i in id_list if i not in self.cache]
        if todo:
            self.predict(self.store.images(todo))
        vectors = self.embeddings_of(id_list)
        missing = [i for i, v in zip(id_list, vectors) if v is None]
        if missing:
            raise ModelError(
                f"{self.project}: no embedding for {len(missing)} image(s) (e.g. id {missing[0]}); "
                "the model adapter gives none, or the image could not be read"
            )
        return np.stack(vectors).astype(np.float32)
