"""The Python API of ``detal score``: the uncertainty of every image in a folder, as a CSV.

:func:`score_images` predicts and scores; :func:`write_scores_csv` and
:func:`write_embeddings` write what it returns. The CSV has one row per
readable image, in path order, with the columns ``path, score, n_boxes,
top_class``: ``n_boxes`` counts the boxes with confidence >= ``score_conf``
(the ones that make up the score), and ``top_class`` is the class id of the
most confident of them (empty when there is none). When the measure is a
weighted mix (``binary_entropy=1,localization=1``), one column
``score_<measure>`` per measure follows: that measure alone, aggregated the
same way. The embeddings file holds each image's embedding (``paths``,
``embeddings`` float16 ``(n, d)``), read in the same forward pass.

``class_weighting: difficulty`` needs per-class AP from an evaluation; without
``class_ap`` every class weight is 1.

The predictions are computed by the engine the config's ``scoring`` block
names (:mod:`detal.engines`): this process, or a Ray cluster; the scores are
computed here from what it returns, the same way for both. The local engine
predicts and scores :data:`SCORE_CHUNK` images at a time and keeps only a
:class:`~detal.scoring.ScoreTable` of each chunk (scores, top classes,
embeddings when asked), so a pass holds no more than one chunk's predictions;
the Ray engine gets the whole list in one call, since each call starts its
pool of actors (and loads the model in each) again.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from detal.config import Config
from detal.engines import AdapterFactory, Predictor, open_engine
from detal.errors import DataError, ModelError, disk_full
from detal.files import atomic_write, check_out_file, removed_on_failure
from detal.scoring import ImageScore, ScoreTable, score_predictions
from detal.uncertainty import measure_weights, needs_dfl

__all__ = ["CSV_COLUMNS", "SCORE_CHUNK", "score_images", "score_pass", "write_embeddings", "write_scores_csv"]

CSV_COLUMNS = ("path", "score", "n_boxes", "top_class")

SCORE_CHUNK = 4096
"""Images predicted, then scored, before their predictions are dropped (the local engine)."""


def score_images(
    weights: Path,
    images: Sequence[Path],
    cfg: Config,
    *,
    progress: bool = True,
    embeddings: bool = False,
    class_ap: Sequence[float | None] | None = None,
    worker_adapter: AdapterFactory | None = None,
) -> tuple[ScoreTable, list[tuple[Path, str]]]:
    """Predict with ``weights`` and score each image with ``cfg``'s measure and aggregation.

    Boxes are predicted at ``cfg.score_conf`` (lower ones would not count),
    NMS at ``cfg.iou``, ``cfg.predict_batch`` images per forward pass. DFL
    logits are read when the measure needs them; ``embeddings`` fills
    :attr:`ImageScore.embedding`. ``class_ap`` feeds ``class_weighting``.
    With ``scoring.engine: ray``, Ray workers build their adapters with
    ``worker_adapter(cfg)`` (default :func:`detal.adapter.make_adapter`).
    Returns the scores in input order (a :class:`~detal.scoring.ScoreTable`, a
    sequence of :class:`ImageScore`) and the images that could not be read.
    """
    from detal.adapter import make_adapter

    weights = Path(weights)
    if not weights.is_file():
        raise ModelError(f"{weights}: weights file not found")
    with open_engine(cfg, make_adapter(cfg), worker_adapter=worker_adapter) as predictor:
        chunk = SCORE_CHUNK if cfg.scoring["engine"] == "local" else max(1, len(images))
        return score_pass(
            predictor, weights, images, cfg, progress=progress, embeddings=embeddings, class_ap=class_ap, chunk=chunk
        )


def score_pass(
    predictor: Predictor,
    weights: Path,
    images: Sequence[Path],
    cfg: Config,
    *,
    progress: bool = True,
    embeddings: bool = False,
    class_ap: Sequence[float | None] | None = None,
    chunk: int = SCORE_CHUNK,
) -> tuple[ScoreTable, list[tuple[Path, str]]]:
    """Predict ``images`` with ``predictor`` ``chunk`` at a time, score each chunk, keep only its scores.

    The scores equal :func:`~detal.scoring.score_predictions` over one
    prediction of the whole list: each image is scored alone, and ``chunk`` is
    rounded down to a multiple of ``cfg.predict_batch`` (at least one batch),
    so every forward pass sees the same images as in one whole pass. Returns the
    table in input order and the images that could not be read.
    """
    step = max(1, chunk // cfg.predict_batch) * cfg.predict_batch  # the whole pass's batches, unchanged
    table = ScoreTable(len(images), list(measure_weights(cfg.measure)), embeddings=embeddings)
    failed: list[tuple[Path, str]] = []
    for start in range(0, len(images), step):
        result = predictor.predict(
            weights,
            images[start : start + step],
            conf=cfg.score_conf,
            iou=cfg.iou,
            batch=cfg.predict_batch,
            progress=progress,
            with_dfl=needs_dfl(cfg.measure),
            with_embeddings=embeddings,
        )
        failed.extend(result.failed)
        table.add(score_predictions(result.predictions, cfg, class_ap=class_ap))
        del result  # this chunk's predictions, before the next chunk is predicted
    return table, failed


def write_scores_csv(scores: Sequence[ImageScore], out: Path, measure: object = None) -> Path:
    """Write ``scores`` as CSV (``path, score, n_boxes, top_class``) to ``out``.

    With a mix as ``measure``, a ``score_<name>`` column per measure follows.
    """
    out = check_out_file(out, "CSV file")
    parts = list(measure_weights(measure)) if isinstance(measure, dict) else []
    if len(parts) < 2:
        parts = []
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{out}: cannot create its folder ({exc.strerror})") from None
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow([*CSV_COLUMNS, *(f"score_{name}" for name in parts)])
    for s in scores:
        top = "" if s.top_class is None else s.top_class
        columns = (f"{s.components[n]:.6f}" for n in parts)
        writer.writerow([str(s.path), f"{s.score:.6f}", s.n_boxes, top, *columns])
    try:
        atomic_write(out, buf.getvalue())
    except OSError as exc:  # atomic_write has removed its temporary file
        raise disk_full(exc, out, name_file=False) or DataError(f"{out}: cannot write ({exc.strerror})") from None
    return out


def write_embeddings(scores: Sequence[ImageScore], out: Path) -> Path:
    """Save the images' embeddings as ``.npz``: ``paths`` (str) and ``embeddings`` float16 ``(n, d)``."""
    import numpy as np

    out = Path(out)
    if out.suffix != ".npz":
        raise DataError(f"{out}: the embeddings file must end in .npz")
    missing = [] if isinstance(scores, ScoreTable) and scores.embeddings is not None else [
        str(s.path) for s in scores if s.embedding is None
    ]
    if missing:
        raise ModelError(f"{missing[0]}: no embedding was computed")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    paths = np.array([str(s.path) for s in scores])
    stacked = scores.embeddings[: len(scores)] if isinstance(scores, ScoreTable) else None
    if stacked is None:
        stacked = np.stack([s.embedding for s in scores])
    try:
        with removed_on_failure(tmp):
            np.savez(tmp, paths=paths, embeddings=stacked)
            tmp.replace(out)
    except OSError as exc:
        raise disk_full(exc, out, name_file=False) or DataError(f"{out}: cannot write ({exc.strerror})") from None
    return out
