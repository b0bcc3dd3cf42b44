"""Pick "the best sigmoid-aware measure" on seed 0 only, by a rule fixed before the runs.

    python benchmarks/pick_measure.py RUNS_DIR NAME=MEASURE [...] [--seed 0] [--out FILE]

Each ``NAME`` is a ``detal simulate`` run (``RUNS_DIR/NAME/results.csv``) of
strategy ``mixed`` with one measure. The rule: the highest area under
mAP50-95 against labeled fraction (:func:`detal.report.auc`, the mean mAP
across the budget) at ``--seed``; a tie within 0.002 goes to the earlier
label saving against the ``random`` run of ``--baseline``. Prints the table
and the choice, and writes the chosen measure to ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from detal.report import auc, label_savings, load_results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs")
    ap.add_argument("arms", nargs="+", help="NAME=MEASURE")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline", default="al", help="run holding the random strategy")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    runs = Path(args.runs)
    base = [r for r in load_results(runs / args.baseline / "results.csv")
            if r["strategy"] == "random" and r["seed"] == args.seed]
    table = []
    for arm in args.arms:
        name, _, measure = arm.partition("=")
        rows = [dict(r, strategy=measure) for r in load_results(runs / name / "results.csv")
                if r["strategy"] == "mixed" and r["seed"] == args.seed]
        a = auc(rows, measure)[args.seed]
        sav = label_savings(base + rows, "random")[measure]["savings"]
        table.append((measure, a, sav, rows[-1]["map50_95"]))
    print(f"seed {args.seed}: mixed with each sigmoid-aware measure (AUC = mean mAP50-95 over the budget)")
    print(f"{'measure':<45} {'AUC':>6} {'final':>6} {'saving vs random':>17}")
    for measure, a, sav, final in table:
        print(f"{measure:<45} {a:6.3f} {final:6.3f} {('not reached' if sav is None else f'{sav:.0%}'):>17}")
    best_auc = max(a for _, a, _, _ in table)
    tied = [t for t in table if t[1] >= best_auc - 0.002]
    best = max(tied, key=lambda t: (t[2] if t[2] is not None else -1.0, t[1]))
    print(f"chosen: {best[0]}")
    if args.out:
        args.out.write_text(best[0] + "\n")


if __name__ == "__main__":
    main()
