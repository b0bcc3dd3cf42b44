"""The Python API of ``detal prelabel``: pre-label any folder of images with trained weights.

:func:`prelabel` predicts with a :class:`~detal.adapter.ModelAdapter`, scores
every image (for Label Studio's prediction score), and writes the formats
asked for with :func:`detal.export.export_predictions`. No project is needed.
Images that cannot be read are returned, not written; if none can be read, it
fails. :func:`names_from_weights` reads the class names stored in the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from detal.adapter import ModelAdapter
from detal.config import Config
from detal.errors import DataError
from detal.scoring import score_predictions

__all__ = ["names_from_weights", "prelabel"]


def names_from_weights(adapter: ModelAdapter, weights: Path) -> list[str]:
    """The class names stored in ``weights`` (empty if it stores none)."""
    return [str(n) for n in adapter.class_names(weights)]


def prelabel(
    adapter: ModelAdapter,
    weights: Path,
    images: Sequence[Path],
    out_dir: Path,
    names: Sequence[str],
    cfg: Config,
    formats: Sequence[str] = ("yolo",),
    *,
    with_confidence: bool = False,
    progress: bool = True,
) -> tuple[dict[str, Path], list[tuple[Path, str]]]:
    """Predict, score and export; returns ``format -> path`` and the unreadable images.

    Boxes with confidence >= ``cfg.prelabel_conf`` become pre-labels; the
    image uncertainty (``cfg.measure``/``cfg.aggregate`` over boxes >=
    ``cfg.score_conf``) sets Label Studio's prediction score.
    """
    from detal.export import export_predictions, normalize_uncertainty, parse_formats

    formats = parse_formats(formats)
    result = adapter.predict(
        Path(weights),
        list(images),
        conf=min(cfg.prelabel_conf, cfg.score_conf),
        iou=cfg.iou,
        batch=cfg.predict_batch,
        progress=progress,
    )
    preds = result.predictions
    if not preds:
        raise DataError(f"none of the {len(images)} images could be read")
    # Every prediction knows the model's class count, boxes or not (0: the adapter cannot tell).
    widths = {p.detections.n_classes for p in preds} - {0}
    if widths and widths != {len(names)}:
        raise DataError(
            f"{weights}: the model predicts {', '.join(map(str, sorted(widths)))} classes "
            f"but {len(names)} class names were given"
        )
    scores = normalize_uncertainty({s.path.name: s.score for s in score_predictions(preds, cfg)})
    written = export_predictions(
        preds,
        names,
        out_dir,
        formats,
        scores=scores,
        with_confidence=with_confidence,
        conf=cfg.prelabel_conf,
    )
    return written, result.failed
