"""shapes-lt: small, dense, long-tailed geometric shapes; a second benchmark that is not digits-det.

Eight classes of filled or outlined shapes drawn with OpenCV: ``disc``,
``ring``, ``triangle``, ``square``, ``pentagon``, ``hexagon``, ``star`` and
``plus``. Three things make it unlike digits-det:

- **long-tailed**: class ``c`` (in that order) is drawn with probability
  proportional to ``1 / (c + 1) ** zipf`` (``zipf`` 1.2 by default: the
  commonest class is about 12 times as frequent as the rarest), as real
  datasets are;
- **small and dense**: 4 to 12 objects of 8 to 22 px on a 128 px canvas
  (digits-det: 1 to 6 of 14 to 40 px);
- **near neighbours**: pentagon, hexagon and disc differ by a few pixels at
  that size, square and plus share an outline, star and plus their spokes.

Each shape is first rendered as a bank of source patches (rotation, aspect,
outline width, filled or not), and the pool and validation splits draw from
disjoint halves of that bank, as digits-det's splits draw from disjoint
handwriting samples. The canvases (background, illumination, clutter, noise)
come from :func:`detal.digits.render_canvas`. Deterministic per seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detal.digits import DigitsSpec, write_canvases
from detal.errors import DataError
from detal.files import check_out_dir

__all__ = ["NAMES", "ShapesSpec", "build_shapes", "class_weights", "shape_bank"]

NAMES = ["disc", "ring", "triangle", "square", "pentagon", "hexagon", "star", "plus"]
_VARIANTS = 48  # source patches per class (half for the pool, half for val)
_SIDE = 32  # source patch size before scaling onto the canvas


@dataclass(frozen=True)
class ShapesSpec:
    """What to build. Sizes are given for a 128 px canvas and scale with ``imgsz``."""

    pool: int = 1000
    val: int = 400
    imgsz: int = 128
    seed: int = 0
    min_objects: int = 4
    max_objects: int = 12
    min_size: int = 8
    max_size: int = 22
    zipf: float = 1.2

    def __post_init__(self) -> None:
        if self.zipf < 0:
            raise DataError(f"shapes: zipf must be >= 0, got {self.zipf}")

    def canvas_spec(self) -> DigitsSpec:
        """The canvas settings, in the renderer's terms (validated there)."""
        return DigitsSpec(pool=self.pool, val=self.val, imgsz=self.imgsz, seed=self.seed,
                          min_digits=self.min_objects, max_digits=self.max_objects,
                          min_size=self.min_size, max_size=self.max_size)


def class_weights(zipf: float, n: int = len(NAMES)) -> np.ndarray:
    """Drawing probabilities of the classes: ``1 / (c + 1) ** zipf``, normalised."""
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** zipf
    return w / w.sum()


def _polygon(n: int, radius: float, angle: float, inner: float | None = None) -> np.ndarray:
    """Vertices of a regular ``n``-gon (or an ``n``-pointed star with ``inner`` radius ratio)."""
    c = _SIDE / 2.0
    pts = []
    steps = 2 * n if inner is not None else n
    for i in range(steps):
        r = radius * (inner if inner is not None and i % 2 else 1.0)
        a = angle + 2.0 * np.pi * i / steps
        pts.append((c + r * np.sin(a), c - r * np.cos(a)))
    return np.round(np.asarray(pts) * 16).astype(np.int32)  # 4 fractional bits for cv2's shift


def _draw(cls: int, rng: np.random.Generator) -> np.ndarray:
    patch = np.zeros((_SIDE, _SIDE), np.float32)
    radius = _SIDE * 0.42
    angle = float(rng.uniform(-0.35, 0.35))  # small rotations: a square stays a square, not a diamond
    filled = bool(rng.random() < 0.6) and cls != 1  # a ring is always an outline
    thick = -1 if filled else int(rng.integers(2, 4))
    shift, aa = 4, cv2.LINE_AA
    c = (int(_SIDE / 2 * 16), int(_SIDE / 2 * 16))
    if cls in (0, 1):  # disc, ring
        r = int(radius * 16)
        cv2.circle(patch, c, r, 1.0, -1 if cls == 0 else int(rng.integers(2, 4)), aa, shift)
    elif cls == 7:  # plus: two bars
        half, bar = radius, radius * float(rng.uniform(0.28, 0.4))
        for w, h in ((half, bar), (bar, half)):
            box = np.asarray([(-w, -h), (w, -h), (w, h), (-w, h)])
            rot = np.asarray([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            pts = np.round((box @ rot.T + _SIDE / 2.0) * 16).astype(np.int32)
            cv2.fillPoly(patch, [pts], 1.0, aa, shift) if filled else cv2.polylines(patch, [pts], True, 1.0, thick, aa, shift)
    else:
        n, inner = {2: (3, None), 3: (4, None), 4: (5, None), 5: (6, None), 6: (5, 0.45)}[cls]
        pts = _polygon(n, radius, angle + (np.pi / 4 if cls == 3 else 0.0), inner)
        if filled:
            cv2.fillPoly(patch, [pts], 1.0, aa, shift)
        else:
            cv2.polylines(patch, [pts], True, 1.0, thick, aa, shift)
    # an aspect change within 0.8-1.0, so shapes vary as handwriting does
    sx = float(rng.uniform(0.8, 1.0))
    w = max(8, round(_SIDE * sx))
    return cv2.resize(patch, (w, _SIDE), interpolation=cv2.INTER_AREA)


def shape_bank(seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """``_VARIANTS`` source patches per class, and their classes."""
    rng = np.random.default_rng([seed, 8])
    patches, targets = [], []
    for cls in range(len(NAMES)):
        for _ in range(_VARIANTS):
            patches.append(_draw(cls, rng))
            targets.append(cls)
    return patches, np.asarray(targets, dtype=np.int64)


def _weighted_sources(indices: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Repeat each source index so that a uniform draw picks class ``c`` with probability ``weights[c]``."""
    reps = np.round(weights / weights.min() * 4).astype(int)  # the rarest class gets 4 copies a source
    return np.concatenate([np.repeat(indices[targets[indices] == c], reps[c]) for c in range(weights.size)])


def build_shapes(out: str | Path, spec: ShapesSpec = ShapesSpec()) -> Path:
    """Write the dataset under ``out`` (Ultralytics layout, as :mod:`detal.digits`); returns ``data.yaml``."""
    out = check_out_dir(Path(out))
    canvas = spec.canvas_spec()
    patches, targets = shape_bank(spec.seed)
    rng = np.random.default_rng(spec.seed)
    # disjoint halves of every class's variants for pool and val
    pool_idx, val_idx = [], []
    for c in range(len(NAMES)):
        idx = rng.permutation(np.flatnonzero(targets == c))
        pool_idx.append(idx[: _VARIANTS // 2])
        val_idx.append(idx[_VARIANTS // 2:])
    weights = class_weights(spec.zipf)
    pool_src = _weighted_sources(np.sort(np.concatenate(pool_idx)), targets, weights)
    val_src = _weighted_sources(np.sort(np.concatenate(val_idx)), targets, weights)
    images = _stack(patches)
    header = ("# shapes-lt: built by `detal data shapes` (long-tailed, small, dense geometric shapes)\n"
              f"# pool={spec.pool} val={spec.val} imgsz={spec.imgsz} seed={spec.seed} zipf={spec.zipf} "
              f"objects={spec.min_objects}-{spec.max_objects} size={spec.min_size}-{spec.max_size}\n")
    try:
        return write_canvases(out, canvas, images, targets, pool_src, val_src, NAMES, header, rng)
    except OSError as exc:
        raise DataError(f"{exc.filename or out}: cannot write the dataset ({exc.strerror})") from None


def _stack(patches: list[np.ndarray]) -> np.ndarray:
    """One array of patches, each left in the top-left corner of a ``_SIDE`` square (ink-cropped later)."""
    out = np.zeros((len(patches), _SIDE, _SIDE), np.float32)
    for i, p in enumerate(patches):
        out[i, : p.shape[0], : p.shape[1]] = p
    return out
