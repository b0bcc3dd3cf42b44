"""Writing a review page: the page and its thumbnails, built aside and renamed into place."""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from detal.errors import DataError
from detal.files import check_out_dir
from detal.project.paths import ProjectPaths
from detal.review.collect import collect_review
from detal.review.model import ReviewImage, ReviewResult
from detal.review.render import render_page
from detal.review.thumbs import THUMBS_DIR, make_thumbnail

__all__ = ["PAGE_NAME", "write_review"]

PAGE_NAME = "index.html"


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
    if out is not None:
        check_out_dir(Path(out))  # before the page is collected, not after
    page = collect_review(project, cycle)
    project = Path(project)
    target = Path(out) if out is not None else ProjectPaths(project).review_dir(page.cycle)
    if not _replaceable(target):
        raise DataError(f"{target}: exists and is not a review page folder; choose another --out")
    check_out_dir(target)
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
