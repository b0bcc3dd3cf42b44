"""The numbers of a simulation's report, from its ``results.csv``: pure functions, no IO but the load.

Curves (:func:`curve`): per strategy and cycle, the mean over seeds of mAP50-95
against a label axis (:data:`AXES`: images as the labeled fraction, boxes as
``n_boxes``, and annotator time as the cumulative seconds ``annotator_s``
(the run's ``effort_seconds``) and ``annotator_s_draw25`` (the same with
draw = 25 s), each when the results carry it; :func:`axes_of`). Savings are
ratios, so the unit does not matter to them; the report shows time in hours
(:func:`per_unit`).

The headline, :func:`saving_along_curve`: for every level of the baseline's
mean curve after the initial set (cycles 1 to the last; at cycle 0 every
strategy has the same initial labels, so nothing can be saved there), how
many fewer labels a strategy needed to reach that level on its own mean curve
(linearly interpolated between cycles, :func:`first_reach`), as ``1 - f /
f_baseline``; then the mean over those levels. It is the saving over the
whole labeling budget, not at one point, so a flat tail cannot make it.

The final-target saving, :func:`label_savings` at the baseline's last cycle,
reads where a strategy first reaches the baseline's final mean. On a flat
tail that point swings with noise (a curve within 0.001 of the target
reaches it anywhere), so the report shows it only where
:func:`final_step` says the baseline's last batch added more than twice the
seed-to-seed noise at every seed.

Area under the curve (:func:`auc`): the trapezoid area of mAP50-95 over the
labeled fraction, divided by the fraction's range, i.e. the mean mAP across
the labeling budget; per seed, and paired per seed against the baseline.

Does a cycle measure labels? With a ``hold`` control in the results (the
initial labels only, trained as much as the others), cycle ``c`` can rank
strategies only when adding labels moved mAP by more than the seeds do
(:func:`labels_matter`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detal.errors import DataError

__all__ = [
    "AXES",
    "HOURS",
    "AlongCurve",
    "Curve",
    "auc",
    "axes_of",
    "curve",
    "cycles_below",
    "final_step",
    "first_reach",
    "has_boxes",
    "label_savings",
    "labels_matter",
    "load_results",
    "paired_gaps",
    "per_unit",
    "saving_along_curve",
    "strategies_of",
]

# The annotator-time columns of a results.csv (cumulative seconds) and the draw seconds of their
# profile: None for the run's own ``effort_seconds`` (its draw is the run's config's).
HOURS: dict[str, float | None] = {"annotator_s": None, "annotator_s_draw25": 25.0}

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
                for k in ("n_labeled", "n_boxes", *HOURS):
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


# The label axes a report measures savings on: (results column, name). Images is always there
# (the labeled fraction); the others when every row carries the column. The names of the time
# axes are :func:`axes_of`'s, which knows the run's draw seconds.
AXES: tuple[tuple[str, str], ...] = (
    ("labeled_fraction", "images"), ("n_boxes", "boxes"), *((x, "hours") for x in HOURS))


def _hours_name(draw_s: float | None) -> str:
    return "hours (the run's effort_seconds)" if draw_s is None else f"hours (draw {draw_s:g} s)"


def axes_of(rows: Sequence[dict], draw_s: float | None = None) -> list[tuple[str, str]]:
    """The :data:`AXES` that every row of ``rows`` carries (images always), with their names.

    A time axis is named by its profile's draw seconds: ``annotator_s`` by
    ``draw_s`` (the run's ``effort_seconds.draw``; unknown when ``None``),
    ``annotator_s_draw25`` by its 25 s.
    """
    out = []
    for x, name in AXES:
        if x != "labeled_fraction" and not (bool(rows) and all(x in r for r in rows)):
            continue
        if x in HOURS:
            name = _hours_name(draw_s if HOURS[x] is None else HOURS[x])
        out.append((x, name))
    return out


def per_unit(x: str) -> float:
    """What one shown unit of axis ``x`` is in its column: 3600 (seconds an hour) for time, else 1."""
    return 3600.0 if x in HOURS else 1.0


@dataclass(frozen=True)
class AlongCurve:
    """A strategy's label saving along the baseline's curve (:func:`saving_along_curve`).

    ``per_level`` holds one saving per baseline level (cycles 1..last), ``None``
    where the strategy never reached that level. ``mean`` is their mean, with
    an unreached level counted as reached at the strategy's last point, so
    ``bound`` (some level unreached) makes ``mean`` an upper bound: the true
    saving is lower.
    """

    per_level: tuple[float | None, ...]
    mean: float | None
    bound: bool


def saving_along_curve(
    rows: Sequence[dict], strategy: str, baseline: str = "random", x: str = "labeled_fraction",
    metric: str = "map50_95", seed: int | None = None,
) -> AlongCurve:
    """The mean, over the baseline's levels after the initial set, of the fewer labels needed to reach each.

    ``seed`` restricts both curves to that seed's rows (a paired, per-seed
    saving); otherwise the mean curves over the seeds both have are compared
    (an arm run at fewer seeds is not held against the baseline's other seeds).
    """
    sel = [r for r in rows if r["seed"] == seed] if seed is not None else shared_seed_rows(rows, strategy, baseline)
    base, mine = curve(sel, baseline, metric, x), curve(sel, strategy, metric, x)
    if mine.cycles.size == 0:
        return AlongCurve((), None, False)
    per: list[float | None] = []
    counted: list[float] = []
    for level, f_base in zip(base.mean[1:], base.fraction[1:]):
        if f_base <= 0:
            continue
        f = first_reach(mine.fraction, mine.mean, float(level))
        per.append(None if f is None else 1.0 - f / f_base)
        counted.append(1.0 - (mine.fraction[-1] if f is None else f) / f_base)
    mean = float(np.mean(counted)) if counted else None
    return AlongCurve(tuple(per), mean, any(p is None for p in per))


def final_step(rows: Sequence[dict], baseline: str = "random", metric: str = "map50_95") -> dict:
    """What the baseline's last batch added, and whether a final-target saving can be read.

    ``steps``: per seed, the baseline's ``metric`` at its last cycle minus the
    cycle before; ``noise``: the seed-to-seed std of the baseline at its last
    cycle (NaN with one seed); ``measurable``: at least two seeds, and every
    step larger than ``2 * noise``.
    """
    steps: dict[int, float] = {}
    finals: list[float] = []
    for seed, by_cycle in sorted(_by_seed(rows, baseline).items()):
        last = max(by_cycle)
        finals.append(by_cycle[last][metric])
        if last - 1 in by_cycle:
            steps[seed] = float(by_cycle[last][metric] - by_cycle[last - 1][metric])
    noise = float(np.std(finals, ddof=1)) if len(finals) > 1 else float("nan")
    ok = len(steps) > 1 and not math.isnan(noise) and all(s > 2.0 * noise for s in steps.values())
    return {"steps": steps, "noise": noise, "measurable": bool(ok)}


def shared_seed_rows(rows: Sequence[dict], strategy: str, baseline: str) -> list[dict]:
    """The rows of the seeds at which both ``strategy`` and ``baseline`` ran (what a paired mean compares)."""
    def seeds_of(name: str) -> set:
        return {r["seed"] for r in rows if r["strategy"] == name}

    shared = seeds_of(strategy) & seeds_of(baseline)
    return [r for r in rows if r["seed"] in shared]


def cycles_below(rows: Sequence[dict], strategy: str, baseline: str = "random", metric: str = "map50_95") -> list[int]:
    """The cycles after the initial set at which the strategy's mean is below the baseline's, on shared seeds."""
    rows = shared_seed_rows(rows, strategy, baseline)
    base, mine = curve(rows, baseline, metric), curve(rows, strategy, metric)
    at = {int(c): float(v) for c, v in zip(base.cycles, base.mean)}
    return [int(c) for c, v in zip(mine.cycles, mine.mean) if int(c) > 0 and int(c) in at and v < at[int(c)]]
