"""Scoring on Ray against the local engine: throughput with 1 and 2 workers, and the overhead.

    .venv/bin/python benchmarks/bench_ray.py [--n 200] [--imgsz 320] [--batch 16] [--device cpu]
        [--workers 1,2] [--cpus N] [--rounds 2] [--workdir runs/bench_ray]

Both engines run the product's own call, :func:`detal.score_images.score_images`
(predict and score, embeddings included as the cycle reads them), on the same
``--n`` generated images with the same weights (``bench_scoring.py``'s: an
untrained yolov8n with a seeded random class head and calibrated BatchNorm, so
that images get boxes). Each figure is the best of ``--rounds``.

- ``local``: this process (the adapter's reader thread and torch's threads).
- ``ray, k workers``: ``scoring.engine: ray`` on a Ray instance this script
  starts once on this machine (``--cpus`` CPUs, default all), reused by every
  call as a notebook would; ``k`` actors, each with one model and the
  cluster's CPUs split between them (one GPU each with ``--device 0`` where
  there are GPUs).

For each engine it times a call on one batch (``--batch`` images: the fixed
cost of a call, actor start and model load included) and a call on all
``--n`` images, and prints the wall time of each, the steady throughput
``(n - batch) / (t_n - t_batch)`` and the overhead of the call on Ray over the
local call. The Ray instance's own start is printed once: ``detal cycle``
with ``address: null`` pays it once per cycle, against a cluster
(``address: HOST:PORT``) it only connects.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scoring import make_images, make_weights

from detal.config import load_config
from detal.score_images import score_images

ROOT = Path(__file__).resolve().parent.parent
SIZES = [(480, 640), (640, 480), (512, 512)]


def timed(weights: Path, paths: list[Path], cfg, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        scores, failed = score_images(weights, paths, cfg, progress=False, embeddings=True)
        best = min(best, time.perf_counter() - t0)
        assert len(scores) == len(paths) and not failed
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--cpus", type=int, default=None, help="CPUs of the Ray instance (default: all)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "bench_ray")
    args = ap.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "true")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    paths = make_images(args.workdir / "images", args.n, SIZES)
    weights = make_weights("yolov8n.yaml", args.workdir / "weights.pt", paths[:16], args.imgsz)
    base = [f"imgsz={args.imgsz}", f"device={args.device}", f"predict_batch={args.batch}"]
    one = paths[: args.batch]

    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    start_s = time.perf_counter() - t0
    cpus = int(ray.cluster_resources().get("CPU", 0))
    print(f"bench_ray: {args.n} images {args.imgsz} px, batch {args.batch}, device {args.device}, "
          f"{os.cpu_count()} cores here, Ray instance of {cpus} CPUs started in {start_s:.1f} s")

    rows = []
    engines = [("local", [])] + [(f"ray, {k} worker{'s' if k > 1 else ''}",
                                  ["scoring.engine=ray", f"scoring.workers={k}"])
                                 for k in (int(w) for w in args.workers.split(","))]
    timed(weights, one, load_config(None, base), 1)  # warm-up: imports, first allocations
    for name, extra in engines:
        cfg = load_config(None, base + extra)
        t_one = timed(weights, one, cfg, args.rounds)
        t_all = timed(weights, paths, cfg, args.rounds)
        steady = (len(paths) - len(one)) / max(t_all - t_one, 1e-9)
        rows.append((name, t_one, t_all, steady))
        print(f"{name}: one batch {t_one:.2f} s, {len(paths)} images {t_all:.2f} s "
              f"({len(paths) / t_all:.1f} img/s end to end), steady {steady:.1f} img/s", flush=True)
    ray.shutdown()
    local = rows[0]
    for name, t_one, t_all, steady in rows[1:]:
        print(f"{name} against local: call on one batch +{t_one - local[1]:.2f} s, on {len(paths)} images "
              f"{t_all / local[2]:.2f}x the time, steady throughput {steady / local[3]:.2f}x")


if __name__ == "__main__":
    main()
