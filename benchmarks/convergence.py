"""How many gradient steps does a from-scratch cycle need to converge?

    python benchmarks/convergence.py CONFIG DATA_YAML --sizes 20,120,420 --steps 300,600,1200 [--seed 0]

For each labeled-set size ``n`` (a random subset of the pool, drawn with
``numpy.random.default_rng(seed)``; smaller sets are prefixes of larger ones)
and each step budget ``S``, trains the config's model from scratch on the
subset for ``ceil(S / ceil(n / batch))`` epochs (the rule of
``detal.config.cycle_epochs`` with ``min_steps_per_cycle: S``) and evaluates
mAP50-95 on the validation split. If doubling ``S`` no longer moves mAP at the
largest ``n`` of the schedule, a cycle of ``S`` steps trains to convergence, and
a curve of mAP against labels measures labels, not compute.

Prints one line per (n, S) and appends it to ``runs/convergence/<name>.csv``.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import numpy as np

from detal.config import load_config
from detal.simulate import load_dataset
from detal.ultra import UltralyticsAdapter


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("data")
    ap.add_argument("--sizes", default="20,120,420")
    ap.add_argument("--steps", default="300,600,1200")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="convergence")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    cfg = load_config(args.config, args.overrides).replace(seed=args.seed, warm_start=False)
    ds = load_dataset(args.data)
    sizes = [int(s) for s in args.sizes.split(",")]
    steps = [int(s) for s in args.steps.split(",")]
    order = np.random.default_rng(args.seed).permutation(len(ds.pool))
    out_dir = Path("runs/convergence") / args.name
    out_dir.mkdir(parents=True, exist_ok=True)
    table = out_dir.with_suffix(".csv")
    new = not table.exists()
    adapter = UltralyticsAdapter(cfg)
    with table.open("a", newline="") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(["n", "steps", "epochs", "map50", "map50_95", "train_s", "seed", "imgsz"])
        for n in sizes:
            items = [ds.pool[i] for i in order[:n]]
            per_epoch = math.ceil(n / cfg.batch)
            for s in steps:
                epochs = math.ceil(s / per_epoch)
                t0 = time.perf_counter()
                run = out_dir / f"n{n}-s{s}-seed{args.seed}"
                trained = adapter.train(items, [], ds.names, run / "train", epochs=epochs)
                train_s = time.perf_counter() - t0
                m = adapter.evaluate(trained.weights, ds.val, ds.names, run / "val")
                row = [n, epochs * per_epoch, epochs, f"{m.map50:.4f}", f"{m.map50_95:.4f}",
                       f"{train_s:.0f}", args.seed, cfg.imgsz]
                writer.writerow(row)
                fh.flush()
                print(f"n={n} steps={epochs * per_epoch} ({epochs} epochs): mAP50 {m.map50:.3f} "
                      f"mAP50-95 {m.map50_95:.3f}, train {train_s:.0f}s", flush=True)


if __name__ == "__main__":
    main()
