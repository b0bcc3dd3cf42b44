"""The review page in a real headless browser (Debian's chromium-headless-shell or chromium).

``make test`` installs the browser where it is missing and apt-get can
install it. Where no browser is found the tests are skipped, with a warning
and a skip reason that say so in capitals in pytest's summary.

The browser opens the page from disk (``file://``); the page loads nothing
else. ``--dump-dom`` gives the DOM after the page's script ran, and
``--screenshot`` a PNG of the first screen.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import warnings
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from reviewkit import find_browser, parse_cards, project_with_cycle

from detal.review import write_review
from detal.store import Store


def _browser() -> str:
    path = os.environ.get("DETAL_BROWSER") or find_browser()
    if path:
        return path
    if shutil.which("apt-get"):
        why = ("apt-get is here, but nothing installed it: run `make test`, which installs "
               "chromium-headless-shell (or: apt-get install -y chromium-headless-shell)")
    else:
        why = "no package manager here can install one"
    message = (f"BROWSER TEST OF THE REVIEW PAGE SKIPPED: no chromium-headless-shell or chromium "
               f"on PATH; {why}")
    warnings.warn(message, UserWarning, stacklevel=2)
    pytest.skip(message)


def _run(browser: str, tmp: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    args = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
        "--hide-scrollbars", f"--user-data-dir={tmp / 'browser-profile'}", *extra, url,
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _manifest(project: Path, k: int) -> list[list[str]]:
    with zipfile.ZipFile(project / "cycles" / str(k) / f"batch-{k}.zip") as zf:
        return list(csv.reader(io.StringIO(zf.read("manifest.csv").decode())))[1:]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    browser = _browser()
    tmp = tmp_path_factory.mktemp("review-browser")
    project = project_with_cycle(tmp, n=60, formats=("yolo", "coco"))
    result = write_review(project)
    return browser, tmp, project, result


def test_dom_has_one_card_per_batch_image_with_its_boxes(page):
    browser, tmp, project, result = page
    dom = _run(browser, tmp, result.path.as_uri(), "--dump-dom").stdout
    parsed = parse_cards(dom)
    with Store.open(project / "detal.db") as store:
        batch = store.images(selected_cycle=1)
    manifest = _manifest(project, 1)
    assert len(parsed.cards) == len(batch) == len(manifest) == 6
    assert sorted(int(c["id"].removeprefix("img-")) for c in parsed.cards) == [r.id for r in batch]
    assert [c["data-name"] for c in parsed.cards] == [r[0] for r in manifest]
    for card, row in zip(parsed.cards, manifest):
        assert len(card["boxes"]) == int(card["data-boxes"]) == int(row[2])
        assert card["data-shown"] == card["data-boxes"]  # set by the page's script
        assert all("hidden" not in b for b in card["boxes"])
    n_boxes = sum(int(r[2]) for r in manifest)
    assert f"{len(batch)} images, {n_boxes} boxes shown" in dom
    assert re.search(r'<html lang="en" data-ready-ms="\d+">', dom)  # the script ran to its end


def test_filters_hide_boxes_by_confidence_and_class(page):
    browser, tmp, project, result = page
    doc = json.loads((project / "cycles/1/exports/coco/annotations/instances_default.json").read_text())
    dom = _run(browser, tmp, result.path.as_uri() + "#min=0.8&hide=2", "--dump-dom").stdout
    parsed = parse_cards(dom)
    assert 'id="min-conf-value">0.80<' in dom
    shown_total = 0
    for card in parsed.cards:
        want = 0
        for b in card["boxes"]:
            visible = float(b["data-conf"]) >= 0.8 and b["data-class"] != "2"
            assert ("hidden" not in b) is visible
            want += visible
        assert int(card["data-shown"]) == want
        shown_total += want
    assert 0 < shown_total < len(doc["annotations"])  # the filter did something, not everything

    dom = _run(browser, tmp, result.path.as_uri() + "#hide=0,1,2&only=1", "--dump-dom").stdout
    parsed = parse_cards(dom)
    assert parsed.cards and all("hidden" in c for c in parsed.cards)
    assert "0 images, 0 boxes shown" in dom


def test_screenshot_is_not_blank(page):
    browser, tmp, _, result = page
    png = tmp / "review.png"
    _run(browser, tmp, result.path.as_uri(), f"--screenshot={png}", "--window-size=1200,900",
         "--virtual-time-budget=5000")
    img = cv2.imread(str(png))
    assert img is not None and img.shape[:2] == (900, 1200)
    assert float(img.std()) > 20.0
    # the boxes are drawn: pixels in the colour of class 0 (#e6194b, BGR 75 25 230)
    cat = np.all(np.abs(img.astype(int) - (75, 25, 230)) < 40, axis=2)
    assert int(cat.sum()) > 50


def _effort_panel(dom: str) -> tuple[dict[str, str], str]:
    """The attributes and the text of the page's panel of what correcting the last batch took."""
    m = re.search(r'<div class="panel" id="effort"([^>]*)>(.*?</table>)</div>', dom, re.DOTALL)
    assert m, "no effort panel on the page"
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', m.group(1)))
    return attrs, re.sub(r"<[^>]+>", " ", m.group(2))


def test_page_shows_the_last_batch_corrections(page, tmp_path):
    from detal.effort import format_seconds
    from detal.project import project_status

    browser, tmp, project, result = page
    attrs, text = _effort_panel(_run(browser, tmp, result.path.as_uri(), "--dump-dom").stdout)
    e0 = project_status(project)["cycles"][0]["effort"]  # only the initial batch is back: all drawn
    assert attrs["cycle"] == "0" and float(attrs["annotator-s"]) == e0["annotator_s"] > 0
    assert int(attrs["drawn"]) == e0["drawn"] == 6 and attrs["precision"] == attrs["recall"] == ""
    assert "no pre-labels were shipped" in text

    # batch 1 back, corrected: the page of cycle 2 shows batch 1's figures, as detal status gives them
    second = project_with_cycle(tmp_path, n=60, cycles=2, line="1 0.4 0.4 0.3 0.3")
    page2 = write_review(second)
    assert page2.cycle == 2
    attrs, text = _effort_panel(_run(browser, tmp, page2.path.as_uri(), "--dump-dom").stdout)
    e1 = project_status(second)["cycles"][1]["effort"]
    assert attrs["cycle"] == "1" and e1["prelabeled_images"] == e1["images"] == 6
    for key in ("annotator_s", "from_scratch_s", "precision", "recall", "verified", "adjusted",
                "relabeled", "deleted", "drawn"):
        assert float(attrs[key.replace("_", "-")]) == e1[key], key
    assert e1["shipped_boxes"] > 0 and e1["deleted"] + e1["drawn"] > 0  # the vendor changed things
    assert format_seconds(e1["annotator_s"]) in text and format_seconds(e1["from_scratch_s"]) in text
    assert f"precision {e1['precision']:.2f}, recall {e1['recall']:.2f}" in text
