"""detal.project.paths: one name for every path in a project folder, and the cycle uses them."""

from __future__ import annotations

from pathlib import Path

import pytest
from reviewkit import project_with_cycle

from detal.project.paths import ProjectPaths


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (lambda p: p.db, "detal.db"),
        (lambda p: p.classes, "classes.txt"),
        (lambda p: p.config, "config.yaml"),
        (lambda p: p.lock, ".detal.lock"),
        (lambda p: p.images, "images"),
        (lambda p: p.val_images, "val_images"),
        (lambda p: p.labels_dir, "labels"),
        (lambda p: p.replaced_dir, "labels/.replaced"),
        (lambda p: p.label("images/a/b.jpg"), "labels/images/a/b.txt"),
        (lambda p: p.cycles_dir, "cycles"),
        (lambda p: p.cycle_dir(3), "cycles/3"),
        (lambda p: p.train_dir(3), "cycles/3/train"),
        (lambda p: p.val_dir(3), "cycles/3/val"),
        (lambda p: p.train_log(3), "cycles/3/train.log"),
        (lambda p: p.prelabels_dir(3), "cycles/3/prelabels"),
        (lambda p: p.prelabel(3, "k1"), "cycles/3/prelabels/k1.txt"),
        (lambda p: p.bundle(3), "cycles/3/batch-3.zip"),
        (lambda p: p.exports_dir(3), "cycles/3/exports"),
        (lambda p: p.coco_export(3), "cycles/3/exports/coco/annotations/instances_default.json"),
        (lambda p: p.labelstudio_tasks(3), "cycles/3/exports/label-studio/tasks.json"),
        (lambda p: p.review_dir(3), "cycles/3/review"),
    ],
)
def test_paths_under_the_root(path, expected):
    assert path(ProjectPaths("/p/proj")) == Path("/p/proj") / expected
    assert path(ProjectPaths(Path())).as_posix() == expected


def test_a_cycle_writes_where_the_paths_say(tmp_path):
    project = project_with_cycle(tmp_path, n=20, formats=("yolo", "coco", "label-studio"))
    paths = ProjectPaths(project)
    for path in (paths.db, paths.classes, paths.config, paths.lock,
                 paths.bundle(1), paths.coco_export(1), paths.labelstudio_tasks(1)):
        assert path.is_file(), path
    assert paths.images.is_symlink() and paths.images.is_dir()
    assert paths.prelabels_dir(1).is_dir() and paths.train_dir(1).is_dir()
    assert sorted(paths.prelabels_dir(1).iterdir()) and all(
        p == paths.prelabel(1, p.stem) for p in paths.prelabels_dir(1).iterdir())
