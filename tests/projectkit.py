"""Helpers for the project tests: tiny image pools, returned labels, snapshots."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import zipfile
from pathlib import Path

from PIL import Image

from detal.config import load_config
from detal.project import init_project

NAMES = ["cat", "dog", "bird"]


def make_images(folder: Path, n: int, *, start: int = 0, sub_every: int = 0) -> list[Path]:
    """``n`` distinct small PNGs; every ``sub_every``-th goes into a subfolder."""
    out = []
    for i in range(start, start + n):
        rel = f"sub/im{i:03d}.png" if sub_every and i % sub_every == 0 else f"im{i:03d}.png"
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16 + i % 7, 12 + i % 5), (i % 256, (7 * i) % 256, 99)).save(path)
        out.append(path)
    return out


def write_classes(path: Path, names=NAMES) -> Path:
    path.write_text("\n".join(names) + "\n")
    return path


def make_project(tmp: Path, n: int = 40, *, name: str = "proj", val: int = 0, **cfg) -> Path:
    """A project over ``n`` images; 10% initial batch, 10% batches, 20% subsets by default."""
    settings = {"initial_fraction": 0.1, "batch_fraction": 0.1, "subset_fraction": 0.2,
                "max_labeled_fraction": 0.42, "seed": 0, **cfg}
    images = tmp / "images"
    if not images.exists():
        make_images(images, n, sub_every=10)
    classes = write_classes(tmp / "classes.txt")
    kwargs = {}
    if val:
        make_images(tmp / "val", val, start=500)
        (tmp / "val_labels").mkdir(exist_ok=True)
        for p in (tmp / "val").glob("*.png"):
            (tmp / "val_labels" / f"{p.stem}.txt").write_text("1 0.5 0.5 0.25 0.25\n")
        kwargs = {"val_images": tmp / "val", "val_labels": tmp / "val_labels"}
    overrides = [f"{k}={v}" for k, v in settings.items()]
    init_project(tmp / name, images, classes, config=load_config(None, overrides), **kwargs)
    return tmp / name


def batch_names(project: Path, cycle: int) -> list[str]:
    """Image file names in a cycle's bundle, in manifest order."""
    with zipfile.ZipFile(project / "cycles" / str(cycle) / f"batch-{cycle}.zip") as zf:
        rows = zf.read("manifest.csv").decode().splitlines()[1:]
    return [r.split(",")[0] for r in rows]


def write_returned(folder: Path, project: Path, cycle: int, line: str = "0 0.5 0.5 0.2 0.2",
                   only: int | None = None) -> Path:
    """Labels for a batch as a vendor returns them: one ``<key>.txt`` per bundle image."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in batch_names(project, cycle)[:only]:
        (folder / (name.rsplit(".", 1)[0] + ".txt")).write_text(line + "\n" if line else "")
    return folder


def selected_keys(project: Path) -> list[str]:
    """Keys of the images that are out (selected, not yet labeled), by id."""
    conn = sqlite3.connect(f"file:{project / 'detal.db'}?mode=ro", uri=True)
    try:
        return [k for (k,) in conn.execute("SELECT key FROM images WHERE status = 'selected' ORDER BY id")]
    finally:
        conn.close()


def label_cycle(project: Path, cycle: int, tmp: Path, line: str = "0 0.5 0.5 0.2 0.2"):
    from detal.project import import_labels

    return import_labels(project, write_returned(tmp / f"returned{cycle}", project, cycle, line))


def db_rows(project: Path) -> dict[str, list[tuple]]:
    """Every row of every table (read-only connection)."""
    conn = sqlite3.connect(f"file:{project / 'detal.db'}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        conn.close()


def snapshot(root: Path) -> dict:
    """Files under ``root`` (hash per file, link targets), plus the DB rows of a project in it."""
    files = {}
    if root.exists():
        for dirpath, dirs, names in os.walk(root):
            for name in dirs + names:
                full = Path(dirpath) / name
                rel = full.relative_to(root).as_posix()
                if name.startswith("detal.db"):
                    continue
                if full.is_symlink():
                    files[rel] = "-> " + os.readlink(full)
                elif full.is_file():
                    files[rel] = hashlib.sha256(full.read_bytes()).hexdigest()
                else:
                    files[rel] = "dir"
    out = {"files": files}
    for db in sorted(root.rglob("detal.db")) if root.exists() else []:
        out[str(db.relative_to(root))] = db_rows(db.parent)
    return out
