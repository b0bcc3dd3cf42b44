"""The review page of a batch: ``detal review PROJECT [--cycle K]``.

Before a batch goes out for labeling, people want to look at it. This module
writes one self-contained HTML page with its thumbnails beside it::

    PROJECT/cycles/<k>/review/
      index.html        no network resource: no CDN, no web font, inline CSS + JS
      thumbs/<id>.jpg   one JPEG per batch image, longest side <= 256 px

The page shows the project at a glance (labeled fraction, the mAP50-95 of
every evaluated cycle as a small inline SVG plot, the class counts of the
labeled set, counted from the label files in ``PROJECT/labels/``), then the
batch of cycle ``k``, most uncertain first, the order of the bundle's
``manifest.csv``. Each image is a card: the thumbnail with its pre-label
boxes drawn over it in class colours, the confidence on each box, the
image's score and its box count. A class filter and a confidence slider hide
boxes, in plain inline JavaScript; their state is kept in the URL fragment
(``#min=0.50&hide=0,2&only=1``), so a view can be shared and a test can open
the page in a given state. Thumbnails are loaded lazily and cards off screen
are not laid out (``content-visibility``), so a 1,000-image batch opens fast.

Boxes are HTML elements positioned in percent of the image over the
thumbnail, not lines drawn into it: they stay sharp at any thumbnail size,
their labels stay readable, and the filters only toggle an attribute.

Where the boxes and their confidences come from. The cycle writes pre-labels
as YOLO lines ``class cx cy w h [conf]`` to ``cycles/<k>/prelabels/<key>.txt``
(or, failing that, the bundle ``batch-<k>.zip`` holds them under
``labels/``). Today's cycle writes 5 fields, no confidence, because the
bundle goes to tools that read 5. A box's confidence is taken from, in order:

1. a sixth column of its pre-label line;
2. the cycle's COCO export (``cycles/<k>/exports/coco/annotations/
   instances_default.json``, written by ``detal cycle --format coco``), whose
   annotations carry ``score``; a box is matched by image name, class and
   coordinates;
3. nowhere: the box shows its class only, the slider is disabled and the page
   says that it shows each image's score and box count only.

The page's data is gathered by :func:`collect_review` (reads only: the store
through :class:`detal.store.Store`, :func:`detal.project.project_status`,
:func:`detal.project.project_config`, and the files under ``PROJECT``),
rendered by the pure :func:`render_page`, and written by
:func:`write_review`, which builds the folder under a temporary name and
renames it into place, so a killed run leaves the previous page intact.
"""

from __future__ import annotations

import html
import json
import math
import os
import shutil
import time
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from detal.errors import DataError, StateError
from detal.labels import YoloBox, parse_label_text
from detal.project.folder import label_relpath
from detal.store import DB_NAME, CycleRow, Store

__all__ = [
    "PALETTE",
    "CyclePoint",
    "ReviewImage",
    "ReviewPage",
    "ReviewResult",
    "coco_confidences",
    "collect_review",
    "make_thumbnail",
    "map_plot_svg",
    "order_by_score",
    "render_page",
    "resolve_cycle",
    "write_review",
]

REVIEW_DIR = "review"
THUMBS_DIR = "thumbs"
PAGE_NAME = "index.html"
COCO_EXPORT = Path("exports") / "coco" / "annotations" / "instances_default.json"

PALETTE = (
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324",
    "#469990", "#bfef45", "#800000", "#000075", "#808000", "#fabed4", "#ffe119", "#dcbeff",
    "#aaffc3", "#ffd8b1", "#a9a9a9", "#000000",
)
"""Class ``k`` is drawn in ``PALETTE[k % len(PALETTE)]`` (distinct on light and dark images)."""

_COORD_TOL = 1e-4  # normalised coordinates written with 6 decimals, then through pixels


# -- the page's data --------------------------------------------------------------------
@dataclass(frozen=True)
class ReviewImage:
    """One card. ``boxes`` is None when the image has no pre-label file at all."""

    image_id: int
    name: str
    relpath: str
    width: int
    height: int
    score: float | None
    top_class: int | None
    boxes: tuple[YoloBox, ...] | None
    thumb: str | None = None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class CyclePoint:
    cycle: int
    n_train: int
    map50_95: float | None


@dataclass(frozen=True)
class ReviewPage:
    """Everything :func:`render_page` shows; plain data, no IO."""

    project: str
    cycle: int
    names: tuple[str, ...]
    pool: int
    labeled: int
    selected: int
    max_labeled_fraction: float
    cycles: tuple[CyclePoint, ...]
    class_counts: tuple[int, ...]
    images: tuple[ReviewImage, ...]
    confidence_source: str = "none"  # "pre-labels" | "coco export" | "none"
    notes: tuple[str, ...] = ()
    generated: str = ""

    @property
    def n_boxes(self) -> int:
        return sum(len(i.boxes or ()) for i in self.images)


@dataclass(frozen=True)
class ReviewResult:
    path: Path
    cycle: int
    n_images: int
    n_boxes: int
    n_unreadable: int
    confidence_source: str
    problems: tuple[str, ...]
    seconds: float


# -- pure helpers -----------------------------------------------------------------------
def resolve_cycle(cycles: Sequence[CycleRow], requested: int | str | None, project: object) -> int:
    """The cycle to review: ``requested``, or the latest cycle that selected images.

    Raises :class:`StateError` naming ``project`` for a value that is not a
    cycle number or a cycle the project does not have.
    """
    ids = [c.id for c in cycles]
    if requested is None:
        selected = [c.id for c in cycles if c.n_selected > 0]
        if selected:
            return selected[-1]
        if ids:
            return ids[-1]
        raise StateError(f"{project}: the project has no cycles yet")
    text = str(requested).strip()
    try:
        k = int(text)
    except ValueError:
        raise StateError(f"{project}: cycle {text!r} is not a cycle number") from None
    if k not in ids:
        have = f"cycles {ids[0]} to {ids[-1]}" if ids else "no cycles"
        raise StateError(f"{project}: no cycle {k} (the project has {have})")
    return k


def order_by_score(images: Iterable[ReviewImage]) -> list[ReviewImage]:
    """Most uncertain first, images without a score last, ties by id (the manifest's order)."""
    return sorted(images, key=lambda i: (i.score is None, -(i.score or 0.0), i.image_id))


def coco_confidences(doc: Mapping, names: Sequence[str]) -> dict[str, list[YoloBox]]:
    """``image file name -> boxes with scores`` from a COCO instances document.

    Categories are mapped to classes by name; annotations of unknown
    categories or without a usable box are skipped (the export is detal's own).
    """
    index = {n: k for k, n in enumerate(names)}
    cat = {c.get("id"): index.get(c.get("name")) for c in doc.get("categories", [])}
    images = {}
    for im in doc.get("images", []):
        w, h = im.get("width"), im.get("height")
        if isinstance(w, (int, float)) and isinstance(h, (int, float)) and w > 0 and h > 0:
            images[im.get("id")] = (str(im.get("file_name", "")), float(w), float(h))
    out: dict[str, list[YoloBox]] = {}
    for ann in doc.get("annotations", []):
        im = images.get(ann.get("image_id"))
        cls = cat.get(ann.get("category_id"))
        bbox, score = ann.get("bbox"), ann.get("score")
        if im is None or cls is None or not isinstance(bbox, list) or len(bbox) != 4:
            continue
        name, w, h = im
        x, y, bw, bh = (float(v) for v in bbox)
        conf = float(score) if isinstance(score, (int, float)) else None
        box = YoloBox(cls, (x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h, conf)
        out.setdefault(PurePosixPath(name).name, []).append(box)
    return out


def attach_confidences(boxes: Sequence[YoloBox], scored: Sequence[YoloBox]) -> tuple[YoloBox, ...]:
    """Give each box without a confidence the one of a ``scored`` box of its class and place."""
    free = list(scored)
    out = []
    for b in boxes:
        if b.confidence is None:
            for j, s in enumerate(free):
                if s.class_id == b.class_id and max(
                    abs(s.cx - b.cx), abs(s.cy - b.cy), abs(s.w - b.w), abs(s.h - b.h)
                ) <= _COORD_TOL:
                    b = replace(b, confidence=s.confidence)
                    del free[j]
                    break
        out.append(b)
    return tuple(out)


def map_plot_svg(points: Sequence[CyclePoint], width: int = 300, height: int = 130) -> str:
    """A small inline SVG line plot of mAP50-95 against cycle ('' when nothing was evaluated)."""
    pts = [p for p in points if p.map50_95 is not None and math.isfinite(p.map50_95)]
    if not pts:
        return ""
    left, right, top, bottom = 34, 10, 10, 22
    top_val = max(0.1, math.ceil(max(p.map50_95 for p in pts) * 10 + 1e-9) / 10)
    c0, c1 = pts[0].cycle, pts[-1].cycle
    span = max(c1 - c0, 1)

    def xy(p: CyclePoint) -> tuple[float, float]:
        x = left + (p.cycle - c0) / span * (width - left - right) if c1 > c0 else (left + width - right) / 2
        y = height - bottom - p.map50_95 / top_val * (height - top - bottom)
        return round(x, 1), round(y, 1)

    coords = [xy(p) for p in pts]
    base = height - bottom
    parts = [
        (f'<svg class="plot" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
         'role="img" aria-label="mAP50-95 per cycle">'),
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" class="axis"/>',
        f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" class="axis"/>',
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{top_val:.1f}</text>',
        f'<text x="{left - 4}" y="{base}" text-anchor="end">0</text>',
        f'<text x="{left}" y="{height - 6}" text-anchor="middle">{c0}</text>',
    ]
    if c1 > c0:
        parts.append(f'<text x="{width - right}" y="{height - 6}" text-anchor="middle">{c1}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 6}" '
                 'text-anchor="middle">cycle</text>')
    if len(coords) > 1:
        parts.append('<polyline points="' + " ".join(f"{x},{y}" for x, y in coords) + '"/>')
    for p, (x, y) in zip(pts, coords):
        parts.append(
            f'<circle cx="{x}" cy="{y}" r="3"><title>cycle {p.cycle}: mAP50-95 '
            f"{p.map50_95:.4f}, trained on {p.n_train} images</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _pct(v: float) -> str:
    return f"{100.0 * v:.3f}".rstrip("0").rstrip(".") + "%"


def _box_html(b: YoloBox, names: Sequence[str]) -> str:
    x = min(max(b.cx - b.w / 2, 0.0), 1.0)
    y = min(max(b.cy - b.h / 2, 0.0), 1.0)
    w = min(b.w, 1.0 - x)
    h = min(b.h, 1.0 - y)
    name = names[b.class_id] if 0 <= b.class_id < len(names) else str(b.class_id)
    conf_attr = "" if b.confidence is None else f' data-conf="{b.confidence:.4f}"'
    label = name if b.confidence is None else f"{name} {b.confidence:.2f}"
    inside = " in" if y < 0.08 else ""  # no room above the box for its label
    return (
        f'<div class="box c{b.class_id % len(PALETTE)}{inside}" data-class="{b.class_id}"{conf_attr} '
        f'style="left:{_pct(x)};top:{_pct(y)};width:{_pct(w)};height:{_pct(h)}" '
        f'title="{_e(label)}"><span>{_e(label)}</span></div>'
    )


def _card_html(rank: int, im: ReviewImage, names: Sequence[str]) -> str:
    boxes = im.boxes or ()
    classes = sorted({b.class_id for b in boxes})
    if im.thumb is not None:
        picture = (f'<img src="{_e(im.thumb)}" loading="lazy" decoding="async" '
                   f'alt="{_e(im.name)}">')
    else:
        picture = '<div class="missing">image unreadable</div>'
    score = "&mdash;" if im.score is None else f"{im.score:.4f}"
    top = ""
    if im.top_class is not None and 0 <= im.top_class < len(names):
        top = f' &middot; top <span class="cls">{_e(names[im.top_class])}</span>'
    n = "no pre-labels" if im.boxes is None else (
        f'<span class="nshown">{len(boxes)}</span> of {len(boxes)} boxes')
    problems = "".join(f'<div class="problem">{_e(p)}</div>' for p in im.problems)
    return (
        f'<article class="card" id="img-{im.image_id}" data-rank="{rank}" data-name="{_e(im.name)}" '
        f'data-score="{"" if im.score is None else f"{im.score:.6f}"}" '
        f'data-boxes="{len(boxes)}" data-classes="{" ".join(map(str, classes))}">'
        f'<div class="frame" style="aspect-ratio:{im.width} / {im.height}">{picture}'
        + "".join(_box_html(b, names) for b in boxes)
        + "</div>"
        f'<div class="meta"><div class="name" title="{_e(im.relpath)}"><b>#{rank}</b> '
        f"{_e(im.name)}</div>"
        f'<div>score <b>{score}</b> &middot; {n}{top}</div>{problems}</div></article>'
    )


_CSS = """
:root{color-scheme:light;--fg:#1d1d1f;--mut:#6b6b70;--bg:#f5f5f7;--card:#fff;--line:#d9d9de}
*{box-sizing:border-box}
body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
 color:var(--fg);background:var(--bg)}
header,section,main{padding:12px 20px}
h1{font-size:20px;margin:4px 0}
h2{font-size:14px;margin:0 0 6px;color:var(--mut);font-weight:600}
.sub,.note{color:var(--mut)}
.note{margin:4px 0}
.glance{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
.panel{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px;
 min-width:240px}
.big{font-size:22px;font-weight:600}
.meter{position:relative;height:10px;width:260px;background:#e6e6ea;border-radius:5px;
 margin:6px 0;overflow:hidden}
.meter i{position:absolute;left:0;top:0;bottom:0;background:#3a7bd5}
.meter b{position:absolute;top:0;bottom:0;width:2px;background:#d33}
.plot text{font-size:10px;fill:var(--mut)}
.plot .axis{stroke:#999;stroke-width:1}
.plot polyline{fill:none;stroke:#3a7bd5;stroke-width:2}
.plot circle{fill:#3a7bd5}
table.counts{border-collapse:collapse}
table.counts td{padding:1px 6px 1px 0;white-space:nowrap}
table.counts td.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:inline-block;height:9px;border-radius:2px;min-width:1px}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;
 vertical-align:-1px}
.controls{position:sticky;top:0;z-index:5;background:rgba(245,245,247,.96);
 border-bottom:1px solid var(--line);display:flex;flex-wrap:wrap;gap:6px 18px;align-items:center}
.controls label{white-space:nowrap;cursor:pointer}
.controls input[type=range]{vertical-align:middle;width:160px}
.controls input:disabled+*,.controls .off{color:var(--mut)}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;overflow:hidden;
 content-visibility:auto;contain-intrinsic-size:auto 300px}
.frame{position:relative;width:100%;background:#222;overflow:hidden}
.frame img{position:absolute;inset:0;width:100%;height:100%;display:block}
.missing{position:absolute;inset:0;display:flex;align-items:center;justify-content:center;
 color:#eee}
.box{position:absolute;border:2px solid;border-radius:1px;pointer-events:auto}
.box span{position:absolute;left:-2px;top:-2px;transform:translateY(-100%);font-size:10px;
 line-height:12px;padding:0 3px;color:#fff;white-space:nowrap;border-radius:2px 2px 0 0}
.box.in span{transform:none;top:0}
.meta{padding:6px 8px;font-size:12px}
.meta .name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.problem{color:#b00;font-size:11px}
.empty{padding:40px 20px;color:var(--mut);font-size:16px}
[hidden]{display:none!important}
"""

_JS = """
(function () {
  "use strict";
  var slider = document.getElementById("min-conf");
  var shown = document.getElementById("min-conf-value");
  var only = document.getElementById("only-boxes");
  var checks = Array.prototype.slice.call(document.querySelectorAll("input.cls"));
  var status = document.getElementById("showing");
  var cards = Array.prototype.slice.call(document.querySelectorAll("article.card")).map(
    function (card) {
      return {el: card, n: card.querySelector(".nshown"),
              boxes: Array.prototype.slice.call(card.querySelectorAll(".box")).map(function (b) {
                var c = b.getAttribute("data-conf");
                return {el: b, cls: b.getAttribute("data-class"),
                        conf: c === null ? null : parseFloat(c)};
              })};
    });
  function readHash() {
    var out = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      var i = kv.indexOf("=");
      if (i > 0) { out[decodeURIComponent(kv.slice(0, i))] = decodeURIComponent(kv.slice(i + 1)); }
    });
    return out;
  }
  function writeHash() {
    var hide = checks.filter(function (c) { return !c.checked; }).map(function (c) {
      return c.value; });
    var parts = [];
    if (slider && !slider.disabled && parseFloat(slider.value) > 0) {
      parts.push("min=" + parseFloat(slider.value).toFixed(2)); }
    if (hide.length) { parts.push("hide=" + hide.join(",")); }
    if (only.checked) { parts.push("only=1"); }
    try { history.replaceState(null, "", parts.length ? "#" + parts.join("&") : location.pathname); }
    catch (e) { /* some browsers refuse replaceState on file:// pages */ }
  }
  function apply() {
    var t = slider && !slider.disabled ? parseFloat(slider.value) || 0 : 0;
    var on = {};
    checks.forEach(function (c) { on[c.value] = c.checked; });
    if (shown) { shown.textContent = t.toFixed(2); }
    var nCards = 0, nBoxes = 0;
    cards.forEach(function (card) {
      var n = 0;
      card.boxes.forEach(function (b) {
        var vis = on[b.cls] !== false && (b.conf === null || b.conf >= t);
        b.el.hidden = !vis;
        if (vis) { n += 1; }
      });
      if (card.n) { card.n.textContent = n; }
      card.el.setAttribute("data-shown", n);
      card.el.hidden = only.checked && n === 0;
      if (!card.el.hidden) { nCards += 1; nBoxes += n; }
    });
    status.textContent = nCards + " images, " + nBoxes + " boxes shown";
  }
  var h = readHash();
  if (h.min !== undefined && slider && !slider.disabled) { slider.value = h.min; }
  if (h.hide !== undefined) {
    var hidden = h.hide.split(",");
    checks.forEach(function (c) { c.checked = hidden.indexOf(c.value) < 0; });
  }
  only.checked = h.only === "1";
  function changed() { apply(); writeHash(); }
  if (slider) { slider.addEventListener("input", changed); }
  only.addEventListener("change", changed);
  checks.forEach(function (c) { c.addEventListener("change", changed); });
  apply();
  // time from navigation start to the page being filtered and ready (read by the benchmark)
  document.documentElement.setAttribute("data-ready-ms", String(Math.round(performance.now())));
})();
"""


def render_page(page: ReviewPage) -> str:
    """The whole HTML document of ``page``: inline CSS and JS, no network resource."""
    names = page.names
    frac = page.labeled / page.pool if page.pool else 0.0
    colours = "".join(
        f".c{k}{{border-color:{c}}}.c{k} span{{background:{c}}}" for k, c in enumerate(PALETTE)
    )
    n_images = len(page.images)
    title = f"detal review: {Path(page.project).name or page.project}, cycle {page.cycle}"

    glance = [
        ('<div class="panel"><h2>Labeled</h2>'
        f'<div class="big">{frac:.1%}</div>'
        f'<div class="meter" title="budget {page.max_labeled_fraction:.0%}">'
        f'<i style="width:{_pct(min(frac, 1.0))}"></i>'
        f'<b style="left:{_pct(min(page.max_labeled_fraction, 1.0))}"></b></div>'
        f"<div>{page.labeled:,} of {page.pool:,} pool images "
        f"(budget {page.max_labeled_fraction:.0%})</div>"
        f"<div>{page.selected:,} selected, out for labeling</div></div>")
    ]
    plot = map_plot_svg(page.cycles)
    glance.append('<div class="panel"><h2>mAP50-95 per cycle</h2>'
                  + (plot or '<div class="note">no cycle evaluated yet</div>') + "</div>")
    top_count = max(page.class_counts, default=0) or 1
    rows = "".join(
        f'<tr><td><span class="sw" style="background:{PALETTE[k % len(PALETTE)]}"></span>'
        f'{_e(name)}</td><td class="n">{n:,}</td><td><span class="bar" style="width:'
        f'{round(120 * n / top_count)}px;background:{PALETTE[k % len(PALETTE)]}"></span></td></tr>'
        for k, (name, n) in enumerate(zip(names, page.class_counts))
    )
    glance.append('<div class="panel"><h2>Boxes per class, labeled set</h2>'
                  f'<table class="counts">{rows}</table></div>')

    batch_classes = {b.class_id for im in page.images for b in im.boxes or ()}
    per_class = {k: 0 for k in range(len(names))}
    for im in page.images:
        for b in im.boxes or ():
            per_class[b.class_id] = per_class.get(b.class_id, 0) + 1
    checks = "".join(
        f'<label class="{"" if k in batch_classes else "off"}"><input type="checkbox" class="cls" '
        f'value="{k}" checked><span class="sw" style="background:{PALETTE[k % len(PALETTE)]}">'
        f"</span>{_e(name)} ({per_class.get(k, 0)})</label>"
        for k, name in enumerate(names)
    )
    has_conf = page.confidence_source != "none" and any(
        b.confidence is not None for im in page.images for b in im.boxes or ()
    )
    if has_conf:
        slider = ('<label>min confidence <input type="range" id="min-conf" min="0" max="1" '
                  'step="0.05" value="0"> <output id="min-conf-value">0.00</output></label>')
    else:
        slider = ('<label class="off" title="the pre-labels carry no confidences">min confidence '
                  '<input type="range" id="min-conf" min="0" max="1" step="0.05" value="0" disabled>'
                  ' <output id="min-conf-value">n/a</output></label>')
    controls = (
        f'<section class="controls"><span>classes:</span>{checks}{slider}'
        '<label><input type="checkbox" id="only-boxes"> only images with a shown box</label>'
        f'<span id="showing" class="sub">{n_images} images, {page.n_boxes} boxes shown</span>'
        "</section>"
    )
    notes = list(page.notes)
    if not has_conf and any(im.boxes for im in page.images):
        notes.append("The pre-labels carry no confidences (and the cycle wrote no COCO export): "
                     "the page shows each image's score and box count only.")
    elif has_conf:
        notes.append(f"Box confidences from the {page.confidence_source}.")
    if n_images:
        cards = "".join(_card_html(r, im, names) for r, im in enumerate(page.images, start=1))
        body = f'<main class="grid" id="batch">{cards}</main>'
    else:
        body = (f'<main class="grid" id="batch"></main><div class="empty">Cycle {page.cycle} '
                "selected no images.</div>")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}{colours}</style></head><body>"
        f"<header><h1>{_e(title)}</h1>"
        f'<div class="sub">{_e(page.project)} &middot; {n_images} images in the batch, '
        f"{page.n_boxes} pre-label boxes, most uncertain first"
        + (f" &middot; written {_e(page.generated)}" if page.generated else "")
        + "</div>"
        + "".join(f'<div class="note">{_e(n)}</div>' for n in notes)
        + f'</header><section class="glance">{"".join(glance)}</section>{controls}{body}'
        f"<script>{_JS}</script></body></html>\n"
    )


# -- reading the project ----------------------------------------------------------------
def _class_counts(project: Path, store: Store, n_classes: int) -> tuple[list[int], int]:
    """Boxes per class over the labeled images' label files, and how many lines were unreadable."""
    counts = [0] * n_classes
    bad = 0
    for row in store.images(status="labeled"):
        path = project / label_relpath(row.relpath)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        boxes, problems = parse_label_text(text, n_classes, str(path))
        bad += len(problems)
        for b in boxes:
            counts[b.class_id] += 1
    return counts, bad


def _read_prelabels(cycle_dir: Path, cycle: int, keys: Iterable[str]) -> dict[str, str]:
    """``key -> pre-label text`` from ``prelabels/``, else from the bundle's ``labels/``."""
    keys = list(keys)
    folder = cycle_dir / "prelabels"
    if folder.is_dir():
        out = {}
        for key in keys:
            path = folder / f"{key}.txt"
            if path.is_file():
                out[key] = path.read_text(encoding="utf-8", errors="replace")
        return out
    bundle = cycle_dir / f"batch-{cycle}.zip"
    if bundle.is_file():
        try:
            with zipfile.ZipFile(bundle) as zf:
                have = set(zf.namelist())
                return {k: zf.read(f"labels/{k}.txt").decode("utf-8", "replace")
                        for k in keys if f"labels/{k}.txt" in have}
        except (OSError, zipfile.BadZipFile):
            return {}
    return {}


def _read_coco(cycle_dir: Path, names: Sequence[str]) -> dict[str, list[YoloBox]]:
    path = cycle_dir / COCO_EXPORT
    if not path.is_file():
        return {}
    try:
        return coco_confidences(json.loads(path.read_text(encoding="utf-8")), names)
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def collect_review(project: str | Path, cycle: int | str | None = None) -> ReviewPage:
    """Gather the page of ``cycle`` (default: the latest cycle that selected images).

    Reads only. ``thumb`` of every image is the path its thumbnail will have
    (``thumbs/<image id>.jpg``); :func:`write_review` clears it where the
    image cannot be read.
    """
    from detal.project import project_config, project_status

    project = Path(project)
    status = project_status(project)  # raises StateError for a folder that is no project
    cfg = project_config(project)
    names = tuple(status["classes"])
    with Store.open(project / DB_NAME) as store:
        cycles = store.cycles()
        k = resolve_cycle(cycles, cycle, project)
        rows = store.images(selected_cycle=k)
        scores = store.scores(k)
        counts, bad_labels = _class_counts(project, store, len(names))
    cycle_dir = project / "cycles" / str(k)
    texts = _read_prelabels(cycle_dir, k, (r.key for r in rows))
    coco = _read_coco(cycle_dir, names)
    from_lines = False
    images = []
    for r in rows:
        name = r.key + PurePosixPath(r.relpath).suffix
        score, _, top = scores.get(r.id, (None, None, None))
        text = texts.get(r.key)
        boxes: tuple[YoloBox, ...] | None = None
        problems: tuple[str, ...] = ()
        if text is not None:
            parsed, bad = parse_label_text(text, len(names), f"prelabels/{r.key}.txt",
                                           allow_confidence=True)
            boxes = tuple(parsed)
            from_lines = from_lines or any(b.confidence is not None for b in boxes)
            if name in coco:
                boxes = attach_confidences(boxes, coco[name])
            problems = tuple(str(p) for p in bad)
        images.append(ReviewImage(r.id, name, r.relpath, r.width, r.height, score, top, boxes,
                                  f"{THUMBS_DIR}/{r.id}.jpg", problems))
    images = order_by_score(images)
    any_conf = any(b.confidence is not None for im in images for b in im.boxes or ())
    source = "pre-labels" if from_lines else "coco export" if any_conf else "none"
    notes = []
    if k == 0:
        notes.append("Cycle 0 is the initial random batch: it has no pre-labels and no scores.")
    elif rows and not texts:
        state = next((c.state for c in cycles if c.id == k), "?")
        notes.append(f"No pre-labels found for cycle {k} (cycle state {state!r}).")
    if bad_labels:
        notes.append(f"{bad_labels} unreadable line(s) in the labeled set's label files "
                     "were not counted.")
    points = tuple(
        CyclePoint(c["cycle"], c["n_train"], c["map50_95"]) for c in status["cycles"]
    )
    img = status["images"]
    return ReviewPage(
        project=str(project),
        cycle=k,
        names=names,
        pool=int(img["pool"]),
        labeled=int(img["labeled"]),
        selected=int(img["selected"]),
        max_labeled_fraction=float(cfg.max_labeled_fraction),
        cycles=points,
        class_counts=tuple(counts),
        images=tuple(images),
        confidence_source=source,
        notes=tuple(notes),
        generated=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )


# -- writing ----------------------------------------------------------------------------
def make_thumbnail(src: Path, dst: Path, max_side: int = 256, *, size_hint: tuple[int, int] | None = None,
                   quality: int = 82) -> tuple[int, int] | None:
    """Write a JPEG of ``src`` whose longest side is at most ``max_side``; its size, or None.

    None means the image could not be read. Images are never enlarged. With
    ``size_hint`` (the stored width, height) a large JPEG is decoded at 1/2,
    1/4 or 1/8 scale directly, which is several times faster than a full decode.
    """
    try:
        data = np.fromfile(str(src), dtype=np.uint8)
    except OSError:
        return None
    flag = cv2.IMREAD_COLOR
    if size_hint is not None:
        for factor, reduced in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                                (2, cv2.IMREAD_REDUCED_COLOR_2)):
            if max(size_hint) // factor >= max_side:
                flag = reduced
                break
    img = cv2.imdecode(data, flag) if data.size else None
    if img is None:
        return None
    h, w = img.shape[:2]
    full_w, full_h = w, h
    if flag != cv2.IMREAD_COLOR:  # the reduced decode rounds; scale from the stored size
        full_w, full_h = size_hint if (w >= h) == (size_hint[0] >= size_hint[1]) else size_hint[::-1]
    scale = max_side / max(full_w, full_h)
    if scale < 1.0:
        w, h = max(1, round(full_w * scale)), max(1, round(full_h * scale))
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        return None
    dst.write_bytes(buf.tobytes())
    return w, h


def _replaceable(out: Path) -> bool:
    """Whether ``out`` is absent or a review folder this module wrote (index.html + thumbs/)."""
    if not out.exists() and not out.is_symlink():
        return True
    if not out.is_dir() or out.is_symlink():
        return False
    entries = {p.name for p in out.iterdir()}
    return PAGE_NAME in entries and entries <= {PAGE_NAME, THUMBS_DIR}


def write_review(
    project: str | Path,
    cycle: int | str | None = None,
    *,
    out: str | Path | None = None,
    max_side: int = 256,
    workers: int | None = None,
) -> ReviewResult:
    """Write the review page of ``cycle`` and its thumbnails; return where and what.

    ``out`` is the page's folder (default ``PROJECT/cycles/<k>/review``). An
    existing folder is replaced only if it holds a previous review page and
    nothing else; the new one is built beside it and renamed into place.
    """
    t0 = time.perf_counter()
    if not isinstance(max_side, int) or isinstance(max_side, bool) or not 16 <= max_side <= 4096:
        raise DataError(f"thumbnail size {max_side!r} must be an integer from 16 to 4096")
    page = collect_review(project, cycle)
    project = Path(project)
    target = Path(out) if out is not None else project / "cycles" / str(page.cycle) / REVIEW_DIR
    if not _replaceable(target):
        raise DataError(f"{target}: exists and is not a review page folder; choose another --out")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / THUMBS_DIR).mkdir(parents=True)
    try:
        def thumb(im: ReviewImage) -> tuple[int, int] | None:
            return make_thumbnail(project / im.relpath, tmp / im.thumb, max_side,
                                  size_hint=(im.width, im.height))

        n_workers = workers or min(4, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            sizes = list(pool.map(thumb, page.images))
        images = []
        for im, size in zip(page.images, sizes):
            if size is None:
                im = replace(im, thumb=None)
            else:  # the decoded frame (EXIF-rotated, as the model saw it) sets the shape
                im = replace(im, width=size[0], height=size[1])
            images.append(im)
        page = replace(page, images=tuple(images))
        (tmp / PAGE_NAME).write_text(render_page(page), encoding="utf-8")
        if target.exists():
            os.rename(target, old)
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    problems = tuple(p for im in page.images for p in im.problems)
    return ReviewResult(
        path=target / PAGE_NAME,
        cycle=page.cycle,
        n_images=len(page.images),
        n_boxes=page.n_boxes,
        n_unreadable=sum(im.thumb is None for im in page.images),
        confidence_source=page.confidence_source,
        problems=problems,
        seconds=time.perf_counter() - t0,
    )
