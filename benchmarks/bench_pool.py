"""Time ``detal init`` on a pool of many tiny image files, and its peak memory.

Generates N distinct 10x10 PNGs (the smallest Ultralytics trains on) (default 100,000) in a temporary folder, then
runs ``detal init`` on them in a subprocess and prints the wall time and the
subprocess's peak RSS (``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``).
Each size runs in its own process, so a flat memory profile shows as about
the same peak RSS for every size.

    .venv/bin/python benchmarks/bench_pool.py                 # 100,000 images
    .venv/bin/python benchmarks/bench_pool.py --sizes 10000 100000
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def tiny_png(index: int, size: int = 10) -> bytes:
    """A valid ``size`` x ``size`` RGB PNG whose pixels encode ``index`` (so every file differs)."""
    pixel = bytes(((index >> 16) & 255, (index >> 8) & 255, index & 255))
    raw = b"".join(b"\x00" + pixel * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def make_pool(root: Path, n: int, per_dir: int = 10_000) -> None:
    for i in range(n):
        sub = root / f"part{i // per_dir:03d}"
        if i % per_dir == 0:
            sub.mkdir(parents=True, exist_ok=True)
        (sub / f"img{i:07d}.png").write_bytes(tiny_png(i))


def run_init(images: Path, classes: Path, project: Path) -> tuple[float, float, str]:
    """Wall seconds and peak RSS (MiB) of ``detal init`` in a fresh process."""
    code = (
        "import resource, sys, time\n"
        "from detal.cli import main\n"
        "t = time.perf_counter()\n"
        "rc = main(sys.argv[1:])\n"
        "print(f'INIT_SECONDS {time.perf_counter() - t:.3f}', file=sys.stderr)\n"
        "print(f'MAXRSS_KB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}', file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    argv = [sys.executable, "-c", code, "init", str(project), "--images", str(images),
            "--classes", str(classes)]
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"detal init failed:\n{proc.stdout}\n{proc.stderr}")
    rss_kb = next(int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("MAXRSS_KB"))
    return wall, rss_kb / 1024, proc.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--keep", action="store_true", help="keep the generated folders")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="detal-bench-pool-"))
    print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}, work dir {base}")
    for n in args.sizes:
        images = base / f"pool{n}"
        t = time.perf_counter()
        make_pool(images, n)
        gen = time.perf_counter() - t
        classes = base / "classes.txt"
        classes.write_text("a\nb\nc\n")
        wall, rss, out = run_init(images, classes, base / f"project{n}")
        print(f"{n:>7} images: generated in {gen:.1f} s; detal init {wall:.1f} s wall "
              f"(incl. interpreter start), peak RSS {rss:.0f} MiB")
        print(f"         {out.splitlines()[0] if out else ''}")
    if not args.keep:
        import shutil

        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
