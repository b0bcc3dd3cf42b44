"""The annotation loop through the Python API, with the fake adapter."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from projectkit import (
    NAMES,
    batch_names,
    db_rows,
    label_cycle,
    make_images,
    make_project,
    selected_keys,
    write_classes,
    write_returned,
)

from detal.cli import main
from detal.config import load_config
from detal.errors import DataError, StateError
from detal.fake import FakeAdapter
from detal.project import Hooks, import_labels, init_project, project_status, run_cycle
from detal.store import Store


def _store(project):
    return Store.open(project / "detal.db")


def _adapter():
    return FakeAdapter(len(NAMES), seed=1)


# -- init --------------------------------------------------------------------------
def test_init_records_every_image(tmp_path):
    project = make_project(tmp_path, n=40)
    with _store(project) as s:
        rows = s.images()
        assert [r.id for r in rows] == list(range(40))
        assert rows[0].relpath == "images/im001.png"  # sorted order, files before subfolders
        assert {r.relpath for r in rows if "/sub/" in r.relpath} == {
            f"images/sub/im{i:03d}.png" for i in range(0, 40, 10)}
        assert all(len(r.sha256) == 64 for r in rows)
        r5 = next(r for r in rows if r.relpath == "images/im005.png")
        assert (r5.width, r5.height) == (16 + 5 % 7, 12 + 5 % 5)
        sub = next(r for r in rows if r.relpath == "images/sub/im010.png")
        assert sub.key == "sub__im010"
        assert s.get_meta("classes") == NAMES
    assert (project / "images").is_symlink()
    assert (project / "images" / "im005.png").is_file()
    assert (project / "classes.txt").read_text().split() == NAMES


def test_init_picks_the_initial_batch_reproducibly(tmp_path):
    a = make_project(tmp_path / "a", n=40, seed=7)
    b = make_project(tmp_path / "b", n=40, seed=7)
    with _store(a) as sa, _store(b) as sb:
        picked_a = [r.id for r in sa.images(status="selected")]
        picked_b = [r.id for r in sb.images(status="selected")]
        assert len(picked_a) == 4 and picked_a == picked_b
        assert all(r.selected_cycle == 0 for r in sa.images(status="selected"))
        assert sa.cycle(0).state == "done"
    names = batch_names(a, 0)
    assert len(names) == 4
    with zipfile.ZipFile(a / "cycles/0/batch-0.zip") as zf:
        files = set(zf.namelist())
        assert {"classes.txt", "data.yaml", "manifest.csv"} <= files
        assert {f"images/{n}" for n in names} <= files
        assert not any(f.startswith("labels/") for f in files)  # no model yet, no pre-labels


def test_init_with_labels_and_val(tmp_path):
    images = tmp_path / "images"
    make_images(images, 20)
    labels = tmp_path / "labels"
    labels.mkdir()
    for i in range(1, 4):
        (labels / f"im{i:03d}.txt").write_text("2 0.5 0.5 0.1 0.1\n")
    (labels / "im004.txt").write_text("")  # empty: no objects, still labeled
    make_images(tmp_path / "val", 3, start=100)
    (tmp_path / "vl").mkdir()
    for i in range(100, 103):
        (tmp_path / "vl" / f"im{i:03d}.txt").write_text("0 0.5 0.5 0.3 0.3\n")
    cfg = load_config(None, ["initial_fraction=0.3"])
    report = init_project(tmp_path / "p", images, write_classes(tmp_path / "c.txt"), labels=labels,
                          val_images=tmp_path / "val", val_labels=tmp_path / "vl", config=cfg)
    assert (report.n_images, report.n_labeled, report.n_val) == (20, 4, 3)
    assert report.n_selected == 2  # 30% of 20 is 6, 4 already labeled
    with _store(tmp_path / "p") as s:
        assert s.status_counts() == {"unlabeled": 14, "selected": 2, "labeled": 4, "val": 3}
        assert all(r.labeled_cycle == -1 for r in s.images(status="labeled"))
    assert (tmp_path / "p/labels/images/im001.txt").read_text() == "2 0.5 0.5 0.1 0.1\n"
    assert (tmp_path / "p/labels/val_images/im100.txt").is_file()


def test_init_reports_duplicates(tmp_path):
    images = tmp_path / "images"
    make_images(images, 5)
    (images / "copy.png").write_bytes((images / "im002.png").read_bytes())
    report = init_project(tmp_path / "p", images, write_classes(tmp_path / "c.txt"))
    assert report.duplicates == [["images/copy.png", "images/im002.png"]]


def test_init_force_keeps_the_old_project(tmp_path):
    project = make_project(tmp_path, n=20)
    (project / "labels/images/im003.txt").parent.mkdir(parents=True, exist_ok=True)
    (project / "labels/images/im003.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(StateError, match="already exists"):
        init_project(project, tmp_path / "images", tmp_path / "classes.txt")
    init_project(project, tmp_path / "images", tmp_path / "classes.txt", force=True)
    backups = list(project.glob("backup-*"))
    assert len(backups) == 1
    assert (backups[0] / "labels/images/im003.txt").is_file()
    assert (backups[0] / "detal.db").is_file()


def test_init_same_stem_two_suffixes_is_an_error(tmp_path):
    images = tmp_path / "images"
    make_images(images, 3)
    (images / "im001.jpg").write_bytes((images / "im002.png").read_bytes())
    with pytest.raises(DataError, match="same name"):
        init_project(tmp_path / "p", images, write_classes(tmp_path / "c.txt"))
    assert not (tmp_path / "p").exists()


# -- cycle ---------------------------------------------------------------------------
def test_full_loop(tmp_path):
    project = make_project(tmp_path, n=50, val=3)
    adapter = _adapter()
    with pytest.raises(StateError, match="batch is still out"):
        run_cycle(project, adapter)
    label_cycle(project, 0, tmp_path)
    r1 = run_cycle(project, adapter)
    assert (r1.cycle, r1.n_train, r1.n_selected) == (1, 5, 5)
    assert r1.metrics is not None and r1.metrics.map50 > 0
    with _store(project) as s:
        scores = s.scores(1)
        assert len(scores) >= 10  # the subset (20% of 50) plus the random picks
        subset = s.execute("SELECT count(*) FROM scores WHERE cycle = 1 AND in_subset = 1").fetchone()[0]
        assert subset == 10
        picked = {r.key for r in s.images(status="selected")}
        assert all(r.selected_cycle == 1 for r in s.images(status="selected"))
    assert {n.rsplit(".", 1)[0] for n in batch_names(project, 1)} == picked
    pre = project / "cycles/1/prelabels"
    assert {p.stem for p in pre.glob("*.txt")} == picked
    with zipfile.ZipFile(r1.bundle) as zf:
        manifest = list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode())))
        assert [m["image"] for m in manifest] == batch_names(project, 1)
        scores_in_order = [float(m["score"]) for m in manifest]
        assert scores_in_order == sorted(scores_in_order, reverse=True)
        for m in manifest:
            key = m["image"].rsplit(".", 1)[0]
            text = zf.read(f"labels/{key}.txt").decode()
            assert text == (pre / f"{key}.txt").read_text()
            assert int(m["n_boxes"]) == len(text.splitlines())
            assert m["top_class"] in NAMES + [""]
        data = yaml.safe_load(zf.read("data.yaml").decode())
        # No `path:` key: Ultralytics would resolve `path: .` against the current
        # directory, not the unpacked bundle.
        assert "path" not in data and data["train"] == "images"
        assert [data["names"][i] for i in range(data["nc"])] == NAMES

    label_cycle(project, 1, tmp_path)
    r2 = run_cycle(project, adapter)
    assert r2.n_train == 10 and r2.metrics.map50 > r1.metrics.map50
    trains = [c for c in adapter.calls if c[0] == "train"]
    assert trains[0][1]["init"] is None
    assert str(trains[1][1]["init"]).endswith("cycles/1/train/weights.json")  # warm start
    st = project_status(project)
    assert [c["cycle"] for c in st["cycles"]] == [0, 1, 2]
    assert st["images"]["labeled"] == 10 and st["labeled_fraction"] == pytest.approx(0.2)
    assert st["batch_out"] == [{"cycle": 2, "remaining": 5, "selected": 5, "bundle": "cycles/2/batch-2.zip",
                              "no_bundle": None}]
    json.dumps(st)


def test_cycle_never_selects_labeled_or_val_images(tmp_path):
    project = make_project(tmp_path, n=30, val=4)
    label_cycle(project, 0, tmp_path)
    run_cycle(project, _adapter())
    with _store(project) as s:
        for r in s.images():
            if r.selected_cycle == 1:
                assert r.status == "selected" and r.labeled_cycle == -1


def test_force_runs_with_a_batch_out(tmp_path):
    project = make_project(tmp_path, n=40)
    label_cycle(project, 0, tmp_path)
    run_cycle(project, _adapter())
    r = run_cycle(project, _adapter(), force=True)
    assert r.cycle == 2
    st = project_status(project)
    assert [b["cycle"] for b in st["batch_out"]] == [1, 2]


def test_cycle_stops_at_the_budget(tmp_path):
    project = make_project(tmp_path, n=20, max_labeled_fraction=0.3, initial_fraction=0.1)
    label_cycle(project, 0, tmp_path)
    run_cycle(project, _adapter())  # 2 labeled + 2 out
    label_cycle(project, 1, tmp_path)
    r = run_cycle(project, _adapter())  # cap 6: only 2 more
    assert r.n_selected == 2
    label_cycle(project, 2, tmp_path)
    # At the budget, one last cycle trains on every label and sends nothing out ...
    last = run_cycle(project, _adapter())
    assert (last.cycle, last.n_train, last.n_selected, last.bundle) == (3, 6, 0, None)
    assert project_status(project)["batch_out"] == []
    # ... and then the project stops.
    with pytest.raises(StateError, match="budget reached"):
        run_cycle(project, _adapter())


def test_budget_rounds_down():
    from detal.selection import labeling_cap, schedule_length

    assert labeling_cap(0.42, 1007) == 422  # 42.006% would be 423: never exceed the fraction given
    assert labeling_cap(0.42, 50) == 21 and labeling_cap(0.3, 20) == 6 and labeling_cap(1.0, 7) == 7
    # 2% of 1007 = 20, batches of 101: 20, 121, 222, 323, then 422 (the last batch cut to 99)
    assert schedule_length(1007, initial_fraction=0.02, batch_fraction=0.1, max_labeled_fraction=0.42) == 5
    assert schedule_length(100, initial_fraction=0.02, batch_fraction=0.05, max_labeled_fraction=0.42) == 9
    assert schedule_length(50, initial_fraction=0.02, batch_fraction=0.1, max_labeled_fraction=0.42) == 5


def test_project_of_1007_images_stops_at_422(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    make_images(tmp_path / "one", 1)
    data = next((tmp_path / "one").glob("*.png")).read_bytes()
    for i in range(1007):
        (images / f"im{i:04d}.png").write_bytes(data)
    cfg = load_config(None, ["initial_fraction=0.4", "batch_fraction=0.1", "max_labeled_fraction=0.42",
                             "strategy=random"])
    init_project(tmp_path / "p", images, write_classes(tmp_path / "c.txt"), config=cfg, write_bundle=False)
    project = tmp_path / "p"
    assert not (project / "cycles/0/batch-0.zip").exists()
    returned = tmp_path / "returned"
    returned.mkdir()
    for key in selected_keys(project):
        (returned / f"{key}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    import_labels(project, returned)
    with _store(project) as s:
        assert s.image_count("labeled") == 403  # round(0.4 * 1007)
    r = run_cycle(project, _adapter(), write_bundle=False)
    assert r.n_selected == 19 and r.bundle is None  # 403 + 19 = 422 = floor(0.42 * 1007)


def test_a_cycle_that_selects_nothing_finishes_and_the_next_one_runs(tmp_path):
    project = make_project(tmp_path, n=30, val=2)
    label_cycle(project, 0, tmp_path)
    seen = []
    hooks = Hooks()
    for event in ("on_select_end", "on_bundle_written", "on_export_end"):
        hooks.add(event, lambda event=event, **info: seen.append(event))
    adapter = _adapter()
    r = run_cycle(project, adapter, overrides=["batch_fraction=0.1", "max_labeled_fraction=0.1"], hooks=hooks)
    assert (r.cycle, r.n_train, r.n_selected, r.bundle) == (1, 3, 0, None)
    assert r.metrics is not None and list(r.prelabels.iterdir()) == []
    assert seen == ["on_select_end", "on_export_end"]
    st = project_status(project)
    assert st["batch_out"] == [] and st["cycles"][-1]["state"] == "done"
    # nothing new to train on at the budget: refused; with a bigger budget the next cycle runs
    with pytest.raises(StateError, match="budget reached"):
        run_cycle(project, adapter, overrides=["max_labeled_fraction=0.1"])
    r2 = run_cycle(project, adapter)
    assert (r2.cycle, r2.n_train, r2.n_selected) == (2, 3, 3)
    trains = [c[1] for c in adapter.calls if c[0] == "train"]
    assert str(trains[1]["init"]).endswith("cycles/1/train/weights.json")


def test_cycle_is_deterministic(tmp_path):
    picks = []
    for name in ("a", "b"):
        project = make_project(tmp_path / name, n=40, seed=3)
        label_cycle(project, 0, tmp_path / name)
        run_cycle(project, _adapter())
        picks.append(batch_names(project, 1))
    assert picks[0] == picks[1]


@pytest.mark.parametrize("limit, expected", [(3, 3), (2000, 8), ("null", 8)])
def test_hybrid_predicts_at_most_hybrid_max_labeled_labeled_images(tmp_path, limit, expected):
    project = make_project(tmp_path, n=80, hybrid_max_labeled=limit)
    label_cycle(project, 0, tmp_path)
    with _store(project) as s:
        labeled = {str(project / r.relpath) for r in s.images(status="labeled")}
    assert len(labeled) == 8
    asked = []

    class Counting(FakeAdapter):
        def predict(self, weights, images, **kw):
            images = list(images)
            asked.extend(str(p) for p in images)
            return super().predict(weights, images, **kw)

    run_cycle(project, Counting(len(NAMES), seed=1))
    assert len(set(asked) & labeled) == expected


def test_interrupted_cycle_resumes(tmp_path):
    project = make_project(tmp_path, n=40)
    label_cycle(project, 0, tmp_path)

    class Broken(FakeAdapter):
        def predict(self, *a, **k):
            raise RuntimeError("GPU fell over")

    with pytest.raises(RuntimeError):
        run_cycle(project, Broken(len(NAMES), seed=1))
    with _store(project) as s:
        assert s.last_cycle().state == "trained"
        assert s.image_count("selected") == 0
    with pytest.raises(StateError, match="interrupted"):
        import_labels(project, tmp_path / "returned0")
    adapter = _adapter()
    r = run_cycle(project, adapter)
    assert r.resumed_from == "trained" and r.cycle == 1
    assert not [c for c in adapter.calls if c[0] == "train"]  # training was not redone


def test_hooks_fire_in_order(tmp_path):
    project = make_project(tmp_path, n=30)
    label_cycle(project, 0, tmp_path)
    seen = []
    hooks = Hooks()
    for event in ("on_cycle_start", "on_train_end", "on_select_end", "on_prelabels_written",
                  "on_bundle_written", "on_export_end"):
        hooks.add(event, lambda event=event, **info: seen.append(event))
    run_cycle(project, _adapter(), hooks=hooks)
    assert seen == ["on_cycle_start", "on_train_end", "on_select_end", "on_prelabels_written",
                    "on_bundle_written", "on_export_end"]
    with pytest.raises(ValueError, match="unknown event"):
        hooks.add("on_lunch", print)


def test_cycle_needs_labels(tmp_path):
    project = make_project(tmp_path, n=20)
    with pytest.raises(StateError, match="no labeled images"):
        run_cycle(project, _adapter(), force=True)


# -- import --------------------------------------------------------------------------
def test_import_is_idempotent(tmp_path):
    project = make_project(tmp_path, n=40)
    returned = write_returned(tmp_path / "ret", project, 0)
    r1 = import_labels(project, returned)
    assert (r1.n_labeled, r1.n_unchanged, r1.remaining) == (4, 0, 0)
    before = db_rows(project)
    r2 = import_labels(project, returned)
    assert (r2.n_labeled, r2.n_unchanged) == (0, 4)
    assert db_rows(project) == before
    with _store(project) as s:
        assert all(r.labeled_cycle == 0 for r in s.images(status="labeled"))


def test_partial_import_keeps_the_batch_out(tmp_path):
    project = make_project(tmp_path, n=40)
    r = import_labels(project, write_returned(tmp_path / "part", project, 0, only=3))
    assert (r.n_labeled, r.remaining) == (3, 1)
    with pytest.raises(StateError, match="1 of 4"):
        run_cycle(project, _adapter())
    r = import_labels(project, write_returned(tmp_path / "all", project, 0))
    assert (r.n_labeled, r.n_unchanged, r.remaining) == (1, 3, 0)


def test_import_never_overwrites_without_permission(tmp_path):
    project = make_project(tmp_path, n=40)
    import_labels(project, write_returned(tmp_path / "a", project, 0, line="0 0.5 0.5 0.2 0.2"))
    changed = write_returned(tmp_path / "b", project, 0, line="1 0.4 0.4 0.2 0.2")
    key = batch_names(project, 0)[0].rsplit(".", 1)[0]
    with pytest.raises(DataError, match="already labeled"):
        import_labels(project, changed)
    label = next((project / "labels").rglob(f"{key}.txt"))
    assert label.read_text().startswith("0 ")
    r = import_labels(project, changed, overwrite=True)
    assert r.n_overwritten == 4
    assert label.read_text().startswith("1 ")
    kept = list((project / "labels/.replaced").rglob(f"{key}.*.txt"))
    assert len(kept) == 1 and kept[0].read_text().startswith("0 ")


def test_empty_label_file_means_no_objects(tmp_path):
    project = make_project(tmp_path, n=40)
    r = import_labels(project, write_returned(tmp_path / "e", project, 0, line=""))
    assert r.n_labeled == 4


def test_import_from_zip(tmp_path):
    project = make_project(tmp_path, n=40)
    zpath = tmp_path / "ret.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for name in batch_names(project, 0):
            zf.writestr(f"labels/{name.rsplit('.', 1)[0]}.txt", "2 0.5 0.5 0.5 0.5\n")
        zf.writestr("classes.txt", "\n".join(NAMES))
        zf.writestr("images/ignored.png", b"x")
    r = import_labels(project, zpath)
    assert r.n_labeled == 4


def test_import_reports_every_problem_and_applies_nothing(tmp_path):
    project = make_project(tmp_path, n=40)
    ret = write_returned(tmp_path / "ret", project, 0)
    keys = [n.rsplit(".", 1)[0] for n in batch_names(project, 0)]
    (ret / f"{keys[0]}.txt").write_text("0 0.5 0.5 0.2\n5 0.5 0.5 0.2 0.2\n")
    (ret / f"{keys[1]}.txt").write_text("0 0.5 0.5 0 0.2\n")
    (ret / "ghost.txt").write_text("")
    before = db_rows(project)
    with pytest.raises(DataError) as exc:
        import_labels(project, ret)
    msg = str(exc.value)
    assert "4 problem(s)" in msg
    assert f"{keys[0]}.txt:1: expected 5 fields" in msg
    assert f"{keys[0]}.txt:2: class id 5 out of range" in msg
    assert f"{keys[1]}.txt:1: box size must be positive" in msg
    assert "ghost.txt" in msg
    assert db_rows(project) == before
    assert not list((project / "labels").rglob("*.txt"))


def test_import_selected_cycle_is_the_labeled_cycle(tmp_path):
    project = make_project(tmp_path, n=40)
    label_cycle(project, 0, tmp_path)
    run_cycle(project, _adapter())
    label_cycle(project, 1, tmp_path)
    with _store(project) as s:
        cycles = sorted({r.labeled_cycle for r in s.images(status="labeled")})
    assert cycles == [0, 1]
    pool = _store(project).load_pool()
    assert np.array_equal(np.sort(pool.labeled_ids()), np.sort(pool.labeled_ids()))


# -- other formats (written and read by detal.export) ---------------------------------
def test_other_formats_round_trip(tmp_path):
    pytest.importorskip("detal.export")
    project = make_project(tmp_path, n=40)
    label_cycle(project, 0, tmp_path)
    r = run_cycle(project, _adapter(), formats=["yolo,coco", "cvat-yolo", "label-studio"])
    assert r.exports == ["yolo", "coco", "cvat-yolo", "label-studio"]
    exports = project / "cycles/1/exports"
    assert (exports / "cvat-yolo.zip").is_file()
    coco = json.loads((exports / "coco/annotations/instances_default.json").read_text())
    assert sorted(im["file_name"] for im in coco["images"]) == sorted(batch_names(project, 1))
    assert not list((project / "cycles/1").glob(".*"))  # scratch links are gone
    # The vendor returns the pre-labels unchanged, as CVAT YOLO 1.1.
    rep = import_labels(project, exports / "cvat-yolo.zip", fmt="cvat-yolo", accept_prelabels=True)
    assert rep.n_labeled == 4 and rep.remaining == 0
    pre = project / "cycles/1/prelabels"
    for name in batch_names(project, 1):
        key = name.rsplit(".", 1)[0]
        label = next((project / "labels").rglob(f"{key}.txt"))
        assert label.read_text().split() == (pre / f"{key}.txt").read_text().split()
    # The same labels as COCO change nothing the second time.
    rep = import_labels(project, exports / "coco", fmt="coco")
    assert (rep.n_labeled, rep.n_unchanged) == (0, 4)


def test_unknown_format_is_refused_before_training(tmp_path):
    pytest.importorskip("detal.export")
    from detal.errors import ConfigError

    project = make_project(tmp_path, n=30)
    label_cycle(project, 0, tmp_path)
    adapter = _adapter()
    with pytest.raises(ConfigError, match="pascal"):
        run_cycle(project, adapter, formats=["yolo", "pascal"])
    assert adapter.calls == []
    with _store(project) as s:
        assert s.last_cycle().id == 0


def test_prediction_for_an_unknown_image_is_a_model_error(tmp_path):
    from detal.errors import ModelError

    project = make_project(tmp_path, n=30)
    label_cycle(project, 0, tmp_path)

    class Confused(FakeAdapter):
        def predict(self, weights, images, **kw):
            result = super().predict(weights, images, **kw)
            result.predictions[0] = result.predictions[0].__class__(
                tmp_path / "elsewhere.png", 8, 8, result.predictions[0].detections)
            return result

    with pytest.raises(ModelError, match="elsewhere.png"):
        run_cycle(project, Confused(len(NAMES), seed=1))
    with _store(project) as s:
        assert s.last_cycle().state == "trained" and s.image_count("selected") == 0


def test_resume_takes_the_config_of_the_rerun(tmp_path, capsys):
    from detal.cli import main

    project = make_project(tmp_path, n=30)
    label_cycle(project, 0, tmp_path)

    class FailsOnce(FakeAdapter):
        def train(self, *a, **k):
            raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        run_cycle(project, FailsOnce(len(NAMES)))
    assert main(["status", str(project)]) == 0
    assert "cycle 1 was interrupted at state 'started'" in capsys.readouterr().out
    r = run_cycle(project, _adapter(), overrides=["prelabel_conf=0.9"])
    assert r.resumed_from == "started"
    with _store(project) as s:
        assert s.cycle(1).config["prelabel_conf"] == 0.9


def test_bundle_name_clash_is_a_data_error(tmp_path):
    images = tmp_path / "images"
    make_images(images / "a", 1)
    (images / "a__im000.png").write_bytes((images / "a/im000.png").read_bytes()[:-1] + b"\x00")
    make_images(images, 3, start=5)
    with pytest.raises(DataError, match="same bundle name"):
        init_project(tmp_path / "p", images, write_classes(tmp_path / "c.txt"))
    assert not (tmp_path / "p").exists()


def test_first_cycle_epochs_only_for_the_first_training(tmp_path):
    # a plain cycle (a self-training student's epochs come from its step plan: tests/test_pseudo.py)
    project = make_project(tmp_path, n=40, first_cycle_epochs=7, epochs_per_cycle=3, warm_start=False,
                           **{"self_training.enabled": "false"})
    adapter = _adapter()
    label_cycle(project, 0, tmp_path)
    run_cycle(project, adapter)
    label_cycle(project, 1, tmp_path)
    run_cycle(project, adapter)
    trains = [c[1] for c in adapter.calls if c[0] == "train"]
    assert [t["epochs"] for t in trains] == [7, 3]
    assert [t["init"] for t in trains] == [None, None]  # warm_start off


def test_adapter_reporting_resolved_paths_is_understood(tmp_path):
    project = make_project(tmp_path, n=30)
    label_cycle(project, 0, tmp_path)

    class Resolving(FakeAdapter):
        def predict(self, weights, images, **kw):
            return super().predict(weights, [Path(i).resolve() for i in images], **kw)

    r = run_cycle(project, Resolving(len(NAMES), seed=1))
    assert r.n_selected == 3
    assert sum(1 for _ in (project / "cycles/1/prelabels").glob("*.txt")) == 3


def test_images_inside_the_project_are_referenced_in_place(tmp_path):
    project = tmp_path / "proj"
    make_images(project / "images", 20)
    classes = write_classes(tmp_path / "c.txt")
    init_project(project, project / "images", classes)
    assert not (project / "images").is_symlink()
    with _store(project) as s:
        assert s.images()[0].relpath == "images/im000.png"
    init_project(project, project / "images", classes, force=True)  # start over
    assert (project / "images/im000.png").is_file() and not (project / "images").is_symlink()
    with _store(project) as s:
        assert s.image_count() == 20


@pytest.mark.parametrize("as_zip", [False, True])
def test_one_reader_for_folders_and_zips(tmp_path, as_zip):
    """readme.txt and friends are ignored, __MACOSX is skipped, and a huge file is a problem."""
    project = make_project(tmp_path, n=40)
    ret = write_returned(tmp_path / "ret", project, 0)
    (ret / "README.txt").write_text("labels from the vendor\n")
    (ret / "classes.txt").write_text("\n".join(NAMES) + "\n")
    (ret / "__MACOSX").mkdir()
    key = batch_names(project, 0)[0].rsplit(".", 1)[0]
    (ret / "__MACOSX" / f"{key}.txt").write_text("not a label at all\n")
    source = ret
    if as_zip:
        source = tmp_path / "ret.zip"
        with zipfile.ZipFile(source, "w") as zf:
            for p in ret.rglob("*.txt"):
                zf.write(p, p.relative_to(ret).as_posix())
    r = import_labels(project, source)
    assert (r.n_labeled, r.remaining) == (4, 0)

    project2 = make_project(tmp_path / "two", n=40)
    big = write_returned(tmp_path / "big", project2, 0)
    (big / f"{batch_names(project2, 0)[0].rsplit('.', 1)[0]}.txt").write_text("0 0.5 0.5 0.1 0.1\n" * 250_000)
    source = big
    if as_zip:
        source = tmp_path / "big.zip"
        with zipfile.ZipFile(source, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for p in big.rglob("*.txt"):
                zf.write(p, p.name)
    with pytest.raises(DataError, match="too large"):
        import_labels(project2, source)


def test_init_ignores_a_readme_in_the_label_folder(tmp_path):
    images = tmp_path / "images"
    make_images(images, 10)
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "im001.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (labels / "readme.txt").write_text("made by hand\n")
    (labels / "ghost.txt").write_text("")
    with pytest.raises(DataError, match="ghost.txt") as err:
        init_project(tmp_path / "p", images, write_classes(tmp_path / "c.txt"), labels=labels)
    assert "readme.txt" not in str(err.value) and "1 problem(s)" in str(err.value)
    (labels / "ghost.txt").unlink()
    report = init_project(tmp_path / "p", images, write_classes(tmp_path / "c.txt"), labels=labels)
    assert report.n_labeled == 1


# -- issue 22, defect 12: status never points at a bundle that is not there --------------------------


class _Stop(Exception):
    pass


def _stop_after_selection(**_):
    raise _Stop


def test_status_after_a_cycle_stopped_after_selection(tmp_path, capsys):
    project = make_project(tmp_path, n=40)
    label_cycle(project, 0, tmp_path)
    hooks = Hooks()
    hooks.add("on_select_end", _stop_after_selection)
    with pytest.raises(_Stop):
        run_cycle(project, FakeAdapter(3, seed=2), hooks=hooks)
    assert not (project / "cycles/1/batch-1.zip").exists()
    [out] = project_status(project)["batch_out"]
    assert out["cycle"] == 1 and out["bundle"] is None
    assert out["no_bundle"] == "not written yet: cycle 1 stopped at state 'selected'; run detal cycle to finish it"
    capsys.readouterr()
    assert main(["status", str(project)]) == 0
    text = capsys.readouterr().out
    assert "(no bundle: not written yet: cycle 1 stopped at state 'selected'" in text and "batch-1.zip" not in text
    run_cycle(project, FakeAdapter(3, seed=2))  # the resumed cycle writes it, and status shows it
    [out] = project_status(project)["batch_out"]
    assert out["bundle"] == "cycles/1/batch-1.zip" and (project / out["bundle"]).is_file()


@pytest.mark.parametrize("cycle", [0, 1])
def test_status_of_a_project_written_without_bundles(tmp_path, capsys, cycle):
    """As ``detal simulate`` runs a project: init and cycles with write_bundle=False."""
    make_images(tmp_path / "images", 40)
    cfg = load_config(None, ["initial_fraction=0.1", "batch_fraction=0.1", "max_labeled_fraction=0.5"])
    project = tmp_path / "sim"
    init_project(project, tmp_path / "images", write_classes(tmp_path / "classes.txt"), config=cfg,
                 write_bundle=False)
    if cycle:
        _label_without_bundle(project, tmp_path)
        run_cycle(project, FakeAdapter(3, seed=2), write_bundle=False)
    [out] = project_status(project)["batch_out"]
    assert out["cycle"] == cycle and out["bundle"] is None
    assert out["no_bundle"].startswith(f"no cycles/{cycle}/batch-{cycle}.zip in the project")
    capsys.readouterr()
    assert main(["status", str(project)]) == 0
    assert f"(no bundle: no cycles/{cycle}/batch-{cycle}.zip in the project" in capsys.readouterr().out


def _label_without_bundle(project: Path, tmp: Path) -> None:
    """Label batch 0 of a project that has no bundle (by its selected keys)."""
    ret = tmp / "ret0"
    ret.mkdir()
    for key in selected_keys(project):
        (ret / f"{key}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    import_labels(project, ret)
