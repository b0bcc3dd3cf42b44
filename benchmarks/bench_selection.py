"""Time the product's scoring and selection at scale, through the functions the cycle calls.

    .venv/bin/python benchmarks/bench_selection.py [--boxes 100000] [--boxes-per-image 4]
        [--images 1000000] [--classes 10] [--dim 512] [--hybrid-k 1000,5000] [--labeled 20000]

Scoring is :func:`detal.scoring.score_predictions`, what a cycle runs on each
batch of predictions (:meth:`detal.project.predictions.Predictions.score`):
``--boxes`` boxes in :class:`~detal.detections.Prediction` records of
``--boxes-per-image`` boxes each, scored with each class measure (``max``)
and with the default measure's other aggregations. Selection is the cycle's :func:`~detal.selection.strategy_plan`
cut by :func:`~detal.selection.cap_plan`, then
:func:`~detal.selection.select_batch` over ``--images`` unlabeled ids whose
scores are looked up by id (as the store keeps them).

Prints the best of ``--repeat`` wall-clock times for each step (scoring: at
most 2). Goal on the 2-core CPU machine: under 0.5 s for the plain strategies.
``hybrid`` runs greedy k-center (``O(k * m * k * d)``) on the ``m * k``
candidates only, with distances to ``--labeled`` labeled images, all of
them looked up in a float16 table of ``--images`` embeddings of ``--dim``
dimensions (as the store keeps them); goal: seconds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from detal.config import Config
from detal.detections import Detections, Prediction
from detal.scoring import score_predictions
from detal.selection import cap_plan, select_batch, strategy_plan
from detal.uncertainty import AGGREGATIONS, CLASS_MEASURES


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def fake_predictions(rng: np.random.Generator, n_boxes: int, per_image: int, n_classes: int) -> list[Prediction]:
    """``n_boxes`` boxes of independent-sigmoid class probabilities (as YOLO heads give), ``per_image`` an image."""
    n_images = max(1, n_boxes // per_image)
    probs = 1 / (1 + np.exp(-rng.normal(0, 2, (n_images, per_image, n_classes))))
    corner = rng.uniform(0, 500, (n_images, per_image, 2))
    xyxy = np.concatenate([corner, corner + rng.uniform(5, 100, (n_images, per_image, 2))], axis=2)
    return [
        Prediction(
            f"img{i:07d}.jpg", 640, 640,
            Detections(xyxy[i], probs[i].argmax(1), probs[i].max(1), probs[i]),
        )
        for i in range(n_images)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boxes", type=int, default=100_000, help="boxes scored (in Prediction records)")
    ap.add_argument("--boxes-per-image", type=int, default=4)
    ap.add_argument("--images", type=int, default=1_000_000, help="unlabeled images selected from")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--hybrid-k", default="1000,5000", help="uncertain picks k of the hybrid runs")
    ap.add_argument("--candidate-factor", type=float, default=3.0)
    ap.add_argument("--labeled", type=int, default=20_000)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    preds = fake_predictions(rng, args.boxes, args.boxes_per_image, args.classes)
    cfg = Config()
    repeat = min(args.repeat, 2)
    print(f"score_predictions over {len(preds):,} images x {args.boxes_per_image} boxes x {args.classes} "
          f"classes (best of {repeat}):")
    runs = [(m, "max") for m in CLASS_MEASURES] + [(cfg.measure, h) for h in AGGREGATIONS if h != "max"]
    for measure, how in runs:  # every class measure, then the default measure's other aggregations
        run_cfg = cfg.replace(measure=measure, aggregate=how)
        t = best_of(repeat, lambda c=run_cfg: score_predictions(preds, c))
        print(f"  [{measure:<18} {how:<4}] {t:.3f} s ({1e6 * t / len(preds):.1f} us an image)")

    ids = rng.permutation(args.images * 2)[: args.images].astype(np.int64)
    # Scores already computed and stored by image id (as the project store keeps
    # them): the scorer is one fancy-indexing lookup.
    score_by_id = np.full(args.images * 2, np.nan)
    score_by_id[ids] = rng.random(args.images)

    def scorer(subset_ids: np.ndarray) -> np.ndarray:
        return score_by_id[subset_ids]

    print(f"selecting from {args.images:,} unlabeled scored images (B = 10%, subset 20%):")
    t = best_of(args.repeat, lambda: scorer(ids))
    print(f"  (score lookup for all {args.images:,} ids: {t:.3f} s, included in each line)")
    for name in ("mixed", "topk", "subset_topk", "random"):
        plan = cap_plan(strategy_plan(name, args.images), args.images)
        t = best_of(args.repeat, lambda p=plan: select_batch(ids, p, np.random.default_rng(1), scorer))
        print(f"  select_batch[{name:<11}] batch {plan.batch_size:,} {t:.3f} s")

    bench_hybrid(args, rng, ids, scorer)


def bench_hybrid(args: argparse.Namespace, rng: np.random.Generator, ids: np.ndarray, scorer) -> None:
    n_ids = int(ids.max()) + 1
    table = np.empty((n_ids, args.dim), dtype=np.float16)
    for start in range(0, n_ids, 100_000):
        block = rng.standard_normal((min(100_000, n_ids - start), args.dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        table[start : start + block.shape[0]] = block
    labeled = np.setdiff1d(np.arange(n_ids), ids)[: args.labeled]

    def embedder(subset_ids: np.ndarray) -> np.ndarray:
        return table[subset_ids].astype(np.float32)

    print(f"hybrid from {ids.size:,} scored images, {args.dim}-d float16 embeddings, "
          f"{labeled.size:,} labeled, m = {args.candidate_factor:g} (best of {min(args.repeat, 2)}):")
    for k in (int(v) for v in args.hybrid_k.split(",") if v.strip()):
        # The cycle's plan (B = 10%, half uncertain), cut by the budget to a batch of 2k: k uncertain.
        plan = cap_plan(strategy_plan("hybrid", ids.size, candidate_factor=args.candidate_factor), 2 * k)
        t = best_of(min(args.repeat, 2), lambda p=plan: select_batch(
            ids, p, np.random.default_rng(1), scorer, embedder=embedder, labeled_ids=labeled))
        print(f"  select_batch[hybrid     ] k {plan.n_uncertain:,} of {int(args.candidate_factor * k):,} "
              f"candidates, batch {plan.batch_size:,} {t:.3f} s")


if __name__ == "__main__":
    main()
