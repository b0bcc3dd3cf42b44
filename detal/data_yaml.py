"""A fully labeled dataset from an Ultralytics ``data.yaml``: what ``detal simulate`` runs on.

``train`` and ``val`` may be folders, ``.txt`` lists of images, or lists of
either; labels sit at the ``images -> labels`` path convention, and an image
without a label file has no objects. Only the image suffixes detal reads
(:data:`detal.files.IMAGE_SUFFIXES`, the adapter's list) are accepted.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detal.adapter import LabeledImage
from detal.errors import DataError
from detal.files import IMAGE_SUFFIXES, read_small_text
from detal.labels import parse_label_text, yaml_class_names
from detal.safeyaml import load_yaml

__all__ = ["Dataset", "label_path", "load_dataset"]


@dataclass(frozen=True)
class Dataset:
    """A fully labeled dataset: the pool (``train``) and validation items, and class names."""

    names: list[str]
    pool: list[LabeledImage]
    val: list[LabeledImage]
    source: Path

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps(self.names).encode())
        for image, _ in self.pool:
            h.update(f"p:{image}\n".encode())
        for image, _ in self.val:
            h.update(f"v:{image}\n".encode())
        return h.hexdigest()[:16]


def label_path(image: Path) -> Path:
    """Ultralytics' convention: the last ``/images/`` in the path becomes ``/labels/``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _check_suffix(image: Path, where: Path) -> Path:
    if image.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataError(f"{where}: {image} is not an image detal reads ({', '.join(IMAGE_SUFFIXES)})")
    return image


def _images_of(entry: str, root: Path, yaml_path: Path, key: str) -> list[Path]:
    p = Path(entry)
    if not p.is_absolute():
        p = root / p
    if p.is_dir():
        return sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file())
    if p.is_file() and p.suffix == ".txt":
        out = []
        for line in p.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line:
                continue
            q = Path(line)
            if not q.is_absolute():
                q = (p.parent / line) if line.startswith("./") else (root / line)
            out.append(_check_suffix(q, p))
        missing = [q for q in out if not q.is_file()]
        if missing:
            raise DataError(f"{p}: image {missing[0]} listed but not found ({len(missing)} missing)")
        return out
    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
        return [p]
    raise DataError(f"{yaml_path}: {key} path {p} not found (expected a folder or a .txt list of images)")


def _items(entries: Any, root: Path, yaml_path: Path, key: str, n_classes: int) -> list[LabeledImage]:
    if isinstance(entries, str):
        entries = [entries]
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise DataError(f"{yaml_path}: {key} must be a path or a list of paths")
    images: list[Path] = []
    for entry in entries:
        images.extend(_images_of(entry, root, yaml_path, key))
    if not images:
        raise DataError(f"{yaml_path}: {key} holds no images")
    if len(set(images)) != len(images):
        raise DataError(f"{yaml_path}: {key} lists the same image twice")
    items = [(img, label_path(img)) for img in images]
    if not any(lbl.is_file() for _, lbl in items):
        raise DataError(
            f"{yaml_path}: no label files found for {key} (looked at {items[0][1]}); "
            "simulate needs a fully labeled dataset"
        )
    for _, lbl in items:
        if lbl.is_file():
            _, problems = parse_label_text(lbl.read_text(encoding="utf-8"), n_classes, str(lbl))
            if problems:
                raise DataError(f"malformed label file {problems[0]}")
    return items


def load_dataset(data_yaml: str | Path) -> Dataset:
    """Read an Ultralytics ``data.yaml`` (``path``, ``train``, ``val``, ``names``).

    ``train`` and ``val`` may be folders, ``.txt`` lists of images, or lists of
    either. Labels sit at the ``images -> labels`` path convention; an image
    without a label file has no objects. Every label file is checked.
    """
    yaml_path = Path(data_yaml)
    if not yaml_path.is_file():
        raise DataError(f"{yaml_path}: data.yaml not found (build the digits with `detal data digits`)")
    text = read_small_text(yaml_path, DataError, "data.yaml")
    data = load_yaml(text, str(yaml_path), DataError)
    if not isinstance(data, dict):
        raise DataError(f"{yaml_path}: top level must be a mapping")
    for key in ("train", "val", "names"):
        if key not in data or data[key] in (None, "", []):
            raise DataError(f"{yaml_path}: missing `{key}`")
    names, why = yaml_class_names(data)
    if names is None:
        raise DataError(f"{yaml_path}: {why}")
    root = Path(data.get("path") or yaml_path.parent)
    if not root.is_absolute():
        root = (yaml_path.parent / root).resolve()
    pool = _items(data["train"], root, yaml_path, "train", len(names))
    val = _items(data["val"], root, yaml_path, "val", len(names))
    overlap = {i for i, _ in pool} & {i for i, _ in val}
    if overlap:
        raise DataError(f"{yaml_path}: {len(overlap)} image(s) are in both train and val, e.g. {min(overlap)}")
    return Dataset(names, pool, val, yaml_path)
