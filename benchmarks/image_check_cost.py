"""What the image check (:mod:`detal.image_check`) costs per image, and ``detal init`` per image.

For a few kinds of image it times, per image, what ``init`` did before the
check (read, hash, parse the header), the check without decoding (what
``init`` does for a pool image that comes without a label) and the check with
OpenCV's decode (images with labels, validation images, the initial batch,
every imported label's image, and the labeled images before each training).
Then it times ``detal init`` on a pool of small PNGs, in a fresh process.

    .venv/bin/python benchmarks/image_check_cost.py
    .venv/bin/python benchmarks/image_check_cost.py --repeat 50 --pool 5000
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from detal.image_check import allow_large_images, inspect_image


def photo_like(width: int, height: int, fmt: str, seed: int = 0) -> bytes:
    """Noise at 1/8 scale, resized up: compresses about as a photo does (a 12 MP JPEG: ~2.5 MB)."""
    rng = np.random.default_rng(seed)
    small = (rng.random((max(1, height // 8), max(1, width // 8), 3)) * 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(small).resize((width, height)).save(out, fmt)
    return out.getvalue()


def flat_jpeg(width: int, height: int) -> bytes:
    """The test suite's valid mid-grey JPEG of any size (``tests/imagekit.py``), for 200 MP."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from imagekit import flat_jpeg as build

    return build(width, height)


def _header_and_hash(path: Path) -> None:
    """What ``init`` did before the check: read, hash, parse the header."""
    data = path.read_bytes()
    hashlib.sha256(data).hexdigest()
    allow_large_images()
    with Image.open(io.BytesIO(data)) as im:
        im.size  # noqa: B018 - the header is parsed to get it


def per_image(fn, path: Path, repeat: int) -> float:
    """Mean microseconds of ``fn(path)`` over ``repeat`` calls (after one warm-up call)."""
    fn(path)
    start = time.perf_counter()
    for _ in range(repeat):
        fn(path)
    return (time.perf_counter() - start) / repeat * 1e6


def init_seconds(n: int, tmp: Path) -> float:
    """Wall seconds of ``detal init`` (no labels) over ``n`` distinct 40x30 PNGs, in a fresh process."""
    images = tmp / "pool"
    images.mkdir()
    for i in range(n):
        (images / f"im{i:06d}.png").write_bytes(photo_like(40, 30, "PNG", seed=i))
    (tmp / "classes.txt").write_text("a\nb\n")
    code = ("import sys, time\nfrom detal.cli import main\nt = time.perf_counter()\n"
            "rc = main(sys.argv[1:])\nprint(f'{time.perf_counter() - t:.3f}', file=sys.stderr)\nsys.exit(rc)\n")
    proc = subprocess.run(
        [sys.executable, "-c", code, "init", str(tmp / "p"), "--images", str(images),
         "--classes", str(tmp / "classes.txt")],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return float(proc.stderr.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50, help="calls timed per kind (default 50)")
    parser.add_argument("--pool", type=int, default=2000, help="images in the timed init (0: skip)")
    args = parser.parse_args(argv)
    kinds = [
        ("PNG 64x64", "a.png", lambda: photo_like(64, 64, "PNG")),
        ("JPEG 640x480", "b.jpg", lambda: photo_like(640, 480, "JPEG")),
        ("PNG 640x480", "c.png", lambda: photo_like(640, 480, "PNG")),
        ("JPEG 4000x3000 (12 MP)", "d.jpg", lambda: photo_like(4000, 3000, "JPEG")),
        ("JPEG 20000x10000 (200 MP, flat)", "e.jpg", lambda: flat_jpeg(20000, 10000)),
    ]
    with tempfile.TemporaryDirectory(prefix="detal-image-check-") as tmp:
        root = Path(tmp)
        print(f"{'image':34} {'bytes':>10} {'before':>10} {'check':>10} {'+decode':>10}   (us per image)")
        for title, name, build in kinds:
            path = root / name
            path.write_bytes(build())
            repeat = max(1, args.repeat // (10 if path.stat().st_size > 1 << 20 else 1))
            before = per_image(_header_and_hash, path, repeat)
            check = per_image(lambda p: inspect_image(p), path, repeat)
            decode = per_image(lambda p: inspect_image(p, decode=True), path, repeat)
            print(f"{title:34} {path.stat().st_size:>10,} {before:>10.0f} {check:>10.0f} {decode:>10.0f}")
        if args.pool:
            (root / "init").mkdir()
            seconds = init_seconds(args.pool, root / "init")
            print(f"detal init over {args.pool} PNGs of 40x30: {seconds:.2f} s, "
                  f"{seconds / args.pool * 1e6:.0f} us per image")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
