"""benchmarks/pseudo_quality.py: a cycle's pseudo-labels read against the truth, by hand."""

import json
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import pseudo_quality


def _project(tmp_path: Path) -> Path:
    """A simulate project of one 100x100 pool image with five true objects, and cycle 2's pseudo-labels.

    The right pseudo boxes sit 1 px (IoU 90/110) and 3 px (IoU 70/130) off their true boxes.
    """
    data = tmp_path / "data"
    (data / "images" / "pool").mkdir(parents=True)
    (data / "labels" / "pool").mkdir(parents=True)
    (data / "images" / "pool" / "a.png").write_bytes(b"")
    (data / "labels" / "pool" / "a.txt").write_text(
        "0 0.15 0.15 0.1 0.1\n"   # taught right: a pseudo box of its class
        "1 0.50 0.50 0.1 0.1\n"   # hidden: its centre under a painted box
        "2 0.85 0.15 0.1 0.1\n"   # taught as background
        "3 0.85 0.85 0.1 0.1\n"   # a pseudo box of the wrong class: background, and a wrong box
        "4 0.50 0.15 0.1 0.1\n"   # taught right, by a loose box (IoU 70/130)
    )
    project = tmp_path / "run" / "random" / "seed-0"
    (project / "cycles" / "2" / "pseudo" / "labels").mkdir(parents=True)
    (project / "images").symlink_to(data / "images" / "pool")
    (project / "config.yaml").write_text("self_training: {t_low: 0.25}\n")
    with sqlite3.connect(project / "detal.db") as db:
        db.execute("CREATE TABLE images (id INTEGER PRIMARY KEY, relpath TEXT, width INT, height INT)")
        db.execute("INSERT INTO images VALUES (7, 'images/a.png', 100, 100)")
    pseudo = project / "cycles" / "2" / "pseudo"
    (pseudo / "labels" / "7.txt").write_text("0 0.16 0.15 0.1 0.1\n5 0.85 0.85 0.1 0.1\n4 0.53 0.15 0.1 0.1\n")
    (pseudo / "masks.json").write_text(json.dumps({"7": [[40, 40, 60, 60]]}))
    (pseudo / "summary.json").write_text(json.dumps({"threshold": 0.6}))
    return project


def test_each_true_object_is_counted_once_where_the_student_met_it(tmp_path):
    project = _project(tmp_path)
    q = pseudo_quality.cycle_quality(project, project / "cycles" / "2")
    assert (q["images"], q["boxes"], q["correct"], q["objects"]) == (1, 3, 2, 5)
    assert (q["right"], q["hidden"], q["background"]) == (2, 1, 2)
    assert q["iou_sum"] == pytest.approx(90 / 110 + 70 / 130)
    assert q["tight"] == 1  # only the 1 px one reaches IoU 0.75
    assert q["threshold"] == pytest.approx(0.6)


def test_the_table_prints_the_shares(tmp_path, capsys):
    _project(tmp_path)
    assert pseudo_quality.main([str(tmp_path / "run")]) == 0
    row = capsys.readouterr().out.splitlines()[2]
    assert row == "| run | 2 | 0.60 | 1 | 3 | 0.667 | 5 | 40.0% | 20.0% | 40.0% | 0.678 | 50.0% |"
