"""The compact table of benchmarks/RESULTS.md and the README from one results.csv.

    python benchmarks/arm_table.py runs/simulate/al-final/results.csv [--baseline random] [--control hold]

One row per strategy: mean mAP50-95 per cycle over the seeds (gap to the
baseline in brackets), the AUC (mean ± std over seeds), whether the mean is
ever below the baseline's, and the label savings in images and in boxes to
reach the baseline's final mean (detal.report.label_savings).
"""

from __future__ import annotations

import argparse

import numpy as np

from detal.report import auc, curve, label_savings, load_results, strategies_of


def _pct(v: float | None) -> str:
    return "not reached" if v is None else f"{v:.0%}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results")
    ap.add_argument("--baseline", default="random")
    ap.add_argument("--control", default="hold")
    args = ap.parse_args()
    rows = load_results(args.results)
    base = curve(rows, args.baseline)
    sav, sav_b = label_savings(rows, args.baseline), label_savings(rows, args.baseline, x="n_boxes")
    seeds = sorted({r["seed"] for r in rows})
    cells = [f"c{int(c)} ({base.fraction[i]:.0%})" for i, c in enumerate(base.cycles)]
    print(f"seeds {', '.join(map(str, seeds))}; mAP50-95 mean over seeds (gap to {args.baseline})\n")
    print("| arm | " + " | ".join(cells) + " | AUC | below random at a cycle? | fewer images | fewer boxes |")
    print("|---|" + "---|" * (len(cells) + 4))
    for s in strategies_of(rows):
        c = curve(rows, s)
        out = []
        for i in range(len(base.cycles)):
            gap = c.mean[i] - base.mean[i]
            out.append(f"{c.mean[i]:.3f}" if s == args.baseline else f"{c.mean[i]:.3f} ({gap:+.3f})")
        a = np.asarray(list(auc(rows, s).values()))
        below = "—" if s in (args.baseline, args.control) else (
            "no" if np.all(c.mean[1:] >= base.mean[1:] - 1e-9) else
            "yes, c" + ",".join(str(int(k)) for k, m, b in zip(c.cycles[1:], c.mean[1:], base.mean[1:]) if m < b))
        print(f"| {s} | " + " | ".join(out) + f" | {a.mean():.3f} ± {a.std(ddof=1) if a.size > 1 else 0:.3f} | "
              f"{below} | {_pct(sav[s]['savings'])} | {_pct(sav_b[s]['savings'])} |")


if __name__ == "__main__":
    main()
