"""What did a simulation pick? Ground-truth boxes per picked image, by cycle.

    python benchmarks/picks.py runs/simulate/digits

For every strategy and seed project of a ``detal simulate`` run, prints the
mean number of ground-truth boxes in the images picked as uncertain (the
top of the scored subset; ties by id) and in those picked at random, and the
boxes labeled in total at the end. A strategy that wins on an image budget by
picking crowded images also costs more boxes to label; this makes that visible.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from detal.config import Config
from detal.project.folder import label_relpath
from detal.selection import cap_plan, labeling_cap, strategy_plan
from detal.store import DB_NAME, Store


def _boxes(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.is_file() else 0


def _mean(boxes: dict[int, int], ids: list[int]) -> str:
    return f"{np.mean([boxes[i] for i in ids]):.2f}" if ids else "  - "


def main(run: str) -> None:
    for project in sorted(Path(run).glob("*/seed-*")):
        with Store.open(project / DB_NAME) as store:
            images = store.images()
            pool_size = sum(1 for r in images if r.status != "val")
            boxes = {r.id: _boxes(project / label_relpath(r.relpath)) for r in images if r.status == "labeled"}
            cells = []
            n_labeled = sum(1 for r in images if r.status == "labeled" and r.labeled_cycle <= 0)
            for c in store.cycles()[1:]:
                batch = [r.id for r in images if r.selected_cycle == c.id and r.id in boxes]
                cfg = Config(**c.config)
                plan = strategy_plan(cfg.strategy, pool_size, batch_fraction=cfg.batch_fraction,
                                     subset_fraction=cfg.subset_fraction, uncertain_share=cfg.uncertain_share)
                plan = cap_plan(plan, labeling_cap(cfg.max_labeled_fraction, pool_size) - n_labeled)
                subset = store.execute(
                    "SELECT image_id FROM scores WHERE cycle = ? AND in_subset = 1 ORDER BY score DESC, image_id",
                    (c.id,)).fetchall()
                in_batch = set(batch)
                unc = [i for (i,) in subset if i in in_batch][: plan.n_uncertain]
                rnd = [i for i in batch if i not in set(unc)]
                n_labeled += len(batch)
                if not batch:
                    continue
                cells.append(f"c{c.id - 1} unc {_mean(boxes, unc)} rnd {_mean(boxes, rnd)}")
        print(f"{project.parent.name:>8} {project.name}: {' | '.join(cells)} | boxes labeled {sum(boxes.values())}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
