"""Gathering a review page's data from a project (reads only).

The store through :class:`detal.store.Store`, :func:`detal.project.project_status`,
:func:`detal.project.project_config`, and the files under ``PROJECT``, each
found through :class:`detal.project.paths.ProjectPaths`.
"""

from __future__ import annotations

import json
import time
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath

from detal.errors import StateError
from detal.labels import YoloBox, parse_label_text, read_label_file
from detal.project.bundle import bundle_label, bundle_name
from detal.project.paths import PRELABELS_DIR, ProjectPaths, prelabel_file
from detal.project.pseudo import read_shipped
from detal.review.model import BatchEffort, CyclePoint, ReviewImage, ReviewPage
from detal.review.thumbs import thumb_relpath
from detal.store import CycleRow, Store

__all__ = [
    "attach_confidences",
    "coco_confidences",
    "collect_review",
    "order_by_score",
    "resolve_cycle",
]

_COORD_TOL = 1e-4  # normalised coordinates written with 6 decimals, then through pixels


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


# -- reading the project ----------------------------------------------------------------
def _class_counts(paths: ProjectPaths, store: Store, n_classes: int) -> tuple[list[int], int]:
    """Boxes per class over the labeled images' label files, and how many lines were unreadable."""
    counts = [0] * n_classes
    bad = 0
    for row in store.images(status="labeled"):
        parsed = read_label_file(paths.label(row.relpath), n_classes)
        if parsed is None:
            continue
        boxes, problems = parsed
        bad += len(problems)
        for b in boxes:
            counts[b.class_id] += 1
    return counts, bad


def _read_prelabels(paths: ProjectPaths, cycle: int, keys: Iterable[str]) -> dict[str, str]:
    """``key -> pre-label text`` from ``prelabels/``, else from the bundle's ``labels/``."""
    keys = list(keys)
    if paths.prelabels_dir(cycle).is_dir():
        out = {}
        for key in keys:
            path = paths.prelabel(cycle, key)
            if path.is_file():
                out[key] = path.read_text(encoding="utf-8", errors="replace")
        return out
    bundle = paths.bundle(cycle)
    if bundle.is_file():
        try:
            with zipfile.ZipFile(bundle) as zf:
                have = set(zf.namelist())
                return {k: zf.read(bundle_label(k)).decode("utf-8", "replace")
                        for k in keys if bundle_label(k) in have}
        except (OSError, zipfile.BadZipFile):
            return {}
    return {}


def _read_coco(paths: ProjectPaths, cycle: int, names: Sequence[str]) -> dict[str, list[YoloBox]]:
    path = paths.coco_export(cycle)
    if not path.is_file():
        return {}
    try:
        return coco_confidences(json.loads(path.read_text(encoding="utf-8")), names)
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def collect_review(project: str | Path, cycle: int | str | None = None) -> ReviewPage:
    """Gather the page of ``cycle`` (default: the latest cycle that selected images).

    Reads only. ``thumb`` of every image is the path its thumbnail will have
    (``thumbs/<image id>.jpg``); :func:`~detal.review.write_review` clears it
    where the image cannot be read.
    """
    from detal.project import project_config, project_status

    project = Path(project)
    paths = ProjectPaths(project)
    status = project_status(project)  # raises StateError for a folder that is no project
    cfg = project_config(project)
    names = tuple(status["classes"])
    with Store.open(paths.db, readonly=True) as store:  # never written: a read-only database is no obstacle
        cycles = store.cycles()
        k = resolve_cycle(cycles, cycle, project)
        rows = store.images(selected_cycle=k)
        scores = store.scores(k)
        counts, bad_labels = _class_counts(paths, store, len(names))
    texts = _read_prelabels(paths, k, (r.key for r in rows))
    coco = _read_coco(paths, k, names)
    shipped = read_shipped(project, k)
    from_lines = from_shipped = False
    images = []
    for r in rows:
        name = bundle_name(r)
        score, _, top = scores.get(r.id, (None, None, None))
        text = texts.get(r.key)
        boxes: tuple[YoloBox, ...] | None = None
        problems: tuple[str, ...] = ()
        if text is not None:
            parsed, bad = parse_label_text(text, len(names), f"{PRELABELS_DIR}/{prelabel_file(r.key)}",
                                           allow_confidence=True)
            boxes = tuple(parsed)
            from_lines = from_lines or any(b.confidence is not None for b in boxes)
            if r.key in shipped:
                boxes = attach_confidences(boxes, shipped[r.key])
                from_shipped = from_shipped or any(b.confidence is not None for b in boxes)
            if name in coco:
                boxes = attach_confidences(boxes, coco[name])
            problems = tuple(str(p) for p in bad)
        images.append(ReviewImage(r.id, name, r.relpath, r.width, r.height, score, top, boxes,
                                  thumb_relpath(r.id), problems))
    images = order_by_score(images)
    any_conf = any(b.confidence is not None for im in images for b in im.boxes or ())
    source = ("pre-labels" if from_lines else "shipped predictions" if from_shipped
              else "coco export" if any_conf else "none")
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
    back = [c for c in status["cycles"] if c.get("effort") is not None]
    effort = BatchEffort(back[-1]["cycle"], back[-1]["effort"]) if back else None
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
        effort=effort,
    )
