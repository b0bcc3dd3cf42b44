"""Control for a simulation: is the mAP gain of later cycles due to labels or to training?

    python benchmarks/compute_control.py CONFIG RUN_DIR CYCLE [ROUNDS]

Takes the labeled set a run had at ``CYCLE`` (e.g. runs/simulate/digits/random/seed0,
cycle 2 = 22 %) and that cycle's weights, and trains ``ROUNDS`` more rounds of
the same length as the run's cycles **on the same images, with no new labels**,
evaluating after each. If the result matches what the run reached with more
labels, the later cycles measure training compute, not data, and no selection
strategy can show a gain there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from detal.config import load_config
from detal.simulate import cycle_epochs, load_dataset
from detal.ultra import UltralyticsAdapter


def main(config: str, run_dir: str, cycle: int, rounds: int = 2) -> None:
    cfg = load_config(config)
    run = Path(run_dir)
    state = json.loads((run / "state.json").read_text())
    cfg = cfg.replace(seed=int(state["identity"]["seed"]))
    ds = load_dataset(cfg.data)
    labeled_cycle = np.asarray(state["pool"]["labeled_cycle"])
    ids = np.flatnonzero((labeled_cycle >= 0) & (labeled_cycle <= cycle))
    adapter = UltralyticsAdapter(cfg)
    weights = run / f"cycle{cycle}" / "train" / "train" / "weights" / "last.pt"
    items = [ds.pool[i] for i in ids]
    out = run.parent.parent / "controls" / f"{run.parent.name}-{run.name}-cycle{cycle}"
    for k in range(1, rounds + 1):
        epochs = cycle_epochs(cfg, cycle + k, ids.size)
        trained = adapter.train(items, [], ds.names, out / f"round{k}", epochs=epochs, init_weights=weights)
        m = adapter.evaluate(trained.weights, ds.val, ds.names, out / f"val{k}")
        print(f"{run} cycle {cycle} + {k} round(s) on the same {ids.size} images ({epochs} epochs): "
              f"mAP50 {m.map50:.3f} mAP50-95 {m.map50_95:.3f}", flush=True)
        weights = trained.weights


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *(int(a) for a in sys.argv[4:]))
