"""Time ``detal review`` on a 1,000-image batch, and how fast a browser opens the page.

Builds a project over a pool of camera-sized JPEGs (default 2,000 images of
1024x768, half of the pool selected in one cycle run with the FakeAdapter, so
the batch holds 1,000 images with pre-labels), then prints:

* the time of ``write_review`` (thumbnails and page, cold) and of a rerun;
* the page's size and the thumbnails' total size;
* the time a headless Chromium takes to load the page and run its script
  (``--dump-dom``), minus the time it takes on an empty page (browser start).

    .venv/bin/python benchmarks/bench_review.py
    .venv/bin/python benchmarks/bench_review.py --batch 200 --size 640x480
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")


def make_pool(folder: Path, n: int, width: int, height: int, rng: np.random.Generator) -> None:
    """``n`` JPEGs with smooth gradients, a few rectangles and noise (so decoding is real work)."""
    import cv2

    folder.mkdir(parents=True)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    noise = rng.normal(0, 6, (height, width, 3)).astype(np.float32)
    for i in range(n):
        a, b, c = rng.uniform(0, 255, 3)
        img = np.stack([(xx / width) * a, (yy / height) * b, np.full_like(xx, c)], axis=2)
        for _ in range(4):
            x, y = int(rng.integers(0, width - 80)), int(rng.integers(0, height - 80))
            img[y:y + int(rng.integers(20, 200)), x:x + int(rng.integers(20, 200))] = rng.uniform(0, 255, 3)
        img += np.roll(noise, int(rng.integers(0, width)), axis=1)
        cv2.imwrite(str(folder / f"img{i:05d}.jpg"), np.clip(img, 0, 255).astype(np.uint8),
                    [cv2.IMWRITE_JPEG_QUALITY, 85])


def browser_seconds(browser: str, url: str, profile: Path) -> tuple[float, float | None]:
    """Wall time of ``--dump-dom`` and the page's own ``data-ready-ms`` (navigation to ready)."""
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run",
            f"--user-data-dir={profile}", "--dump-dom", url]
    t0 = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, check=True, timeout=300)
    wall = time.perf_counter() - t0
    ready = re.search(r'data-ready-ms="(\d+)"', done.stdout)
    return wall, (int(ready.group(1)) / 1000 if ready else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1000, help="images in the batch (default 1000)")
    parser.add_argument("--size", default="1024x768", help="pool image size WxH (default 1024x768)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    from detal.config import load_config
    from detal.fake import FakeAdapter
    from detal.project import import_labels, init_project, run_cycle
    from detal.review import write_review

    tmp = Path(tempfile.mkdtemp(prefix="detal-bench-review-"))
    try:
        n_pool = 2 * args.batch
        t0 = time.perf_counter()
        make_pool(tmp / "pool", n_pool, width, height, np.random.default_rng(0))
        print(f"pool: {n_pool} JPEGs of {width}x{height} in {time.perf_counter() - t0:.1f} s")
        (tmp / "classes.txt").write_text("".join(f"class{k}\n" for k in range(5)))
        cfg = load_config(None, ["initial_fraction=0.02", "batch_fraction=0.5", "subset_fraction=0.6",
                                 "max_labeled_fraction=0.6", "seed=0"])
        project = tmp / "proj"
        init_project(project, tmp / "pool", tmp / "classes.txt", config=cfg)
        returned = tmp / "returned"
        returned.mkdir()
        import zipfile

        with zipfile.ZipFile(project / "cycles/0/batch-0.zip") as zf:
            for name in zf.namelist():
                if name.startswith("images/"):
                    (returned / (Path(name).stem + ".txt")).write_text("0 0.5 0.5 0.2 0.2\n")
        import_labels(project, returned)
        run_cycle(project, FakeAdapter(5, seed=0, max_boxes=6))

        t0 = time.perf_counter()
        result = write_review(project)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_review(project)
        warm = time.perf_counter() - t0
        thumbs = sum(p.stat().st_size for p in (result.path.parent / "thumbs").iterdir())
        print(f"write_review: {result.n_images} images, {result.n_boxes} boxes: {cold:.2f} s "
              f"(rerun {warm:.2f} s)")
        print(f"page {result.path.stat().st_size / 1024:.0f} KiB, thumbnails "
              f"{thumbs / 1024 / 1024:.1f} MiB ({thumbs / max(result.n_images, 1) / 1024:.1f} KiB each)")

        browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
        if browser is None:
            print("browser: none on PATH; page load not measured")
            return
        empty = tmp / "empty.html"
        empty.write_text("<!DOCTYPE html><html><body></body></html>")
        base = min(browser_seconds(browser, empty.as_uri(), tmp / "prof")[0] for _ in range(3))
        page, ready = min(browser_seconds(browser, result.path.as_uri(), tmp / "prof")
                          for _ in range(3))
        print(f"headless {Path(browser).name}, best of 3: --dump-dom {page:.2f} s, on an empty "
              f"page {base:.2f} s (browser start); the page's own navigation-to-ready time "
              f"{ready if ready is None else f'{ready:.2f} s'}")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
