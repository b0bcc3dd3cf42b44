"""``detal status``: everything about a project's state, as plain data.

It only reads: the store is opened with SQLite's ``mode=ro`` (see
:meth:`detal.store.Store.open`), nothing is created or migrated, and a
project the user may only read can be shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detal.pool import Status
from detal.project.folder import batch_out, command_running, open_store, project_config
from detal.project.paths import ProjectPaths
from detal.project.pseudo import read_summary

__all__ = ["project_status"]


def project_status(project: str | Path) -> dict[str, Any]:
    """Everything ``detal status`` shows, as plain data (JSON-ready)."""
    project = Path(project)
    store = open_store(project, readonly=True)
    try:
        counts = store.status_counts()
        problems = store.problem_counts()
        pool_size = sum(v for s, v in counts.items() if s != Status.VAL.value)
        cfg = project_config(project)
        cycles = []
        classes = store.get_meta("classes")
        for c in store.cycles():
            m = c.metrics
            cycles.append({
                "cycle": c.id,
                "state": c.state,
                "n_train": c.n_train,
                "n_selected": c.n_selected,
                "map50": None if m is None else m.map50,
                "map50_95": None if m is None else m.map50_95,
                # per-class mAP50-95 by class name; null for a class with no validation instance
                "per_class_map50_95": (
                    dict(zip(classes, m.per_class)) if m is not None and m.per_class is not None else None
                ),
                "weights": c.weights,
                "timings": c.timings,
                # self-training this cycle (null: off): pseudo_images, pseudo_boxes, threshold, how
                # (calibrated | clamped-low | clamped-high | unreached | fallback | config | none),
                # calibrated_on, precision_target, precision, teacher, teacher_metrics, ...
                "self_training": read_summary(ProjectPaths(project).cycle_dir(c.id)),
            })
        states = {c["cycle"]: c["state"] for c in cycles}
        out = [
            {"cycle": cyc, "remaining": rem, "selected": tot, **_bundle(project, cyc, states.get(cyc))}
            for cyc, (rem, tot) in sorted(batch_out(store).items())
        ]
        return {
            "project": str(project),
            "classes": classes,
            "images": {"pool": pool_size, **counts, **problems},
            "labeled_fraction": counts[Status.LABELED.value] / pool_size if pool_size else 0.0,
            "max_labeled_fraction": cfg.max_labeled_fraction,
            "cycles": cycles,
            # each batch out: cycle, remaining, selected, bundle (null: none on disk) and no_bundle (why)
            "batch_out": out,
            "duplicates": store.duplicates(),
            "imports": len(store.imports()),
            "running": command_running(project),
        }
    finally:
        store.close()


def _bundle(project: Path, cycle: int, state: str | None) -> dict[str, str | None]:
    """The batch's bundle, relative to the project (``None`` when there is no such file), and,
    without one, why: the cycle stopped before writing it, or it was never written
    (``detal simulate`` writes none) or was removed since."""
    rel = ProjectPaths(Path()).bundle(cycle)
    if (project / rel).is_file():
        return {"bundle": rel.as_posix(), "no_bundle": None}
    if state not in (None, "done"):
        why = f"not written yet: cycle {cycle} stopped at state {state!r}; run detal cycle to finish it"
    else:
        why = f"no {rel.as_posix()} in the project (never written, as by detal simulate, or removed)"
    return {"bundle": None, "no_bundle": why}
