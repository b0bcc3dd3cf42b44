"""From a simulation's ``results.csv`` to ``curves.png`` and ``summary.md``.

Pure functions compute the numbers (:func:`load_results`, :func:`curve`,
:func:`first_reach`, :func:`label_savings`); :func:`write_report` does the
file IO. Plotting uses matplotlib's Agg backend and needs no display.

Label savings: the labeled fraction at which a strategy's mean mAP50-95 curve
(mean over seeds, per cycle) first reaches random's final mean mAP50-95,
linearly interpolated between cycles, and the savings as ``1 - f / f_random``
where ``f_random`` is the labeled fraction of random's final cycle. The same is
computed against boxes labeled (``n_boxes``, when the results carry it):
selection by ``sum`` favours crowded images, and vendors may charge per box.

Area under the curve: the trapezoid area of mAP50-95 over the labeled
fraction, divided by the fraction's range, i.e. the mean mAP across the
labeling budget; per seed, then mean ± std.

Does a cycle measure labels? With a ``hold`` control in the results (the
initial labels only, trained as much as the others), cycle ``c`` can rank
strategies only when adding labels moved mAP by more than the seeds do: the
paired gain ``random - hold`` at every seed is larger than twice the
seed-to-seed standard deviation of ``random`` at that cycle
(:func:`labels_matter`).
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

__all__ = [
    "Curve",
    "auc",
    "curve",
    "first_reach",
    "label_savings",
    "labels_matter",
    "load_results",
    "paired_gaps",
    "summary_markdown",
    "write_report",
]

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
                for k in ("n_labeled", "n_boxes"):
                    if raw.get(k) not in (None, ""):
                        row[k] = float(raw[k])
                    else:
                        row.pop(k, None)
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


def has_boxes(rows: Sequence[dict]) -> bool:
    """Whether every row says how many boxes were labeled (``n_boxes``)."""
    return bool(rows) and all("n_boxes" in r for r in rows)


def curve(rows: Sequence[dict], strategy: str, metric: str = "map50_95", x: str = "labeled_fraction") -> Curve:
    """Per-cycle statistics of ``metric`` over the seeds of ``strategy``.

    ``fraction`` holds the mean of column ``x`` per cycle: the labeled
    fraction by default, or ``n_boxes`` for curves against boxes labeled.
    """
    mine = [r for r in rows if r["strategy"] == strategy]
    cycles = sorted({r["cycle"] for r in mine})
    frac, mean, std, lo, hi, n = [], [], [], [], [], []
    for c in cycles:
        at = [r for r in mine if r["cycle"] == c]
        v = np.asarray([r[metric] for r in at], dtype=np.float64)
        frac.append(float(np.mean([r[x] for r in at])))
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


def label_savings(
    rows: Sequence[dict], baseline: str = "random", metric: str = "map50_95", x: str = "labeled_fraction",
    at: int = -1,
) -> dict[str, dict]:
    """For each strategy: where (in ``x``) it first reaches the baseline's mean, and the savings.

    ``x`` is ``labeled_fraction`` (images) or ``n_boxes`` (boxes labeled).
    The target is the baseline's mean at its cycle index ``at`` (default: the
    final cycle, the savings the report leads with), and the savings are
    against what the baseline had labeled there.
    """
    base = curve(rows, baseline, metric, x)
    if base.cycles.size == 0:
        raise DataError(f"no rows for the baseline strategy {baseline!r}")
    target, f_base = float(base.mean[at]), float(base.fraction[at])
    out = {}
    for s in strategies_of(rows):
        c = curve(rows, s, metric, x)
        f = first_reach(c.fraction, c.mean, target)
        out[s] = {
            "target": target,
            "fraction": f,
            "savings": (1.0 - f / f_base) if f is not None and f_base > 0 else None,
        }
    return out


def _by_seed(rows: Sequence[dict], strategy: str) -> dict[int, dict[int, dict]]:
    out: dict[int, dict[int, dict]] = {}
    for r in rows:
        if r["strategy"] == strategy:
            out.setdefault(r["seed"], {})[r["cycle"]] = r
    return out


def auc(rows: Sequence[dict], strategy: str, metric: str = "map50_95") -> dict[int, float]:
    """Per seed: the area under ``metric`` against labeled fraction, over the fraction's range.

    That is the mean ``metric`` across the labeling budget (trapezoid rule over
    the cycles the seed has). A seed with a single cycle gets that cycle's value.
    """
    out = {}
    for seed, by_cycle in sorted(_by_seed(rows, strategy).items()):
        cycles = sorted(by_cycle)
        f = np.asarray([by_cycle[c]["labeled_fraction"] for c in cycles], dtype=np.float64)
        v = np.asarray([by_cycle[c][metric] for c in cycles], dtype=np.float64)
        span = f[-1] - f[0]
        if span <= 0:
            out[seed] = float(v.mean())
        else:
            out[seed] = float(np.sum((v[1:] + v[:-1]) * np.diff(f)) / 2.0 / span)
    return out


def paired_gaps(
    rows: Sequence[dict], strategy: str, baseline: str = "random", metric: str = "map50_95"
) -> dict[int, dict[int, float]]:
    """``cycle -> {seed: strategy - baseline}`` at every (cycle, seed) both strategies have."""
    mine, base = _by_seed(rows, strategy), _by_seed(rows, baseline)
    out: dict[int, dict[int, float]] = {}
    for seed in sorted(set(mine) & set(base)):
        for c in sorted(set(mine[seed]) & set(base[seed])):
            out.setdefault(c, {})[seed] = float(mine[seed][c][metric] - base[seed][c][metric])
    return out


def labels_matter(
    rows: Sequence[dict], control: str = "hold", baseline: str = "random", metric: str = "map50_95"
) -> dict[int, dict]:
    """Per cycle: did adding labels (``baseline``) beat the same training without them (``control``)?

    ``gain`` is the mean over seeds of ``baseline - control``, ``noise`` the
    seed-to-seed standard deviation of ``baseline`` at that cycle. The cycle
    can rank strategies (``matters``) when the gain at every seed is larger
    than ``2 * noise``. With one seed, ``noise`` is unknown (NaN) and only the
    sign is checked.

    ``step`` is what the latest batch added: the mean over seeds of
    ``baseline`` at this cycle minus the previous one (NaN at cycle 0), and
    ``step_matters`` says whether it exceeds ``2 * noise`` at every seed. A
    control that trains as much can show that labels matter at a cycle while
    the curve is already flat there; then the cycle separates strategies
    only by where they got to earlier, not by its own batch.
    """
    gaps = paired_gaps(rows, baseline, control, metric)
    base = _by_seed(rows, baseline)
    out = {}
    for c, by_seed in sorted(gaps.items()):
        g = np.asarray(list(by_seed.values()), dtype=np.float64)
        v = np.asarray([base[s][c][metric] for s in by_seed], dtype=np.float64)
        noise = float(v.std(ddof=1)) if v.size > 1 else float("nan")
        gain = float(g.mean())
        ok = bool(np.all(g > 0)) and (math.isnan(noise) or float(g.min()) > 2.0 * noise)
        prev = [s for s in by_seed if c - 1 in base[s]]
        steps = np.asarray([base[s][c][metric] - base[s][c - 1][metric] for s in prev], dtype=np.float64)
        step = float(steps.mean()) if steps.size else float("nan")
        step_ok = bool(steps.size) and bool(np.all(steps > 0)) and (
            math.isnan(noise) or float(steps.min()) > 2.0 * noise)
        out[c] = {"gain": gain, "min_gain": float(g.min()), "noise": noise, "seeds": int(g.size), "matters": ok,
                  "step": step, "step_matters": step_ok}
    return out


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _mean_sd(values: Sequence[float]) -> str:
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        return "—"
    return f"{v.mean():.3f} ± {v.std(ddof=1) if v.size > 1 else 0.0:.3f}"


def _savings_along(rows: Sequence[dict], baseline: str, strategies: Sequence[str], boxes: bool) -> list[str]:
    """The savings table at every cycle of the baseline after the first (the last row is the final one)."""
    base = curve(rows, baseline)
    if not strategies or base.cycles.size < 3:
        return []
    lines = [f"## Label savings along the curve (to reach {baseline}'s mean mAP50-95 at each of its cycles)", ""]
    lines.append(f"Fewer images{' / fewer boxes' if boxes else ''} than {baseline} needed to reach {baseline}'s "
                 "mean at that cycle, on the mean curves (negative: more). The last row is the table above.")
    lines.append("")
    head = ["cycle", f"{baseline} mAP50-95", f"{baseline} labeled fraction", *strategies]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for i in range(1, base.cycles.size):
        sav = label_savings(rows, baseline, at=i)
        sav_b = label_savings(rows, baseline, x="n_boxes", at=i) if boxes else {}
        cells = [str(int(base.cycles[i])), f"{base.mean[i]:.3f}", f"{base.fraction[i]:.3f}"]
        for s in strategies:
            sv = sav[s]["savings"]
            cell = "not reached" if sv is None else f"{sv:.0%}"
            if boxes:
                svb = sav_b[s]["savings"]
                cell += " / " + ("not reached" if svb is None else f"{svb:.0%}")
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def summary_markdown(
    rows: Sequence[dict], baseline: str = "random", title: str = "Simulation", control: str = "hold",
    curves_png: str | None = "curves.png",
) -> str:
    strategies = strategies_of(rows)
    seeds = sorted({r["seed"] for r in rows})
    boxes = has_boxes(rows)
    lines = [f"# {title}", ""]
    lines.append(f"Strategies: {', '.join(strategies)}; seeds: {', '.join(map(str, seeds))}.")
    lines.append("")
    if curves_png:
        lines += [f"![mAP50-95 against images and boxes labeled]({curves_png})", ""]
    lines.append("## Final cycle (mean ± std over seeds)")
    lines.append("")
    lines.append("AUC: area under mAP50-95 against labeled fraction, over its range (the mean mAP50-95 "
                 "across the labeling budget).")
    lines.append("")
    head = "| strategy | seeds | labeled fraction |" + (" boxes labeled |" if boxes else "")
    lines.append(head + " mAP50 | mAP50-95 | AUC |")
    lines.append("|---|---|---|" + ("---|" if boxes else "") + "---|---|---|")
    for s in strategies:
        c50, c = curve(rows, s, "map50"), curve(rows, s, "map50_95")
        cells = [s, str(int(c.n_seeds[-1])), f"{c.fraction[-1]:.3f}"]
        if boxes:
            cells.append(f"{curve(rows, s, x='n_boxes').fraction[-1]:.0f}")
        cells += [f"{c50.mean[-1]:.3f} ± {c50.std[-1]:.3f}", f"{c.mean[-1]:.3f} ± {c.std[-1]:.3f}",
                  _mean_sd(auc(rows, s).values())]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    matter: dict[int, dict] = {}
    if baseline in strategies and control in strategies:
        matter = labels_matter(rows, control, baseline)
        lines.append(f"## Do labels matter? ({baseline} − {control}, per cycle)")
        lines.append("")
        lines.append(
            f"`{control}` keeps the initial labels and trains exactly as much as the others. A cycle can "
            f"rank strategies only if the paired gain {baseline} − {control} at every seed is larger "
            f"than twice the seed-to-seed std of {baseline} at that cycle."
        )
        lines.append("")
        lines.append(
            f"| cycle | {baseline} − {control} (mean) | smallest seed gain | std of {baseline} "
            f"| last batch's gain ({baseline}, c − (c−1)) | verdict |"
        )
        lines.append("|---|---|---|---|---|---|")
        for c, m in matter.items():
            verdict = "labels matter" if m["matters"] else "**cannot rank strategies** (no label effect above noise)"
            if m["matters"] and not m["step_matters"]:
                verdict += "; the last batch added less than twice the seed noise (the curve is flattening)"
            if c == 0:
                verdict = "initial set (same for every strategy)"
            step = "—" if math.isnan(m["step"]) else f"{m['step']:+.3f}"
            lines.append(
                f"| {c} | {m['gain']:+.3f} | {m['min_gain']:+.3f} | {_fmt(m['noise'])} | {step} | {verdict} |"
            )
        lines.append("")
    if baseline in strategies:
        base = curve(rows, baseline)
        others = [s for s in strategies if s != baseline]
        lines.append(f"## mAP50-95 per cycle (mean over seeds; gap = strategy − {baseline})")
        lines.append("")
        head = ["cycle", "labeled fraction", baseline] + [f"{s} (gap)" for s in others]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        curves = {s: curve(rows, s) for s in others}
        for i, cyc in enumerate(base.cycles):
            mark = "" if not matter or int(cyc) == 0 or matter.get(int(cyc), {}).get("matters", True) else " †"
            cells = [f"{int(cyc)}{mark}", f"{base.fraction[i]:.3f}", f"{base.mean[i]:.3f}"]
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
        if matter and any(not m["matters"] for c, m in matter.items() if c > 0):
            lines += ["† labels did not matter at this cycle: its gaps cannot rank strategies.", ""]
        compared = [s for s in others if s != control]
        if compared and len(seeds) > 0:
            lines.append(f"## Paired gaps per seed (strategy − {baseline}, mAP50-95; last row: AUC)")
            lines.append("")
            head = ["cycle"] + [f"{s} seed {k}" for s in compared for k in seeds]
            lines.append("| " + " | ".join(head) + " |")
            lines.append("|" + "---|" * len(head))
            gaps = {s: paired_gaps(rows, s, baseline) for s in compared}
            base_auc = auc(rows, baseline)
            for cyc in base.cycles:
                cells = [str(int(cyc))]
                for s in compared:
                    for k in seeds:
                        g = gaps[s].get(int(cyc), {}).get(k)
                        cells.append("—" if g is None else f"{g:+.3f}")
                lines.append("| " + " | ".join(cells) + " |")
            cells = ["AUC"]
            for s in compared:
                mine = auc(rows, s)
                for k in seeds:
                    cells.append(f"{mine[k] - base_auc[k]:+.3f}" if k in mine and k in base_auc else "—")
            lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        sav = label_savings(rows, baseline)
        target = sav[baseline]["target"]
        sav_b = label_savings(rows, baseline, x="n_boxes") if boxes else {}
        lines.append(f"## Label savings (to reach {baseline}'s final mean mAP50-95 = {target:.3f})")
        lines.append("")
        head = "| strategy | labeled fraction needed | fewer images than random |"
        lines.append(head + (" boxes needed | fewer boxes than random |" if boxes else ""))
        lines.append("|---|---|---|" + ("---|---|" if boxes else ""))
        for s in strategies:
            f, sv = sav[s]["fraction"], sav[s]["savings"]
            cells = [s, _fmt(f), "not reached" if sv is None else f"{sv:.0%}"]
            if boxes:
                fb, svb = sav_b[s]["fraction"], sav_b[s]["savings"]
                cells += [_fmt(fb, ".0f"), "not reached" if svb is None else f"{svb:.0%}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines.append(
            "Fractions and box counts are linearly interpolated between cycles on the mean curve. "
            "A strategy that never reaches the target within the budget saves nothing."
        )
        lines.append("")
        lines += _savings_along(rows, baseline, [s for s in others if s != control], boxes)
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
    """mAP against labeled fraction (and, when known, against boxes labeled): mean, min–max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_x = [("labeled_fraction", "labeled fraction of the pool")]
    if has_boxes(rows):
        axes_x.append(("n_boxes", "boxes labeled"))
    fig, axes = plt.subplots(1, len(axes_x), figsize=(6.4 * len(axes_x), 4.2), dpi=110, squeeze=False)
    for ax, (x, label) in zip(axes[0], axes_x):
        for s in strategies_of(rows):
            c = curve(rows, s, metric, x)
            style = "--" if s == "hold" else "-"
            (line,) = ax.plot(c.fraction, c.mean, style, marker="o", label=f"{s} (n={int(c.n_seeds.max())})")
            ax.fill_between(c.fraction, c.lo, c.hi, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_xlabel(label)
        ax.set_ylabel("mAP50-95 (val)" if metric == "map50_95" else metric)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title or "mean over seeds, band: min–max", fontsize="medium")
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
    plot_curves(rows, png, title=f"{out.name}: mAP50-95 vs labels (mean over seeds, min–max band)")
    text = summary_markdown(rows, baseline, title=f"Simulation `{out.name}`")
    atomic_write(md, text)
    return png, md
