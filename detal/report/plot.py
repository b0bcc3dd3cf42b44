"""``curves.png`` and the report's files: mAP50-95 against every label axis, and :func:`write_report`.

One panel per axis the results carry (:func:`~detal.report.numbers.axes_of`),
two to a row: images, boxes, then annotator hours under each cost profile.
Plotting uses matplotlib's Agg backend and needs no display.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

from detal.errors import DataError, DetalError
from detal.files import atomic_write
from detal.report.numbers import axes_of, curve, load_results, per_unit, strategies_of
from detal.report.summary import summary_markdown

__all__ = ["plot_curves", "run_draw_seconds", "write_report"]

_AXIS_LABELS = {"labeled_fraction": "labeled fraction of the pool", "n_boxes": "boxes labeled"}
CONTROL = "hold"


def plot_curves(
    rows: Sequence[dict], path: Path, metric: str = "map50_95", title: str = "", draw_s: float | None = None
) -> None:
    """mAP against each label axis (:func:`~detal.report.numbers.axes_of`): mean, min–max band.

    The ``hold`` control keeps its initial labels, so all its points share one
    x; it is drawn as a dashed line across the x range (its mean over cycles,
    with its min–max band), the level that training alone reaches.
    ``draw_s`` (the run's ``effort_seconds.draw``) names the time axis.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_x = axes_of(rows, draw_s)
    n_cols = min(2, len(axes_x))
    n_rows = math.ceil(len(axes_x) / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(6.4 * n_cols, 4.2 * n_rows), dpi=110, squeeze=False)
    for ax, (x, name) in zip(axes.flat, axes_x):
        learners = [s for s in strategies_of(rows) if s != CONTROL]
        unit = per_unit(x)
        xs = [v / unit for s in learners for v in curve(rows, s, metric, x).fraction]
        for s in strategies_of(rows):
            c = curve(rows, s, metric, x)
            c_x = c.fraction / unit
            if s == CONTROL and xs:
                span = [min(xs), max(xs)]
                level = float(c.mean.mean())
                (line,) = ax.plot(span, [level, level], "--", label=f"{s}: initial labels only (n={int(c.n_seeds.max())})")
                ax.fill_between(span, [float(c.lo.min())] * 2, [float(c.hi.max())] * 2, color=line.get_color(),
                                alpha=0.12, linewidth=0)
                continue
            (line,) = ax.plot(c_x, c.mean, "-", marker="o", label=f"{s} (n={int(c.n_seeds.max())})")
            ax.fill_between(c_x, c.lo, c.hi, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_xlabel(_AXIS_LABELS.get(x, f"annotator {name}"))
        ax.set_ylabel("mAP50-95 (val)" if metric == "map50_95" else metric)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(axes_x):]:  # an odd number of panels
        ax.set_visible(False)
    fig.suptitle(title or "mean over seeds, band: min–max", fontsize="medium")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write(path, buf.getvalue())


def run_draw_seconds(results_csv: str | Path) -> float | None:
    """``effort_seconds.draw`` of the run whose ``config.yaml`` lies beside ``results_csv`` (None: none there).

    The config only names the time axis, so an unreadable one leaves it unnamed rather than failing the report.
    """
    from detal.config import load_config

    config = Path(results_csv).parent / "config.yaml"
    if not config.is_file():
        return None
    try:
        return float(load_config(config).effort_seconds["draw"])
    except DetalError:
        return None


def write_report(
    results_csv: str | Path, out_dir: str | Path, baseline: str = "random", draw_s: float | None = None
) -> tuple[Path, Path]:
    """Write ``curves.png`` and ``summary.md`` for ``results_csv`` into ``out_dir``.

    ``draw_s`` names the time axis ``annotator_s`` (the draw seconds of its
    profile); by default it is read from the run's ``config.yaml`` beside
    ``results_csv`` (:func:`run_draw_seconds`), as ``detal simulate`` writes it.
    """
    rows = load_results(results_csv)
    if not rows:
        raise DataError(f"{results_csv}: no result rows")
    if draw_s is None:
        draw_s = run_draw_seconds(results_csv)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png, md = out / "curves.png", out / "summary.md"
    plot_curves(rows, png, title=f"{out.name}: mAP50-95 vs labels (mean over seeds, min–max band)", draw_s=draw_s)
    text = summary_markdown(rows, baseline, title=f"Simulation `{out.name}`", draw_s=draw_s)
    atomic_write(md, text)
    return png, md
