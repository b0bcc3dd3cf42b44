"""What did a simulation pick? Ground-truth boxes per picked image, by cycle.

    python benchmarks/picks.py runs/simulate/digits data/digits-det/data.yaml

For every strategy and seed of a ``detal simulate`` run, prints the mean
number of ground-truth boxes in the images picked as uncertain and in those
picked at random, and the boxes labeled in total at the end. A strategy that
wins on an image budget by picking crowded images also costs more boxes to
label; this makes that visible.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from detal.simulate import load_dataset


def main(run: str, data_yaml: str) -> None:
    ds = load_dataset(data_yaml)
    boxes = np.array(
        [sum(1 for line in lbl.read_text().splitlines() if line.strip()) if lbl.is_file() else 0 for _, lbl in ds.pool]
    )
    print(f"pool: {len(boxes)} images, {boxes.mean():.2f} boxes per image")
    for sdir in sorted(Path(run).glob("*/seed*")):
        state = json.loads((sdir / "state.json").read_text())
        labeled_cycle = np.asarray(state["pool"]["labeled_cycle"])
        cells = []
        for c in range(len(state["rows"])):
            record = sdir / f"cycle{c}" / "batch.json"
            if not record.is_file():
                continue
            b = json.loads(record.read_text())
            unc = f"{boxes[b['uncertain']].mean():.2f}" if b["uncertain"] else "  - "
            rnd = f"{boxes[b['random']].mean():.2f}" if b["random"] else "  - "
            cells.append(f"c{c} unc {unc} rnd {rnd}")
        total = int(boxes[labeled_cycle >= 0].sum())
        print(f"{sdir.parent.name:>8} {sdir.name}: {' | '.join(cells)} | boxes labeled {total}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
