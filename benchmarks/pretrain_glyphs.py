"""Initial weights for the benchmark: YOLOv8n pretrained on printed letters, not digits.

    python benchmarks/pretrain_glyphs.py [--out runs/pretrain/glyphs] [--images 2000] [--epochs 30] [--imgsz 128]

Active-learning papers on detection (CALD, PPAL) retrain every cycle from the
same initial weights, an ImageNet- or COCO-pretrained network, and users of
detal start from pretrained weights too. Nothing may be downloaded here, so
this script makes such weights offline: it renders ``letters-det``, canvases
of printed capital letters A-Z (OpenCV's Hershey fonts, several faces, slants
and stroke widths) with the same background, noise and clutter as digits-det
(:func:`detal.digits.render_canvas`), 26 classes, and trains YOLOv8n on it
from scratch. No digit and no handwriting is seen, so the weights know what a
glyph on a noisy background looks like, not which digit it is; the
benchmark's cycles fine-tune them to digits-det's 10 classes (Ultralytics
transfers every layer but the class outputs).

Writes ``OUT/data`` (the dataset), ``OUT/train`` (the Ultralytics run) and
``OUT/glyphs.pt``, and prints the letters-det validation mAP. Deterministic
per ``--seed``.
"""

from __future__ import annotations

import argparse
import shutil
import string
import time
from pathlib import Path

import cv2
import numpy as np

from detal.config import load_config
from detal.digits import DigitsSpec, canvas_label_text, render_canvas
from detal.simulate import load_dataset
from detal.ultra import UltralyticsAdapter

FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
)
LETTERS = string.ascii_uppercase


def glyph_sources(size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Every letter in every font, slant and stroke width, cropped to its ink, ``(n, size, size)`` in [0, 1]."""
    images, targets = [], []
    for cls, letter in enumerate(LETTERS):
        for font in FONTS:
            for italic in (0, cv2.FONT_ITALIC):
                for thickness in (1, 2, 3):
                    canvas = np.zeros((64, 64), np.float32)
                    cv2.putText(canvas, letter, (8, 52), font | italic, 1.6, 1.0, thickness, cv2.LINE_AA)
                    rows, cols = np.flatnonzero(canvas.any(axis=1)), np.flatnonzero(canvas.any(axis=0))
                    if rows.size == 0:
                        continue
                    crop = canvas[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
                    side = max(crop.shape)  # pad to a square, keeping the letter's aspect
                    square = np.zeros((side, side), np.float32)
                    y0, x0 = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
                    square[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]] = crop
                    images.append(cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA))
                    targets.append(cls)
    return np.clip(np.asarray(images), 0.0, 1.0), np.asarray(targets, np.int64)


def build_letters(out: Path, n_train: int, n_val: int, imgsz: int, seed: int) -> Path:
    images, targets = glyph_sources()
    rng = np.random.default_rng(seed)
    spec = DigitsSpec(pool=n_train, val=n_val, imgsz=imgsz, seed=seed)
    everything = np.arange(len(images))
    for split, count in (("train", n_train), ("val", n_val)):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            canvas = render_canvas(images, targets, everything, spec, rng)
            cv2.imwrite(str(out / "images" / split / f"{split}_{i:05d}.png"), canvas.image)
            (out / "labels" / split / f"{split}_{i:05d}.txt").write_text(canvas_label_text(canvas))
    names = "\n".join(f"  {i}: '{c}'" for i, c in enumerate(LETTERS))
    (out / "data.yaml").write_text(f"path: {out.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
    return out / "data.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/pretrain/glyphs")
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--val", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--imgsz", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", default="configs/digits.yaml", help="model and training settings")
    args = ap.parse_args()
    out = Path(args.out)
    t0 = time.perf_counter()
    data = build_letters(out / "data", args.images, args.val, args.imgsz, args.seed)
    print(f"letters-det: {args.images} + {args.val} images, {len(LETTERS)} classes, "
          f"{time.perf_counter() - t0:.0f}s: {data}", flush=True)
    cfg = load_config(args.config).replace(imgsz=args.imgsz, seed=args.seed, weights=None, data=None)
    ds = load_dataset(data)
    adapter = UltralyticsAdapter(cfg)
    t0 = time.perf_counter()
    trained = adapter.train(ds.pool, [], ds.names, out / "train", epochs=args.epochs)
    m = adapter.evaluate(trained.weights, ds.val, ds.names, out / "val")
    shutil.copyfile(trained.weights, out / "glyphs.pt")
    print(f"pretrained {args.epochs} epochs in {time.perf_counter() - t0:.0f}s: letters-det val mAP50 "
          f"{m.map50:.3f} mAP50-95 {m.map50_95:.3f}; weights {out / 'glyphs.pt'}", flush=True)


if __name__ == "__main__":
    main()
