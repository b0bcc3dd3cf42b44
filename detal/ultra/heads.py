"""What detal reads from the Detect head's output: class scores, DFL logits, embeddings.

In inference (not export) the head returns ``(decoded, raw)``: ``decoded`` is
``(B, 4 + nc, anchors)``, boxes then the sigmoid score of every class; ``raw``
holds the box-branch logits ``(B, 4 * reg_max, anchors)`` and the feature maps
the head was given. An end-to-end head nests ``raw`` as
``{"one2many": ..., "one2one": ...}``; detal runs the one-to-many branch
(``end2end = False``). No hook, no second pass.
"""

from __future__ import annotations

from typing import Any

from detal.errors import ModelError

__all__ = ["decoded", "dfl_logits", "embeddings", "head_outputs"]


def decoded(output: Any) -> Any:
    """The decoded predictions ``(B, 4 + nc, anchors)``: boxes, then every class's score."""
    return output[0] if isinstance(output, (list, tuple)) else output


def head_outputs(output: Any) -> dict:
    """The Detect head's raw outputs (``boxes``, ``scores``, ``feats``) from an inference forward."""
    raw = output[1] if isinstance(output, (list, tuple)) and len(output) > 1 else None
    if isinstance(raw, dict) and "one2many" in raw:
        raw = raw["one2many"]
    if not isinstance(raw, dict) or "boxes" not in raw or "feats" not in raw:
        raise ModelError("predict: the model's head does not expose its raw box logits and feature maps")
    return raw


def dfl_logits(output: Any, reg_max: int) -> Any:
    """The box-branch logits ``(B, 4 * reg_max, anchors)``, side-major like Ultralytics' DFL."""
    logits = head_outputs(output)["boxes"]
    if logits.shape[1] != 4 * reg_max or logits.shape[2] != decoded(output).shape[2]:
        raise ModelError(f"predict: unexpected DFL output shape {tuple(logits.shape)}")
    return logits


def embeddings(output: Any) -> Any:
    """One embedding per image: each feature map average-pooled, levels concatenated, L2-normalised.

    A float16 numpy array ``(B, sum of channels)``.
    """
    import torch

    pooled = torch.cat([f.float().mean(dim=(2, 3)) for f in head_outputs(output)["feats"]], dim=1)
    return torch.nn.functional.normalize(pooled, dim=1).half().cpu().numpy()
