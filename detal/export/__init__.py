"""Vendor-ready exports of pre-labels, and reading corrected labels back.

:func:`export_predictions` writes one batch of predictions in any of
:data:`FORMATS`, each where the tool that reads it expects it::

    out_dir/
      yolo/                     Ultralytics layout        (detal.export.yolo)
      cvat-yolo.zip             CVAT "YOLO 1.1"           (detal.export.cvat)
      coco/annotations/instances_default.json             (detal.export.coco)
      cvat-xml/annotations.xml  CVAT for images 1.1       (detal.export.cvat_xml)
      label-studio/tasks.json + config.xml                (detal.export.labelstudio)

It checks everything first (format names, class ids, boxes, file names,
scores, images) and builds the output in a temporary folder beside
``out_dir``, which is moved into place only once every format is written: a
bad input leaves ``out_dir`` as it was. An artifact of the same format that
is already in ``out_dir`` is replaced.

:func:`read_returned` reads what a vendor sends back (``yolo``,
``cvat-yolo``, ``coco`` or ``cvat-xml``) into ``key -> YOLO text`` plus every problem, for
``detal import`` to validate and apply all or nothing;
:func:`read_returned_labels` does the same and raises one
:class:`~detal.errors.DataError` listing the problems.

All formats derive from one canonical box list (see :mod:`detal.export.common`),
so export followed by :func:`read_returned_labels` gives the same YOLO text.

Each format is one module and one entry in :data:`EXPORT_FORMATS`
(:mod:`detal.export.registry`): where its output lies, its writer, its
reader if vendors send it back. A new format is added there, and nowhere else.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from detal.detections import Prediction
from detal.errors import ConfigError, DataError, did_you_mean
from detal.export.coco import CATEGORY_ID_BASE
from detal.export.common import (
    ImageLabels,
    ReturnedLabels,
    canonical_images,
    check_names,
    problems_error,
)
from detal.export.keys import PoolNames
from detal.export.labelstudio import normalize_uncertainty
from detal.export.options import ReadOptions, WriteOptions
from detal.export.registry import (
    ARTIFACTS,
    EXPORT_FORMATS,
    FORMATS,
    IMPORT_FORMATS,
    ExportFormat,
    parse_formats,
)

__all__ = [
    "ARTIFACTS",
    "CATEGORY_ID_BASE",
    "EXPORT_FORMATS",
    "FORMATS",
    "IMPORT_FORMATS",
    "ExportFormat",
    "PoolNames",
    "ReturnedLabels",
    "export_predictions",
    "normalize_uncertainty",
    "parse_formats",
    "read_returned",
    "read_returned_labels",
]


def _check_scores(
    scores: Mapping[str, float] | None, images: Sequence[ImageLabels]
) -> dict[str, float] | None:
    if scores is None:
        return None
    missing = [im.name for im in images if im.name not in scores]
    if missing:
        raise DataError(f"scores has no uncertainty for {len(missing)} image(s): {', '.join(missing[:10])}")
    out = {}
    for im in images:
        v = float(scores[im.name])
        if not 0.0 <= v <= 1.0:
            raise DataError(f"scores[{im.name!r}] = {v!r}: normalised uncertainty must lie in [0, 1]")
        out[im.name] = v
    return out


def _check_images_exist(images: Sequence[ImageLabels]) -> None:
    missing = [str(im.path) for im in images if not im.path.is_file()]
    if missing:
        raise DataError(
            f"cannot copy {len(missing)} image(s) that do not exist: {', '.join(missing[:10])}"
            + (" ..." if len(missing) > 10 else "")
        )


def export_predictions(
    predictions: Sequence[Prediction],
    names: Sequence[str],
    out_dir: Path,
    formats: Sequence[str],
    *,
    scores: Mapping[str, float] | None = None,
    cycle: str | int | None = None,
    with_confidence: bool = False,
    conf: float = 0.0,
    copy_images: bool = True,
    from_name: str = "label",
    to_name: str = "image",
) -> dict[str, Path]:
    """Write ``predictions`` in each of ``formats`` under ``out_dir``.

    Returns ``format -> path``: the ``yolo`` folder (holding ``data.yaml``),
    the ``cvat-yolo`` zip, the ``coco`` JSON file and the ``label-studio``
    ``tasks.json`` (its ``config.xml`` lies beside it).

    ``names`` are the project's classes (class id = index). ``scores`` maps
    image file names to normalised uncertainty in ``[0, 1]`` (Label Studio's
    prediction score is ``1 - uncertainty``); ``cycle`` becomes Label
    Studio's ``model_version``. Boxes with confidence below ``conf`` are left
    out. ``with_confidence`` adds a confidence column to the ``yolo`` labels
    only (CVAT and Ultralytics read 5 fields). With ``copy_images=False`` the
    bundles hold labels only.

    Raises :class:`ConfigError` for an unknown format and :class:`DataError`
    for bad predictions, before anything is written.
    """
    fmts = parse_formats(formats)
    names = check_names(names)
    images = canonical_images(predictions, names, conf)
    options = WriteOptions(
        copy_images=copy_images,
        with_confidence=with_confidence,
        model_version="prelabel" if cycle is None else str(cycle),
        scores=_check_scores(scores, images),
        from_name=from_name,
        to_name=to_name,
    )
    for fmt in fmts:
        if EXPORT_FORMATS[fmt].check is not None:
            EXPORT_FORMATS[fmt].check(options)
    if cycle is not None and not isinstance(cycle, (str, int)):
        raise DataError(f"cycle must be a string or an integer, got {type(cycle).__name__}")
    if copy_images:
        _check_images_exist(images)

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir}: exists and is not a folder")
    parent = out_dir.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.resolve().name}.", suffix=".export-tmp", dir=parent))
    try:
        build = tmp / "out"
        build.mkdir()
        for fmt in fmts:
            EXPORT_FORMATS[fmt].write(build / ARTIFACTS[fmt], images, names, options)
        if not out_dir.exists():
            os.replace(build, out_dir)
        else:
            old = tmp / "old"
            old.mkdir()
            for fmt in fmts:
                final = out_dir / ARTIFACTS[fmt]
                if final.exists() or final.is_symlink():
                    os.replace(final, old / ARTIFACTS[fmt])
                os.replace(build / ARTIFACTS[fmt], final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {fmt: EXPORT_FORMATS[fmt].result_path(out_dir) for fmt in fmts}


def read_returned(
    path: Path,
    fmt: str,
    names: Sequence[str],
    *,
    pool: PoolNames | None = None,
    sizes: Mapping[str, tuple[int, int]] | None = None,
    allow_no_annotations: bool = False,
    allow_confidence: bool = True,
) -> ReturnedLabels:
    """Read labels a vendor returns, collecting every problem instead of raising on them.

    ``yolo`` (folder or zip of ``.txt``), ``cvat-yolo`` (YOLO 1.1 zip or
    folder) and ``coco`` (instances JSON, or a folder holding
    ``annotations/instances_*.json``; every image it lists gets an entry,
    ``""`` for no objects) are keyed by the pool image each label is for,
    found by one rule (:mod:`detal.export.keys`) from ``pool``, the
    project's images; a name that fits no image or two is a problem naming
    the file. Without ``pool`` the keys are the names as the return spells
    them (label path without ``.txt``, COCO file name).

    Class ids are mapped to ``names`` by class name whenever the returned
    files carry names (``data.yaml``/``classes.txt``, ``obj.names``, COCO
    categories), and ambiguous names are problems (see the readers); a
    confidence column is dropped (a problem without ``allow_confidence``);
    coordinates are written with 6 decimals.
    Folders and zips share one skip list and one set of caps
    (:mod:`detal.export.common`). ``sizes`` and ``allow_no_annotations`` are
    for COCO (:func:`detal.export.coco.read_coco`).

    Raises :class:`DataError` only when nothing can be read at all (missing
    path, not a zip, not JSON); everything else is in ``.problems``.
    """
    if not isinstance(fmt, str):
        raise ConfigError(f"format must be one of {', '.join(IMPORT_FORMATS)}, got {fmt!r}{did_you_mean(fmt, IMPORT_FORMATS)}")
    fmt = parse_formats([fmt], IMPORT_FORMATS)[0]
    names = check_names(names)
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found")
    options = ReadOptions(pool=pool, sizes=sizes, allow_no_annotations=allow_no_annotations,
                          allow_confidence=allow_confidence)
    return EXPORT_FORMATS[fmt].read(path, names, options)


def read_returned_labels(
    path: Path,
    fmt: str,
    names: Sequence[str],
    *,
    sizes: Mapping[str, tuple[int, int]] | None = None,
    allow_no_annotations: bool = False,
    allow_confidence: bool = True,
) -> dict[str, str]:
    """:func:`read_returned`, as ``key -> YOLO label text``, raising on any problem.

    Every problem is collected and raised as one :class:`DataError` that
    lists at most :data:`~detal.export.common.MAX_LISTED_PROBLEMS` of them
    (``.problems`` holds the whole :class:`~detal.labels.LabelProblem`
    list); nothing is returned then. A source with no labels at all is an
    error too.
    """
    returned = read_returned(
        path,
        fmt,
        names,
        sizes=sizes,
        allow_no_annotations=allow_no_annotations,
        allow_confidence=allow_confidence,
    )
    if returned.problems:
        raise problems_error(f"{path}: returned labels rejected", returned.problems)
    if not returned.labels:
        raise DataError(f"{path}: no {fmt} labels found")
    return returned.labels
