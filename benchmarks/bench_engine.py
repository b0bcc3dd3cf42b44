"""What going through a real project costs a simulation, per cycle, with a model that costs nothing.

Builds a fully labeled dataset of N tiny real PNGs (one box each) and 50 val
images, then runs ``detal.simulate.simulate`` for one strategy and one seed
with :class:`detal.fake.FakeAdapter` (training writes a small JSON file,
prediction draws canned boxes), so nearly all of the time measured is the
project's own work: init (walking, hashing and reading the size of every
image), the store, selection bookkeeping, pre-label files, the simulated
annotator's import, and deriving results.csv. Prints seconds per cycle by
step; compare them with a real cycle's training time.

    .venv/bin/python benchmarks/bench_engine.py                   # pools of 1,000 and 2,000
    .venv/bin/python benchmarks/bench_engine.py --sizes 10000 --strategy mixed
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pool import tiny_png

import detal.simulate as sim
from detal.config import Config
from detal.fake import FakeAdapter


def make_dataset(root: Path, n_pool: int, n_val: int = 50) -> Path:
    for split, n, start in (("train", n_pool, 0), ("val", n_val, 10_000_000)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            (root / "images" / split / f"{split}{i:06d}.png").write_bytes(tiny_png(start + i))
            (root / "labels" / split / f"{split}{i:06d}.txt").write_text(f"{i % 3} 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: [a, b, c]\n")
    return root / "data.yaml"


def timed(spent: dict[str, float], name: str, fn):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - t0
    return wrapper


def run(n_pool: int, strategy: str) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        data = make_dataset(Path(tmp) / "ds", n_pool)
        spent: dict[str, float] = defaultdict(float)
        originals = {name: getattr(sim, name) for name in ("init_project", "run_cycle", "import_labels",
                                                            "project_rows", "_stage")}
        for name, fn in originals.items():
            setattr(sim, name, timed(spent, name, fn))
        cfg = Config(model="yolov8n.yaml", imgsz=64, epochs_per_cycle=1)
        t0 = time.perf_counter()
        try:
            out = sim.simulate(cfg, lambda c: FakeAdapter(3, seed=c.seed), strategies=[strategy], seeds=[0],
                               out_dir=Path(tmp) / "sim", data=data, log=None, report=False)
        finally:
            for name, fn in originals.items():
                setattr(sim, name, fn)
        total = time.perf_counter() - t0
        rows = (out / "results.csv").read_text().splitlines()[1:]
        cycles = len(rows)
        # project_rows runs once per cycle for the log line and once per run for results.csv
        print(
            f"pool {n_pool:>6}, {strategy}: {cycles} cycles, {total:.2f} s in all = {total / cycles:.3f} s a cycle "
            f"(stage dataset {spent['_stage']:.2f} s, init {spent['init_project']:.2f} s, "
            f"cycles {spent['run_cycle'] / cycles:.3f} s each, imports {spent['import_labels'] / cycles:.3f} s each, "
            f"results {spent['project_rows'] / cycles:.3f} s a cycle)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000])
    ap.add_argument("--strategy", default="mixed")
    args = ap.parse_args()
    for n in args.sizes:
        run(n, args.strategy)


if __name__ == "__main__":
    main()
