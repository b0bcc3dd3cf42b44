"""Wall time of each round-3 run, read from its project's store (runs/ does not outlive a session).

    .venv/bin/python benchmarks/st_walltime.py [RUNS [OUT]]  # default runs/simulate benchmarks/results/round3
    .venv/bin/python benchmarks/st_walltime.py --results   # every committed per-run CSV

For every finished project runs/simulate/st-<dataset>-<arm>-s<seed>/<strategy>/seed-<seed>/, per
cycle: the student's (or plain) training, the teacher's training (self-training with
``teacher: supervised``; 0 where the train cache had it), the evaluation, scoring and the pseudo-label
pass. Appends the rows it has not seen to OUT/<dataset>/walltime.csv and prints the per-run totals
(only for runs whose per-run CSV is in OUT: finished ones). A self-training arm's project is
``<strategy>+st/`` (the simulate arm), or ``<strategy>/`` for runs made before arms.

``--results`` reads no store: for every committed per-run CSV
(benchmarks/results/round3*/<dataset>/<arm>-seed<k>.csv) it prints the run's training, scoring and
selection seconds summed over its cycles, the one timing those rows keep (a cached training counts
at the time it first took; the evaluation and the pseudo-label pass are not in them). That is how
the runs whose stores were lost with runs/ are timed.
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

from detal.store import Store

OUT = Path(__file__).resolve().parent / "results" / "round3"
FIELDS = ("dataset", "arm", "seed", "cycle", "train_s", "train_cached", "teacher_train_s", "eval_s",
          "teacher_eval_s", "pseudo_s", "score_s", "select_s", "export_s")


def runs(root: Path, out: Path):
    for run in sorted(root.glob("st-*-s[0-9]*")):
        m = re.fullmatch(r"st-(.+)-(random|hybrid|hold)(-[a-z0-9]+)?-s(\d+)", run.name)
        if not m:
            continue
        dataset, strategy, suffix, seed = m.group(1), m.group(2), m.group(3) or "", m.group(4)
        folders = [f"{strategy}+st", strategy] if suffix.startswith("-st") else [strategy]
        db = next((d for f in folders if (d := run / f / f"seed-{seed}" / "detal.db").is_file()), None)
        if db is not None and (out / dataset / f"{strategy}{suffix}-seed{seed}.csv").is_file():
            yield dataset, strategy + suffix, int(seed), db


def main(root: Path = Path("runs/simulate"), out: Path = OUT) -> None:
    for dataset, arm, seed, db in runs(root, out):
        path = out / dataset / "walltime.csv"
        have = set()
        if path.is_file():
            with open(path, newline="") as f:
                have = {(r["arm"], int(r["seed"])) for r in csv.DictReader(f)}
        with Store.open(db) as store:
            cycles = [c for c in store.cycles() if c.state == "done"]
        rows = []
        for c in cycles:
            t = c.timings
            rows.append({"dataset": dataset, "arm": arm, "seed": seed, "cycle": c.id,
                         **{k: t.get(k, 0.0) for k in FIELDS[4:]}, "train_cached": bool(t.get("train_cached"))})
        total = sum(sum(float(r[k]) for k in FIELDS[4:] if k != "train_cached") for r in rows)
        print(f"{dataset} {arm} seed {seed}: {len(rows)} cycles, {total / 60:.1f} min of timed steps")
        if (arm, seed) in have:
            continue
        new = not path.is_file()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=FIELDS)
            if new:
                w.writeheader()
            w.writerows(rows)


def from_results() -> None:
    for path in sorted(OUT.parent.glob("round3*/*/*-seed*.csv")):
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        total = sum(float(r["train_s"]) + float(r["score_s"]) + float(r["select_s"]) for r in rows)
        print(f"{path.parent.parent.name} {path.parent.name} {path.stem}: {len(rows)} cycles, "
              f"{total / 60:.1f} min of training, scoring and selection")


if __name__ == "__main__":
    if sys.argv[1:] == ["--results"]:
        from_results()
    else:
        main(*(Path(a) for a in sys.argv[1:3]))
