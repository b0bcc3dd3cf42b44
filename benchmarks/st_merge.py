"""Merge a round-3 results folder's per-run CSVs into its results.csv and report.

    .venv/bin/python benchmarks/st_merge.py benchmarks/results/round3/digits-hard [...]

Reads every ``<arm>-seed<k>.csv`` of each folder (one per `detal simulate` run, as
``benchmarks/st_experiment.sh`` writes them), writes their rows to ``results.csv`` with the
columns every file has (digits-hard's seed-0 rows predate annotator seconds) and the usual
report beside it (:func:`detal.report.write_report`: ``summary.md``, ``curves.png``).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detal.report import write_report


def merge(out: Path, files: list[Path], rename: Callable[[str], str] = str) -> int:
    """Write ``files``' rows (strategy renamed by ``rename``) to ``out``/results.csv and report them."""
    rows, fields = [], None
    for path in files:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            fields = [c for c in (fields or reader.fieldnames) if c in reader.fieldnames]
            for r in reader:
                r["strategy"] = rename(r["strategy"])
                rows.append(r)
    if not rows:
        return 0
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    write_report(out / "results.csv", out)
    return len(rows)


if __name__ == "__main__":
    for folder in map(Path, sys.argv[1:]):
        n = merge(folder, sorted(folder.glob("*-seed*.csv")))
        print(f"st_merge: {folder}/summary.md ({n} rows)")
