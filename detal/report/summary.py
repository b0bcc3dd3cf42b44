"""``summary.md``: the report's tables, in markdown, from the numbers of :mod:`detal.report.numbers`.

The headline comes first: the label saving along the whole curve, with the
AUC gap and its sign on every seed beside it. Every saving is given on each
label axis the results carry (:func:`~detal.report.numbers.axes_of`):
images, boxes, and annotator hours under both cost profiles. The final-target saving follows
only where the baseline's last batch moved the curve by more than the seed
noise (:func:`~detal.report.numbers.final_step`); elsewhere the summary says
that it cannot be measured, and why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from detal.report.numbers import (
    auc,
    axes_of,
    curve,
    cycles_below,
    final_step,
    label_savings,
    labels_matter,
    paired_gaps,
    per_unit,
    saving_along_curve,
    strategies_of,
)

__all__ = ["summary_markdown"]


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _mean_sd(values: Sequence[float]) -> str:
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        return "—"
    return f"{v.mean():.3f} ± {v.std(ddof=1) if v.size > 1 else 0.0:.3f}"


def _pct(v: float | None, bound: bool = False) -> str:
    if v is None:
        return "—"
    return ("< " if bound else "") + f"{v:+.0%}"


def _hours_cell(rows: Sequence[dict], strategy: str, x: str) -> str:
    """Annotator hours at the last cycle (mean over seeds), and seconds per labeled image where known."""
    seconds = float(curve(rows, strategy, x=x).fraction[-1])
    cell = f"{seconds / per_unit(x):.2f}"
    if all("n_labeled" in r for r in rows if r["strategy"] == strategy):
        n = float(curve(rows, strategy, x="n_labeled").fraction[-1])
        cell += f" ({seconds / n:.1f} s an image)" if n > 0 else ""
    return cell


def _headline(
    rows: Sequence[dict], baseline: str, compared: Sequence[str], seeds: Sequence[int], axes: Sequence[tuple[str, str]]
) -> list[str]:
    """The saving along the whole curve, per label axis, with the AUC gap on every seed."""
    if not compared:
        return []
    n_levels = max(0, curve(rows, baseline).cycles.size - 1)
    lines = [f"## Headline: labels saved along the curve (against {baseline})", ""]
    lines.append(
        f"For each of {baseline}'s {n_levels} mean mAP50-95 levels after the initial set, how many fewer "
        f"labels{' (or annotator hours)' if any(per_unit(x) != 1 for x, _ in axes) else ''} a strategy "
        "needed to reach it on its own mean curve (interpolated between cycles), "
        "averaged over the levels; negative: more labels. `<`: some level was never reached, counted as "
        "reached at the strategy's last point, so the true saving is lower. Per seed: the same on that "
        f"seed's curves. AUC gap: strategy − {baseline}, mean and per seed."
    )
    lines.append("")
    head = ["strategy", *[f"fewer {name}" for _, name in axes], *[f"{name}, per seed" for _, name in axes],
            "AUC gap", "AUC gap per seed", f"cycles below {baseline}"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    base_auc = auc(rows, baseline)
    for s in compared:
        cells = [s]
        for x, _ in axes:
            a = saving_along_curve(rows, s, baseline, x=x)
            cells.append(_pct(a.mean, a.bound))
        for x, _ in axes:
            per_seed = [saving_along_curve(rows, s, baseline, x=x, seed=k) for k in seeds]
            cells.append(" / ".join(_pct(a.mean, a.bound) for a in per_seed))
        mine = auc(rows, s)
        gaps = [mine[k] - base_auc[k] for k in seeds if k in mine and k in base_auc]
        cells.append(f"{np.mean(gaps):+.3f}" if gaps else "—")
        signs = f"{sum(g > 0 for g in gaps)} of {len(gaps)} seeds positive" if gaps else ""
        cells.append((" / ".join(f"{g:+.3f}" for g in gaps) + f" ({signs})") if gaps else "—")
        below = cycles_below(rows, s, baseline)
        cells.append("none" if not below else ", ".join(map(str, below)))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def _savings_along(
    rows: Sequence[dict], baseline: str, strategies: Sequence[str], axes: Sequence[tuple[str, str]], final_ok: bool
) -> list[str]:
    """The savings table at every cycle of the baseline after the first (the last row is the final one)."""
    base = curve(rows, baseline)
    if not strategies or base.cycles.size < 3:
        return []
    lines = [f"## Label savings along the curve (to reach {baseline}'s mean mAP50-95 at each of its cycles)", ""]
    last = ("The last row is the final-target table above." if final_ok else
            f"The last row (‡) is {baseline}'s flat tail: its last batch added less than twice the seed noise, "
            "so that row alone cannot be read as a saving.")
    lines.append(f"Fewer {' / fewer '.join(name for _, name in axes)} than {baseline} needed to reach {baseline}'s "
                 f"mean at that cycle, on the mean curves (negative: more); the headline is their mean. {last}")
    lines.append("")
    head = ["cycle", f"{baseline} mAP50-95", f"{baseline} labeled fraction", *strategies]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for i in range(1, base.cycles.size):
        sav = [label_savings(rows, baseline, x=x, at=i) for x, _ in axes]
        tail = " ‡" if i == base.cycles.size - 1 and not final_ok else ""
        cells = [f"{int(base.cycles[i])}{tail}", f"{base.mean[i]:.3f}", f"{base.fraction[i]:.3f}"]
        for s in strategies:
            cells.append(" / ".join("not reached" if a[s]["savings"] is None else f"{a[s]['savings']:.0%}"
                                    for a in sav))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def summary_markdown(
    rows: Sequence[dict], baseline: str = "random", title: str = "Simulation", control: str = "hold",
    curves_png: str | None = "curves.png", draw_s: float | None = None,
) -> str:
    """The report's markdown. ``draw_s``: the run's ``effort_seconds.draw``, which names its time axis."""
    strategies = strategies_of(rows)
    seeds = sorted({r["seed"] for r in rows})
    axes = axes_of(rows, draw_s)
    boxes = any(x == "n_boxes" for x, _ in axes)
    hours = [(x, name) for x, name in axes if per_unit(x) != 1]
    lines = [f"# {title}", ""]
    lines.append(f"Strategies: {', '.join(strategies)}; seeds: {', '.join(map(str, seeds))}.")
    lines.append("")
    if curves_png:
        also = ", and annotator hours" if hours else ""
        lines += [f"![mAP50-95 against images and boxes labeled{also}]({curves_png})", ""]
    if baseline in strategies:
        lines += _headline(rows, baseline, [s for s in strategies if s not in (baseline, control)], seeds, axes)
    lines.append("## Final cycle (mean ± std over seeds)")
    lines.append("")
    lines.append("AUC: area under mAP50-95 against labeled fraction, over its range (the mean mAP50-95 "
                 "across the labeling budget).")
    lines.append("")
    head = "| strategy | seeds | labeled fraction |" + (" boxes labeled |" if boxes else "")
    head += "".join(f" annotator {name} |" for _, name in hours)
    lines.append(head + " mAP50 | mAP50-95 | AUC |")
    lines.append("|---|---|---|" + ("---|" if boxes else "") + "---|" * len(hours) + "---|---|---|")
    for s in strategies:
        c50, c = curve(rows, s, "map50"), curve(rows, s, "map50_95")
        cells = [s, str(int(c.n_seeds[-1])), f"{c.fraction[-1]:.3f}"]
        if boxes:
            cells.append(f"{curve(rows, s, x='n_boxes').fraction[-1]:.0f}")
        cells += [_hours_cell(rows, s, x) for x, _ in hours]
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
        step = final_step(rows, baseline)
        if step["measurable"]:
            sav = [label_savings(rows, baseline, x=x) for x, _ in axes]
            target = sav[0][baseline]["target"]
            lines.append(f"## Label savings (to reach {baseline}'s final mean mAP50-95 = {target:.3f})")
            lines.append("")
            head = ["strategy"]
            for x, name in axes:
                head += ["labeled fraction needed" if x == "labeled_fraction" else f"{name} needed",
                         f"fewer {name} than {baseline}"]
            lines.append("| " + " | ".join(head) + " |")
            lines.append("|" + "---|" * len(head))
            for s in strategies:
                cells = [s]
                for (x, _), a in zip(axes, sav):
                    f, sv = a[s]["fraction"], a[s]["savings"]
                    spec = ".3f" if x == "labeled_fraction" else ".0f" if per_unit(x) == 1 else ".2f"
                    cells += [_fmt(None if f is None else f / per_unit(x), spec),
                              "not reached" if sv is None else f"{sv:.0%}"]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
            lines.append(
                f"Fractions, box counts{' and hours' if hours else ''} are linearly interpolated between "
                "cycles on the mean curve. "
                "A strategy that never reaches the target within the budget saves nothing."
            )
            lines.append("")
        else:
            lines.append(f"## Label savings at {baseline}'s final mAP50-95: cannot be measured")
            lines.append("")
            if len(step["steps"]) < 2:
                why = "one seed gives no estimate of the seed noise"
            else:
                per = " / ".join(f"{v:+.3f}" for v in step["steps"].values())
                why = (f"{baseline}'s last batch added {per} mAP50-95 (per seed), not more than twice the "
                       f"seed-to-seed std at its last cycle (2 × {step['noise']:.3f}) at every seed")
            lines.append(
                f"Where {baseline}'s curve is flat at the end, the point where another curve first reaches its "
                f"final value swings with noise, so no saving is read there: {why}. The headline above "
                "(the saving along the whole curve) is the measure."
            )
            lines.append("")
        lines += _savings_along(rows, baseline, [s for s in others if s != control], axes,
                                step["measurable"])
    times = [r for r in rows if "train_s" in r]
    if times:
        lines.append("## Compute time (seconds, mean per cycle over seeds)")
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
