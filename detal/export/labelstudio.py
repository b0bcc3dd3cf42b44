"""``label-studio``: tasks with predictions, and the labeling config they match.

::

    label-studio/
      tasks.json     one task per image, each with one prediction
      config.xml     <View><Image name=to_name value="$image"/><RectangleLabels ...>
      images/<image> (unless copy_images=False)

Each task is ``{"data": {"image": "images/<name>"}, "predictions": [...]}``;
point ``data.image`` at your storage (for example a local-files URL) when
importing. The prediction carries:

* ``model_version``: detal's cycle id (``"prelabel"`` outside a cycle);
* ``score``: 1 minus the image's normalised uncertainty, so that Label
  Studio, which sorts by prediction score ascending, shows the most uncertain
  images first. Left out when no uncertainty is known;
* ``result``: one ``rectanglelabels`` region per box, in percent of the image
  (``x``, ``y``, ``width``, ``height``, top-left origin, ``rotation = 0``),
  with ``original_width`` / ``original_height`` in pixels and the box's own
  ``score`` (its confidence).

``from_name`` and ``to_name`` are the names of the ``RectangleLabels`` control
and of the ``Image`` object in the config (defaults ``label`` and ``image``).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from detal.errors import DataError
from detal.export.common import ImageLabels
from detal.export.options import WriteOptions, copy_images, write_json

__all__ = ["check", "check_tag_names", "labeling_config", "normalize_uncertainty", "tasks", "write"]


def check_tag_names(from_name: str, to_name: str) -> None:
    for what, value in (("from_name", from_name), ("to_name", to_name)):
        if not isinstance(value, str) or not value.strip() or any(ch.isspace() for ch in value):
            raise DataError(f"label-studio {what} must be a non-empty name without spaces, got {value!r}")
    if from_name == to_name:
        raise DataError(f"label-studio from_name and to_name must differ, both are {from_name!r}")


def labeling_config(names: Sequence[str], from_name: str = "label", to_name: str = "image") -> str:
    """The labeling config XML: one Image object, one RectangleLabels control."""
    view = ET.Element("View")
    ET.SubElement(view, "Image", {"name": to_name, "value": f"${to_name}", "zoom": "true"})
    control = ET.SubElement(view, "RectangleLabels", {"name": from_name, "toName": to_name})
    for n in names:
        ET.SubElement(control, "Label", {"value": str(n)})
    ET.indent(view)
    return ET.tostring(view, encoding="unicode") + "\n"


def normalize_uncertainty(scores: Mapping[str, float]) -> dict[str, float]:
    """Map image uncertainties into ``[0, 1]`` for the prediction score.

    Scores already in ``[0, 1]`` (max / mean of normalised entropy, least
    confidence, margin) are kept; when any exceeds 1 (the ``sum`` aggregate)
    all are divided by the largest, which keeps their order.
    """
    values = {k: float(v) for k, v in scores.items()}
    bad = [k for k, v in values.items() if not math.isfinite(v) or v < 0]
    if bad:
        raise DataError(f"uncertainty must be finite and >= 0, got {values[bad[0]]!r} for {bad[0]}")
    top = max(values.values(), default=0.0)
    if top > 1.0:
        values = {k: v / top for k, v in values.items()}
    return values


def _pct(v: float) -> float:
    return round(v * 100.0, 6) + 0.0


def tasks(
    images: Sequence[ImageLabels],
    names: Sequence[str],
    *,
    model_version: str,
    scores: Mapping[str, float] | None = None,
    from_name: str = "label",
    to_name: str = "image",
    image_prefix: str = "images/",
) -> list[dict[str, Any]]:
    """The tasks list (plain dicts), one per image, in input order.

    ``scores`` maps image file names to normalised uncertainty in ``[0, 1]``.
    """
    out = []
    for image in images:
        result = []
        for k, box in enumerate(image.boxes):
            result.append(
                {
                    "id": f"{image.stem}-{k}",
                    "type": "rectanglelabels",
                    "from_name": from_name,
                    "to_name": to_name,
                    "original_width": int(image.width),
                    "original_height": int(image.height),
                    "image_rotation": 0,
                    "value": {
                        "x": _pct(box.cx - box.w / 2),
                        "y": _pct(box.cy - box.h / 2),
                        "width": _pct(box.w),
                        "height": _pct(box.h),
                        "rotation": 0,
                        "rectanglelabels": [str(names[box.class_id])],
                    },
                    "score": round(box.confidence, 6),
                }
            )
        prediction: dict[str, Any] = {"model_version": model_version}
        if scores is not None:
            prediction["score"] = round(1.0 - float(scores[image.name]), 6)
        prediction["result"] = result
        out.append({"data": {to_name: f"{image_prefix}{image.name}"}, "predictions": [prediction]})
    return out


def check(options: WriteOptions) -> None:
    """The registry's check before anything is written (:mod:`detal.export.registry`): the tag names."""
    check_tag_names(options.from_name, options.to_name)


def write(target: Path, images: Sequence[ImageLabels], names: Sequence[str], options: WriteOptions) -> None:
    """The registry's writer (:mod:`detal.export.registry`): ``tasks.json``, ``config.xml`` and the images."""
    target.mkdir()
    write_json(target / "tasks.json", tasks(
        images, names, model_version=options.model_version, scores=options.scores,
        from_name=options.from_name, to_name=options.to_name,
    ))
    (target / "config.xml").write_text(
        labeling_config(names, options.from_name, options.to_name), encoding="utf-8"
    )
    if options.copy_images:
        copy_images(images, target / "images")
