"""The predictor's postprocess stage: Ultralytics' NMS, boxes rescaled, full class vectors kept.

NMS runs with ``return_idxs=True``, so the anchor behind every kept box is
known; the box's class-probability vector (and, asked for, its DFL logits)
are read at that anchor from the head's output. Boxes are rescaled to the
original image with Ultralytics' ``scale_boxes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from detal.detections import Detections, Prediction
from detal.ultra.preprocess import Item

__all__ = ["postprocess"]


def postprocess(
    group: Sequence[Item],
    batch: Any,
    raw: Any,
    conf: float,
    iou: float,
    *,
    reg_max: int,
    dfl: Any = None,
    embeddings: np.ndarray | None = None,
) -> list[tuple[int, Prediction]]:
    """``(input index, Prediction)`` for each image of ``group``, from one forward pass.

    ``raw`` is the head's decoded output ``(B, 4 + nc, anchors)`` for ``batch``;
    ``dfl`` its box-branch logits ``(B, 4 * reg_max, anchors)`` or ``None``;
    ``embeddings`` one row per image or ``None``.
    """
    import torch
    from ultralytics.utils import nms, ops

    nc = int(raw.shape[1]) - 4
    out = []
    for b, it in enumerate(group):
        # NMS gets a copy (it may rewrite boxes in place); class scores are read from `raw`.
        kept, idx = nms.non_max_suppression(raw[b : b + 1].clone(), conf, iou, max_det=300, return_idxs=True)
        det = kept[0]
        keep = idx[0].view(-1).long()
        embedding = None if embeddings is None else embeddings[b]
        if det.shape[0] == 0:
            empty = Detections.empty(nc, reg_max if dfl is not None else None)
            out.append((it.index, Prediction(it.path, it.shape[1], it.shape[0], empty, embedding=embedding)))
            continue
        boxes = ops.scale_boxes(batch.shape[2:], det[:, :4].clone(), it.shape)
        probs = raw[b, 4 : 4 + nc][:, keep].T
        parts = [boxes, det[:, 4:6], probs]
        if dfl is not None:
            parts.append(dfl[b][:, keep].T)  # (k, 4 * reg_max)
        # One device-to-host copy: [x1 y1 x2 y2 | conf class | C probabilities | DFL logits].
        rows = torch.cat(parts, dim=1).cpu().numpy()
        detections = Detections(
            xyxy=rows[:, :4],
            class_id=rows[:, 5].astype(np.int64),
            confidence=rows[:, 4],
            class_probs=rows[:, 6 : 6 + nc],
            dfl=None if dfl is None else rows[:, 6 + nc :].reshape(-1, 4, reg_max),
        )
        out.append((it.index, Prediction(it.path, it.shape[1], it.shape[0], detections, embedding=embedding)))
    return out
