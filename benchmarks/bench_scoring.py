"""Scoring throughput and memory: detal's predict path against ``YOLO(weights).predict``.

    .venv/bin/python benchmarks/bench_scoring.py [--model yolov8n.yaml | --weights W.pt]
        [--imgsz 320] [--batch 32] [--device cpu] [--n 500] [--rounds 3]
        [--memory 2000,10000] [--memory-imgsz 128] [--memory-side 0] [--memory-embeddings] [--only-detal]
        [--decode-workers 0,1,2,4] [--decode-n 400]

(a) Throughput, in one process, on the same ``--n`` generated images, with the
same weights, imgsz, device and thresholds:

- detal: ``UltralyticsAdapter.predict`` (streaming reader thread, batches of
  ``--batch`` images of one letterboxed shape, Ultralytics' NMS, full class
  vectors), scored with ``detal.scoring``;
- ``YOLO(weights).predict(folder, stream=True)`` with its default batch (1),
  and again with ``batch=--batch``;
- detal with DFL logits and image embeddings read in the same pass
  (``with_dfl=True, with_embeddings=True``) and scored with the mix
  ``{binary_entropy: 1, localization: 1}``: its cost over plain detal scoring
  is printed as a percentage (the goal is <= 5%);
- the limit: the bare batched forward pass over tensors letterboxed and loaded
  into memory beforehand (no decoding, no NMS).

``--only-detal`` runs only the two detal paths (plain, and with DFL and
embeddings).

Each is run ``--rounds`` times, alternating, after a warm-up; the best round
counts, in wall-clock images per second and in images per CPU-second of this
process (steadier when other jobs share the machine). (b) RSS of a fresh process scoring each of ``--memory`` images:
once the model is loaded and warm (start), the most while scoring (peak,
sampled every 20 ms, and ``ru_maxrss``), once every image is scored with the
results still held (end), and the growth from start to peak. The scoring is
``detal score``'s own :func:`detal.score_images.score_pass` (chunks of
``SCORE_CHUNK`` images, only a compact score table kept between them). If the loader
held every image, the peak would grow with the count; what does grow is the
results, which the printed bytes per image account for. ``--memory-side N``
scores N x N JPEGs instead of 160 x 120 ones (64 is quick to make at 100,000);
``--memory-embeddings`` reads each image's embedding too, as a cycle does.

Without ``--weights`` the model is ``--model`` built untrained with 3 classes
and a class-score head drawn at random (seeded), so that images get a few
boxes each; speed depends on the architecture, imgsz and boxes per image, not
on what the weights learned. Images and weights go under ``--workdir``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from detal.config import Config
from detal.score_images import score_pass
from detal.scoring import score_predictions
from detal.ultra import UltralyticsAdapter, prepare_ultralytics

ROOT = Path(__file__).resolve().parent.parent

SIZES = [(480, 640), (640, 480), (512, 512)]  # (h, w), cycled: three letterbox shapes


def make_images(folder: Path, n: int, sizes: list[tuple[int, int]], seed: int = 0) -> list[Path]:
    """``n`` JPEGs of drawn rectangles and circles on noise; reused when already there."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"img{i:05d}.jpg" for i in range(n)]
    if all(p.is_file() for p in paths):
        return paths
    rng = np.random.default_rng(seed)
    for i, path in enumerate(paths):
        if path.is_file():
            continue
        h, w = sizes[i % len(sizes)]
        image = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
        for _ in range(int(rng.integers(1, 5))):
            s = int(rng.integers(h // 10, h // 3))
            x, y = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
            color = tuple(int(c) for c in rng.integers(80, 256, 3))
            if rng.random() < 0.5:
                cv2.rectangle(image, (x, y), (x + s, y + s), color, -1)
            else:
                cv2.circle(image, (x + s // 2, y + s // 2), s // 2, color, -1)
        cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return paths


def make_weights(model_yaml: str, path: Path, calibration: list[Path], imgsz: int, seed: int = 0) -> Path:
    """An untrained ``model_yaml`` with 3 classes and a random class head, saved as a .pt.

    Freshly built, every BatchNorm has identity statistics and the network
    answers almost the same for any image. Its BatchNorm statistics are first
    estimated on ``calibration`` images; a class head drawn at random then
    gives scores that differ from anchor to anchor, so images get boxes.
    """
    if path.is_file():
        return path
    prepare_ultralytics()
    import cv2
    import torch
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(seed)
    model = DetectionModel(model_yaml, nc=3, verbose=False)
    model.names = {0: "a", 1: "b", 2: "c"}
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batch
            m.reset_running_stats()
    ims = [cv2.resize(cv2.imread(str(p)), (imgsz, imgsz))[..., ::-1] for p in calibration]
    x = torch.from_numpy(np.stack(ims).copy()).permute(0, 3, 1, 2).float() / 255
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for branch in model.model[-1].cv3:
            conv = branch[-1]
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * 0.1)
            conv.bias.fill_(-9.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model, "train_args": {}}, path)
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


# ----------------------------------------------------------------------------- (a) throughput


def run_detal(
    adapter: UltralyticsAdapter, weights: Path, paths: list[Path], cfg: Config, extras: bool = False
) -> int:
    result = adapter.predict(
        weights, paths, conf=cfg.score_conf, iou=cfg.iou, batch=cfg.predict_batch, progress=False,
        with_dfl=extras, with_embeddings=extras,
    )
    score_predictions(result.predictions, cfg)
    return sum(len(p.detections) for p in result.predictions)


def run_yolo(model, folder: Path, cfg: Config, batch: int) -> int:
    device = None if cfg.device == "auto" else cfg.device
    boxes = 0
    for r in model.predict(
        source=str(folder), imgsz=cfg.imgsz, conf=cfg.score_conf, iou=cfg.iou, device=device,
        batch=batch, stream=True, verbose=False,
    ):
        boxes += len(r.boxes)
    return boxes


def preload(adapter: UltralyticsAdapter, weights: Path, paths: list[Path], batch: int) -> list:
    """Letterboxed float tensors in batches of one shape, as detal's loader makes them (NHWC)."""
    import torch
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils.patches import imread

    loaded = adapter.load(weights)
    letterbox = LetterBox(loaded.imgsz, auto=True, stride=loaded.stride)
    by_shape: dict[tuple, list] = {}
    for p in paths:
        im = letterbox(image=imread(str(p)))
        by_shape.setdefault(im.shape, []).append(im)
    batches = []
    for ims in by_shape.values():
        for i in range(0, len(ims), batch):
            t = torch.from_numpy(np.stack(ims[i : i + batch])).permute(0, 3, 1, 2).flip(1)
            t = t.float().div_(255).contiguous(memory_format=torch.channels_last)  # the model's layout
            batches.append(t.to(loaded.device))
    return batches


def run_bare(adapter: UltralyticsAdapter, weights: Path, batches: list) -> int:
    import torch

    model = adapter.load(weights).model
    with torch.inference_mode():
        for b in batches:
            model(b)
    return 0


def throughput(args: argparse.Namespace, weights: Path, folder: Path, paths: list[Path]) -> None:
    from ultralytics import YOLO

    cfg = Config(
        model=args.model, imgsz=args.imgsz, device=args.device, predict_batch=args.batch,
        score_conf=args.conf, iou=args.iou,
    )
    rich = cfg.replace(measure={"binary_entropy": 1.0, "localization": 1.0})
    adapter = UltralyticsAdapter(cfg)
    runs = {
        "detal predict + score": lambda: run_detal(adapter, weights, paths, cfg),
        "detal + DFL + embeddings": lambda: run_detal(adapter, weights, paths, rich, extras=True),
    }
    # Warm-up: model load, first-call allocations, lazy imports.
    run_detal(adapter, weights, paths[: args.batch], cfg)
    run_detal(adapter, weights, paths[: args.batch], rich, extras=True)
    if not args.only_detal:
        yolo = YOLO(str(weights), task="detect")
        bare_batches = preload(adapter, weights, paths, args.batch)
        runs.update({
            "YOLO.predict (batch=1, default)": lambda: run_yolo(yolo, folder, cfg, 1),
            f"YOLO.predict (batch={args.batch})": lambda: run_yolo(yolo, folder, cfg, args.batch),
            "bare batched forward (preloaded)": lambda: run_bare(adapter, weights, bare_batches),
        })
        warm = folder.parent / "calibration"
        for b in (1, args.batch):
            run_yolo(yolo, warm, cfg, b)

    # Wall-clock img/s is what a user sees, but on a shared machine it moves with
    # the load; img per CPU-second (all threads of this process) moves much less.
    best: dict[str, float] = {}
    best_cpu: dict[str, float] = {}
    boxes: dict[str, int] = {}
    for r in range(args.rounds):
        for name, fn in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            boxes[name] = fn()
            rate = len(paths) / (time.perf_counter() - t0)
            cpu_rate = len(paths) / (time.process_time() - c0)
            best[name] = max(best.get(name, 0.0), rate)
            best_cpu[name] = max(best_cpu.get(name, 0.0), cpu_rate)
            print(f"  round {r + 1}: {name:36s} {rate:8.1f} img/s {cpu_rate:8.1f} img/CPU-s", flush=True)

    ours, ours_cpu = best["detal predict + score"], best_cpu["detal predict + score"]
    print(f"\n(a) throughput on {len(paths)} images, best of {args.rounds} rounds")
    print(f"{'path':38s} {'img/s':>8s} {'img/CPU-s':>10s} {'boxes/img':>10s} {'detal/this (wall)':>18s} {'(CPU)':>6s}")
    for name, rate in best.items():
        per = f"{boxes[name] / len(paths):10.2f}" if not name.startswith("bare") else f"{'-':>10s}"
        print(f"{name:38s} {rate:8.1f} {best_cpu[name]:10.1f} {per} {ours / rate:18.2f} {ours_cpu / best_cpu[name]:6.2f}")
    extra, extra_cpu = best["detal + DFL + embeddings"], best_cpu["detal + DFL + embeddings"]
    print(f"cost of DFL logits + embeddings + mix scoring over plain detal scoring: "
          f"wall {100 * (ours / extra - 1):+.1f}%   CPU {100 * (ours_cpu / extra_cpu - 1):+.1f}%   (goal <= 5%)")
    if args.only_detal:
        return
    for label, key in (
        ("YOLO.predict (default batch=1)", "YOLO.predict (batch=1, default)"),
        (f"YOLO.predict (batch={args.batch})", f"YOLO.predict (batch={args.batch})"),
        ("bare batched forward (limit)", "bare batched forward (preloaded)"),
    ):
        print(f"ratio detal / {label:32s} wall {ours / best[key]:.2f}   CPU {ours_cpu / best_cpu[key]:.2f}")


# ----------------------------------------------------------------------------- (c) decode workers


def decode_only(adapter: UltralyticsAdapter, weights: Path, paths: list[Path], batch: int) -> int:
    """The predict loop with a forward stage that does nothing: decoding and letterboxing alone."""
    from detal.ultra.predict import predict_stream

    loaded = adapter.load(weights)
    seen = [0]

    def run(group: list) -> list:
        seen[0] += len(group)
        return []

    predict_stream(paths, loaded, run, batch=batch, progress=False, readers=adapter.readers,
                   workers=adapter.cfg.decode_workers, pool=adapter._decode_pool)
    return seen[0]


def decode_workers(args: argparse.Namespace, weights: Path, paths: list[Path]) -> None:
    counts = [int(x) for x in args.decode_workers.split(",") if x.strip()]
    paths = paths[: args.decode_n]
    base = Config(model=args.model, imgsz=args.imgsz, device=args.device, predict_batch=args.batch,
                  score_conf=args.conf, iou=args.iou)
    print(f"\n(c) decode workers: {len(paths)} images, imgsz {args.imgsz}, batch {args.batch}, "
          f"best of {args.rounds} after a warm-up pass")
    print(f"{'decode_workers':>14s} {'decode img/s':>13s} {'predict+score img/s':>20s} {'speed-up':>9s} "
          f"{'same bytes':>10s}")
    reference = None
    first = None
    for n in counts:
        cfg = base.replace(decode_workers=n)
        adapter = UltralyticsAdapter(cfg)
        result = adapter.predict(weights, paths, conf=cfg.score_conf, iou=cfg.iou, batch=cfg.predict_batch,
                                 progress=False)  # warm-up: workers start, model loads
        fingerprint = [(p.detections.xyxy.tobytes(), p.detections.class_probs.tobytes()) for p in result.predictions]
        reference = fingerprint if reference is None else reference
        decode_best = full_best = 0.0
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            decode_only(adapter, weights, paths, args.batch)
            decode_best = max(decode_best, len(paths) / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            run_detal(adapter, weights, paths, cfg)
            full_best = max(full_best, len(paths) / (time.perf_counter() - t0))
        adapter.close()
        first = full_best if first is None else first
        same = "yes" if fingerprint == reference else "NO"
        print(f"{n:14d} {decode_best:13.1f} {full_best:20.1f} {full_best / first:9.2f} {same:>10s}", flush=True)


# ----------------------------------------------------------------------------- (b) memory


def memory_child(args: argparse.Namespace) -> None:
    """In a fresh process: load, warm up, score ``--child-n`` images, print RSS figures as JSON.

    RSS is sampled every 20 ms while scoring (psutil), besides the kernel's
    peak (``ru_maxrss``), which also counts the import and warm-up.
    """
    import threading

    import psutil

    weights = Path(args.child_weights)
    paths = sorted(Path(args.child_folder).glob("*.jpg"))[: args.child_n]
    cfg = Config(
        imgsz=args.memory_imgsz, device=args.device, predict_batch=args.batch, score_conf=args.conf, iou=args.iou
    )
    adapter = UltralyticsAdapter(cfg)
    embeddings = args.memory_embeddings
    adapter.predict(weights, paths[: args.batch], conf=cfg.score_conf, iou=cfg.iou, batch=cfg.predict_batch,
                    progress=False, with_embeddings=embeddings)  # warm-up
    proc = psutil.Process()
    base = proc.memory_info().rss / 2**20
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], proc.memory_info().rss / 2**20)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    scores, _ = score_pass(adapter, weights, paths, cfg, progress=False, embeddings=embeddings)  # `detal score`'s
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    end = proc.memory_info().rss / 2**20
    peak[0] = max(peak[0], end)
    boxes = int(scores.n_boxes.sum())  # predicted at score_conf, so every box counts
    print(json.dumps({
        "n": len(scores), "seconds": seconds, "base_mb": base, "peak_mb": peak[0], "end_mb": end,
        "maxrss_mb": peak_rss_mb(), "boxes": boxes,
    }))


def memory(args: argparse.Namespace, weights: Path) -> None:
    counts = [int(x) for x in args.memory.split(",") if x.strip()]
    side = args.memory_side
    sizes = [(side, side)] if side else [(120, 160), (160, 120)]
    folder = Path(args.workdir) / ("memory_images" if not side else f"memory_images_{side}")
    t0 = time.perf_counter()
    make_images(folder, max(counts), sizes, seed=2)
    h, w = sizes[0]
    shapes = f"{w}x{h}" if side else f"{w}x{h} / {h}x{w}"
    print(f"\n(b) memory: {max(counts)} JPEGs of {shapes} ready in {time.perf_counter() - t0:.1f}s; "
          f"imgsz {args.memory_imgsz}, batch {args.batch}, embeddings {'yes' if args.memory_embeddings else 'no'}; "
          f"decoded, all of them would take {max(counts) * h * w * 3 / 2**20:.0f} MiB; load {os.getloadavg()[0]:.1f}")
    print(f"{'images':>8s} {'seconds':>8s} {'img/s':>8s} {'boxes/img':>9s} {'RSS start':>10s} "
          f"{'peak':>7s} {'end':>7s} {'growth':>7s} {'ru_maxrss':>10s} {'KiB/img held':>13s}  (MiB)")
    for n in counts:
        cmd = [
            sys.executable, __file__, "--child-n", str(n), "--child-weights", str(weights),
            "--child-folder", str(folder), "--memory-imgsz", str(args.memory_imgsz), "--batch", str(args.batch),
            "--device", args.device, "--conf", str(args.conf), "--iou", str(args.iou),
            *(["--memory-embeddings"] if args.memory_embeddings else []),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(f"{n:8d} child failed:\n{out.stderr[-2000:]}")
            continue
        rec = json.loads(out.stdout.strip().splitlines()[-1])
        held = (rec["end_mb"] - rec["base_mb"]) * 1024 / max(1, rec["n"])
        print(f"{rec['n']:8d} {rec['seconds']:8.1f} {rec['n'] / rec['seconds']:8.1f} {rec['boxes'] / rec['n']:9.2f} "
              f"{rec['base_mb']:10.0f} {rec['peak_mb']:7.0f} {rec['end_mb']:7.0f} "
              f"{rec['peak_mb'] - rec['base_mb']:7.0f} {rec['maxrss_mb']:10.0f} {held:13.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="yolov8n.yaml", help="architecture when no --weights (untrained)")
    ap.add_argument("--weights", help="a trained detection .pt to use instead")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.7)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--memory", default="2000,10000", help="image counts for the RSS runs ('' to skip)")
    ap.add_argument("--memory-imgsz", type=int, default=128)
    ap.add_argument("--memory-side", type=int, default=0, help="square JPEGs of this side for (b) (0: 160x120)")
    ap.add_argument("--memory-embeddings", action="store_true", help="(b) reads embeddings too, as a cycle does")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--decode-workers", default="", help="decode_workers counts for (c), e.g. 0,1,2,4 ('' skips)")
    ap.add_argument("--decode-n", type=int, default=400, help="images for (c), at most --n")
    ap.add_argument("--only-detal", action="store_true", help="throughput of the two detal paths only")
    ap.add_argument("--workdir", default=str(ROOT / "runs" / "bench_scoring"))
    ap.add_argument("--child-n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--child-weights", help=argparse.SUPPRESS)
    ap.add_argument("--child-folder", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child_n is not None:
        memory_child(args)
        return

    import torch

    workdir = Path(args.workdir)
    calibration = make_images(workdir / "calibration", 16, SIZES, seed=3)
    weights = Path(args.weights) if args.weights else make_weights(
        args.model, workdir / f"{Path(args.model).stem}-random-head.pt", calibration, args.imgsz
    )
    print(f"model {args.model if not args.weights else '-'}  weights {weights}")
    print(f"imgsz {args.imgsz}  batch {args.batch}  device {args.device}  conf {args.conf}  iou {args.iou}  "
          f"cores {os.cpu_count()}  torch threads {torch.get_num_threads()}  torch {torch.__version__}")
    if not args.skip_throughput or args.decode_workers:
        folder = workdir / f"images_{args.n}"
        paths = make_images(folder, args.n, SIZES)
        print(f"{args.n} JPEGs, sizes (h, w) {SIZES} cycled\n")
    if not args.skip_throughput:
        throughput(args, weights, folder, paths)
    if args.decode_workers:
        decode_workers(args, weights, paths)
    if args.memory:
        memory(args, weights)


if __name__ == "__main__":
    main()
