"""Self-training in the cycle engine (fake adapter): pseudo-labels stay out of labels, the real share, the
calibrated threshold, determinism, and kill -9 at the new steps."""

from __future__ import annotations

import json
import sqlite3
import zipfile
from pathlib import Path

import pytest
from projectkit import NAMES, batch_names, label_cycle, make_project, write_returned
from test_crash import _comparable, _crash, check_consistent

from detal.fake import FakeAdapter
from detal.labels import parse_label_text
from detal.project import import_labels, run_cycle
from detal.project.pseudo import SHIPPED_FILE, read_summary
from detal.self_training import calibrate_threshold

ST = {"self_training.enabled": "true", "self_training.t_low": 0.2, "self_training.min_boxes": 3,
      "self_training.teacher": "supervised", "self_training.ambiguous": "drop"}


def _st_project(tmp_path: Path, name: str = "proj", n: int = 60, **cfg) -> Path:
    project = make_project(tmp_path / name, n=n, val=3, **{**ST, **cfg})
    label_cycle(project, 0, tmp_path / name)
    return project


def _pseudo(project: Path, k: int) -> dict[str, str]:
    root = project / "cycles" / str(k) / "pseudo" / "labels"
    return {p.name: p.read_text() for p in sorted(root.glob("*.txt"))}


def _trained_on(project: Path, k: int, what: str = "train") -> list[str]:
    return json.loads((project / "cycles" / str(k) / what / "weights.json").read_text())["train"]


def test_pseudo_labels_never_reach_labels_the_count_or_the_bundle(tmp_path):
    project = _st_project(tmp_path, **{"self_training.t_high": 0.5})
    labels_before = sorted(p.name for p in (project / "labels").rglob("*.txt"))
    report = run_cycle(project, FakeAdapter(len(NAMES), seed=1))
    summary = read_summary(project / "cycles" / "1")
    assert summary["teacher"] == "supervised" and summary["how"] == "config" and summary["threshold"] == 0.5
    pseudo = _pseudo(project, 1)
    assert summary["pseudo_images"] == len(pseudo) > 0
    assert summary["pseudo_boxes"] == sum(t.count("\n") for t in pseudo.values())
    assert summary["predicted"] == (summary["pseudo_images"] + summary["ambiguous"] + summary["empty"]
                                    + summary["over_budget"])
    assert sorted(p.name for p in (project / "labels").rglob("*.txt")) == labels_before
    conn = sqlite3.connect(project / "detal.db")
    assert conn.execute("SELECT COUNT(*) FROM images WHERE status = 'labeled'").fetchone()[0] == 6
    assert report.n_train == 6  # the human images only
    with zipfile.ZipFile(report.bundle) as zf:  # the bundle holds pre-labels, not pseudo-labels
        assert not [n for n in zf.namelist() if "pseudo" in n]
    # every pseudo-labeled image is unlabeled, and every kept box is >= t_high... only kept boxes are written
    keys = {str(i): k for i, k in conn.execute("SELECT id, key FROM images WHERE status != 'labeled'")}
    assert {name.removesuffix(".txt") for name in pseudo} <= set(keys)
    for text in pseudo.values():
        boxes, problems = parse_label_text(text, len(NAMES), "pseudo")
        assert boxes and not problems and all(b.confidence is None for b in boxes)


def test_human_images_are_at_least_the_real_share_and_the_student_is_the_cycles_model(tmp_path):
    project = _st_project(tmp_path, **{"self_training.t_high": 0.5, "self_training.real_share": 0.5})
    run_cycle(project, FakeAdapter(len(NAMES), seed=1))
    student = _trained_on(project, 1)
    teacher = _trained_on(project, 1, "teacher")
    human = set(teacher)
    assert len(teacher) == 6 and len(set(teacher)) == 6  # the teacher: human labels only, once each
    n_human = sum(1 for p in student if p in human)
    n_pseudo = len(student) - n_human
    assert n_pseudo == read_summary(project / "cycles" / "1")["pseudo_images"] > 0
    assert n_human / len(student) >= 0.5
    conn = sqlite3.connect(project / "detal.db")
    weights = conn.execute("SELECT weights FROM cycles WHERE id = 1").fetchone()[0]
    assert weights.startswith("cycles/1/train/")  # the student scores and writes the pre-labels


def test_the_student_trains_no_more_steps_than_a_plain_cycle(tmp_path):
    # teacher: supervised is a plain cycle's training (the human labels, the plain epochs), so its steps
    # are the budget; the student's list is ~10x longer, and the same epochs over it would be ~10x the steps
    from detal.config import load_config

    project = _st_project(tmp_path, **{"self_training.t_high": 0.5, "self_training.real_share": 0.8})
    run_cycle(project, FakeAdapter(len(NAMES), seed=1))
    batch = load_config(project / "config.yaml").batch

    def steps(what: str) -> int:
        record = json.loads((project / "cycles" / "1" / what / "weights.json").read_text())
        return record["epochs"] * -(-len(record["train"]) // batch)

    summary = read_summary(project / "cycles" / "1")
    assert summary["over_budget"] > 0  # the list was cut here (else this test would prove nothing)
    assert 0 < steps("train") <= steps("teacher")
    assert summary["pseudo_images"] == len(_pseudo(project, 1))  # the left-out images' files are gone
    student = _trained_on(project, 1)
    human = set(_trained_on(project, 1, "teacher"))
    assert sum(1 for p in student if p in human) / len(student) >= 0.8


def test_ambiguous_images_are_left_out(tmp_path):
    # t_low 0 makes every image with any box below t_high ambiguous; t_high 1.0 keeps nothing
    project = _st_project(tmp_path, **{"self_training.t_high": 1.0, "self_training.t_low": 0.0})
    run_cycle(project, FakeAdapter(len(NAMES), seed=1))
    summary = read_summary(project / "cycles" / "1")
    assert summary["pseudo_images"] == 0 and summary["ambiguous"] > 0
    assert summary["ambiguous"] + summary["empty"] == summary["predicted"]


def test_same_seed_same_pseudo_labels_and_the_cap_is_a_seeded_sample(tmp_path):
    cfg = {"self_training.t_high": 0.5, "self_training.max_pseudo_images": 10}
    a, b = _st_project(tmp_path, "a", **cfg), _st_project(tmp_path, "b", **cfg)
    run_cycle(a, FakeAdapter(len(NAMES), seed=1))
    run_cycle(b, FakeAdapter(len(NAMES), seed=1))
    assert _pseudo(a, 1) == _pseudo(b, 1)
    assert read_summary(a / "cycles" / "1")["predicted"] == 10
    assert _trained_on(a, 1) == [p.replace("/b/", "/a/") for p in _trained_on(b, 1)]


def _label_batch_from_shipped(project: Path, k: int, tmp: Path, wrong_below: float) -> None:
    """Return batch k with every shipped box kept, except those below ``wrong_below``, given another class."""
    shipped = json.loads((project / "cycles" / str(k) / SHIPPED_FILE).read_text())["images"]
    folder = tmp / f"ret{k}"
    folder.mkdir()
    for name in batch_names(project, k):
        key = name.rsplit(".", 1)[0]
        lines = []
        for cls, cx, cy, w, h, conf in shipped[key]:
            c = (cls + 1) % len(NAMES) if conf < wrong_below else cls
            lines.append(f"{c} {cx} {cy} {w} {h}")
        (folder / f"{key}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    import_labels(project, folder, accept_prelabels=True)


def test_the_threshold_comes_from_the_last_corrected_batch_never_from_val(tmp_path):
    project = _st_project(tmp_path)
    run_cycle(project, FakeAdapter(len(NAMES), seed=1))
    assert read_summary(project / "cycles" / "1")["how"] == "fallback"  # no corrected batch yet
    shipped = json.loads((project / "cycles" / "1" / SHIPPED_FILE).read_text())["images"]
    confs = sorted(b[5] for boxes in shipped.values() for b in boxes)
    assert len(confs) >= 3
    cut = confs[len(confs) // 2]  # boxes below the median are "wrong" in the returned labels
    _label_batch_from_shipped(project, 1, tmp_path, wrong_below=cut)
    run_cycle(project, FakeAdapter(len(NAMES), seed=1))
    s = read_summary(project / "cycles" / "2")
    assert s["calibrated_on"] == 1 and s["judged_boxes"] == len(confs)
    # the engine judged exactly the shipped boxes: those >= cut came back right, the others relabeled
    expected = calibrate_threshold(confs, [c >= cut for c in confs], min_boxes=3)
    assert (s["threshold"], s["how"], s["precision"]) == (expected.threshold, expected.how, expected.precision)
    assert s["precision"] >= 0.95 or s["how"] in ("clamped-low", "unreached")


def test_val_labels_never_move_the_threshold(tmp_path):
    thresholds = []
    for name, val_line in (("a", "1 0.5 0.5 0.25 0.25"), ("b", "2 0.3 0.3 0.1 0.1")):
        project = _st_project(tmp_path, name)
        val = [p for p in (project / "labels").rglob("*.txt") if p.stem.startswith("im5")]  # im500-im502
        assert len(val) == 3
        for p in val:
            p.write_text(val_line + "\n")
        run_cycle(project, FakeAdapter(len(NAMES), seed=1))
        _label_batch_from_shipped(project, 1, tmp_path / name, wrong_below=0.6)
        run_cycle(project, FakeAdapter(len(NAMES), seed=1))
        thresholds.append(read_summary(project / "cycles" / "2")["threshold"])
    assert thresholds[0] == thresholds[1]


def test_the_defaults_are_on_teacher_previous_and_mask():
    from detal.config import load_config

    st = load_config(None).self_training
    assert (st["enabled"], st["teacher"], st["ambiguous"]) == (True, "previous", "mask")


def test_teacher_previous_trains_once_a_cycle(tmp_path):
    project = _st_project(tmp_path, **{"self_training.teacher": "previous", "self_training.t_high": 0.5})
    run_cycle(project, FakeAdapter(len(NAMES), seed=1))
    assert read_summary(project / "cycles" / "1")["teacher"] == "none"  # nothing before: plain training
    assert not (project / "cycles" / "1" / "teacher").exists()
    label_cycle(project, 1, tmp_path)
    adapter = FakeAdapter(len(NAMES), seed=1)
    run_cycle(project, adapter)
    s = read_summary(project / "cycles" / "2")
    assert s["teacher"] == "previous" and s["pseudo_images"] > 0
    assert [c for c, _ in adapter.calls].count("train") == 1


ST_POINTS = ["on_teacher_trained", "on_pseudo_written", "in_train", "in_predict", "on_train_end"]


@pytest.mark.parametrize("point", ST_POINTS)
def test_kill_during_self_training_resumes_to_the_same_result(point, tmp_path):
    cfg = {"self_training.t_high": 0.5}
    crashed, reference = _st_project(tmp_path, "crashed", **cfg), _st_project(tmp_path, "reference", **cfg)
    _crash(tmp_path, crashed, "cycle", point)
    check_consistent(crashed)
    state = sqlite3.connect(crashed / "detal.db").execute(
        "SELECT state FROM cycles ORDER BY id DESC LIMIT 1").fetchone()[0]
    if state != "done":
        run_cycle(crashed, FakeAdapter(len(NAMES), seed=1))
    run_cycle(reference, FakeAdapter(len(NAMES), seed=1))
    check_consistent(crashed)
    assert _comparable(crashed) == _comparable(reference)
    assert _pseudo(crashed, 1) == _pseudo(reference, 1) and _pseudo(crashed, 1)
    assert read_summary(crashed / "cycles" / "1") == read_summary(reference / "cycles" / "1")


def test_an_import_after_self_training_takes_only_the_returned_labels(tmp_path):
    project = _st_project(tmp_path, **{"self_training.t_high": 0.5})
    before = sorted(p.relative_to(project).as_posix() for p in (project / "labels").rglob("*.txt"))
    run_cycle(project, FakeAdapter(len(NAMES), seed=1))
    assert _pseudo(project, 1)
    ret = write_returned(tmp_path / "ret", project, 1)
    import_labels(project, ret)
    after = sorted(p.relative_to(project).as_posix() for p in (project / "labels").rglob("*.txt"))
    new = {Path(p).stem for p in set(after) - set(before)}
    assert new == {p.stem for p in ret.glob("*.txt")}  # no pseudo-labeled image became labeled


def test_status_shows_self_training_per_cycle(tmp_path, capsys):
    from detal.cli import main
    from detal.project import project_status

    project = _st_project(tmp_path, **{"self_training.t_high": 0.5})
    run_cycle(project, FakeAdapter(len(NAMES), seed=1))
    st = project_status(project)
    s = st["cycles"][-1]["self_training"]
    assert s["pseudo_images"] == len(_pseudo(project, 1)) and s["how"] == "config" and s["threshold"] == 0.5
    assert st["cycles"][0]["self_training"] is None  # cycle 0: the initial batch, no training
    assert main(["status", str(project)]) == 0
    out = capsys.readouterr().out
    assert f"self-training: {s['pseudo_images']} pseudo-labeled images" in out
    assert "t_high 0.50 (fixed by the config; target 0.95)" in out
    assert f"{s['over_budget']} more left out to hold a plain cycle's steps" in out and s["over_budget"] > 0


def test_mask_keeps_images_with_ambiguous_boxes_painted_over(tmp_path, capsys):
    cfg = {"self_training.t_high": 0.5, "self_training.t_low": 0.05}
    drop = _st_project(tmp_path, "drop", **cfg)
    mask = _st_project(tmp_path, "mask", **cfg, **{"self_training.ambiguous": "mask"})
    run_cycle(drop, FakeAdapter(len(NAMES), seed=1))
    run_cycle(mask, FakeAdapter(len(NAMES), seed=1))
    d, m = read_summary(drop / "cycles" / "1"), read_summary(mask / "cycles" / "1")
    assert d["masked_boxes"] == 0 and not (drop / "cycles/1/pseudo/masks.json").exists()
    # the same teacher, more images kept by the rule (before the step budget cuts the student's list)
    assert m["pseudo_images"] + m["over_budget"] > d["pseudo_images"] + d["over_budget"]
    assert m["masked_boxes"] > 0
    masks = json.loads((mask / "cycles/1/pseudo/masks.json").read_text())
    assert sum(len(r) for r in masks.values()) == m["masked_boxes"]
    assert set(masks) <= {p.removesuffix(".txt") for p in _pseudo(mask, 1)}
    # the student trained on the painted copies, which were removed afterwards (the rectangles stay)
    painted = [p for p in _trained_on(mask, 1) if "/pseudo/images/" in p]
    assert sorted(Path(p).stem for p in painted) == sorted(masks)
    assert not (mask / "cycles/1/pseudo/images").exists()
    from detal.cli import main

    assert main(["status", str(mask)]) == 0
    assert f"{m['masked_boxes']} ambiguous boxes painted over" in capsys.readouterr().out
    assert all(Path(p).name in {f"{i}.png" for i in masks} for p in painted)
    # labels/ is the same either way: pseudo-labels never reach it
    assert sorted(p.name for p in (mask / "labels").rglob("*.txt")) == sorted(
        p.name for p in (drop / "labels").rglob("*.txt"))


def test_masked_copy_paints_only_the_rectangles(tmp_path):
    import cv2
    import numpy as np

    from detal.project.pseudo import MASK_FILL, _masked_copy

    img = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    src = tmp_path / "a.png"
    cv2.imwrite(str(src), img)
    out = _masked_copy(src, [[5, 6, 15, 20], [50, 30, 60, 40]], tmp_path / "out" / "a.png")
    got = cv2.imread(str(out))
    want = img.copy()
    want[6:20, 5:15] = MASK_FILL
    want[30:40, 50:60] = MASK_FILL
    assert np.array_equal(got, want)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert _masked_copy(tmp_path / "bad.png", [[0, 0, 1, 1]], tmp_path / "out" / "b.png") is None
