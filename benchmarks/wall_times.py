"""Wall time of each project of ``detal simulate`` runs, from the projects' stores.

    python benchmarks/wall_times.py runs/simulate/al runs/simulate/al-mixed-mle ...

Per (run, strategy, seed): trained cycles, how many of them reused an identical
earlier training from the train cache (those cost about nothing), and the
seconds spent training, scoring and selecting, reused trainings excluded.
"""

from __future__ import annotations

import sys
from pathlib import Path

from detal.store import DB_NAME, Store


def main(runs: list[str]) -> None:
    print(f"{'run':<22} {'strategy':<8} {'seed':>4} {'cycles':>6} {'reused':>6} {'train s':>8} "
          f"{'score+select s':>14} {'total min':>9}")
    grand = 0.0
    for run in runs:
        for project in sorted(Path(run).glob("*/seed-*")):
            if not (project / DB_NAME).is_file():
                continue
            with Store.open(project / DB_NAME) as store:
                cycles = [c for c in store.cycles() if c.state == "done" and c.weights]
            reused = [c for c in cycles if c.timings.get("train_cached")]
            train = sum(c.timings.get("train_s", 0.0) for c in cycles if not c.timings.get("train_cached"))
            other = sum(c.timings.get("score_s", 0.0) + c.timings.get("select_s", 0.0) for c in cycles)
            grand += train + other
            print(f"{Path(run).name:<22} {project.parent.name:<8} {project.name[5:]:>4} {len(cycles):>6} "
                  f"{len(reused):>6} {train:>8.0f} {other:>14.1f} {(train + other) / 60:>9.1f}")
    print(f"total: {grand / 3600:.2f} h of training, scoring and selecting (one process at a time)")


if __name__ == "__main__":
    main(sys.argv[1:])
