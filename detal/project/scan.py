"""Reading an image folder into the store at ``init``: walk, hash, measure, match labels.

Images are referenced, not copied: a pool may hold 100,000 files and copying
would double the disk use and the time of ``init``; hard links fail across
file systems. A symbolic link ``PROJECT/images -> DIR`` keeps every stored
path relative to the project (``images/sub/a.jpg``), so moving the image
folder only means re-pointing one link, and the content hash of every image
is kept to detect files that changed under the project.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

from detal.errors import DataError
from detal.files import IMAGE_SUFFIXES
from detal.labels import LabelProblem, parse_label_text
from detal.pool import Status
from detal.project.folder import label_relpath

__all__ = ["ImageScan", "image_info", "link_into", "walk_images"]


def walk_images(root: Path) -> Iterator[str]:
    """Image files under ``root`` as POSIX relpaths, in a stable (sorted) order."""
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            names = sorted(os.listdir(root / rel))
        except OSError as exc:
            raise DataError(f"{root / rel}: cannot list folder ({exc.strerror})") from None
        subdirs = []
        for name in names:
            if name.startswith("."):
                continue
            child = f"{rel}/{name}" if rel else name
            full = root / child
            if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES and full.is_file():
                yield child
            elif full.is_dir():
                subdirs.append(child)
        stack.extend(reversed(subdirs))


def image_info(path: Path) -> tuple[str, int, int]:
    """Content hash, width and height; the header is parsed, the pixels are not decoded."""
    from PIL import Image

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read image ({exc.strerror})") from None
    digest = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
    except Exception as exc:  # noqa: BLE001 - decoders raise many types on bad bytes
        # (UnidentifiedImageError, OSError, SyntaxError, ValueError; and once Ultralytics has
        # patched Image.open, ModuleNotFoundError from its HEIF fallback)
        reason = "empty file" if not data else f"not a readable image ({exc.__class__.__name__})"
        raise DataError(f"{path}: corrupt image, {reason}") from None
    if width <= 0 or height <= 0:
        raise DataError(f"{path}: corrupt image, size {width}x{height}")
    return digest, width, height


class ImageScan:
    """Streams image folders into store rows, copying and validating their labels into ``tmp``."""

    def __init__(self, tmp: Path, names: list[str], problems: list) -> None:
        self.tmp = tmp
        self.names = names
        self.problems = problems
        self.next_id = 0

    def rows(
        self, root: Path, prefix: str, status: str, labels: dict[str, tuple[Path, str]], key_prefix: str,
        require_labels: bool,
    ) -> Iterator[tuple]:
        """``(id, relpath, key, sha256, width, height, status)`` per image; matched labels are popped."""
        # Same-stem files can only clash within one folder, and the walk yields a
        # folder's files together: remembering one folder at a time keeps memory flat.
        seen_stems: dict[str, str] = {}
        folder = None
        for rel in walk_images(root):
            stem = rel.rsplit(".", 1)[0]
            if rel.rpartition("/")[0] != folder:
                folder = rel.rpartition("/")[0]
                seen_stems.clear()
            if stem in seen_stems:
                raise DataError(
                    f"{root / rel}: same name as {root / seen_stems[stem]} apart from the suffix; "
                    "YOLO labels are matched by name, rename one of them"
                )
            seen_stems[stem] = rel
            digest, width, height = image_info(root / rel)
            relpath = f"{prefix}/{rel}"
            label = labels.pop(stem, None)
            row_status = status
            if label is not None:
                path, text = label
                _, probs = parse_label_text(text, len(self.names), str(path))
                self.problems.extend(probs)
                if not probs:
                    target = self.tmp / label_relpath(relpath)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(text, encoding="utf-8")
                if status == Status.UNLABELED.value:
                    row_status = Status.LABELED.value
            elif require_labels:
                self.problems.append(LabelProblem(str(root / rel), 0, "validation image has no label file"))
            key = key_prefix + stem.replace("/", "__")
            yield (self.next_id, relpath, key, digest, width, height, row_status)
            self.next_id += 1


def link_into(project: Path, tmp: Path, src: Path, name: str) -> str:
    """Make ``src`` reachable from the project; return its path relative to the project."""
    src_res = src.resolve()
    try:
        return src_res.relative_to(project.resolve()).as_posix()
    except ValueError:
        pass
    os.symlink(src_res, tmp / name, target_is_directory=True)
    return name
