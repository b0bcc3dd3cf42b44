"""Writing a batch out: pre-label files, the vendor bundle zip, and other export formats.

The bundle ``cycles/<k>/batch-<k>.zip`` holds ``images/`` (copies: it leaves
the machine), ``labels/`` (YOLO pre-labels), ``classes.txt``, ``data.yaml``
and ``manifest.csv`` (image, score, boxes, top class, and the image's path in
the image folder: a bundle name is shortened for a deep image, the path is
whole), most uncertain first.
Every file is written to a temporary name and renamed into place; one that
cannot be written whole (a full disk) is removed, never left half-written.
"""

from __future__ import annotations

import csv
import io
import math
import os
import shutil
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath

from detal.config import Config
from detal.detections import Prediction
from detal.errors import disk_full
from detal.export.yolo import data_yaml as yolo_data_yaml
from detal.files import removed_on_failure, short_name
from detal.project.paths import PRELABELS_DIR, ProjectPaths, in_image_folder, prelabel_file

__all__ = ["bundle_label", "bundle_name", "export_other", "write_bundle", "write_prelabels"]


def bundle_name(row) -> str:
    """The file name of an image in bundles and exports: its key (bounded by :func:`short_name`) and suffix."""
    return short_name(row.key) + PurePosixPath(row.relpath).suffix


def bundle_label(key: str) -> str:
    """The member of the bundle zip that holds the pre-labels of image ``key``."""
    return f"labels/{prelabel_file(key)}"


def write_prelabels(cycle_dir: Path, rows: Sequence, prelabels: dict[int, str]) -> Path:
    """Write ``cycle_dir/prelabels/<name>.txt`` (:func:`prelabel_file`) for every row, replacing the folder at once."""
    pre_dir = cycle_dir / PRELABELS_DIR
    staging = cycle_dir / f".{PRELABELS_DIR}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    with removed_on_failure(staging):
        for r in rows:
            (staging / prelabel_file(r.key)).write_text(prelabels.get(r.id, ""), encoding="utf-8")
    if pre_dir.exists():
        shutil.rmtree(pre_dir)
    os.rename(staging, pre_dir)
    return pre_dir


def write_bundle(
    project: Path,
    cycle: int,
    rows: Sequence,
    names: Sequence[str],
    prelabels: dict[int, str] | None,
    manifest: dict[int, tuple[float, int, int | None]],
    resolve_root: Callable[[str], Path] | None = None,
    images_root: str | None = None,
) -> Path:
    """Write ``cycles/<k>/batch-<k>.zip`` atomically: images/, labels/, classes.txt, data.yaml, manifest.csv.

    ``images_root`` is the image folder's path in the project (the
    ``images_root`` meta), for the manifest's ``path`` column.
    """
    target = ProjectPaths(project).bundle(cycle)
    out_dir = target.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{target.name}.tmp-{os.getpid()}"
    resolve = resolve_root or (lambda rel: project / rel)
    order = sorted(rows, key=lambda r: (-manifest.get(r.id, (-math.inf,))[0], r.id))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["image", "score", "n_boxes", "top_class", "path"])
    with removed_on_failure(tmp):
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for row in order:
                name = bundle_name(row)
                zf.write(resolve(row.relpath), f"images/{name}")
                if prelabels is not None:
                    zf.writestr(bundle_label(row.key), prelabels.get(row.id, ""),
                                compress_type=zipfile.ZIP_DEFLATED)
                score, n_boxes, top = manifest.get(row.id, (None, None, None))
                writer.writerow([
                    name,
                    "" if score is None else f"{score:.6f}",
                    "" if n_boxes is None else n_boxes,
                    "" if top is None else names[top],
                    in_image_folder(row.relpath, images_root),
                ])
            zf.writestr("classes.txt", "\n".join(names) + "\n")
            # The export writer's data.yaml has no `path:` key, so Ultralytics resolves
            # images/ beside the yaml wherever the bundle is unpacked (a `path: .`
            # would be taken relative to the current directory).
            zf.writestr("data.yaml", yolo_data_yaml(names))
            zf.writestr("manifest.csv", buf.getvalue())
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    return target


def export_other(
    project: Path, cycle_dir: Path, k: int, batch: Sequence, preds: dict[int, Prediction],
    manifest: dict, names: list[str], cfg: Config, formats: list[str],
) -> list[str]:
    """Formats other than the bundle, written by :mod:`detal.export` into ``cycles/<k>/exports/``.

    Imported only when such a format is asked for, so the default path does
    not depend on it. Images are presented under their bundle names (through
    symbolic links in a scratch folder) so that every format names an image
    the way the bundle does, and ``detal import --format ...`` can match it.
    """
    from detal.export import export_predictions, normalize_uncertainty

    links = cycle_dir / f".export-links.tmp-{os.getpid()}"
    shutil.rmtree(links, ignore_errors=True)
    links.mkdir()
    try:
        renamed, scores = [], {}
        for r in batch:
            if r.id not in preds:
                continue
            name = bundle_name(r)
            os.symlink((project / r.relpath).resolve(), links / name)
            renamed.append(replace(preds[r.id], path=links / name))
            scores[name] = manifest[r.id][0]
        export_predictions(
            renamed, names, ProjectPaths(project).exports_dir(k), formats,
            scores=normalize_uncertainty(scores), cycle=k, conf=cfg.prelabel_conf,
        )
    except OSError as exc:  # a full disk names the exports, not the scratch folder removed below
        full = disk_full(exc, ProjectPaths(project).exports_dir(k), name_file=False)
        if full is None:
            raise
        raise full from exc
    finally:
        shutil.rmtree(links, ignore_errors=True)
    return formats


def check_formats(formats: Sequence[str] | str) -> list[str]:
    """Export format names from a list of names or comma lists; unknown names are refused."""
    if isinstance(formats, str):
        formats = [formats]
    out: list[str] = []
    for item in formats:
        for name in str(item).split(","):
            name = name.strip()
            if name and name not in out:
                out.append(name)
    out = out or ["yolo"]
    if out != ["yolo"]:
        from detal.export import parse_formats  # checks the names before any work is done

        out = parse_formats(out)
    return out
