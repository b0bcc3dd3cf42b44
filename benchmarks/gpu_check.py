"""The GPU path checked in one short run: benchmarks/gpu_check.sh runs this; ``--cpu`` is a dry run at tiny size.

    python benchmarks/gpu_check.py [--cpu] [--workdir /tmp/detal-gpu-check] [--n 300]

Every figure is one line, ``gpu-check | <device name> | <what>: <figure>``:

1. **class vectors**: detal's batched predict (``predict_batch`` 16) against
   Ultralytics on the same weights and images. Boxes, top-1 classes and
   confidences against ``YOLO.predict`` (batch 1, its default), matched by
   position; the full class vector of every box against the one Ultralytics'
   own predictor computes (its preprocess and forward pass, one image at a
   time, read at the anchors its NMS keeps). The model is yolov8n.yaml with
   BatchNorm statistics from the images and a class head drawn at random, so
   that scores vary from box to box (bench_scoring.make_weights). Float32
   both; cuDNN may use TF32 and batched kernels, so equal means within 1e-3.
2. **throughput at 640 px** (``--imgsz``) on ``--n`` JPEGs of three sizes,
   best of 2 after a warm-up: detal predict + score at batch 1, at batch 32,
   and at batch 32 with 4 decode workers; ``YOLO.predict`` at batch 1, 32,
   and 32 in half precision (``quantize=16``, which replaces ``half=True``
   in Ultralytics 8.4; off by default for prediction, on in the validation
   of a CUDA training): detal predicts in float32, its class vectors being
   the figures it ranks by.
3. **one real cycle** on a small digits-det (``detal data digits``: 120 pool,
   40 val canvases of 128 px), through ``detal simulate`` (the product's
   loop, an annotator that knows the ground truth), hybrid strategy, from the
   shipped glyph weights, 3 epochs a cycle, 2 decode workers: the first cycle
   trains, evaluates, scores, selects and exports; the second trains on the
   picks (the schedule ends there, at 20% labeled). One line per stage with
   its seconds, and the mAP of each cycle.

``--cpu`` runs all of it on the CPU at imgsz 64 with 12 images, 1 epoch, so
that the script is known to run end to end before a GPU is spent on it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_scoring import make_images, make_weights, run_detal

from detal.config import Config
from detal.ultra import UltralyticsAdapter, prepare_ultralytics

ROOT = HERE.parent
SIZES = [(480, 640), (640, 480), (512, 512)]  # (h, w)


class Say:
    """Prints ``gpu-check | device | what: figure`` lines, flushed."""

    def __init__(self, device_name: str) -> None:
        self.device_name = device_name

    def __call__(self, what: str, figure: str) -> None:
        print(f"gpu-check | {self.device_name} | {what}: {figure}", flush=True)


def ultralytics_vectors(yolo, path: Path, imgsz: int, conf: float, iou: float, device: str) -> np.ndarray:
    """Class vectors of the boxes Ultralytics' predictor keeps, from its own preprocess and forward pass."""
    import cv2
    import torch
    from ultralytics.utils import nms

    predictor = yolo.predictor
    with torch.inference_mode():
        im = predictor.preprocess([cv2.imread(str(path))])
        raw = predictor.inference(im)
        raw = raw[0] if isinstance(raw, (list, tuple)) else raw
        _, idx = nms.non_max_suppression(raw.clone(), conf, iou, max_det=300, return_idxs=True)
        nc = raw.shape[1] - 4
        return raw[0, 4 : 4 + nc][:, idx[0].view(-1).long()].T.float().cpu().numpy()


def check_vectors(say: Say, weights: Path, paths: list[Path], imgsz: int, device: str) -> None:
    from ultralytics import YOLO

    conf, iou = 0.25, 0.7
    cfg = Config(model="yolov8n.yaml", imgsz=imgsz, device=device, predict_batch=16)
    ours = UltralyticsAdapter(cfg).predict(weights, paths, conf=conf, iou=iou, batch=16, progress=False)
    yolo = YOLO(str(weights), task="detect")
    boxes = matched = top1 = 0
    worst_box = worst_conf = worst_vec = 0.0
    for pred in ours.predictions:
        result = yolo.predict(str(pred.path), imgsz=imgsz, conf=conf, iou=iou, device=device, verbose=False)[0]
        xyxy = result.boxes.xyxy.cpu().numpy()
        cls = result.boxes.cls.cpu().numpy().astype(int)
        confidence = result.boxes.conf.cpu().numpy()
        vectors = ultralytics_vectors(yolo, pred.path, imgsz, conf, iou, device)
        det = pred.detections
        boxes += len(cls)
        if len(det) != len(cls) or vectors.shape != det.class_probs.shape:
            continue
        # pair by position: boxes whose confidences tie may leave NMS in either order
        a = np.lexsort(np.round(det.xyxy, 1).T[::-1])
        b = np.lexsort(np.round(xyxy, 1).T[::-1])
        matched += len(cls)
        top1 += int(np.sum(det.class_id[a] == cls[b]))
        if len(cls):
            worst_box = max(worst_box, float(np.abs(det.xyxy[a] - xyxy[b]).max()))
            worst_conf = max(worst_conf, float(np.abs(det.confidence[a] - confidence[b]).max()))
            worst_vec = max(worst_vec, float(np.abs(det.class_probs[a] - vectors[b]).max()))
    ok = boxes > 0 and matched == boxes and top1 == boxes and max(worst_conf, worst_vec) <= 1e-3
    say("class vectors, detal batched (16) vs Ultralytics (batch 1)",
        f"{'EQUAL' if ok else 'DIFFERENT'}: {len(ours.predictions)} images, {boxes} boxes, "
        f"{matched} matched, top-1 equal {top1}/{boxes}, max |d box| {worst_box:.2g} px, "
        f"max |d conf| {worst_conf:.2g}, max |d class prob| {worst_vec:.2g}")


def throughput(say: Say, weights: Path, folder: Path, paths: list[Path], imgsz: int, device: str,
               batch: int) -> None:
    from ultralytics import YOLO

    base = Config(model="yolov8n.yaml", imgsz=imgsz, device=device, score_conf=0.1, iou=0.7)
    runs = {}
    for label, b, workers in (("detal predict+score, batch 1", 1, 0),
                              (f"detal predict+score, batch {batch}", batch, 0),
                              (f"detal predict+score, batch {batch}, 4 decode workers", batch, 4)):
        cfg = base.replace(predict_batch=b, decode_workers=workers)
        adapter = UltralyticsAdapter(cfg)
        runs[label] = (lambda adapter=adapter, cfg=cfg: run_detal(adapter, weights, paths, cfg), adapter)
    yolo = YOLO(str(weights), task="detect")

    def yolo_run(b: int, half: bool = False) -> int:
        n = 0
        precision = {"quantize": 16} if half else {}  # Ultralytics 8.4: quantize=16 replaces half=True
        for r in yolo.predict(source=str(folder), imgsz=imgsz, conf=0.1, iou=0.7, device=device, batch=b,
                              stream=True, verbose=False, **precision):
            n += len(r.boxes)
        return n

    runs["YOLO.predict, batch 1"] = (lambda: yolo_run(1), None)
    runs[f"YOLO.predict, batch {batch}"] = (lambda: yolo_run(batch), None)
    if device != "cpu":
        runs[f"YOLO.predict, batch {batch}, half"] = (lambda: yolo_run(batch, half=True), None)
    for label, (fn, adapter) in runs.items():
        fn()  # warm-up: model load, cuDNN autotuning, decode workers start
        best = 0.0
        for _ in range(2):
            if device != "cpu":
                import torch

                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            best = max(best, len(paths) / (time.perf_counter() - t0))
        if adapter is not None:
            adapter.close()
        say(f"throughput {imgsz} px, {label}", f"{best:.1f} img/s ({len(paths)} images, best of 2)")


def cycle(say: Say, workdir: Path, device: str, tiny: bool) -> None:
    from detal.adapter import make_adapter
    from detal.digits import DigitsSpec, build_digits
    from detal.simulate import simulate

    imgsz = 64 if tiny else 128
    data = build_digits(workdir / "digits", DigitsSpec(pool=20 if tiny else 120, val=8 if tiny else 40,
                                                       imgsz=imgsz, seed=0))
    cfg = Config(
        model="yolov8n.yaml", weights=str(ROOT / "detal" / "weights" / "glyphs-yolov8n.pt"), warm_start=False,
        imgsz=imgsz, device=device, batch=8 if tiny else 16, workers=0 if tiny else 2,
        epochs_per_cycle=1 if tiny else 3, initial_fraction=0.1, batch_fraction=0.1, max_labeled_fraction=0.2,
        decode_workers=1 if tiny else 2, strategy="hybrid", seed=0,
        train_args={"fliplr": 0.0, "warmup_epochs": 0, "optimizer": "AdamW", "lr0": 0.002, "close_mosaic": 0},
    )
    stages: list[tuple[int, str, float, dict]] = []
    t0 = time.perf_counter()
    out = simulate(
        cfg, make_adapter, strategies=("hybrid",), seeds=(0,), out_dir=workdir / "simulate", data=data,
        callbacks={"on_stage_end": [lambda **e: stages.append((e["cycle"], e["stage"], e["seconds"], e))]},
        log=None, report=False, train_cache=None,
    )
    wall = time.perf_counter() - t0
    for k, stage, seconds, event in stages:
        extra = ""
        if stage == "evaluate" and event.get("metrics") is not None:
            m = event["metrics"]
            extra = f", mAP50 {m.map50:.3f} mAP50-95 {m.map50_95:.3f}"
        elif "images" in event:
            extra = f", {event['images']} images"
        say(f"cycle {k} (digits-det {imgsz} px, {cfg.epochs_per_cycle} epochs), {stage}", f"{seconds:.1f} s{extra}")
    cycles = sorted({k for k, *_ in stages})
    exported = [e for k, s, _, e in stages if s == "export"]
    ok = len(cycles) >= 1 and bool(exported) and (out / "results.csv").is_file()
    say("real cycle through detal simulate", f"{'DONE' if ok else 'INCOMPLETE'}: {len(cycles)} cycles, "
        f"{wall:.0f} s wall, results in {out / 'results.csv'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true", help="dry run on the CPU at tiny size")
    ap.add_argument("--workdir", default="/tmp/detal-gpu-check")
    ap.add_argument("--n", type=int, default=300, help="images for the throughput figures")
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    os.environ.pop("DETAL_FAKE_ADAPTER", None)
    prepare_ultralytics()
    import torch
    import ultralytics

    if args.cpu:
        device, name = "cpu", "CPU (dry run)"
        args.n, args.imgsz, args.batch = 12, 64, 4
    else:
        if not torch.cuda.is_available():
            print("gpu_check: no CUDA device visible; use --cpu for a dry run", file=sys.stderr)
            return 1
        device, name = "0", torch.cuda.get_device_name(0)
    say = Say(name)
    start = time.perf_counter()
    say("versions", f"torch {torch.__version__}, ultralytics {ultralytics.__version__}, "
        f"python {sys.version.split()[0]}, cuda {torch.version.cuda}")
    workdir = Path(args.workdir) / ("cpu" if args.cpu else "gpu")
    calibration = make_images(workdir / "calibration", 16, SIZES, seed=3)
    weights = make_weights("yolov8n.yaml", workdir / "yolov8n-random-head.pt", calibration, args.imgsz)
    folder = workdir / f"images_{args.n}"
    paths = make_images(folder, args.n, SIZES)
    check_vectors(say, weights, paths[: min(len(paths), 48)], args.imgsz, device)
    throughput(say, weights, folder, paths, args.imgsz, device, args.batch)
    cycle(say, workdir, device, tiny=args.cpu)
    say("total", f"{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
