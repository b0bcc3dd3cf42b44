"""``detal status``: everything about a project's state, as plain data.

An image folder that cannot be reached (an unmounted disk, a broken
``images`` link: :func:`detal.project.verify.unreachable_folders`) is
named (``--json``: ``unreachable``, one line per folder), since every figure
shown is then only what the store remembers.

It only reads: the store is opened with SQLite's ``mode=ro`` (see
:meth:`detal.store.Store.open`), nothing is created or migrated, and a
project the user may only read can be shown.

What correcting each batch took (``--json``: ``cycles[].effort``, and
``effort_total`` over every batch; ``null`` where no image of the batch has
come back). The keys are stable:

- ``images``: returned images of the batch (the cycle that selected them);
  ``prelabeled_images``: those that had pre-labels shipped (none in cycle 0,
  the initial random batch);
- ``shipped_boxes``, ``returned_boxes``: pre-label boxes shipped, boxes in
  the labels that came back;
- ``verified``, ``adjusted``, ``relabeled``, ``deleted``, ``drawn``: the
  action counts (:mod:`detal.effort`);
- ``precision``, ``recall``: of the shipped pre-labels against the returned
  labels (matched at IoU >= ``effort_iou.match``, same class), over the
  pre-labeled images; ``null`` where there is nothing to divide by;
- ``annotator_s``: estimated annotator seconds, with the project config's
  ``effort_seconds`` (given at the top level, with ``effort_iou``);
- ``from_scratch_s``: the seconds the same returned boxes would take drawn
  with no pre-labels (``per_image + returned * draw`` per image).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detal.effort import BatchCost, Effort, batch_cost
from detal.pool import Status
from detal.project.folder import batch_out, command_running, open_store, project_config
from detal.project.paths import ProjectPaths
from detal.project.pseudo import read_summary
from detal.project.verify import unreachable_folders, unreachable_note

__all__ = ["EFFORT_KEYS", "effort_figures", "project_status"]

EFFORT_KEYS = ("images", "prelabeled_images", "shipped_boxes", "returned_boxes", "verified", "adjusted",
               "relabeled", "deleted", "drawn", "precision", "recall", "annotator_s", "from_scratch_s")
"""The keys of ``effort`` in ``detal status --json`` (see the module docstring)."""


def effort_figures(cost: BatchCost) -> dict[str, Any] | None:
    """A batch's :class:`~detal.effort.BatchCost` as ``detal status`` shows it; ``None`` when nothing came back."""
    if not cost.images:
        return None
    out = {"images": cost.images, "prelabeled_images": cost.prelabeled_images,
           "shipped_boxes": cost.shipped_boxes, "returned_boxes": cost.returned_boxes, **cost.counts,
           "precision": None if cost.precision is None else round(cost.precision, 4),
           "recall": None if cost.recall is None else round(cost.recall, 4),
           "annotator_s": round(cost.annotator_s, 1), "from_scratch_s": round(cost.from_scratch_s, 1)}
    return {k: out[k] for k in EFFORT_KEYS}


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
        effort = Effort(**cfg.effort_seconds)
        corrections = store.corrections()
        by_cycle: dict[int, list] = {}
        for row in corrections:
            by_cycle.setdefault(row.cycle, []).append(row)
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
                # what correcting this cycle's batch took (null: none of it back yet); keys: EFFORT_KEYS
                "effort": effort_figures(batch_cost(by_cycle.get(c.id, ()), effort)),
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
            "effort_seconds": dict(cfg.effort_seconds),
            "effort_iou": dict(cfg.effort_iou),
            "effort_total": effort_figures(batch_cost(corrections, effort)),
            "running": command_running(project),
            # each image folder (pool, validation) that cannot be reached: a line saying which and why
            "unreachable": [unreachable_note(root, why) for root, why in unreachable_folders(project, store)],
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
