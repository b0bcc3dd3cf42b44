"""Label files that come into a project: one set of rules, one reader per source.

Returned labels (``detal import``) are read by :func:`detal.export.read_returned`,
the one reader of what a vendor sends back (a YOLO folder or zip, CVAT
YOLO 1.1, COCO), which maps class ids by name whenever the source carries
names. :func:`label_folder` reads a person's own label folder at ``init``
(``--labels``, ``--val-labels``). Both apply the same rules, defined once in
:mod:`detal.export.common`:

- hidden files and folders (``.name``) and anything under ``__MACOSX/`` are
  skipped (:func:`~detal.export.common.skipped_path`);
- a file larger than :data:`MAX_LABEL_BYTES` (4 MiB), not UTF-8, or not a
  regular file (a FIFO would block) is a problem, not a crash;
- files that are not labels (:data:`NOT_LABELS`: ``classes.txt``,
  ``readme.txt``, split lists like ``train.txt`` ...) are ignored.

Differences, on purpose: returned labels are only what was returned, so
symbolic links there are problems; a person's own folder may link files
in (linked folders are never entered, so no walk can loop). At ``init`` a
non-label name is only ignored when the project has no image of that name,
which the caller decides with :func:`is_not_a_label`.

Class names: a names file in the folder (``classes.txt``, ``obj.names``, a
``data.yaml`` or ``dataset.yaml`` ...) is read by the same rule as a return's
(:func:`detal.export.names.returned_names`): its ids are mapped to the
project's classes by name, or ``init`` is refused naming it.

The YOLO rules inside a file (5 fields, class range, box inside the image)
are :func:`detal.labels.parse_label_text`'s, applied by the callers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from detal.export.common import MAX_LABEL_BYTES, NOT_LABELS, Entry, parse_lines, skipped_path
from detal.export.keys import PoolNames, image_suffix
from detal.export.names import names_kind, returned_names
from detal.labels import LabelProblem, show_name
from detal.project.scan import image_key, walk_images

__all__ = ["MAX_LABEL_BYTES", "NOT_LABELS", "is_not_a_label", "label_folder", "labels_by_image"]


def is_not_a_label(file_name: str) -> bool:
    """Whether a ``.txt`` that matches no image is one of the known non-label files."""
    return PurePosixPath(file_name).name.lower() in NOT_LABELS


def _read_text(path: Path, problems: list) -> str | None:
    try:
        if not path.is_file():
            problems.append(LabelProblem(str(path), 0, "not a regular file"))
            return None
        if path.stat().st_size > MAX_LABEL_BYTES:
            problems.append(LabelProblem(str(path), 0, "label file too large (the limit is 4 MiB)"))
            return None
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        problems.append(LabelProblem(str(path), 0, "not UTF-8 text"))
    except OSError as exc:
        problems.append(LabelProblem(str(path), 0, f"cannot read ({exc.strerror})"))
    return None


def label_folder(
    root: Path, problems: list, names: Sequence[str] | None = None
) -> dict[str, tuple[Path, str]]:
    """``relpath without .txt -> (file, text)`` for a folder of labels laid out like the images.

    For ``init --labels`` / ``--val-labels``: linked files are read, linked
    folders are not entered. Unreadable files are added to ``problems``.
    With the project's ``names``, a names file in the folder maps the ids by
    name (the texts come back in the project's ids), and any problem with
    it, or a class it names that the project lacks, is added to ``problems``.
    """
    out = {}
    names_files: list[Entry] = []
    for dirpath, dirs, files in os.walk(root):  # followlinks=False: linked folders are never entered
        rel_dir = Path(dirpath).relative_to(root)
        dirs[:] = sorted(d for d in dirs if not skipped_path((rel_dir / d).as_posix()))
        for name in sorted(files):
            rel = (rel_dir / name).as_posix()
            kind = names_kind(name)
            if skipped_path(rel) or not (name.endswith(".txt") or kind is not None):
                continue
            text = _read_text(Path(dirpath) / name, problems)
            if text is None:
                continue
            if kind is not None:
                names_files.append(Entry(rel, str(Path(dirpath) / name), text.encode("utf-8")))
            if name.endswith(".txt"):
                out[rel[: -len(".txt")]] = (Path(dirpath) / name, text)
    if names is not None and names_files:
        _map_by_name(out, names_files, list(names), problems)
    return out


def labels_by_image(
    labels: dict[str, tuple[Path, str]], images: Path, exclude: Sequence[Path], problems: list
) -> dict[str, tuple[Path, str]]:
    """:func:`label_folder`'s ``labels``, keyed instead by the image each is for (its path without suffix).

    The image is found by the one key rule of returns
    (:class:`~detal.export.keys.PoolNames`), over the images under
    ``images``: a label folder laid out like the image folder, named like the
    bundle (``sub__a.txt``), wrapped in a folder, flat where base names are
    unique, or named after the image file (``a.png.txt``) all match, and a
    label that fits no image or two, or a second label for one image, is a
    problem naming the file. Lists such as ``classes.txt`` are left out.
    """
    real = {k: v for k, v in labels.items() if not is_not_a_label(v[0].name)}
    if not real:
        return {}
    pool = PoolNames((image_key("", rel), rel) for rel in walk_images(images, exclude))
    file_name = None if all(image_suffix(k) for k in real) else False
    out: dict[str, tuple[Path, str]] = {}
    for spelled, (path, text) in sorted(real.items()):
        match = pool.match(spelled, file_name=file_name)
        if match.key is None:
            problems.append(LabelProblem(str(path), 0, str(match.problem)))
            continue
        image = pool.path(match.key)
        stem = image.rsplit(".", 1)[0]
        if stem in out:
            problems.append(LabelProblem(str(path), 0, f"second label for image {show_name(image)} "
                                                      f"(first: {out[stem][0]})"))
            continue
        out[stem] = (path, text)
    return out


def _map_by_name(labels: dict[str, tuple[Path, str]], names_files: list[Entry], names: list[str],
                 problems: list) -> None:
    """Rewrite ``labels`` in the project's ids through the folder's names files (in place)."""
    carried = returned_names(names_files)
    problems.extend(carried.problems)
    if carried.names is None:
        return
    for key, (path, text) in labels.items():
        if is_not_a_label(path.name):
            continue
        mapped, found = parse_lines(text, str(path), carried.names, names, allow_confidence=False,
                                    names_source=carried.source)
        problems.extend(found)  # the lines left are valid, so no problem is named twice
        labels[key] = (path, mapped)
