"""Time ``detal push`` and ``detal pull`` of a 1,000-image batch against a real Label Studio.

Builds a project whose cycle 1 (fake adapter, canned pre-labels) sends N
images out (default 1,000), starts Label Studio 1.23.2 from ``.venv-ls`` on
127.0.0.1 with a throwaway data dir (``make label-studio`` first), and prints:

* push: upload of the images + import of the tasks with predictions;
* push again: the no-op (every image already has a task);
* pull of the batch with no annotation yet (fetch only);
* pull of the batch with every task annotated (fetch, convert, validated import).

The annotations are made through the API before the last pull and are not
timed. Images are WxH JPEGs (``--size``, default 320x240).

    .venv/bin/python benchmarks/bench_labelstudio.py
    .venv/bin/python benchmarks/bench_labelstudio.py --n 1000 --size 640x480
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import lsserver

from detal.config import load_config
from detal.fake import FakeAdapter
from detal.labelstudio import Client, pull_labels, push_batch
from detal.project import import_labels, init_project, run_cycle
from detal.project.paths import ProjectPaths

NAMES = ["cat", "dog", "bird"]


def make_project(root: Path, n_out: int, size: tuple[int, int]) -> Path:
    """A pool of 2.5 * n_out images; the initial 2% labeled; cycle 1 sends n_out out."""
    total = int(n_out * 2.5)
    images = root / "images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    w, h = size
    ramp = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    for i in range(total):
        colour = rng.integers(0, 256, 3).astype(np.float32)
        pixels = np.broadcast_to(ramp * 0.5 + colour * 0.5, (h, w, 3)).astype(np.uint8)
        Image.fromarray(pixels).save(images / f"im{i:05d}.jpg", quality=85)
    (root / "classes.txt").write_text("\n".join(NAMES) + "\n")
    cfg = load_config(None, ["initial_fraction=0.02", "batch_fraction=0.4", "subset_fraction=0.5",
                             "max_labeled_fraction=0.5", "seed=0"])
    project = root / "proj"
    init_project(project, images, root / "classes.txt", config=cfg)
    returned = root / "returned0"
    returned.mkdir()
    for name in (r.split(",")[0] for r in _manifest(project, 0)):
        (returned / (name.rsplit(".", 1)[0] + ".txt")).write_text("0 0.5 0.5 0.2 0.2\n")
    import_labels(project, returned)
    run_cycle(project, FakeAdapter(len(NAMES), seed=1))
    return project


def _manifest(project: Path, cycle: int) -> list[str]:
    import zipfile

    with zipfile.ZipFile(ProjectPaths(project).bundle(cycle)) as zf:
        return zf.read("manifest.csv").decode().splitlines()[1:]


def annotate_all(url: str, token: str, ls_project: int) -> int:
    """Accept every task's prediction as it is, one annotation per task (as the UI would)."""
    client = Client(url, token)
    n = 0
    for task in client.tasks(ls_project):
        result = [{k: v for k, v in r.items() if k != "score"}
                  for p in task.get("predictions", [])[:1] for r in p["result"]]
        req = urllib.request.Request(
            f"{url}/api/tasks/{task['id']}/annotations/", data=json.dumps({"result": result}).encode(),
            method="POST", headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            resp.read()
        n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="images in the batch (default 1000)")
    parser.add_argument("--size", default="320x240", help="image size WxH (default 320x240)")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    if not lsserver.available():
        sys.exit("no .venv-ls: run `make label-studio` first")

    with tempfile.TemporaryDirectory(prefix="bench-ls-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        project = make_project(root / "work", args.n, size)  # type: ignore[arg-type]
        print(f"project: {time.perf_counter() - t0:.1f} s to build ({args.n} images out, "
              f"{size[0]}x{size[1]} JPEG)")
        t0 = time.perf_counter()
        server = lsserver.Server(lsserver.fresh_data(root / "ls"))
        server.start()
        print(f"server: {time.perf_counter() - t0:.1f} s to start (Label Studio 1.23.2, {server.url})")
        env = {"LABEL_STUDIO_API_KEY": server.token}
        try:
            t0 = time.perf_counter()
            report = push_batch(project, server.url, env=env)
            t_push = time.perf_counter() - t0
            assert report.n_pushed == args.n, report
            print(f"push:              {t_push:6.2f} s  ({report.n_pushed} tasks, "
                  f"{report.n_predictions} with predictions, {args.n / t_push:.0f} tasks/s)")
            t0 = time.perf_counter()
            again = push_batch(project, env=env)
            assert again.n_pushed == 0 and again.n_present == args.n, again
            print(f"push again:        {time.perf_counter() - t0:6.2f} s  (no-op)")
            t0 = time.perf_counter()
            empty = pull_labels(project, env=env)
            assert empty.n_unannotated == args.n, empty
            print(f"pull, unannotated: {time.perf_counter() - t0:6.2f} s  ({empty.n_unannotated} "
                  "tasks fetched, nothing to import)")
            t0 = time.perf_counter()
            n = annotate_all(server.url, server.token, report.ls_project)
            print(f"(annotating {n} tasks through the API took {time.perf_counter() - t0:.1f} s, "
                  "not part of detal)")
            t0 = time.perf_counter()
            pulled = pull_labels(project, env=env)
            t_pull = time.perf_counter() - t0
            assert pulled.n_labeled == args.n and pulled.remaining == 0, pulled
            print(f"pull, annotated:   {t_pull:6.2f} s  ({pulled.n_labeled} labels imported, "
                  f"{args.n / t_pull:.0f} tasks/s)")
            ids = [t["id"] for t in Client(server.url, server.token).tasks(report.ls_project,
                                                                          include="id")]
            t0 = time.perf_counter()
            fetched = list(Client(server.url, server.token).tasks(report.ls_project, ids=ids))
            print(f"  of which fetching the {len(fetched)} annotated tasks: "
                  f"{time.perf_counter() - t0:.2f} s (the rest: conversion and detal import)")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
