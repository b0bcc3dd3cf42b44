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

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from st_merge import merge

PROBE = ROOT / "benchmarks" / "results" / "round3-probe"
OUT = ROOT / "benchmarks" / "results" / "round3-control"
ARMS = {"random-c720": "random", "random": "random-600", "random-stlow80": "random-stlow80",
        "hybrid-stlow80": "hybrid-stlow80"}


def main() -> None:
    for folder in sorted(p for p in PROBE.iterdir() if p.is_dir()):
        files = [path for arm in ARMS for path in sorted(folder.glob(f"{arm}-seed*.csv"))]
        if not any(path.name.startswith("random-c720-") for path in files):
            print(f"st_control_report: {folder.name}: no random-c720 rows yet, skipped")
            continue
        n = merge(OUT / folder.name, files, rename=lambda strategy: ARMS[strategy])
        print(f"st_control_report: {OUT / folder.name / 'summary.md'} ({n} rows)")


if __name__ == "__main__":
    main()
