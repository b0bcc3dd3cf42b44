"""Which pool image a returned label is for: the one key rule of every reader.

A return names each image by a path, as the return spells it:

* a YOLO folder or zip: the label file's path, below its ``labels/`` folder
  when it has one, without ``.txt`` (``labels/sub/a.txt`` spells ``sub/a``);
* a CVAT YOLO 1.1 zip: the label file's path below ``obj_<subset>_data/``;
* COCO: the image's ``file_name`` (``sub/a.png``), a file name with its suffix;
* Label Studio: nothing to guess, ``detal pull`` knows the image of every task.

A pool image answers to its path in the image folder (``sub/a.png``, and
without the suffix ``sub/a``) and to its bundle name (``sub__a.png``, and
``sub__a``), the name bundles and exports give it. A key too long for a file
name is shortened in that name (:func:`detal.files.short_name`: its start,
``~`` and a hash of the whole key), and the shortened name answers for it. :meth:`PoolNames.match`
tries, in order:

1. the whole path: ``sub/a`` or ``sub__a`` (a return laid out like the image
   folder, or named like the bundle);
2. its last folders and name, two parts or more: ``batch-3/sub/a`` or an
   absolute ``/home/me/pool/sub/a.png`` (a return wrapped in a folder);
3. its base name, ``a``, which must be the base name of one pool image only.

A label file may be named after the image's stem (``x.png.txt`` for
``x.png.jpg``, as YOLO tools do) or after the image file (``x.png.txt`` for
``x.png``, as some tools do): a return is read the second way too only when
every one of its label files is named so (``file_name=None``); a COCO
``file_name`` names a file, and only when no image has that file name is it
taken without its suffix (a photo converted to another format).

A path is read as a returned path is written: ``\\`` as ``/``, a URL
(``http://host/pool/sub/a.png``, ``file:///...``) as its path, a Label Studio
local-files URL (``/data/local-files/?d=pool/sub/a.png``) as the file it names,
percent-decoded in both; and a path that names no image as written, but
does once percent-decoded (``my%20photos/a%20b.png``), names that image. A
label file of a return named mostly after stems, whose own name names no
stem but one image file (``x.png.jpg.txt`` beside ``y.txt``), is that
image's.

A path that fits two images at one step (``x.png.txt`` with ``x.png`` and
``x.png.jpg`` in the pool; ``batch/a.txt`` with ``a.png`` and ``sub/a.png``)
is refused naming both, and so is a path that fits none: a guess would put
the boxes on the wrong image without a word.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import PurePosixPath
from typing import NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

from detal.files import IMAGE_SUFFIXES, fold_name, short_name
from detal.labels import show_name

__all__ = ["Match", "PoolNames", "image_suffix", "spelled_path"]

_SHOWN = 3  # images named in one "could mean" message


class Match(NamedTuple):
    """The pool image a returned path is for (its key), or why there is none (``problem``)."""

    key: str | None
    problem: str | None = None


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
"""A URL's start (``http://``, ``file://``, ``s3://``); a Windows drive (``C:\\``) is not one."""

_LOCAL_FILES = "/data/local-files/?"
"""How Label Studio names a file of its local storage: ``/data/local-files/?d=pool/a.png``."""


def _url_path(name: str) -> str:
    """The file a URL names, percent-decoded: its ``d=`` for Label Studio local files, else its path."""
    if _LOCAL_FILES in name:
        found = parse_qs(name.split(_LOCAL_FILES, 1)[1]).get("d")
        if found:
            return found[0]
    if _URL.match(name):
        return unquote(urlsplit(name).path)
    return name


def spelled_path(name: str) -> tuple[str, ...]:
    """The parts of a returned path: ``\\`` read as ``/``, empty and ``.`` parts dropped; a URL as
    the file it names (see the module doc)."""
    return tuple(p for p in _url_path(name).replace("\\", "/").split("/") if p not in ("", "."))


def image_suffix(name: str) -> str:
    """``name``'s suffix if it is an image suffix (``.png``, any case), else ``""``."""
    suffix = PurePosixPath(name).suffix
    return suffix if suffix.lower() in IMAGE_SUFFIXES else ""


def _without_image_suffix(name: str) -> str:
    suffix = image_suffix(name)
    return name[: -len(suffix)] if suffix else name


def _stem_of(path: str) -> str:
    """``sub/a.png`` -> ``sub/a``: the last suffix off, as :attr:`PurePosixPath.suffix` sees one."""
    dot = path.rfind(".")
    if dot <= path.rfind("/") + 1 or dot == len(path) - 1:  # none, a hidden name, or a trailing dot
        return path
    return path[:dot]


def _as_key(stem: str) -> str:
    """The key init gives an image of this stem path: ``sub/a`` is ``sub__a``."""
    return stem.replace("/", "__")


class PoolNames:
    """Every name a pool image answers to, and :meth:`match`, the one key rule.

    ``images`` are ``(key, path in the image folder)`` pairs of the pool's
    images (not the validation images): ``("sub__a", "sub/a.png")``.

    Light on a large pool: one ``key -> path`` map (the other names are
    derived from it when asked: ``sub/a`` is key ``sub__a``, as init makes
    keys; any key made otherwise is remembered by its stem path), and the
    base names are indexed only when a return needs step 3.
    """

    def __init__(self, images: Iterable[tuple[str, str]]) -> None:
        self._path: dict[str, str] = {}  # key -> 'sub/a.png'
        self._odd: dict[str, str] = {}  # stem path -> key, for keys not made as init makes them
        self._short: dict[str, str] = {}  # short_name(key) -> key, for keys too long for a file name
        for key, path in images:
            self._path[key] = path
            stem = _stem_of(path)
            if _as_key(stem) != key:
                self._odd[stem] = key
            short = short_name(key)
            if short != key:
                self._short[short] = key
        self._base: dict[str, set[str]] | None = None  # 'a' -> keys, built at the first step 3
        self._base_file: dict[str, set[str]] = {}  # 'a.png' -> keys
        self._folded: dict[str, str] | None = None

    def _bases(self) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        if self._base is None:
            self._base = {}
            for key, path in self._path.items():
                base = path.rsplit("/", 1)[-1]
                self._base.setdefault(_stem_of(base), set()).add(key)
                self._base_file.setdefault(base, set()).add(key)
        return self._base, self._base_file

    def path(self, key: str) -> str:
        """The image's path in the image folder."""
        return self._path[key]

    # -- the rule ---------------------------------------------------------------------------

    def match(self, spelled: str, *, file_name: bool | None = False, by_base: bool = True) -> Match:
        """The key of the one image ``spelled`` names, or the problem (see the module doc).

        ``file_name``: ``True`` for an image file name (COCO), ``False`` for a
        label file's path without ``.txt``, ``None`` for one that may be
        either (every label file of the return ends in an image suffix).
        ``by_base=False`` stops before step 3 (the path itself must name it).
        """
        parts = spelled_path(spelled)
        if not parts:
            return Match(None, self.unknown(spelled))
        found = self._steps(spelled, parts, file_name, by_base)
        if found is None and file_name is False and image_suffix(parts[-1]):  # x.png.jpg.txt among y.txt
            found = self._steps(spelled, parts, "file only", by_base)
        if found is None and "%" in spelled and (decoded := spelled_path(unquote(spelled))) != parts:
            found = self._steps(spelled, decoded, file_name, by_base)
            if found is not None and found.key is None:
                found = None  # ambiguous only once decoded: the name as written is the one to report
        return found or Match(None, self.unknown(spelled, file_name=file_name is not False))

    def _steps(self, spelled: str, parts: tuple[str, ...], file_name: bool | str | None,
               by_base: bool) -> Match | None:
        """The match of the first step any image fits (see the module doc), ``None`` if none does."""
        steps: list[tuple[str, Callable[[str], set[str]], Callable[[str], set[str]]]] = [
            ("/".join(parts), self._stems_exact, self._files_exact)]
        steps += [("/".join(parts[i:]), self._stems_exact, self._files_exact) for i in range(1, len(parts) - 1)]
        if by_base:
            steps.append((parts[-1], self._stems_base, self._files_base))
        for n, (name, stems, files) in enumerate(steps):
            found = self._candidates(name, stems, files, file_name)
            if len(found) == 1:
                return Match(found.pop())
            if found:
                return Match(None, self.ambiguous(spelled, found, by_base=by_base and n == len(steps) - 1))
        return None

    @staticmethod
    def _candidates(name: str, stems: Callable[[str], set[str]], files: Callable[[str], set[str]],
                    file_name: bool | str | None) -> set[str]:
        """``file_name``: as :meth:`match` takes it, or ``"file only"`` (an image file name, never a stem)."""
        if file_name == "file only":
            return files(name)
        if file_name is None:
            return stems(name) | files(name)
        if not file_name:
            return stems(name)
        return files(name) or stems(_without_image_suffix(name))

    def _by_stem(self, stem: str) -> str | None:
        """The key of the image whose path without suffix is ``stem`` (``sub/a``)."""
        key = self._odd.get(stem) or _as_key(stem)
        path = self._path.get(key)
        return key if path is not None and _stem_of(path) == stem else None

    def _by_bundle(self, name: str) -> str | None:
        """The key of the image whose bundle name (key and suffix) is ``name`` (``sub__a.png``)."""
        stem = _stem_of(name)
        key = self._short.get(stem, stem)
        path = self._path.get(key)
        return key if path is not None and stem != name and path.endswith(name[len(stem):]) else None

    def _stems_exact(self, name: str) -> set[str]:
        by_key = name if name in self._path else self._short.get(name)
        return {k for k in (self._by_stem(name), by_key) if k is not None}

    def _files_exact(self, name: str) -> set[str]:
        by_file = self._by_stem(_stem_of(name))
        if by_file is not None and self._path[by_file] != name:
            by_file = None
        return {k for k in (by_file, self._by_bundle(name)) if k is not None}

    def _stems_base(self, name: str) -> set[str]:
        return self._bases()[0].get(name, set()) | self._stems_exact(name)

    def _files_base(self, name: str) -> set[str]:
        return self._bases()[1].get(name, set()) | self._files_exact(name)

    # -- messages -----------------------------------------------------------------------------

    def ambiguous(self, spelled: str, keys: set[str], *, by_base: bool = False) -> str:
        """The message for a returned path that could name any of the images ``keys``."""
        paths = sorted(self._path[k] for k in keys)
        shown = " or ".join(show_name(p) for p in paths[:_SHOWN])
        more = f" (and {len(paths) - _SHOWN} more)" if len(paths) > _SHOWN else ""
        if by_base:
            how = ("only its base name matches; lay the return out like the image folder "
                   "(sub/a.txt) or name the file as the bundle does (sub__a.txt)")
        else:
            how = "refused rather than guessed; rename one of the images, or return this one as COCO"
        return f"{show_name(spelled)} could mean image {shown}{more}: {how}"

    def unknown(self, spelled: str, *, file_name: bool = False) -> str:
        """The message for a returned path that names no pool image, with a look-alike if there is one."""
        if self._folded is None:
            self._folded = {}
            for key, path in self._path.items():
                suffix = path[len(_stem_of(path)):]
                for name in (_stem_of(path), key, path, key + suffix):
                    self._folded.setdefault(fold_name(name), name)
        tries = [spelled, _without_image_suffix(spelled)] if file_name else [spelled]
        hint = ""
        for name in tries:
            alike = self._folded.get(fold_name(name))
            if alike is not None and alike != name:
                same = unicodedata.normalize("NFC", alike) == unicodedata.normalize("NFC", name)
                hint = f"; it differs from {show_name(alike)} only in {'Unicode normalisation' if same else 'case'}"
                break
        return f"label for an image the project does not have ({show_name(spelled)}{hint})"
