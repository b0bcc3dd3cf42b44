"""Time ``detal init`` on a pool of many tiny image files, and its peak memory.

Generates N distinct 10x10 PNGs (the smallest Ultralytics trains on; default
100,000, 10,000 a folder) in a temporary folder, then runs ``detal init``
(this checkout's) on them in a subprocess and prints its wall time, its CPU
time (user + system, which a loaded machine does not stretch) and its peak
RSS (``ru_maxrss``), against the one-machine limits of ``--limit-s`` (60 s)
and ``--limit-mib`` (500 MiB), with the load average beside them. The
generated folders are deleted at the end (``--keep`` keeps them).

    nice -n 10 .venv/bin/python benchmarks/bench_pool.py                  # 100,000 images
    nice -n 10 .venv/bin/python benchmarks/bench_pool.py --sizes 1000000  # the limit: 1,000,000
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
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


ROOT = Path(__file__).resolve().parent.parent


def run_init(images: Path, classes: Path, project: Path) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of ``detal init`` in a fresh process."""
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
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"detal init failed:\n{proc.stdout}\n{proc.stderr}")
    rss_kb = next(int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("MAXRSS_KB"))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, rss_kb / 1024, proc.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--keep", action="store_true", help="keep the generated folders")
    parser.add_argument("--limit-s", type=float, default=60.0, help="the wall-time limit (seconds)")
    parser.add_argument("--limit-mib", type=float, default=500.0, help="the peak-RSS limit (MiB)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="detal-bench-pool-"))
    print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}, work dir {base}")
    try:
        for n in args.sizes:
            images = base / f"pool{n}"
            t = time.perf_counter()
            make_pool(images, n)
            gen = time.perf_counter() - t
            classes = base / "classes.txt"
            classes.write_text("a\nb\nc\n")
            load = os.getloadavg()[0]
            wall, cpu, rss, out = run_init(images, classes, base / f"project{n}")
            ok = wall < args.limit_s and rss < args.limit_mib
            print(f"{n:>7} images: generated in {gen:.1f} s; detal init {wall:.1f} s wall "
                  f"(incl. interpreter start), {cpu:.1f} s CPU, peak RSS {rss:.0f} MiB; "
                  f"load average {load:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
                  f"limits {args.limit_s:.0f} s and {args.limit_mib:.0f} MiB: {'met' if ok else 'NOT met'}")
            print(f"         {out.splitlines()[0] if out else ''}")
            if not args.keep:
                shutil.rmtree(images, ignore_errors=True)
                shutil.rmtree(base / f"project{n}", ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
