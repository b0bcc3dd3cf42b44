"""``curves.png`` and the report's files: mAP50-95 against every label axis, and :func:`write_report`.

Plotting uses matplotlib's Agg backend and needs no display.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from detal.errors import DataError
from detal.files import atomic_write
from detal.report.numbers import axes_of, curve, load_results, strategies_of
from detal.report.summary import summary_markdown

__all__ = ["plot_curves", "write_report"]

_AXIS_LABELS = {"labeled_fraction": "labeled fraction of the pool", "n_boxes": "boxes labeled"}
CONTROL = "hold"


def plot_curves(rows: Sequence[dict], path: Path, metric: str = "map50_95", title: str = "") -> None:
    """mAP against each label axis (:func:`~detal.report.numbers.axes_of`): mean, min–max band.

    The ``hold`` control keeps its initial labels, so all its points share one
    x; it is drawn as a dashed line across the x range (its mean over cycles,
    with its min–max band), the level that training alone reaches.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_x = axes_of(rows)
    fig, axes = plt.subplots(1, len(axes_x), figsize=(6.4 * len(axes_x), 4.2), dpi=110, squeeze=False)
    for ax, (x, _name) in zip(axes[0], axes_x):
        learners = [s for s in strategies_of(rows) if s != CONTROL]
        xs = [v for s in learners for v in curve(rows, s, metric, x).fraction]
        for s in strategies_of(rows):
            c = curve(rows, s, metric, x)
            if s == CONTROL and xs:
                span = [min(xs), max(xs)]
                level = float(c.mean.mean())
                (line,) = ax.plot(span, [level, level], "--", label=f"{s}: initial labels only (n={int(c.n_seeds.max())})")
                ax.fill_between(span, [float(c.lo.min())] * 2, [float(c.hi.max())] * 2, color=line.get_color(),
                                alpha=0.12, linewidth=0)
                continue
            (line,) = ax.plot(c.fraction, c.mean, "-", marker="o", label=f"{s} (n={int(c.n_seeds.max())})")
            ax.fill_between(c.fraction, c.lo, c.hi, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_xlabel(_AXIS_LABELS.get(x, x))
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
