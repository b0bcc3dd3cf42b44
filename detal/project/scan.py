"""Reading an image folder into the store at ``init``: walk, hash, measure, match labels.

Images are referenced, not copied: a pool may hold 100,000 files and copying
would double the disk use and the time of ``init``; hard links fail across
file systems. A symbolic link ``PROJECT/images -> DIR`` keeps every stored
path relative to the project (``images/sub/a.jpg``), so a moved image folder
only needs the link pointed at its new place once every file is there, and
the content hash of every image is kept to detect files that changed under
the project (:mod:`detal.project.verify`, which also refuses a folder that
went away rather than taking its images out).

The walk follows a linked folder once, never twice: the real path of every
folder entered is remembered, so a link ``self -> .`` or a loop adds
nothing, and the project folder itself (which may live inside its image
folder, with an ``images`` link back to it) is never scanned. A file name
with a control character (a newline, a tab ...) is refused: Ultralytics
drops such an image from training without a word. Every image the image
check refuses (:mod:`detal.image_check`: corrupt, or one Ultralytics would
leave out; an image that comes with labels is decoded too) is named with the
reason (:attr:`ImageScan.bad`), and so is every name Windows cannot hold
(:func:`windows_problem`: ``a<b>.png``, ``CON.png``, a folder ending in a
space or a dot), and two images whose bundle names clash (``sub/a.png``
against ``sub__a.png``, or names that differ only in Unicode normalisation
or in case, ``IMG_1.JPG`` and ``img_1.jpg``) are refused naming both: a
vendor on Windows or macOS would get one file for two.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from detal.errors import DataError
from detal.files import IMAGE_SUFFIXES, fold_name, name_clash, short_name
from detal.image_check import inspect_image
from detal.labels import LabelProblem, parse_label_text, show_name
from detal.pool import Status
from detal.project.paths import label_relpath

__all__ = ["ImageScan", "image_info", "image_key", "link_into", "walk_images", "windows_problem"]


_CONTROL_NAMES = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab"}
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc, all of it

_WINDOWS_CHARS = '<>:"\\|?*'
"""Characters Windows does not allow in a file or folder name (besides control characters)."""

_WINDOWS_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"{port}{n}" for port in ("COM", "LPT") for n in [*"0123456789", "\u00b9", "\u00b2", "\u00b3"]]
)
"""Names Windows keeps for devices, with any suffix (``CON.png``, ``aux.tar.jpg``), in any case."""


_WINDOWS_ANY = re.compile(
    r'[<>:"\\|?*]|[ .](?:/|$)|(?:^|/)(?:CON|PRN|AUX|NUL|COM[0-9\u00b9\u00b2\u00b3]|LPT[0-9\u00b9\u00b2\u00b3]) *(?:[./]|$)',
    re.IGNORECASE,
)
"""Whether a path may hold a name Windows cannot: one search, so a clean pool costs one regex an image."""


def windows_problem(rel: str) -> tuple[str, str] | None:
    """``(the part of rel, what is wrong)`` for the first folder or file name Windows cannot hold, or ``None``.

    A vendor on Windows could not unzip a bundle holding it, nor keep
    labels laid out like the image folder: a character Windows does not
    allow (``a<b>.png``), a device name (``CON.png``, ``aux.jpg``), or a name
    ending in a space or a dot (Windows drops them, so ``sub.`` is ``sub``).
    """
    if _WINDOWS_ANY.search(rel) is None:
        return None
    parts = rel.split("/")
    for i, name in enumerate(parts):
        where = "/".join(parts[: i + 1])
        bad = next((ch for ch in name if ch in _WINDOWS_CHARS), None)
        if bad is not None:
            return where, f"the name has {bad!r}, which Windows does not allow"
        device = name.split(".", 1)[0].rstrip(" ")
        if device.upper() in _WINDOWS_DEVICES:
            return where, f"{device!r} is a name Windows keeps for a device"
        if name.endswith((" ", ".")):
            return where, f"the name ends in a {'space' if name.endswith(' ') else 'dot'}, which Windows drops"
    return None


def control_character(name: str) -> str | None:
    """How to call the first control character in ``name`` (``"a newline"``), or ``None``."""
    found = _CONTROL.search(name)
    if found is None:
        return None
    ch = found.group()
    return _CONTROL_NAMES.get(ch, f"the control character U+{ord(ch):04X}")


def _is(entry: os.DirEntry, kind: str) -> bool:
    """``entry.is_file()`` / ``is_dir()`` (links followed), False where the target cannot be reached."""
    try:
        return entry.is_file() if kind == "file" else entry.is_dir()
    except OSError:  # a link loop, a vanished target: pathlib's is_file/is_dir say False too
        return False


def _dead_image_link(entry: os.DirEntry) -> bool:
    """A link named like an image that leads nowhere (its target gone, or a loop)."""
    if os.path.splitext(entry.name.rstrip(" ."))[1].lower() not in IMAGE_SUFFIXES or not entry.is_symlink():
        return False
    try:
        os.stat(entry.path)
    except OSError:
        return True
    return False


def walk_images(root: Path, exclude: Iterable[Path] = (), dead_links: list[str] | None = None) -> Iterator[str]:
    """Image files under ``root`` as POSIX relpaths, in a stable (sorted) order.

    A link named like an image whose target cannot be reached (gone, a loop)
    is no image; its relpath goes to ``dead_links`` when given, for a note.

    A folder is entered once: one reached again through a link (by its real
    path) is skipped, and so are the folders in ``exclude`` (the project).
    One ``scandir`` a folder: the entry types come with the listing, so a
    plain file costs no ``stat`` (a million-image pool is a million fewer
    system calls).
    """
    skip = {os.path.realpath(p) for p in exclude}
    seen = {os.path.realpath(root)}
    stack = [""]
    while stack:
        rel = stack.pop()
        folder = os.path.join(root, rel) if rel else os.fspath(root)
        try:
            with os.scandir(folder) as it:
                entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
        except OSError as exc:
            raise DataError(f"{root / rel}: cannot list folder ({exc.strerror})") from None
        subdirs = []
        for entry in entries:
            name = entry.name
            child = f"{rel}/{name}" if rel else name
            if os.path.splitext(name.rstrip(" ."))[1].lower() in IMAGE_SUFFIXES and _is(entry, "file"):
                what = control_character(child)
                if what is not None:
                    raise DataError(
                        f"{root}: image {show_name(child)} has {what} in its name; "
                        "Ultralytics would drop it without a word, rename it"
                    )
                yield child
            elif dead_links is not None and _dead_image_link(entry):
                dead_links.append(child)
            elif _is(entry, "dir"):
                real = os.path.realpath(entry.path)
                if real in seen or real in skip:
                    continue
                seen.add(real)
                subdirs.append(child)
        stack.extend(reversed(subdirs))


def image_info(path: str | Path, *, decode: bool = False) -> tuple[str, int, int]:
    """Content hash, width and height of an image Ultralytics will train on (:mod:`detal.image_check`).

    ``decode``: also decode it (for images that come with labels); otherwise the
    header is parsed and the pixels are not decoded.
    """
    facts = inspect_image(path, decode=decode)
    return facts.sha256, facts.width, facts.height


class ImageScan:
    """Streams image folders into store rows, copying and validating their labels into ``tmp``."""

    def __init__(self, tmp: Path, names: list[str], problems: list, exclude: Iterable[Path] = ()) -> None:
        self.tmp = tmp
        self.names = names
        self.problems = problems
        self.exclude = list(exclude)
        self.bad: list[str] = []  # one message per corrupt or unreadable image
        self.dead_links: list[str] = []  # image-named links that lead nowhere, as root/relpath
        self.next_id = 0
        # The folded keys (NFC, lower case) of every folder so far: a set of the keys alone, since a
        # million-image pool would hold 240 MiB as key -> (relpath, key). The rare clash finds the
        # other file again.
        self._keys: set[str] = set()
        self._roots: list[tuple[Path, str]] = []  # (folder, key prefix) of every scan so far
        self._windows: set[str] = set()  # names Windows cannot hold, reported

    def rows(
        self, root: Path, prefix: str, status: str, labels: dict[str, tuple[Path, str]], key_prefix: str,
        require_labels: bool,
    ) -> Iterator[tuple]:
        """``(id, relpath, key, sha256, width, height, status)`` per image; matched labels are popped."""
        # Same-stem files can only clash within one folder, and the walk yields a
        # folder's files together: remembering one folder at a time keeps memory flat.
        seen_stems: dict[str, str] = {}
        folder = None
        self._roots.append((root, key_prefix))
        base = os.fspath(root)  # str paths: a Path per image costs more than reading a tiny one
        dead: list[str] = []
        for rel in walk_images(root, self.exclude, dead):
            stem = _stem(rel)
            if rel.rpartition("/")[0] != folder:
                folder = rel.rpartition("/")[0]
                seen_stems.clear()
            if stem in seen_stems:
                first, second = sorted((rel, seen_stems[stem]))
                raise DataError(
                    f"{root}: images {show_name(first)} and {show_name(second)} have the same "
                    "name apart from the suffix; YOLO labels are matched by name, rename one of them"
                )
            seen_stems[stem] = rel
            windows = windows_problem(rel)
            if windows is not None:  # named once, even for a folder of many images
                part, what = windows
                if part not in self._windows:
                    self._windows.add(part)
                    kind = "image" if part == rel else "folder"
                    self.bad.append(f"{root}: {kind} {show_name(part)}: {what}; rename it (a vendor on "
                                    "Windows could not unzip the bundle)")
                continue
            key = _key(key_prefix, stem)
            self._check_key(root, rel, key)
            label = labels.pop(stem, None)
            try:  # an image that comes with labels is trained on: decoded, as training will
                digest, width, height = image_info(os.path.join(base, rel),
                                                   decode=label is not None or require_labels)
            except DataError as exc:
                self.bad.append(str(exc))
                continue
            relpath = f"{prefix}/{rel}"
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
            yield (self.next_id, relpath, key, digest, width, height, row_status)
            self.next_id += 1
        self.dead_links.extend(str(root / rel) for rel in dead)

    def _check_key(self, root: Path, rel: str, key: str) -> None:
        """Refuse a key that one file system may take for another's: the bundle would hold both.

        What must differ is the bundle name, the key as :func:`short_name` bounds it.
        """
        name = short_name(key)
        folded = fold_name(name)
        if folded not in self._keys:
            self._keys.add(folded)
            return
        other, other_key = self._first_with(folded)
        first, second = sorted((other, rel))
        how = name_clash(short_name(other_key), name)
        if how is not None:
            raise DataError(f"{root}: images {show_name(first)} and {show_name(second)} have names that "
                            f"{how}; rename one of them")
        raise DataError(
            f"{root}: images {show_name(first)} and {show_name(second)} get the same bundle name "
            f"{show_name(name)} (a '__' in a file name stands for a subfolder); rename one of them"
        )

    def _first_with(self, folded: str) -> tuple[str, str]:
        """``(relpath, key)`` of the first image scanned whose bundle name is ``folded`` in NFC and
        lower case (a walk again)."""
        for root, key_prefix in self._roots:
            for rel in walk_images(root, self.exclude):
                key = _key(key_prefix, _stem(rel))
                if (fold_name(short_name(key)) == folded
                        and windows_problem(rel) is None):
                    return rel, key
        raise DataError(f"{self._roots[-1][0]}: an image vanished during the scan; run init again")


def _stem(rel: str) -> str:
    return rel.rsplit(".", 1)[0]


def _key(key_prefix: str, stem: str) -> str:
    """An image's key (its bundle name): ``sub/a`` is ``sub__a``, with ``val:`` before a val image's."""
    return key_prefix + stem.replace("/", "__")


def image_key(key_prefix: str, rel: str) -> str:
    """The key of the image at ``rel`` in its folder (``sub/a.png`` is ``sub__a``)."""
    return _key(key_prefix, _stem(rel))


def link_into(project: Path, tmp: Path, src: Path, name: str) -> str:
    """Make ``src`` reachable from the project; return its path relative to the project."""
    src_res = src.resolve()
    try:
        return src_res.relative_to(project.resolve()).as_posix()
    except ValueError:
        pass
    os.symlink(src_res, tmp / name, target_is_directory=True)
    return name
