"""The Ultralytics adapter: the only module of detal that imports ``ultralytics``.

:class:`UltralyticsAdapter` implements :class:`~detal.adapter.ModelAdapter`
with Ultralytics YOLO (v5u, v8, 11 heads). ``ultralytics`` and ``torch`` are
imported lazily, inside the methods, so ``import detal`` stays light and the
rest of the package (and its tests) never loads them.

What it guarantees:

- **Exact training lists.** ``train`` stages the given ``(image, label)`` pairs
  under ``out_dir/dataset`` (images symlinked, labels copied, every file under a
  unique name), writes list files and a ``data.yaml`` with the project's class
  names, and trains on those lists. The pool directory is never globbed.
- **Explicit outputs.** Every Ultralytics call gets ``project``, ``name`` and
  ``data``; outputs land under ``out_dir``.
- **No network, no home directory.** Before ``ultralytics`` is first imported,
  ``YOLO_CONFIG_DIR`` is pointed away from the user's home (unless the caller
  set it) and ``YOLO_OFFLINE`` is set; settings sync and the logging
  integrations are switched off. During training and evaluation the two checks
  that would download files (the font check and, on CUDA, the AMP check, which
  fetches a model) are replaced by offline versions, in DDP workers too. A ``.pt`` that is not on
  disk is an error, never a download.
- **Full class-probability vectors.** ``predict`` runs the network itself on
  batches from a streaming loader, applies Ultralytics' own NMS with
  ``return_idxs=True`` and reads, at each surviving anchor, the sigmoid score
  of every class from the raw head output. Preprocessing (decode, letterbox),
  NMS and box rescaling are Ultralytics' functions, so the boxes and top-1
  classes are those of ``YOLO(weights).predict(...)`` and the confidences
  agree to float rounding (batched NHWC convolutions differ from its
  one-image forward pass in the last bits; the tests allow 1e-5).
- **DFL logits and embeddings from the same pass.** In inference the Detect
  head returns, next to its decoded output, its raw outputs: the box-branch
  logits ``(B, 4 * reg_max, anchors)`` and the feature maps it was given. Asked
  for (``with_dfl``), the ``4 x reg_max`` logits at each kept anchor become
  :attr:`Detections.dfl`; asked for (``with_embeddings``), each feature map is
  average-pooled over space, the levels concatenated and L2-normalised into
  :attr:`Prediction.embedding` (float16). No hook, no second pass.
- **Its log where the caller wants it.** Inside :meth:`UltralyticsAdapter.log_to`,
  everything Ultralytics says during ``train``, ``evaluate`` and ``predict``
  (its ``ultralytics`` logger, its progress bars, prints and warnings on
  ``sys.stdout``/``sys.stderr``) is appended to a log file as plain lines, one
  per finished progress bar, and nothing reaches the terminal unless an echo
  stream is given. ``detal cycle`` writes ``cycles/<k>/train.log`` this way.

Where each concern lives (one module per seam of Ultralytics, so an upgrade
breaks one small file):

- :mod:`detal.ultra.setup`: the offline import, its settings, the patched checks.
- :mod:`detal.ultra.log`: routing its logger, prints and progress bars to a log file.
- :mod:`detal.ultra.staging`: the exact training lists and ``data.yaml``.
- :mod:`detal.ultra.preprocess`, :mod:`~detal.ultra.forward`,
  :mod:`~detal.ultra.postprocess`: the predictor's three stages, and
  :mod:`detal.ultra.predict` the loop that drives them.
- :mod:`detal.ultra.heads`: class vectors, DFL logits and embeddings from the head's output.
- :mod:`detal.ultra.ddp`: the trainer detal trains with, which keeps its settings alive in the
  fresh processes of Ultralytics' multi-GPU (DDP) training.
- :mod:`detal.ultra.metrics`: mAP figures from the trainer and validator.
- :mod:`detal.ultra.adapter`: :class:`UltralyticsAdapter`, tying them together.
"""

from __future__ import annotations

from detal.files import IMAGE_SUFFIXES
from detal.ultra.adapter import UltralyticsAdapter
from detal.ultra.setup import default_config_dir, prepare_ultralytics
from detal.ultra.staging import stage_split, write_data_yaml

__all__ = [
    "IMAGE_SUFFIXES",
    "UltralyticsAdapter",
    "default_config_dir",
    "prepare_ultralytics",
    "stage_split",
    "write_data_yaml",
]
