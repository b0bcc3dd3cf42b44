"""``detal review``: the page builder (pure), the data it reads from a project, the CLI.

The page is checked by parsing the HTML it writes; tests/test_review_browser.py
loads it in a real headless browser.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from projectkit import NAMES, batch_names, db_rows, label_cycle, make_images, write_classes
from reviewkit import parse_cards, project_with_cycle

from detal.cli import main
from detal.config import load_config
from detal.errors import DataError, StateError
from detal.fake import FakeAdapter
from detal.labels import YoloBox
from detal.project import init_project, run_cycle
from detal.review import (
    CyclePoint,
    ReviewImage,
    ReviewPage,
    attach_confidences,
    coco_confidences,
    collect_review,
    make_thumbnail,
    map_plot_svg,
    order_by_score,
    render_page,
    resolve_cycle,
    write_review,
)
from detal.store import CycleRow

ODD = ['we<ir>d &"x\'.png', "é #?%20.png", "<script>alert(1)<\\script>.png"]
# Names a pool may hold (init refuses what Windows cannot, such as < > " ? \\): still HTML-special
ODD_ON_DISK = ["we'ird &x.png", "é #%20.png", "&lt;script&gt;alert(1).png"]


def _image(i: int, score=None, boxes=(), name=None, **kw) -> ReviewImage:
    return ReviewImage(i, name or f"im{i}.png", f"images/im{i}.png", 40, 20, score, None,
                       tuple(boxes), f"thumbs/{i}.jpg", **kw)


def _page(images=(), names=("cat", "dog", "bird"), **kw) -> ReviewPage:
    base = {"project": "/p/proj", "cycle": 1, "names": tuple(names), "pool": 100, "labeled": 10,
            "selected": 5, "max_labeled_fraction": 0.42, "cycles": (CyclePoint(1, 10, 0.3),),
            "class_counts": (3, 2, 1), "images": tuple(images), "confidence_source": "pre-labels"}
    base.update(kw)
    return ReviewPage(**base)


def _style(box: dict) -> dict[str, float]:
    return {k: float(v.rstrip("%")) for k, v in
            (part.split(":") for part in box["style"].split(";") if part)}


# -- pure helpers -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([0.2, 0.9, 0.5], [1, 2, 0]),
        ([None, 0.1, None, 0.3], [3, 1, 0, 2]),  # no score: last, by id
        ([0.5, 0.5, 0.7], [2, 0, 1]),  # ties by id (the manifest's order)
        ([], []),
    ],
)
def test_order_by_score(scores, expected):
    images = [_image(i, s) for i, s in enumerate(scores)]
    assert [im.image_id for im in order_by_score(images)] == expected


@pytest.mark.parametrize(
    ("box", "left", "top", "width", "height", "inside"),
    [
        ((0.5, 0.5, 0.2, 0.4), 40, 30, 20, 40, False),
        ((0.05, 0.05, 0.1, 0.1), 0, 0, 10, 10, True),  # at the top: label drawn inside
        ((0.95, 0.5, 0.1, 0.2), 90, 40, 10, 20, False),
        ((0.98, 0.5, 0.1, 0.2), 93, 40, 7, 20, False),  # spills over the right edge: clipped
        ((0.5, 1.0, 0.2, 0.2), 40, 90, 20, 10, False),
    ],
)
def test_box_coordinates(box, left, top, width, height, inside):
    html = render_page(_page([_image(0, 0.5, [YoloBox(1, *box, 0.5)])]))
    (card,) = parse_cards(html).cards
    (b,) = card["boxes"]
    assert _style(b) == pytest.approx({"left": left, "top": top, "width": width, "height": height})
    assert ("in" in b["class"].split()) is inside
    assert b["data-class"] == "1" and "c1" in b["class"].split()


@given(st.floats(0, 1), st.floats(0, 1), st.floats(1e-6, 1), st.floats(1e-6, 1))
def test_boxes_stay_inside_the_image(cx, cy, w, h):
    html = render_page(_page([_image(0, 0.5, [YoloBox(0, cx, cy, w, h, None)])]))
    (b,) = parse_cards(html).cards[0]["boxes"]
    s = _style(b)
    assert s["left"] >= 0 and s["top"] >= 0 and s["width"] >= 0 and s["height"] >= 0
    assert s["left"] + s["width"] <= 100 + 1e-3 and s["top"] + s["height"] <= 100 + 1e-3


def test_escaping_of_odd_names():
    names = ("<b>cat</b>", 'dog "&" co', "bird")
    images = [
        _image(i, 0.9 - i / 10, [YoloBox(i % 3, 0.5, 0.5, 0.2, 0.2, 0.7)], name=n)
        for i, n in enumerate(ODD)
    ]
    html = render_page(_page(images, names=names, project='/data/a&b "<proj>"'))
    assert "<script>alert(1)" not in html and "<b>cat</b>" not in html
    assert html.count("<script>") == 1  # only the page's own
    parsed = parse_cards(html)
    assert [c["data-name"] for c in parsed.cards] == ODD
    assert [c["name_text"].split(" ", 1)[1] for c in parsed.cards] == ODD
    assert [c["imgs"][0]["alt"] for c in parsed.cards] == ODD
    assert [c["boxes"][0]["title"] for c in parsed.cards] == [f"{n} 0.70" for n in names]
    assert "<title>detal review: a&amp;b &quot;&lt;proj&gt;&quot;, cycle 1</title>" in html


def test_card_shows_score_boxes_and_confidences():
    boxes = [YoloBox(0, 0.3, 0.3, 0.2, 0.2, 0.91), YoloBox(2, 0.6, 0.6, 0.2, 0.2, 0.33)]
    html = render_page(_page([_image(7, 0.123456, boxes)]))
    (card,) = parse_cards(html).cards
    assert card["data-boxes"] == "2" and card["data-score"] == "0.123456"
    assert card["data-classes"] == "0 2" and card["id"] == "img-7"
    assert [b["data-conf"] for b in card["boxes"]] == ["0.9100", "0.3300"]
    assert "score <b>0.1235</b>" in html and ">cat 0.91</span>" in html
    assert "only images with a shown box" in html
    assert 'id="min-conf"' in html and "disabled" not in parse_cards(html).inputs["min-conf"]


def test_page_without_confidences_disables_the_slider_and_says_so():
    page = _page([_image(0, 0.5, [YoloBox(0, 0.5, 0.5, 0.2, 0.2)])], confidence_source="none")
    html = render_page(page)
    parsed = parse_cards(html)
    assert "disabled" in parsed.inputs["min-conf"]
    assert all("data-conf" not in b for b in parsed.cards[0]["boxes"])
    assert "score and box count only" in html


def test_empty_batch():
    html = render_page(_page([], cycles=()))
    parsed = parse_cards(html)
    assert parsed.cards == [] and "Cycle 1 selected no images." in html
    assert "no cycle evaluated yet" in html
    assert "0 images, 0 boxes shown" in html


def test_page_needs_no_network():
    html = render_page(_page([_image(0, 0.5, [YoloBox(0, 0.5, 0.5, 0.2, 0.2, 0.5)])]))
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/|@import|url\(|<link", html)
    assert not re.search(r"<script[^>]+src=", html)


def test_map_plot():
    pts = [CyclePoint(1, 10, 0.2), CyclePoint(2, 20, None), CyclePoint(3, 30, 0.55)]
    svg = map_plot_svg(pts)
    assert svg.count("<circle") == 2 and "<polyline" in svg
    assert ">0.6</text>" in svg  # the axis top rounds the best mAP up to a tenth
    ys = [float(y) for y in re.findall(r'<circle cx="[\d.]+" cy="([\d.]+)"', svg)]
    assert ys[1] < ys[0]  # higher mAP is drawn higher
    assert map_plot_svg([CyclePoint(1, 10, None)]) == ""
    assert map_plot_svg([CyclePoint(4, 10, 0.5)]).count("<circle") == 1


def _cycles(*specs) -> list[CycleRow]:
    return [CycleRow(k, "done", {}, None, None, {}, 0, n, 0.0, None) for k, n in specs]


@pytest.mark.parametrize(
    ("cycles", "requested", "expected"),
    [
        (_cycles((0, 4), (1, 4), (2, 0)), None, 1),  # latest that selected images
        (_cycles((0, 4), (1, 4)), None, 1),
        (_cycles((0, 0)), None, 0),
        (_cycles((0, 4), (1, 4)), "0", 0),
        (_cycles((0, 4), (1, 4)), 1, 1),
        (_cycles((0, 4), (1, 4)), "7", "no cycle 7 (the project has cycles 0 to 1)"),
        (_cycles((0, 4), (1, 4)), "-1", "no cycle -1"),
        (_cycles((0, 4)), "one", "cycle 'one' is not a cycle number"),
        (_cycles((0, 4)), "1.5", "not a cycle number"),
        ([], None, "has no cycles yet"),
    ],
)
def test_resolve_cycle(cycles, requested, expected):
    if isinstance(expected, str):
        with pytest.raises(StateError, match=re.escape(expected)) as err:
            resolve_cycle(cycles, requested, "proj")
        assert str(err.value).startswith("proj: ")
    else:
        assert resolve_cycle(cycles, requested, "proj") == expected


def test_coco_confidences_match_boxes_by_class_and_place():
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": 200, "height": 100}],
        "categories": [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}],  # not in our order
        "annotations": [
            {"image_id": 1, "category_id": 2, "bbox": [40, 20, 40, 20], "score": 0.8},
            {"image_id": 1, "category_id": 1, "bbox": [40, 20, 40, 20], "score": 0.3},
            {"image_id": 9, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.3},
        ],
    }
    scored = coco_confidences(doc, ["cat", "dog"])
    assert list(scored) == ["a.png"]
    boxes = [YoloBox(1, 0.3, 0.3, 0.2, 0.2), YoloBox(0, 0.3, 0.3, 0.2, 0.2),
             YoloBox(0, 0.7, 0.7, 0.1, 0.1), YoloBox(0, 0.5, 0.5, 0.1, 0.1, 0.99)]
    out = attach_confidences(boxes, scored["a.png"])
    assert [b.confidence for b in out] == [0.3, 0.8, None, 0.99]


# -- thumbnails ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("size", "suffix", "expected"),
    [
        ((1000, 500), ".jpg", (256, 128)),  # decoded at 1/2 scale, then resized
        ((3000, 2100), ".jpg", (256, 179)),  # decoded at 1/8 scale
        ((500, 1000), ".png", (128, 256)),
        ((16, 12), ".png", (16, 12)),  # never enlarged
    ],
)
def test_thumbnail_sizes(tmp_path, size, suffix, expected):
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx % 256, yy % 256, (xx + yy) % 256], axis=2).astype(np.uint8)
    src = tmp_path / f"src{suffix}"
    cv2.imwrite(str(src), img)
    dst = tmp_path / "t.jpg"
    assert make_thumbnail(src, dst, 256, size_hint=size) == expected
    thumb = cv2.imread(str(dst))
    assert thumb.shape[:2] == (expected[1], expected[0])
    assert dst.read_bytes()[:2] == b"\xff\xd8"


def test_thumbnail_of_unreadable_image(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    for name in ("bad.png", "empty.png", "missing.png"):
        assert make_thumbnail(tmp_path / name, tmp_path / "t.jpg") is None
    assert not (tmp_path / "t.jpg").exists()


# -- from a project -----------------------------------------------------------------------
def _manifest(project: Path, k: int) -> list[list[str]]:
    with zipfile.ZipFile(project / "cycles" / str(k) / f"batch-{k}.zip") as zf:
        return list(csv.reader(io.StringIO(zf.read("manifest.csv").decode())))[1:]


def test_page_of_a_cycle_follows_the_manifest(tmp_path):
    project = project_with_cycle(tmp_path, formats=("yolo",))
    result = write_review(project)
    assert result.cycle == 1 and result.path == project / "cycles/1/review/index.html"
    cards = parse_cards(result.path.read_text(encoding="utf-8")).cards
    manifest = _manifest(project, 1)
    assert [c["data-name"] for c in cards] == [r[0] for r in manifest]  # most uncertain first
    assert [c["data-boxes"] for c in cards] == [r[2] for r in manifest]
    assert [float(c["data-score"]) for c in cards] == pytest.approx([float(r[1]) for r in manifest])
    assert result.n_boxes == sum(int(r[2]) for r in manifest) > 0
    for card in cards:
        assert len(card["boxes"]) == int(card["data-boxes"])
        thumb = result.path.parent / card["imgs"][0]["src"]
        assert thumb.is_file() and thumb.read_bytes()[:2] == b"\xff\xd8"
    # 5-field pre-labels and no COCO export: the confidences come from the cycle's shipped.json
    assert result.confidence_source == "shipped predictions"
    shipped = json.loads((project / "cycles/1/shipped.json").read_text())["images"]
    for card in cards:
        key = card["data-name"].rsplit(".", 1)[0]
        assert sorted(float(b["data-conf"]) for b in card["boxes"]) == pytest.approx(
            sorted(b[5] for b in shipped[key]), abs=1e-4)


def test_page_without_shipped_predictions_has_no_confidences(tmp_path):
    project = project_with_cycle(tmp_path, formats=("yolo",))
    (project / "cycles/1/shipped.json").unlink()  # a cycle made before shipped.json existed
    result = write_review(project)
    cards = parse_cards(result.path.read_text(encoding="utf-8")).cards
    assert result.confidence_source == "none"
    assert cards and all("data-conf" not in b for c in cards for b in c["boxes"])


def test_boxes_are_the_prelabels(tmp_path):
    project = project_with_cycle(tmp_path)
    page = collect_review(project)
    for im in page.images:
        key = im.name.rsplit(".", 1)[0]
        lines = (project / "cycles/1/prelabels" / f"{key}.txt").read_text().split()
        assert [float(v) for v in lines] == pytest.approx(
            [v for b in im.boxes for v in (b.class_id, b.cx, b.cy, b.w, b.h)])


def test_confidences_from_the_coco_export(tmp_path):
    project = project_with_cycle(tmp_path, formats=("yolo", "coco"))
    doc = json.loads((project / "cycles/1/exports/coco/annotations/instances_default.json").read_text())
    want = {}
    files = {im["id"]: im["file_name"] for im in doc["images"]}
    for ann in doc["annotations"]:
        want.setdefault(Path(files[ann["image_id"]]).name, []).append(ann["score"])
    (project / "cycles/1/shipped.json").unlink()  # the COCO export is the fallback of older cycles
    page = collect_review(project)
    assert page.confidence_source == "coco export"
    for im in page.images:
        assert sorted(b.confidence for b in im.boxes) == pytest.approx(sorted(want.get(im.name, [])))


def test_confidences_from_a_sixth_prelabel_column(tmp_path):
    project = project_with_cycle(tmp_path)
    pre = project / "cycles/1/prelabels"
    first = min(pre.glob("*.txt"))
    first.write_text("1 0.5 0.5 0.2 0.2 0.4321\n0 0.25 0.25 0.1 0.1 0.9\n")
    page = collect_review(project)
    assert page.confidence_source == "pre-labels"
    (im,) = [i for i in page.images if i.name.startswith(first.stem + ".")]
    assert [(b.class_id, b.confidence) for b in im.boxes] == [(1, 0.4321), (0, 0.9)]


def test_bad_prelabel_lines_are_shown_not_fatal(tmp_path, capsys):
    project = project_with_cycle(tmp_path)
    first = min((project / "cycles/1/prelabels").glob("*.txt"))
    first.write_text("0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n")
    assert main(["review", str(project)]) == 0
    captured = capsys.readouterr()
    assert "1 bad pre-label line(s)" in captured.err and "class id 7 out of range" in captured.err
    html = (project / "cycles/1/review/index.html").read_text()
    assert "class id 7 out of range" in html


def test_prelabels_from_the_bundle_when_the_folder_is_gone(tmp_path):
    project = project_with_cycle(tmp_path)
    before = [(c["data-name"], c["data-boxes"]) for c in
              parse_cards(write_review(project).path.read_text()).cards]
    shutil.rmtree(project / "cycles/1/prelabels")
    after = [(c["data-name"], c["data-boxes"]) for c in
             parse_cards(write_review(project).path.read_text()).cards]
    assert after == before


def test_overview_counts_the_labeled_set(tmp_path):
    project = project_with_cycle(tmp_path, cycles=2, line="1 0.5 0.5 0.2 0.2\n2 0.3 0.3 0.1 0.1")
    label_cycle(project, 2, tmp_path, "2 0.5 0.5 0.2 0.2")
    page = collect_review(project)
    n0, n1, n2 = (len(batch_names(project, k)) for k in range(3))
    assert page.class_counts == (0, n0 + n1, n0 + n1 + n2)
    assert page.labeled == n0 + n1 + n2 and page.selected == 0 and page.cycle == 2
    assert [p.cycle for p in page.cycles if p.map50_95 is not None] == [1, 2]
    html = render_page(page)
    assert html.count("<circle") == 2 and f"{page.labeled} of 40 pool images" in html


def test_initial_batch_and_odd_file_names(tmp_path):
    make_images(tmp_path / "images", 3)
    for i, name in enumerate(ODD_ON_DISK):
        Image.new("RGB", (20, 10), (60 * i, 0, 0)).save(tmp_path / "images" / name)
    write_classes(tmp_path / "classes.txt", ["<b>cat</b>", "dog & co", "bird"])
    cfg = load_config(None, ["initial_fraction=0.4", "seed=0"])
    init_project(tmp_path / "proj", tmp_path / "images", tmp_path / "classes.txt", config=cfg)
    result = write_review(tmp_path / "proj")
    text = result.path.read_text(encoding="utf-8")
    cards = parse_cards(text).cards
    assert result.cycle == 0 and len(cards) == 2 and result.n_unreadable == 0
    assert {c["data-name"] for c in cards} == {r[0] for r in _manifest(tmp_path / "proj", 0)}
    assert "initial random batch" in text and "<script>alert" not in text
    assert all(c["imgs"][0]["src"].startswith("thumbs/") for c in cards)
    assert all((result.path.parent / c["imgs"][0]["src"]).is_file() for c in cards)


def test_cycle_that_selected_nothing_gives_an_empty_page(tmp_path):
    make_images(tmp_path / "images", 10)
    labels = tmp_path / "labels"
    labels.mkdir()
    for i in range(5):  # half labeled already: above initial_fraction, no initial batch
        (labels / f"im{i:03d}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    write_classes(tmp_path / "classes.txt")
    init_project(tmp_path / "proj", tmp_path / "images", tmp_path / "classes.txt", labels=labels,
                 config=load_config(None, ["seed=0"]))
    result = write_review(tmp_path / "proj")
    text = result.path.read_text()
    assert result.cycle == 0 and result.n_images == 0 and parse_cards(text).cards == []
    assert "Cycle 0 selected no images." in text
    assert collect_review(tmp_path / "proj").class_counts == (5, 0, 0)


def test_unreadable_image_gets_a_card_without_thumbnail(tmp_path, capsys):
    project = project_with_cycle(tmp_path)
    name = batch_names(project, 1)[0]
    (tmp_path / "images" / name).write_bytes(b"broken")
    assert main(["review", str(project)]) == 0
    captured = capsys.readouterr()
    assert "1 image(s) could not be read" in captured.err
    cards = parse_cards((project / "cycles/1/review/index.html").read_text()).cards
    (card,) = [c for c in cards if c["data-name"] == name]
    assert card["imgs"] == [] and len(card["boxes"]) == int(card["data-boxes"])


# -- CLI ----------------------------------------------------------------------------------
def test_cli_prints_the_path_and_rewrites_the_page(tmp_path, capsys):
    project = project_with_cycle(tmp_path)
    assert main(["review", str(project)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [str(project / "cycles/1/review/index.html")]
    stale = project / "cycles/1/review/thumbs/999999.jpg"
    stale.write_bytes(b"old")
    assert main(["review", str(project), "--cycle", "0", "--max-side", "64"]) == 0
    assert capsys.readouterr().out.strip() == str(project / "cycles/0/review/index.html")
    assert main(["review", str(project), "--cycle", "1"]) == 0
    assert not stale.exists()  # the page was replaced as a whole
    assert not list((project / "cycles/1").glob(".review*"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cycle", "7"], "no cycle 7 (the project has cycles 0 to 1)"),
        (["--cycle", "x"], "cycle 'x' is not a cycle number"),
        (["--cycle", "-2"], "no cycle -2"),
        (["--max-side", "4"], "thumbnail size 4 must be an integer from 16 to 4096"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, capsys, args, message):
    project = project_with_cycle(tmp_path)
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    assert main(["review", str(project), *args]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("detal: error: ") and message in lines[0]
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before


def test_cli_not_a_project(tmp_path, capsys):
    assert main(["review", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a detal project" in err[0]


def test_out_folder_that_is_not_a_review_page_is_kept(tmp_path, capsys):
    project = project_with_cycle(tmp_path)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="exists and is not a review page folder"):
        write_review(project, out=out)
    assert (out / "notes.txt").read_text() == "keep me"
    assert main(["review", str(project), "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere/index.html").is_file()


def test_review_reads_without_changing_the_project_state(tmp_path):
    project = project_with_cycle(tmp_path)
    before = db_rows(project)
    write_review(project)
    assert db_rows(project) == before
    # and the next cycle still runs: the review folder is no obstacle
    label_cycle(project, 1, tmp_path)
    assert run_cycle(project, FakeAdapter(len(NAMES), seed=2)).cycle == 2


def test_effort_panel_without_and_with_a_batch_back():
    from detal.review import BatchEffort

    assert "no batch has come back yet" in render_page(_page())
    figures = {"images": 5, "prelabeled_images": 5, "shipped_boxes": 9, "returned_boxes": 8, "verified": 4,
               "adjusted": 2, "relabeled": 1, "deleted": 2, "drawn": 1, "precision": 0.6667, "recall": 0.75,
               "annotator_s": 45.4, "from_scratch_s": 71.0}
    html = render_page(_page(effort=BatchEffort(3, figures)))
    assert '<div class="panel" id="effort" data-cycle="3" data-images="5" data-annotator-s="45.4"' in html
    assert "Correcting batch 3 (the last one back)" in html and "<div class=\"big\">45 s</div>" in html
    assert "71 s drawn from scratch (26 s saved)" in html and "precision 0.67, recall 0.75" in html
