"""The predictor's forward stage: the network loaded for inference, and one batched pass.

:func:`load_model` loads a checkpoint as Ultralytics' predictor does (fused,
float32, eval, no gradients), kept NHWC in memory; :func:`forward` runs it on
a group of letterboxed images of one shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detal.errors import ModelError
from detal.ultra.log import first_line
from detal.ultra.preprocess import Item

__all__ = ["Loaded", "forward", "load_model"]


@dataclass(frozen=True)
class Loaded:
    """A detection model ready for :func:`forward`, with what preprocessing needs of it."""

    model: Any  # torch.nn.Module, fused, eval, float32
    device: Any  # torch.device
    stride: int
    imgsz: tuple[int, int]
    reg_max: int  # DFL bins per box side of the Detect head; 1 means no DFL


def load_model(weights: Path, device: str, imgsz: int) -> Loaded:
    """Load ``weights`` on ``device`` (``auto``: Ultralytics picks) for images of ``imgsz``.

    A checkpoint that is not a detection model is a :class:`ModelError`. An
    end-to-end head is switched to its one-to-many branch, followed by NMS,
    as ``YOLO.predict`` does by default.
    """
    import torch
    from ultralytics.nn.tasks import load_checkpoint
    from ultralytics.utils.checks import check_imgsz
    from ultralytics.utils.torch_utils import select_device

    dev = select_device("" if device == "auto" else device, verbose=False)
    try:
        model, _ = load_checkpoint(str(weights), device=dev)
    except Exception as exc:
        raise ModelError(f"{weights}: cannot load weights ({first_line(exc)})") from exc
    if not hasattr(model, "stride") or getattr(model, "task", "detect") != "detect":
        raise ModelError(f"{weights}: not a detection model (task {getattr(model, 'task', '?')!r})")
    if hasattr(model, "end2end"):
        model.end2end = False  # one-to-many head + NMS, as YOLO.predict does by default
    model = model.fuse(verbose=False).to(dev).float().eval()
    # NHWC convolutions are faster on CPU (oneDNN) and CUDA; outputs agree with the
    # default layout to float rounding (tested against YOLO.predict).
    model = model.to(memory_format=torch.channels_last)
    for p in model.parameters():
        p.requires_grad = False
    stride = max(int(model.stride.max()), 32)
    h, w = check_imgsz(imgsz, stride=stride, min_dim=2)
    reg_max = int(getattr(model.model[-1], "reg_max", 1) or 1)
    return Loaded(model, dev, stride, (int(h), int(w)), reg_max)


def forward(loaded: Loaded, group: Sequence[Item]) -> tuple[Any, Any]:
    """The input batch and the model's output for images of one letterboxed shape.

    Call it under ``torch.inference_mode()``. The batch is BCHW RGB float in
    ``[0, 1]`` (kept NHWC in memory); the output is the Detect head's, as
    :mod:`detal.ultra.heads` reads it.
    """
    import torch

    # BHWC BGR uint8 -> BCHW RGB float in [0, 1], kept NHWC in memory (channels_last).
    batch = torch.from_numpy(np.stack([it.image[..., ::-1] for it in group])).to(loaded.device)
    batch = batch.permute(0, 3, 1, 2).float().div_(255)
    return batch, loaded.model(batch)
