"""Put strategies from several ``detal simulate`` runs side by side in one report.

    python benchmarks/compare.py OUT_DIR LABEL=RESULTS_CSV:STRATEGY [...]

e.g. the single-seed diagnostics of benchmarks/RESULTS.md::

    python benchmarks/compare.py runs/simulate/compare \
        random=runs/simulate/digits/results.csv:random \
        mixed=runs/simulate/digits/results.csv:mixed \
        mixed-sum=runs/simulate/digits-sum/results.csv:mixed

Only seeds present for every label are kept, so the comparison stays paired.
Writes OUT_DIR/results.csv, curves.png and summary.md (baseline: ``random``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from detal.report import load_results, write_report
from detal.simulate import RESULT_COLUMNS, write_results


def main(out: str, specs: list[str]) -> None:
    picked: dict[str, list[dict]] = {}
    for spec in specs:
        label, _, rest = spec.partition("=")
        path, _, strategy = rest.rpartition(":")
        picked[label] = [dict(r, strategy=label) for r in load_results(path) if r["strategy"] == strategy]
    seeds = set.intersection(*({r["seed"] for r in rows} for rows in picked.values()))
    rows = [r for rs in picked.values() for r in rs if r["seed"] in seeds]
    for r in rows:
        for k in RESULT_COLUMNS:
            r.setdefault(k, "")
    Path(out).mkdir(parents=True, exist_ok=True)
    write_results(rows, Path(out) / "results.csv")
    _, md = write_report(Path(out) / "results.csv", out)
    print(md.read_text())


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
