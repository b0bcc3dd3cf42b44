"""The annotation loop on a project folder: init, cycle, import, status.

This is the Python API behind ``detal init | cycle | import | status``; the
CLI only parses arguments and prints, and ``detal simulate`` drives the same
functions with the ground truth as the annotator. A project folder looks like::

    PROJECT/
      detal.db          the store (detal.store): images, cycles, scores, imports
      classes.txt       class names, one a line
      config.yaml       the config snapshot the project was created with
      images -> DIR     a symbolic link to the image folder (not a copy)
      val_images -> DIR the validation images, if any
      labels/           the labels people made: detal's own copy, one file per
                        image at labels/<relpath without suffix>.txt
      cycles/<k>/       train/ (the adapter's run), val/ (its evaluation),
                        prelabels/ (YOLO txt) and batch-<k>.zip (the bundle
                        sent out for labeling)

Every one of these paths is named once, in :mod:`detal.project.paths`
(:class:`~detal.project.paths.ProjectPaths`).

One module per verb:

- :mod:`detal.project.create` (``init_project``), with
  :mod:`~detal.project.scan` (walking and hashing the image folder);
- :mod:`detal.project.cycle` (``run_cycle``): the one cycle engine, plan,
  train, evaluate, score, select, write the batch;
- :mod:`detal.project.label_import` (``import_labels``), with
  :mod:`~detal.project.label_files` (the one reader of label files);
- :mod:`detal.project.status` (``project_status``);
- :mod:`detal.project.bundle` (pre-labels, the bundle zip, other formats),
  :mod:`detal.project.verify` (images deleted or changed since init leave the
  pool when next used), :mod:`detal.project.folder` (the lock, the store,
  hooks, reports) and :mod:`detal.project.paths` (the layout).

Crash safety. Each cycle row in the store moves through
``started -> trained -> selected -> done`` (see :data:`detal.store.CYCLE_STATES`);
each move is one transaction, and files are written to a temporary name and
then renamed. One command at a time holds the project's lock (``flock``,
released by the kernel when the process dies).

Hooks: :class:`Hooks` holds callbacks for the named events in :data:`EVENTS`;
tests use them to kill the process at chosen points.
"""

from __future__ import annotations

from detal.files import IMAGE_SUFFIXES
from detal.project.create import init_project
from detal.project.cycle import run_cycle
from detal.project.folder import (
    EVENTS,
    CycleReport,
    Hooks,
    ImportReport,
    InitReport,
    project_config,
)
from detal.project.label_import import import_keyed_labels, import_labels
from detal.project.status import project_status

__all__ = [
    "EVENTS",
    "IMAGE_SUFFIXES",
    "CycleReport",
    "Hooks",
    "ImportReport",
    "InitReport",
    "import_keyed_labels",
    "import_labels",
    "init_project",
    "project_config",
    "project_status",
    "run_cycle",
]
