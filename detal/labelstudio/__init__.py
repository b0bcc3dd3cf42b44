"""Label Studio, live: push the batch that is out to a running server, pull the corrections back.

This is the Python API behind ``detal push`` and ``detal pull``. It talks to
Label Studio's REST API with the standard library only (``urllib``); the
official SDK is not used, because it pins numpy and opencv against detal's
stack.

Push (:func:`push_batch`)
    Every image that is out (status ``selected``) and has no task yet becomes
    one Label Studio task:

    * the Label Studio project is the one this project is linked to (its id
      and server are kept in the store's ``meta`` under ``label_studio``), or
      ``ls_project`` when given, or a new one titled after the project folder.
      Its labeling config must hold the project's classes, in order, in one
      ``RectangleLabels`` control (the config of
      :func:`detal.export.labelstudio.labeling_config`); a mismatch is an error,
      never a silent remap;
    * the image is **uploaded**, not served from local files. Upload works with
      any server (remote, in a container, on another machine), needs no server
      setting, and copies only the batch (a few percent of the pool), once per
      image. Local files would avoid that copy but need
      ``LOCAL_FILES_SERVING_ENABLED`` and a document root holding the pool on
      the server's own file system;
    * the task's data holds ``image`` (the uploaded file), ``detal_key`` (the
      image's key) and ``uncertainty`` (the image's score in the cycle that
      selected it); its one prediction has ``model_version`` ``cycle-<k>``,
      a task ``score`` of ``1 - uncertainty`` normalised over the cycle's batch
      (Label Studio sorts ascending, so the most uncertain come first), and one
      region per pre-label box from ``PROJECT/cycles/<k>/prelabels/<key>.txt``.
      A region's ``score`` is the box's confidence: the file's 6th column when
      it has one, else the score of the same box in the cycle's Label Studio
      export (``detal cycle --format label-studio``), else none. The initial
      random batch (cycle 0) has no pre-labels and no scores.

    The task id of each pushed image is recorded in the store's
    ``label_studio_tasks`` table, in the same database and transaction
    discipline as every other state, so pushing again adds no duplicate. A
    push killed between the server's import and that record is healed by the
    next push, which adopts the server's tasks whose ``detal_key`` names an
    image that is out.

Pull (:func:`pull_labels`)
    The annotations of the tasks of the images that are out are fetched,
    converted to YOLO labels and handed, keyed by the image each task was
    pushed for (no file name to match), to :func:`detal.project.import_keyed_labels`:
    the same validated, all-or-nothing import as label files, with its partial-import rule (images
    whose task is unannotated stay out). Labels are mapped by class **name**,
    never by index (Label Studio's own YOLO export sorts classes
    alphabetically). A label that is not one of the project's classes, a
    rotated box, or a box without a label is an error that imports nothing.

    Which annotation counts (:func:`chosen_annotation`): skipped (cancelled)
    annotations and drafts never count; of the rest, one marked ground truth
    wins, otherwise the most recently updated one (ties: the higher id). An
    annotation with no boxes means "this image has no objects" and imports an
    empty label file.

Auth (:class:`Client`)
    The token comes from the environment (``LABEL_STUDIO_API_KEY``) or a file,
    never from the command line. A legacy token is sent as
    ``Authorization: Token ...``. A personal access token (a JWT refresh token,
    Label Studio >= 1.16) is exchanged at ``/api/token/refresh/`` for a
    short-lived access token sent as ``Bearer``; on a 401 it is refreshed once
    and the request retried.
"""

from detal.labelstudio.client import (
    TOKEN_ENV,
    URL_ENV,
    Client,
    normalize_url,
    read_token,
    token_kind,
)
from detal.labelstudio.convert import (
    annotation_to_yolo,
    attach_scores,
    chosen_annotation,
    config_classes,
    prediction_regions,
)
from detal.labelstudio.pull import PullReport, pull_labels
from detal.labelstudio.push import PushReport, push_batch

__all__ = [
    "TOKEN_ENV",
    "URL_ENV",
    "Client",
    "PullReport",
    "PushReport",
    "annotation_to_yolo",
    "attach_scores",
    "chosen_annotation",
    "config_classes",
    "normalize_url",
    "prediction_regions",
    "pull_labels",
    "push_batch",
    "read_token",
    "token_kind",
]
