"""From a simulation's ``results.csv`` to ``curves.png`` and ``summary.md``.

Pure functions compute the numbers (:func:`load_results`, :func:`curve`,
:func:`first_reach`, :func:`label_savings`); :func:`write_report` does the
file IO. Plotting uses matplotlib's Agg backend and needs no display.

Label savings: the labeled fraction at which a strategy's mean mAP50-95 curve
(mean over seeds, per cycle) first reaches random's final mean mAP50-95,
linearly interpolated between cycles, and the savings as ``1 - f / f_random``
where ``f_random`` is the labeled fraction of random's final cycle.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detal.errors import DataError
from detal.files import atomic_write

__all__ = ["Curve", "curve", "first_reach", "label_savings", "load_results", "summary_markdown", "write_report"]

_NEEDED = ("strategy", "seed", "cycle", "labeled_fraction", "map50", "map50_95")


@dataclass(frozen=True)
class Curve:
    """One strategy across seeds, per cycle: fractions and the mean/min/max/std of a metric."""

    strategy: str
    cycles: np.ndarray
    fraction: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n_seeds: np.ndarray


def load_results(path: str | Path) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: results file not found")
    with p.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _NEEDED if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{p}: missing column(s) {', '.join(missing)}")
        rows = []
        for i, raw in enumerate(reader, start=2):
            try:
                row = dict(raw)
                row["seed"] = int(raw["seed"])
                row["cycle"] = int(raw["cycle"])
                for k in ("labeled_fraction", "map50", "map50_95"):
                    row[k] = float(raw[k])
                for k in ("train_s", "score_s", "select_s"):
                    if raw.get(k) not in (None, ""):
                        row[k] = float(raw[k])
                    else:  # an empty cell (e.g. rows merged by benchmarks/compare.py): no timing
                        row.pop(k, None)
            except (TypeError, ValueError):
                raise DataError(f"{p}:{i}: bad number in row") from None
            rows.append(row)
    return rows


def strategies_of(rows: Sequence[dict]) -> list[str]:
    seen: list[str] = []
    for r in rows:
        if r["strategy"] not in seen:
            seen.append(r["strategy"])
    return seen


def curve(rows: Sequence[dict], strategy: str, metric: str = "map50_95") -> Curve:
    """Per-cycle statistics of ``metric`` over the seeds of ``strategy``."""
    mine = [r for r in rows if r["strategy"] == strategy]
    cycles = sorted({r["cycle"] for r in mine})
    frac, mean, std, lo, hi, n = [], [], [], [], [], []
    for c in cycles:
        at = [r for r in mine if r["cycle"] == c]
        v = np.asarray([r[metric] for r in at], dtype=np.float64)
        frac.append(float(np.mean([r["labeled_fraction"] for r in at])))
        mean.append(float(v.mean()))
        std.append(float(v.std(ddof=1)) if v.size > 1 else 0.0)
        lo.append(float(v.min()))
        hi.append(float(v.max()))
        n.append(v.size)
    arr = lambda x: np.asarray(x, dtype=np.float64)
    return Curve(strategy, np.asarray(cycles), arr(frac), arr(mean), arr(std), arr(lo), arr(hi), np.asarray(n))


def first_reach(fraction: np.ndarray, values: np.ndarray, target: float) -> float | None:
    """The first labeled fraction at which the piecewise-linear curve reaches ``target``."""
    for i, v in enumerate(values):
        if v >= target:
            if i == 0:
                return float(fraction[0])
            v0, f0, f1 = values[i - 1], fraction[i - 1], fraction[i]
            return float(f0 + (target - v0) / (v - v0) * (f1 - f0))
    return None


def label_savings(rows: Sequence[dict], baseline: str = "random", metric: str = "map50_95") -> dict[str, dict]:
    """For each strategy: the fraction where it first reaches the baseline's final mean, and the savings."""
    base = curve(rows, baseline, metric)
    if base.cycles.size == 0:
        raise DataError(f"no rows for the baseline strategy {baseline!r}")
    target, f_base = float(base.mean[-1]), float(base.fraction[-1])
    out = {}
    for s in strategies_of(rows):
        c = curve(rows, s, metric)
        f = first_reach(c.fraction, c.mean, target)
        out[s] = {
            "target": target,
            "fraction": f,
            "savings": (1.0 - f / f_base) if f is not None and f_base > 0 else None,
        }
    return out


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def summary_markdown(rows: Sequence[dict], baseline: str = "random", title: str = "Simulation") -> str:
    strategies = strategies_of(rows)
    seeds = sorted({r["seed"] for r in rows})
    lines = [f"# {title}", ""]
    lines.append(f"Strategies: {', '.join(strategies)}; seeds: {', '.join(map(str, seeds))}.")
    lines.append("")
    lines.append("## Final cycle (mean ± std over seeds)")
    lines.append("")
    lines.append("| strategy | seeds | labeled fraction | mAP50 | mAP50-95 |")
    lines.append("|---|---|---|---|---|")
    for s in strategies:
        c50, c = curve(rows, s, "map50"), curve(rows, s, "map50_95")
        lines.append(
            f"| {s} | {int(c.n_seeds[-1])} | {c.fraction[-1]:.3f} | {c50.mean[-1]:.3f} ± {c50.std[-1]:.3f} "
            f"| {c.mean[-1]:.3f} ± {c.std[-1]:.3f} |"
        )
    lines.append("")
    has_base = baseline in strategies
    if has_base:
        base = curve(rows, baseline)
        others = [s for s in strategies if s != baseline]
        lines.append(f"## mAP50-95 per cycle (mean over seeds; gap = strategy − {baseline})")
        lines.append("")
        head = ["cycle", "labeled fraction", baseline] + [f"{s} (gap)" for s in others]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        curves = {s: curve(rows, s) for s in others}
        for i, cyc in enumerate(base.cycles):
            cells = [str(int(cyc)), f"{base.fraction[i]:.3f}", f"{base.mean[i]:.3f}"]
            for s in others:
                c = curves[s]
                j = np.flatnonzero(c.cycles == cyc)
                if j.size:
                    k = int(j[0])
                    cells.append(f"{c.mean[k]:.3f} ({c.mean[k] - base.mean[i]:+.3f})")
                else:
                    cells.append("—")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        sav = label_savings(rows, baseline)
        target = sav[baseline]["target"]
        lines.append(f"## Label savings (to reach {baseline}'s final mean mAP50-95 = {target:.3f})")
        lines.append("")
        lines.append("| strategy | labeled fraction needed | fewer labels than random |")
        lines.append("|---|---|---|")
        for s in strategies:
            f, sv = sav[s]["fraction"], sav[s]["savings"]
            lines.append(
                f"| {s} | {_fmt(f)} | {'not reached' if sv is None else f'{sv:.0%}'} |"
            )
        lines.append("")
        lines.append(
            "Fractions are linearly interpolated between cycles on the mean curve. "
            "A strategy that never reaches the target within the budget saves nothing."
        )
        lines.append("")
    times = [r for r in rows if "train_s" in r]
    if times:
        lines.append("## Time (seconds, mean per cycle over seeds)")
        lines.append("")
        lines.append("| strategy | train | score | select |")
        lines.append("|---|---|---|---|")
        for s in strategies:
            mine = [r for r in times if r["strategy"] == s]
            if not mine:  # a merged run without timings
                continue
            lines.append(
                f"| {s} | {np.mean([r['train_s'] for r in mine]):.1f} | "
                f"{np.mean([r['score_s'] for r in mine]):.1f} | {np.mean([r['select_s'] for r in mine]):.2f} |"
            )
        lines.append("")
    return "\n".join(lines)


def plot_curves(rows: Sequence[dict], path: Path, metric: str = "map50_95", title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for s in strategies_of(rows):
        c = curve(rows, s, metric)
        (line,) = ax.plot(c.fraction, c.mean, marker="o", label=f"{s} (n={int(c.n_seeds.max())})")
        ax.fill_between(c.fraction, c.lo, c.hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("labeled fraction of the pool")
    ax.set_ylabel("mAP50-95 (val)" if metric == "map50_95" else metric)
    ax.set_title(title or "mean over seeds, band: min–max")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write(path, buf.getvalue())


def write_report(results_csv: str | Path, out_dir: str | Path, baseline: str = "random") -> tuple[Path, Path]:
    """Write ``curves.png`` and ``summary.md`` for ``results_csv`` into ``out_dir``."""
    rows = load_results(results_csv)
    if not rows:
        raise DataError(f"{results_csv}: no result rows")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png, md = out / "curves.png", out / "summary.md"
    plot_curves(rows, png, title=f"{out.name}: mAP50-95 vs labeled fraction (mean, min–max band)")
    text = summary_markdown(rows, baseline, title=f"Simulation `{out.name}`")
    atomic_write(md, text)
    return png, md
