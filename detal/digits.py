"""digits-det: a small object-detection benchmark built from real handwriting.

The source is scikit-learn's bundled copy of the UCI handwritten digits
(:func:`sklearn.datasets.load_digits`: 1,797 samples of 8x8 pixels, written
by 43 people), so it builds offline in seconds. Every canvas is a grey
``imgsz x imgsz`` image holding 1 to 6 digits of varying size and aspect,
upscaled with cubic interpolation, that never overlap, on a noisy background
with some clutter: strokes, arcs and blobs that are not digits. There are 10
classes, ``0`` to ``9``.

The pool and the validation split draw from **disjoint** sets of source
samples: the 1,797 indices are shuffled and split first, so no handwriting
sample appears in both. Everything depends on ``seed`` only, through one
:class:`numpy.random.Generator`.

Layout (Ultralytics)::

    out/data.yaml            path, train: images/pool, val: images/val, names
    out/images/pool/*.png    out/labels/pool/*.txt
    out/images/val/*.png     out/labels/val/*.txt
    out/sources.json         the source sample indices of each split
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from detal.errors import DataError
from detal.files import atomic_write, check_out_dir

__all__ = [
    "MAX_IMGSZ",
    "PRESETS",
    "Canvas",
    "DigitsSpec",
    "build_digits",
    "render_canvas",
    "split_sources",
    "write_canvases",
]

N_CLASSES = 10
NAMES = [str(i) for i in range(N_CLASSES)]


MAX_IMGSZ = 4096
"""The largest canvas side: a 4096 px canvas is 128 MiB of float64 while it is drawn."""


@dataclass(frozen=True)
class DigitsSpec:
    """What to build. Digit sizes are given for a 128 px canvas and scale with ``imgsz``."""

    pool: int = 2000
    val: int = 400
    imgsz: int = 128
    seed: int = 0
    min_digits: int = 1
    max_digits: int = 6
    min_size: int = 14
    max_size: int = 40
    val_source_fraction: float = 0.2

    def __post_init__(self) -> None:
        if self.pool < 1 or self.val < 1:
            raise DataError(f"digits: --pool and --val must be >= 1, got {self.pool} and {self.val}")
        if not 32 <= self.imgsz <= MAX_IMGSZ:
            raise DataError(f"digits: --imgsz must be from 32 to {MAX_IMGSZ} pixels, got {self.imgsz}")
        if not 1 <= self.min_digits <= self.max_digits:
            raise DataError("digits: need 1 <= min_digits <= max_digits")
        if not 0.0 < self.val_source_fraction < 1.0:
            raise DataError("digits: val_source_fraction must lie in (0, 1)")


# Named variants of digits-det. "hard": more, smaller digits per canvas (3-10 of 9-24 px at 128 px,
# against 1-6 of 14-40), so that a detector needs many more labeled images before its curve flattens:
# at 150 images the standard set is flat from about 60 labeled images (benchmarks/RESULTS.md).
PRESETS: dict[str, dict[str, int]] = {
    "standard": {},
    "hard": {"min_digits": 3, "max_digits": 10, "min_size": 9, "max_size": 24},
}


@dataclass(frozen=True)
class Canvas:
    """One rendered image and its boxes: ``xyxy`` in pixels (x2, y2 exclusive) and classes."""

    image: np.ndarray  # (imgsz, imgsz) uint8
    xyxy: np.ndarray  # (n, 4) int
    class_id: np.ndarray  # (n,) int
    sources: np.ndarray  # (n,) index into load_digits


def _load_source() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images.astype(np.float32) / 16.0, digits.target.astype(np.int64)


def split_sources(n_samples: int, val_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle ``range(n_samples)`` and split it into disjoint (pool, val) index sets."""
    perm = rng.permutation(n_samples)
    n_val = max(1, round(val_fraction * n_samples))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _overlaps(box: tuple[int, int, int, int], boxes: list[tuple[int, int, int, int]], gap: int) -> bool:
    x1, y1, x2, y2 = box
    for a1, b1, a2, b2 in boxes:
        if x1 < a2 + gap and a1 < x2 + gap and y1 < b2 + gap and b1 < y2 + gap:
            return True
    return False


def _clutter(canvas: np.ndarray, rng: np.random.Generator) -> None:
    """Draw strokes, arcs and blobs that are not digits (in place)."""
    s = canvas.shape[0]
    for _ in range(int(rng.integers(0, 4))):
        kind = int(rng.integers(0, 3))
        color = float(rng.uniform(0.25, 0.8))
        thick = int(rng.integers(1, max(2, s // 48) + 1))
        if kind == 0:  # a straight stroke
            p1 = tuple(int(v) for v in rng.integers(0, s, 2))
            length = rng.uniform(0.1, 0.4) * s
            angle = rng.uniform(0, np.pi)
            p2 = (int(p1[0] + length * np.cos(angle)), int(p1[1] + length * np.sin(angle)))
            cv2.line(canvas, p1, p2, color, thick, lineType=cv2.LINE_AA)
        elif kind == 1:  # a partial arc
            center = tuple(int(v) for v in rng.integers(0, s, 2))
            axes = tuple(int(v) for v in rng.integers(max(2, s // 32), max(3, s // 8), 2))
            start = float(rng.uniform(0, 360))
            cv2.ellipse(canvas, center, axes, float(rng.uniform(0, 180)), start,
                        start + float(rng.uniform(60, 200)), color, thick, lineType=cv2.LINE_AA)
        else:  # a soft blob
            center = tuple(int(v) for v in rng.integers(0, s, 2))
            radius = int(rng.integers(max(1, s // 64), max(2, s // 16) + 1))
            cv2.circle(canvas, center, radius, color * 0.7, -1, lineType=cv2.LINE_AA)


def render_canvas(
    images: np.ndarray, targets: np.ndarray, allowed: np.ndarray, spec: DigitsSpec, rng: np.random.Generator
) -> Canvas:
    """Render one canvas from the source samples in ``allowed``."""
    s = spec.imgsz
    scale = s / 128.0
    lo, hi = max(6, round(spec.min_size * scale)), max(7, round(spec.max_size * scale))
    canvas = np.full((s, s), rng.uniform(0.0, 0.25), dtype=np.float32)
    # a gentle illumination gradient
    gx, gy = rng.uniform(-0.1, 0.1, 2)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
    canvas += gx * xx + gy * yy
    _clutter(canvas, rng)

    n_want = int(rng.integers(spec.min_digits, spec.max_digits + 1))
    boxes: list[tuple[int, int, int, int]] = []
    classes: list[int] = []
    sources: list[int] = []
    for _ in range(n_want):
        src = int(allowed[rng.integers(0, allowed.size)])
        h = int(rng.integers(lo, hi + 1))
        w = max(5, round(h * rng.uniform(0.7, 1.0)))
        patch = cv2.resize(images[src], (w, h), interpolation=cv2.INTER_CUBIC)
        patch = np.clip(patch, 0.0, 1.0)
        ink = patch > 0.25
        if not ink.any():
            continue
        rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
        patch = patch[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        ph, pw = patch.shape
        for _attempt in range(40):
            x1, y1 = int(rng.integers(0, s - pw + 1)), int(rng.integers(0, s - ph + 1))
            box = (x1, y1, x1 + pw, y1 + ph)
            if not _overlaps(box, boxes, gap=2):
                break
        else:
            continue
        contrast = float(rng.uniform(0.55, 1.0))
        region = canvas[y1:y1 + ph, x1:x1 + pw]
        np.maximum(region, patch * contrast, out=region)
        boxes.append(box)
        classes.append(int(targets[src]))
        sources.append(src)

    canvas += rng.normal(0.0, rng.uniform(0.02, 0.08), canvas.shape).astype(np.float32)
    image = (np.clip(canvas, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return Canvas(
        image=image,
        xyxy=np.asarray(boxes, dtype=np.int64).reshape(-1, 4),
        class_id=np.asarray(classes, dtype=np.int64),
        sources=np.asarray(sources, dtype=np.int64),
    )


def canvas_label_text(canvas: Canvas) -> str:
    """The YOLO label file of a canvas (``class cx cy w h``, normalised)."""
    s = canvas.image.shape[0]
    lines = []
    for (x1, y1, x2, y2), c in zip(canvas.xyxy, canvas.class_id):
        cx, cy, w, h = (x1 + x2) / 2 / s, (y1 + y2) / 2 / s, (x2 - x1) / s, (y2 - y1) / s
        lines.append(f"{int(c)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")


def build_digits(out: str | Path, spec: DigitsSpec = DigitsSpec()) -> Path:
    """Write the dataset under ``out`` and return the path of its ``data.yaml``."""
    out = check_out_dir(Path(out))
    try:
        return _build(out, spec)
    except OSError as exc:
        raise DataError(f"{exc.filename or out}: cannot write the dataset ({exc.strerror})") from None


def _build(out: Path, spec: DigitsSpec) -> Path:
    images, targets = _load_source()
    rng = np.random.default_rng(spec.seed)
    pool_src, val_src = split_sources(len(images), spec.val_source_fraction, rng)
    header = ("# digits-det: built by `detal data digits` from sklearn's UCI handwritten digits\n"
              f"# pool={spec.pool} val={spec.val} imgsz={spec.imgsz} seed={spec.seed} digits={spec.min_digits}-"
              f"{spec.max_digits} size={spec.min_size}-{spec.max_size}\n")
    return write_canvases(out, spec, images, targets, pool_src, val_src, NAMES, header, rng)


def write_canvases(
    out: Path, spec: DigitsSpec, images: np.ndarray, targets: np.ndarray, pool_src: np.ndarray,
    val_src: np.ndarray, names: list[str], header: str, rng: np.random.Generator,
) -> Path:
    """Render and write both splits (Ultralytics layout) and ``data.yaml``; returns its path.

    ``pool_src`` / ``val_src`` index the source patches each split draws
    from (uniformly, so a repeated index is drawn more often).
    """
    for split, count, allowed in (("pool", spec.pool, pool_src), ("val", spec.val, val_src)):
        img_dir, lbl_dir = out / "images" / split, out / "labels" / split
        img_dir.mkdir(parents=True, exist_ok=True)
        lbl_dir.mkdir(parents=True, exist_ok=True)
        for old in list(img_dir.glob("*.png")) + list(lbl_dir.glob("*.txt")):
            old.unlink()
        width = len(str(count - 1))
        for i in range(count):
            canvas = render_canvas(images, targets, allowed, spec, rng)
            stem = f"{split}_{i:0{width}d}"
            if not cv2.imwrite(str(img_dir / f"{stem}.png"), canvas.image):
                raise DataError(f"{img_dir / stem}.png: could not write image")
            (lbl_dir / f"{stem}.txt").write_text(canvas_label_text(canvas))
    (out / "sources.json").write_text(
        json.dumps({"seed": spec.seed, "pool": np.asarray(pool_src).tolist(), "val": np.asarray(val_src).tolist()})
    )
    data = {
        "path": str(out.resolve()),
        "train": "images/pool",
        "val": "images/val",
        "names": {i: n for i, n in enumerate(names)},
    }
    yaml_path = out / "data.yaml"
    atomic_write(yaml_path, header + yaml.safe_dump(data, sort_keys=False))
    return yaml_path
