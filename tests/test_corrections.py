"""What correcting a batch took, recorded on import: every format, overwrite, old projects.

The shipped pre-labels of cycle 1 are replaced by hand-made ones
(``cycles/1/shipped.json``, the file the import reads), so the expected
counts follow from the boxes by construction, not from the matcher.
"""

from __future__ import annotations

import json
import sqlite3
import zipfile
from pathlib import Path

import pytest
from projectkit import NAMES, batch_names, label_cycle, make_project

from detal.export.coco import coco_document
from detal.export.common import Box, ImageLabels
from detal.export.cvat import write_cvat_zip
from detal.fake import FakeAdapter
from detal.labels import parse_label_text
from detal.project import import_labels, project_status, run_cycle
from detal.store import ShippedBoxRow, Store

# normalised (class, cx, cy, w, h); far enough apart that no two boxes overlap
S0 = (0, 0.2, 0.2, 0.2, 0.2)  # kept as is: verified
S1 = (1, 0.7, 0.2, 0.2, 0.2)  # xyxy 0.6..0.8, 0.1..0.3
S1_TALLER = (1, 0.7, 0.26, 0.2, 0.32)  # the same top, 0.32 tall: IoU 0.04 / 0.064 = 0.625: adjusted
S2 = (2, 0.2, 0.7, 0.2, 0.2)  # returned as class 0: relabeled
S3 = (1, 0.7, 0.7, 0.1, 0.1)  # not returned: deleted
NEW = (2, 0.45, 0.45, 0.08, 0.08)  # returned, never shipped: drawn

# per batch image: shipped boxes (with confidences) and returned boxes
CASES = [
    ([(*S0, 0.9), (*S1, 0.8), (*S2, 0.7), (*S3, 0.4)], [S0, S1_TALLER, (0, *S2[1:]), NEW]),  # one of each
    ([], [S0, NEW]),  # nothing shipped for it (the model found nothing): both drawn
    ([(*S0, 0.6), (*S1, 0.5)], []),  # returned empty: both deleted
    ([(*S0, 0.95), (*S0, 0.3)], [S0]),  # a duplicate pre-label: the confident one verified, the other deleted
]
EXPECTED = [
    {"verified": 1, "adjusted": 1, "relabeled": 1, "deleted": 1, "drawn": 1},
    {"verified": 0, "adjusted": 0, "relabeled": 0, "deleted": 0, "drawn": 2},
    {"verified": 0, "adjusted": 0, "relabeled": 0, "deleted": 2, "drawn": 0},
    {"verified": 1, "adjusted": 0, "relabeled": 0, "deleted": 1, "drawn": 0},
]


def _line(box) -> str:
    return f"{box[0]} {box[1]:.6f} {box[2]:.6f} {box[3]:.6f} {box[4]:.6f}"


def _project(tmp_path: Path) -> tuple[Path, list[str]]:
    """Batch 0 labeled, cycle 1 out (4 images) with the hand-made shipped boxes of CASES."""
    project = make_project(tmp_path, n=40)
    label_cycle(project, 0, tmp_path, "1 0.5 0.5 0.2 0.2\n2 0.2 0.2 0.1 0.1")
    run_cycle(project, FakeAdapter(len(NAMES), seed=1))
    names = batch_names(project, 1)
    assert len(names) == len(CASES)
    keys = [n.rsplit(".", 1)[0] for n in names]
    shipped = {k: [list(b) for b in s] for k, (s, _) in zip(keys, CASES)}
    (project / "cycles/1/shipped.json").write_text(json.dumps({"conf": 0.25, "images": shipped}))
    return project, names


def _texts(names: list[str]) -> dict[str, str]:
    return {n.rsplit(".", 1)[0]: "".join(_line(b) + "\n" for b in r) for n, (_, r) in zip(names, CASES)}


def _write_yolo(folder: Path, texts: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for key, text in texts.items():
        (folder / f"{key}.txt").write_text(text)
    return folder


def _image_labels(project: Path, names: list[str], texts: dict[str, str]) -> list[ImageLabels]:
    with Store.open(project / "detal.db") as store:
        rows = {r.key: r for r in store.images(selected_cycle=1)}
    out = []
    for name in names:
        key = name.rsplit(".", 1)[0]
        boxes, _ = parse_label_text(texts[key], len(NAMES), key)
        out.append(ImageLabels(Path(name), rows[key].width, rows[key].height,
                               tuple(Box(b.class_id, b.cx, b.cy, b.w, b.h, 1.0) for b in boxes)))
    return out


class _LabelStudio:
    """A Label Studio server reduced to what ``pull`` asks: the project, and its tasks with annotations."""

    url = "http://127.0.0.1:9"

    def __init__(self, tasks: list[dict]) -> None:
        self._tasks = tasks

    def project(self, ls_project: int) -> dict:
        return {"id": ls_project}

    def tasks(self, ls_project: int, page_size: int = 500, ids=None):
        return iter(self._tasks)


def _pull(project: Path, tmp: Path, names: list[str], texts: dict[str, str]) -> None:
    from detal.labelstudio import pull_labels

    with Store.open(project / "detal.db") as store:
        rows = {r.key: r for r in store.images(selected_cycle=1)}
        with store.transaction():
            store.set_meta("label_studio", {"url": _LabelStudio.url, "project": 7})
            store.record_label_studio_tasks(7, [(rows[n.rsplit(".", 1)[0]], 100 + i) for i, n in enumerate(names)])
    tasks = []
    for i, name in enumerate(names):
        key = name.rsplit(".", 1)[0]
        boxes, _ = parse_label_text(texts[key], len(NAMES), key)
        result = [{"id": f"r{j}", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
                   "value": {"x": (b.cx - b.w / 2) * 100, "y": (b.cy - b.h / 2) * 100,
                             "width": b.w * 100, "height": b.h * 100, "rotation": 0,
                             "rectanglelabels": [NAMES[b.class_id]]}}
                  for j, b in enumerate(boxes)]
        tasks.append({"id": 100 + i, "annotations": [
            {"id": i + 1, "result": result, "was_cancelled": False, "updated_at": "2024-01-01T00:00:00Z"}]})
    report = pull_labels(project, client=_LabelStudio(tasks), env={})
    assert report.n_labeled == len(names)


def _import(fmt: str, project: Path, tmp: Path, names: list[str]) -> None:
    texts = _texts(names)
    if fmt == "yolo":
        import_labels(project, _write_yolo(tmp / "returned", texts))
    elif fmt == "yolo-zip":
        with zipfile.ZipFile(tmp / "returned.zip", "w") as zf:
            for key, text in texts.items():
                zf.writestr(f"labels/{key}.txt", text)
        import_labels(project, tmp / "returned.zip")
    elif fmt == "cvat-yolo":
        zip_path = write_cvat_zip(tmp / "cvat.zip", _image_labels(project, names, texts), NAMES, copy_images=False)
        import_labels(project, zip_path, fmt="cvat-yolo")
    elif fmt == "coco":
        doc = coco_document(_image_labels(project, names, texts), NAMES)
        for ann in doc["annotations"]:
            del ann["score"]  # a vendor's file: no confidences
        (tmp / "instances.json").write_text(json.dumps(doc))
        import_labels(project, tmp / "instances.json", fmt="coco")
    else:
        _pull(project, tmp, names, texts)


def _counts(project: Path, cycle: int) -> list[dict]:
    with Store.open(project / "detal.db", readonly=True) as store:
        key = {r.id: r.key for r in store.images()}
        return sorted(((key[r.image_id], r.counts()) for r in store.corrections(cycle)), key=lambda kv: kv[0])


@pytest.mark.parametrize("fmt", ["yolo", "yolo-zip", "cvat-yolo", "coco", "label-studio"])
def test_every_format_records_the_same_counts(fmt, tmp_path):
    project, names = _project(tmp_path)
    _import(fmt, project, tmp_path, names)
    keys = [n.rsplit(".", 1)[0] for n in names]
    assert _counts(project, 1) == sorted(zip(keys, EXPECTED), key=lambda kv: kv[0])
    with Store.open(project / "detal.db", readonly=True) as store:
        rows = {r.image_id: r for r in store.corrections(1)}
        by_key = {r.key: r.id for r in store.images(selected_cycle=1)}
        first = by_key[keys[0]]
        assert [(b.box, b.class_id, b.confidence, b.outcome) for b in store.shipped_boxes(1)
                if b.image_id == first] == [(0, 0, 0.9, "verified"), (1, 1, 0.8, "adjusted"),
                                            (2, 2, 0.7, "relabeled"), (3, 1, 0.4, "deleted")]
        assert [b.iou for b in store.shipped_boxes(1) if b.image_id == first][1] == pytest.approx(0.625, abs=1e-4)
    assert [(rows[by_key[k]].shipped, rows[by_key[k]].returned) for k in keys] == [(4, 4), (0, 2), (2, 0), (2, 1)]
    assert all(r.prelabeled for r in rows.values())


def test_the_initial_batch_is_all_drawn(tmp_path):
    project = make_project(tmp_path, n=40)
    label_cycle(project, 0, tmp_path, "1 0.5 0.5 0.2 0.2\n2 0.2 0.2 0.1 0.1")
    with Store.open(project / "detal.db", readonly=True) as store:
        rows = store.corrections(0)
        assert store.shipped_boxes(0) == []
    assert len(rows) == 4
    assert all(not r.prelabeled and r.shipped == 0 and r.returned == 2 and r.drawn == 2 for r in rows)
    assert all(r.verified == r.adjusted == r.relabeled == r.deleted == 0 for r in rows)


def test_overwrite_replaces_the_images_row(tmp_path):
    project, names = _project(tmp_path)
    _import("yolo", project, tmp_path, names)
    key = names[2].rsplit(".", 1)[0]  # shipped S0 and S1, returned empty: 2 deleted
    fixed = tmp_path / "fixed"
    _write_yolo(fixed, {key: _line(S0) + "\n" + _line(S1) + "\n"})
    report = import_labels(project, fixed, overwrite=True)
    assert report.n_overwritten == 1
    counts = dict(_counts(project, 1))
    assert counts[key] == {"verified": 2, "adjusted": 0, "relabeled": 0, "deleted": 0, "drawn": 0}
    assert len(counts) == 4  # replaced, not added
    with Store.open(project / "detal.db", readonly=True) as store:
        image = next(r.id for r in store.images(selected_cycle=1) if r.key == key)
        assert [b.outcome for b in store.shipped_boxes(1) if b.image_id == image] == ["verified", "verified"]
    # the same labels again, without --overwrite: unchanged, and still counted once
    assert import_labels(project, fixed).n_unchanged == 1
    assert dict(_counts(project, 1)) == counts


def test_a_refused_import_records_nothing(tmp_path):
    project, names = _project(tmp_path)
    bad = _write_yolo(tmp_path / "bad", {**_texts(names), names[0].rsplit(".", 1)[0]: "9 0.5 0.5 0.1 0.1\n"})
    with pytest.raises(Exception, match="class"):
        import_labels(project, bad)
    assert _counts(project, 1) == []


def _as_made_by_main(project: Path) -> None:
    """The project's database as detal before this store change made it: no correction tables.

    The schema is otherwise the same (the tables were added with CREATE TABLE IF
    NOT EXISTS, the schema version stays 1), so dropping them gives that database.
    """
    conn = sqlite3.connect(project / "detal.db")
    conn.execute("DROP TABLE shipped_boxes")
    conn.execute("DROP TABLE corrections")
    conn.commit()
    conn.close()


def test_an_older_project_opens_imports_and_catches_up(tmp_path):
    project, names = _project(tmp_path)
    _as_made_by_main(project)
    status = project_status(project)  # read-only: no table is created, nothing fails
    assert [c["effort"] for c in status["cycles"]] == [None, None] and status["effort_total"] is None
    conn = sqlite3.connect(f"file:{project / 'detal.db'}?mode=ro", uri=True)
    assert "corrections" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    _import("yolo", project, tmp_path, names)
    keys = [n.rsplit(".", 1)[0] for n in names]
    assert _counts(project, 1) == sorted(zip(keys, EXPECTED), key=lambda kv: kv[0])
    # batch 0, imported before the tables existed, was caught up from its label files: all drawn
    assert [c["drawn"] for _, c in _counts(project, 0)] == [2, 2, 2, 2]


def test_a_cycle_catches_up_before_self_training_reads_the_rows(tmp_path):
    """Imported by an older detal, then a cycle: the rows are there for the threshold's calibration."""
    project, names = _project(tmp_path)
    _import("yolo", project, tmp_path, names)
    before = _counts(project, 1)
    _as_made_by_main(project)
    with Store.open(project / "detal.db") as store:  # the migration: empty tables
        assert store.corrections() == []
    run_cycle(project, FakeAdapter(len(NAMES), seed=1))
    assert _counts(project, 1) == before
    assert len(_counts(project, 0)) == 4


def test_per_box_rows_keep_the_shipped_confidences(tmp_path):
    project, names = _project(tmp_path)
    _import("yolo", project, tmp_path, names)
    with Store.open(project / "detal.db", readonly=True) as store:
        boxes = store.shipped_boxes(1)
    assert sorted(b.confidence for b in boxes) == sorted(b[5] for s, _ in CASES for b in s)
    assert all(isinstance(b, ShippedBoxRow) for b in boxes)


def test_status_shows_precision_recall_counts_and_seconds(tmp_path, capsys):
    from detal.cli import main
    from detal.project.status import EFFORT_KEYS

    project, names = _project(tmp_path)
    _import("yolo", project, tmp_path, names)
    (project / "config.yaml").write_text((project / "config.yaml").read_text().replace(
        "draw: 7.0", "draw: 10.0"))  # the project's config prices the actions
    assert main(["status", str(project), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["effort_seconds"]["draw"] == 10.0 and st["effort_iou"] == {"match": 0.5, "verify": 0.7}
    e0, e1 = (c["effort"] for c in st["cycles"])
    assert list(e1) == list(EFFORT_KEYS) == list(st["effort_total"])
    # cycle 1, by hand: 4 images, 8 shipped and 7 returned boxes; 2 verified, 1 adjusted, 1 relabeled,
    # 4 deleted, 3 drawn; verify 1.6, adjust 4, relabel 3, delete 1.5, draw 10, per image 3
    assert e1 == {"images": 4, "prelabeled_images": 4, "shipped_boxes": 8, "returned_boxes": 7,
                  "verified": 2, "adjusted": 1, "relabeled": 1, "deleted": 4, "drawn": 3,
                  "precision": 0.375, "recall": round(3 / 7, 4),
                  "annotator_s": round(4 * 3 + 2 * 1.6 + 4 + 3 + 4 * 1.5 + 3 * 10, 1),
                  "from_scratch_s": 4 * 3 + 7 * 10.0}
    # cycle 0, the initial batch: two boxes an image, all drawn, nothing to judge the pre-labels by
    assert (e0["prelabeled_images"], e0["drawn"], e0["precision"], e0["recall"]) == (0, 8, None, None)
    assert e0["annotator_s"] == e0["from_scratch_s"] == 4 * 3 + 8 * 10.0
    assert st["effort_total"]["annotator_s"] == pytest.approx(e0["annotator_s"] + e1["annotator_s"])
    assert main(["status", str(project)]) == 0
    text = capsys.readouterr().out
    assert ("batch back: 4 of 4 images; pre-labels precision 0.38, recall 0.43; 2 verified, 1 adjusted, "
            "1 relabeled, 4 deleted, 3 drawn; about 58 s of annotator time (82 s drawn from scratch)") in text
    assert "batch back: 4 of 4 images; no pre-labels, 8 boxes drawn; about 92 s" in text
    assert "annotator time so far: about 2.5 min for 8 images (2.9 min drawn from scratch, 24 s saved)" in text


def test_images_labeled_at_init_are_no_correction(tmp_path):
    """A label given at init was never in a batch: no row, even when --overwrite replaces it."""
    from projectkit import make_images, write_classes

    from detal.config import load_config
    from detal.project import init_project

    make_images(tmp_path / "images", 20)
    labels = tmp_path / "labels"
    labels.mkdir()
    for i in range(3):
        (labels / f"im{i:03d}.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    project = tmp_path / "proj"
    init_project(project, tmp_path / "images", write_classes(tmp_path / "classes.txt"), labels=labels,
                 config=load_config(None, ["initial_fraction=0.2", "max_labeled_fraction=0.5"]))
    fixed = _write_yolo(tmp_path / "fixed", {"im000": "2 0.4 0.4 0.2 0.2\n"})
    assert import_labels(project, fixed, overwrite=True).n_overwritten == 1
    assert _counts(project, -1) == [] and _counts(project, 0) == []
    label_cycle(project, 0, tmp_path)
    assert len(_counts(project, 0)) == 1 and len(_counts(project, -1)) == 0  # 20% of 20, less the 3 given
