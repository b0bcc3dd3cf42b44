"""Rendering a review page: :class:`~detal.review.model.ReviewPage` in, one HTML document out.

Pure: no IO but reading the templates. The skeleton, the style sheet and the
script are package data (``templates/page.html``, ``page.css``, ``page.js``),
read through :mod:`importlib.resources` and inlined, so the page is one file
that needs no network: no CDN, no web font, no external style sheet or script.
The skeleton is a :class:`string.Template`; every ``$name`` in it is filled
here, HTML-escaped where it is text.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from functools import cache
from importlib.resources import files
from pathlib import Path
from string import Template

from detal.effort import format_seconds
from detal.labels import YoloBox
from detal.review.model import BatchEffort, CyclePoint, ReviewImage, ReviewPage

__all__ = ["PALETTE", "TEMPLATES", "effort_panel_html", "map_plot_svg", "render_page", "template_text"]

PALETTE = (
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324",
    "#469990", "#bfef45", "#800000", "#000075", "#808000", "#fabed4", "#ffe119", "#dcbeff",
    "#aaffc3", "#ffd8b1", "#a9a9a9", "#000000",
)
"""Class ``k`` is drawn in ``PALETTE[k % len(PALETTE)]`` (distinct on light and dark images)."""


TEMPLATES = ("page.html", "page.css", "page.js")
"""The template files in ``detal/review/templates/``: the skeleton, the style sheet, the script."""


@cache
def template_text(name: str) -> str:
    """The text of the template file ``name`` (one of :data:`TEMPLATES`), from the package."""
    if name not in TEMPLATES:
        raise ValueError(
            f"unknown review template {name!r}; expected one of {', '.join(TEMPLATES)}")
    return files(__package__).joinpath("templates", name).read_text(encoding="utf-8")


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

def effort_panel_html(effort: BatchEffort | None) -> str:
    """The panel of what correcting the last batch that came back took (its figures in ``data-*`` too)."""
    if effort is None:
        return ('<div class="panel" id="effort"><h2>Correcting the pre-labels</h2>'
                '<div class="note">no batch has come back yet</div></div>')
    f = effort.figures
    attrs = "".join(
        f' data-{k.replace("_", "-")}="{"" if f[k] is None else f[k]}"'
        for k in ("images", "annotator_s", "from_scratch_s", "precision", "recall",
                  "verified", "adjusted", "relabeled", "deleted", "drawn")
    )
    saved = f["from_scratch_s"] - f["annotator_s"]
    if f["prelabeled_images"]:
        quality = ("pre-labels: precision "
                   + ("&mdash;" if f["precision"] is None else f"{f['precision']:.2f}") + ", recall "
                   + ("&mdash;" if f["recall"] is None else f"{f['recall']:.2f}"))
    else:
        quality = "no pre-labels were shipped (every box drawn)"
    rows = "".join(f'<tr><td>{a}</td><td class="n">{f[a]:,}</td></tr>'
                   for a in ("verified", "adjusted", "relabeled", "deleted", "drawn"))
    return (
        f'<div class="panel" id="effort" data-cycle="{effort.cycle}"{attrs}>'
        f"<h2>Correcting batch {effort.cycle} (the last one back)</h2>"
        f'<div class="big">{format_seconds(f["annotator_s"])}</div>'
        f"<div>estimated annotator time for {f['images']:,} images</div>"
        f"<div>{format_seconds(f['from_scratch_s'])} drawn from scratch "
        + (f"({format_seconds(saved)} saved)" if saved >= 0 else f"({format_seconds(-saved)} more)")
        + f"</div><div>{quality}</div>"
        f'<table class="counts">{rows}</table></div>'
    )


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
    glance.append(effort_panel_html(page.effort))

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
    return Template(template_text("page.html")).substitute(
        title=_e(title),
        css=template_text("page.css"),
        class_colours=colours,
        project=_e(page.project),
        n_images=n_images,
        n_boxes=page.n_boxes,
        written=f" &middot; written {_e(page.generated)}" if page.generated else "",
        notes="".join(f'<div class="note">{_e(n)}</div>' for n in notes),
        glance="".join(glance),
        controls=controls,
        batch=body,
        script=template_text("page.js"),
    )
