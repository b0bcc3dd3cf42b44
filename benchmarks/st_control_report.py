"""Self-training against a compute-matched random: the round-3 probe arms read against `random-c720`.

    .venv/bin/python benchmarks/st_control_report.py

The -stlow80 student trains 672-762 steps a cycle where a plain cycle trains 600 (Ultralytics trains
whole epochs, and 600 steps over a list of ~3,800 images round up to 3 epochs), and this protocol is
compute-bound, so part of what -stlow80 gains over plain random can be the extra steps. `random-c720`
is plain random at 720 steps a cycle (`benchmarks/st_experiment.sh`, arm -c720). For each dataset
under benchmarks/results/round3-probe/, this writes benchmarks/results/round3-control/<dataset>/ with
random-c720's rows renamed `random` (the report's baseline), the self-training arms and plain random
(renamed `random-600`) beside them, and the usual report (`detal.report.write_report`): savings along
the curve and AUC gaps against the compute-matched baseline, paired on the seeds both ran. Its
cycle 0 also trained 720 steps (the self-training arms' cycle 0 is a plain 600-step one), so the
first cycle's gap is the extra steps alone. Nothing is trained.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detal.report import write_report

PROBE = ROOT / "benchmarks" / "results" / "round3-probe"
OUT = ROOT / "benchmarks" / "results" / "round3-control"
ARMS = {"random-c720": "random", "random": "random-600", "random-stlow80": "random-stlow80",
        "hybrid-stlow80": "hybrid-stlow80"}


def main() -> None:
    for folder in sorted(p for p in PROBE.iterdir() if p.is_dir()):
        rows, fields = [], None
        for arm, name in ARMS.items():
            for path in sorted(folder.glob(f"{arm}-seed*.csv")):
                with open(path, newline="") as f:
                    reader = csv.DictReader(f)
                    # the columns every file has (digits-hard's seed-0 rows predate annotator seconds)
                    fields = [c for c in (fields or reader.fieldnames) if c in reader.fieldnames]
                    for r in reader:
                        r["strategy"] = name
                        rows.append(r)
        if not any(r["strategy"] == "random" for r in rows):
            print(f"st_control_report: {folder.name}: no random-c720 rows yet, skipped")
            continue
        out = OUT / folder.name
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "results.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
        write_report(out / "results.csv", out)
        print(f"st_control_report: {out / 'summary.md'} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
