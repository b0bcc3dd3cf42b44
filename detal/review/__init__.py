"""The review page of a batch: ``detal review PROJECT [--cycle K]``.

Before a batch goes out for labeling, people want to look at it. This module
writes one self-contained HTML page with its thumbnails beside it::

    PROJECT/cycles/<k>/review/
      index.html        no network resource: no CDN, no web font, inline CSS + JS
      thumbs/<id>.jpg   one JPEG per batch image, longest side <= 256 px

The page shows the project at a glance (labeled fraction, the mAP50-95 of
every evaluated cycle as a small inline SVG plot, the class counts of the
labeled set, counted from the label files in ``PROJECT/labels/``, and what
correcting the last batch that came back took: its pre-labels' precision and
recall, the action counts, the estimated annotator time and the time to draw
the same boxes from scratch, as ``detal status`` gives them), then the
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

One module per concern:

- :mod:`detal.review.collect` gathers the page's data (:func:`collect_review`;
  reads only: the store through :class:`detal.store.Store`,
  :func:`detal.project.project_status`, :func:`detal.project.project_config`,
  and the files under ``PROJECT``, named by :mod:`detal.project.paths`);
- :mod:`detal.review.model` holds that data (:class:`ReviewPage`,
  :class:`ReviewImage`, ...), plain frozen records;
- :mod:`detal.review.render` turns it into HTML (the pure
  :func:`render_page`), filling the skeleton ``templates/page.html`` and
  inlining ``templates/page.css`` and ``templates/page.js``: package data,
  read with :mod:`importlib.resources`;
- :mod:`detal.review.thumbs` makes the thumbnails (:func:`make_thumbnail`);
- :mod:`detal.review.write` writes the folder (:func:`write_review`): it is
  built under a temporary name and renamed into place, so a killed run leaves
  the previous page intact.
"""

from __future__ import annotations

from detal.review.collect import (
    attach_confidences,
    coco_confidences,
    collect_review,
    order_by_score,
    resolve_cycle,
)
from detal.review.model import BatchEffort, CyclePoint, ReviewImage, ReviewPage, ReviewResult
from detal.review.render import PALETTE, map_plot_svg, render_page
from detal.review.thumbs import make_thumbnail
from detal.review.write import write_review

__all__ = [
    "PALETTE",
    "BatchEffort",
    "CyclePoint",
    "ReviewImage",
    "ReviewPage",
    "ReviewResult",
    "attach_confidences",
    "coco_confidences",
    "collect_review",
    "make_thumbnail",
    "map_plot_svg",
    "order_by_score",
    "render_page",
    "resolve_cycle",
    "write_review",
]
