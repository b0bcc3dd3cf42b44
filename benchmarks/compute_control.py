"""Control for a simulation: is the mAP gain of later cycles due to labels or to training?

    python benchmarks/compute_control.py CONFIG PROJECT CYCLE [ROUNDS]

Takes the labeled set a simulated project had at results.csv's ``CYCLE``
(e.g. runs/simulate/digits/random/seed-0, cycle 2 = 22 %; project cycle
``CYCLE + 1``) and that cycle's weights, and trains ``ROUNDS`` more rounds of
the same length as the run's cycles **on the same images, with no new labels**,
evaluating after each. If the result matches what the run reached with more
labels, the later cycles measure training compute, not data, and no selection
strategy can show a gain there.
"""

from __future__ import annotations

import sys
from pathlib import Path

from detal.config import load_config
from detal.project import project_config
from detal.project.folder import pairs
from detal.simulate import cycle_epochs
from detal.store import DB_NAME, Store
from detal.ultra import UltralyticsAdapter


def main(config: str, project_dir: str, cycle: int, rounds: int = 2) -> None:
    project = Path(project_dir)
    cfg = load_config(config).replace(seed=project_config(project).seed)
    k = cycle + 1  # results.csv counts trained cycles from 0; the project's cycle 0 is init
    with Store.open(project / DB_NAME) as store:
        names = store.get_meta("classes")
        weights = project / store.cycle(k).weights
        labeled = [r for r in store.images(status="labeled") if r.labeled_cycle < k]
        val = pairs(project, store.images(status="val"))
    items = pairs(project, labeled)
    adapter = UltralyticsAdapter(cfg)
    out = project.parent.parent / "controls" / f"{project.parent.name}-{project.name}-cycle{cycle}"
    for n in range(1, rounds + 1):
        epochs = cycle_epochs(cfg, cycle + n, len(items))
        trained = adapter.train(items, [], names, out / f"round{n}", epochs=epochs, init_weights=weights)
        m = adapter.evaluate(trained.weights, val, names, out / f"val{n}")
        print(f"{project} cycle {cycle} + {n} round(s) on the same {len(items)} images ({epochs} epochs): "
              f"mAP50 {m.map50:.3f} mAP50-95 {m.map50_95:.3f}", flush=True)
        weights = trained.weights


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *(int(a) for a in sys.argv[4:]))
