"""From a simulation's ``results.csv`` to ``curves.png`` and ``summary.md``.

- :mod:`detal.report.numbers`: the pure math (curves, the saving along the
  curve, the final-target saving and when it can be read, AUC, paired gaps,
  the ``hold`` control's verdicts);
- :mod:`detal.report.summary`: the markdown tables;
- :mod:`detal.report.plot`: the curves and :func:`write_report`.
"""

from __future__ import annotations

from detal.report.numbers import (
    AXES,
    HOURS,
    AlongCurve,
    Curve,
    auc,
    axes_of,
    curve,
    cycles_below,
    final_step,
    first_reach,
    has_boxes,
    label_savings,
    labels_matter,
    load_results,
    paired_gaps,
    per_unit,
    saving_along_curve,
    strategies_of,
)
from detal.report.plot import plot_curves, run_draw_seconds, write_report
from detal.report.summary import summary_markdown

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
    "plot_curves",
    "run_draw_seconds",
    "saving_along_curve",
    "strategies_of",
    "summary_markdown",
    "write_report",
]
