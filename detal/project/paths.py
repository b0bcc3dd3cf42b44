"""Every path in a project folder, named once.

::

    PROJECT/
      detal.db              the store                       ProjectPaths.db
      classes.txt           class names, one a line         .classes
      config.yaml           the config snapshot             .config
      .detal.lock           the one lock                    .lock
      images -> DIR         the image folder (a link)       .images
      val_images -> DIR     the validation images (a link)  .val_images
      labels/               labels people made              .labels_dir, .label(relpath)
        .replaced/          labels overwritten by an import .replaced_dir
      cycles/<k>/           one folder per cycle            .cycle_dir(k)
        train/, val/        the adapter's run, its eval     .train_dir(k), .val_dir(k)
        train.log           the adapter's log               .train_log(k)
        prelabels/<name>.txt the batch's pre-labels         .prelabels_dir(k), .prelabel(k, key)
        batch-<k>.zip       the bundle sent out             .bundle(k)
        exports/            other formats (detal.export)    .exports_dir(k)
          coco/annotations/instances_default.json           .coco_export(k)
          label-studio/tasks.json                           .labelstudio_tasks(k)
        review/             the review page (detal.review)  .review_dir(k)

Every reader and writer of the folder asks :class:`ProjectPaths` rather
than spelling a name again. A file named after an image is named by
:func:`prelabel_file` (its key as :func:`detal.files.short_name` bounds it:
a deep image's key can be longer than a file name may be). Relative paths, as printed by ``detal status``,
come from ``ProjectPaths(Path())``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from detal.files import short_name
from detal.store import DB_NAME

__all__ = [
    "CLASSES_FILE",
    "COCO_EXPORT",
    "CONFIG_FILE",
    "CYCLES_DIR",
    "DB_NAME",
    "EXPORTS_DIR",
    "IMAGES_LINK",
    "LABELSTUDIO_TASKS",
    "LABELS_DIR",
    "LOCK_FILE",
    "LOG_FILE",
    "PRELABELS_DIR",
    "PROJECT_ENTRIES",
    "REPLACED_DIR",
    "REVIEW_DIR",
    "TRAIN_DIR",
    "VAL_DIR",
    "VAL_IMAGES_LINK",
    "ProjectPaths",
    "bundle_file",
    "in_image_folder",
    "label_relpath",
    "prelabel_file",
]

CLASSES_FILE = "classes.txt"
CONFIG_FILE = "config.yaml"
LOCK_FILE = ".detal.lock"
IMAGES_LINK = "images"
VAL_IMAGES_LINK = "val_images"
LABELS_DIR = "labels"
REPLACED_DIR = ".replaced"
CYCLES_DIR = "cycles"
TRAIN_DIR = "train"
VAL_DIR = "val"
LOG_FILE = "train.log"
PRELABELS_DIR = "prelabels"
EXPORTS_DIR = "exports"
REVIEW_DIR = "review"
SHIPPED_FILE = "shipped.json"  # the batch's pre-label boxes with confidences (detal.project.pseudo)
PSEUDO_DIR = "pseudo"  # self-training's pseudo-labels: labels/<image id>.txt and summary.json
TEACHER_DIR = "teacher"  # self-training's teacher training (supervised), and teacher-val/
COCO_EXPORT = PurePosixPath("coco") / "annotations" / "instances_default.json"
LABELSTUDIO_TASKS = PurePosixPath("label-studio") / "tasks.json"

PROJECT_ENTRIES = (DB_NAME, CLASSES_FILE, CONFIG_FILE, LABELS_DIR, CYCLES_DIR, IMAGES_LINK,
                   VAL_IMAGES_LINK)
"""The entries ``detal init`` makes directly under ``PROJECT``."""


def bundle_file(k: int) -> str:
    """The bundle's file name: ``batch-<k>.zip``."""
    return f"batch-{k}.zip"


def in_image_folder(relpath: str, root: str | None) -> str:
    """An image's path in its image folder (``sub/a.png``) from its ``relpath`` in the project
    (``images/sub/a.png``); ``root`` is that folder's path in the project (the ``images_root`` meta)."""
    if root and relpath.startswith(f"{root}/"):
        return relpath[len(root) + 1:]
    return relpath.split("/", 1)[-1]


def prelabel_file(key: str) -> str:
    """The file name of image ``key``'s pre-labels: ``<key>.txt``, the key bounded by :func:`short_name`."""
    return f"{short_name(key)}.txt"


def label_relpath(image_relpath: str) -> Path:
    """Where the project keeps the label of an image: ``labels/<relpath without suffix>.txt``."""
    return Path(LABELS_DIR) / PurePosixPath(image_relpath).with_suffix(".txt")


@dataclass(frozen=True)
class ProjectPaths:
    """The paths of the project folder ``root`` (nothing is read or created)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # -- the project's own files ---------------------------------------------------
    @property
    def db(self) -> Path:
        return self.root / DB_NAME

    @property
    def classes(self) -> Path:
        return self.root / CLASSES_FILE

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def images(self) -> Path:
        return self.root / IMAGES_LINK

    @property
    def val_images(self) -> Path:
        return self.root / VAL_IMAGES_LINK

    @property
    def labels_dir(self) -> Path:
        return self.root / LABELS_DIR

    @property
    def replaced_dir(self) -> Path:
        return self.labels_dir / REPLACED_DIR

    def label(self, image_relpath: str) -> Path:
        return self.root / label_relpath(image_relpath)

    # -- one cycle -------------------------------------------------------------------
    @property
    def cycles_dir(self) -> Path:
        return self.root / CYCLES_DIR

    def cycle_dir(self, k: int) -> Path:
        return self.cycles_dir / str(k)

    def train_dir(self, k: int) -> Path:
        return self.cycle_dir(k) / TRAIN_DIR

    def val_dir(self, k: int) -> Path:
        return self.cycle_dir(k) / VAL_DIR

    def train_log(self, k: int) -> Path:
        return self.cycle_dir(k) / LOG_FILE

    def prelabels_dir(self, k: int) -> Path:
        return self.cycle_dir(k) / PRELABELS_DIR

    def prelabel(self, k: int, key: str) -> Path:
        return self.prelabels_dir(k) / prelabel_file(key)

    def bundle(self, k: int) -> Path:
        return self.cycle_dir(k) / bundle_file(k)

    def exports_dir(self, k: int) -> Path:
        return self.cycle_dir(k) / EXPORTS_DIR

    def coco_export(self, k: int) -> Path:
        return self.exports_dir(k) / COCO_EXPORT

    def labelstudio_tasks(self, k: int) -> Path:
        return self.exports_dir(k) / LABELSTUDIO_TASKS

    def review_dir(self, k: int) -> Path:
        return self.cycle_dir(k) / REVIEW_DIR

    def shipped(self, k: int) -> Path:
        return self.cycle_dir(k) / SHIPPED_FILE

    def pseudo_dir(self, k: int) -> Path:
        return self.cycle_dir(k) / PSEUDO_DIR
