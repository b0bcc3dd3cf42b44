"""Starting weights that ship with detal: YOLOv8n pretrained on printed letters (no digit seen).

Users of a detector start from pretrained weights (COCO's, usually), and
nothing may be downloaded here, so detal ships a stand-in made offline by
``benchmarks/pretrain_glyphs.py`` (letters-det: printed capital letters
A-Z in OpenCV's Hershey fonts on digits-det's noisy background). They know
what a glyph on a noisy background looks like, not what a digit, a car or a
person is: they are the benchmark's and the demo's starting point, not
general-purpose weights. Real users pass their own (``weights: yolov8n.pt``).
Provenance: ``PROVENANCE.md`` beside this file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["GLYPHS", "GLYPHS_SHA256", "sha256_of"]

GLYPHS = Path(__file__).with_name("glyphs-yolov8n.pt")
GLYPHS_SHA256 = "b0ded3a501ce76dde164507b9e5d820f1a39964862f2cf16627a3d8140b5b835"


def sha256_of(path: str | Path) -> str:
    """The file's SHA-256, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
