"""Time the pure core at scale: scoring 1M boxes, selecting from 1M scored images.

    .venv/bin/python benchmarks/bench_selection.py [--boxes 1000000] [--images 1000000] [--classes 10]
        [--dim 512] [--hybrid-k 1000,5000] [--labeled 20000]

Prints the best of ``--repeat`` wall-clock times for each step. Goal on the
2-core CPU machine: under 0.5 s each for scoring and the plain strategies.
``hybrid`` runs greedy k-center (``O(k * m * k * d)``) on the ``m * k``
candidates only, with distances to ``--labeled`` labeled images, all of
them looked up in a float16 table of ``--images`` embeddings of ``--dim``
dimensions (as the store keeps them); goal: seconds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from detal.selection import Plan, select_batch, strategy_plan
from detal.uncertainty import aggregate_groups, box_scores


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boxes", type=int, default=1_000_000)
    ap.add_argument("--images", type=int, default=1_000_000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--hybrid-k", default="1000,5000", help="uncertain picks k of the hybrid runs")
    ap.add_argument("--candidate-factor", type=float, default=3.0)
    ap.add_argument("--labeled", type=int, default=20_000)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (args.boxes, args.classes))
    probs = 1 / (1 + np.exp(-logits))  # independent sigmoids, as YOLO heads give
    image_of_box = np.sort(rng.integers(0, args.boxes // 4, args.boxes))

    print(f"scoring {args.boxes:,} boxes x {args.classes} classes (best of {args.repeat}):")
    for measure in ("entropy", "least_confidence", "margin"):
        t = best_of(args.repeat, lambda m=measure: box_scores(probs, m))
        print(f"  box_scores[{measure:<16}] {t:.3f} s")
    scores = box_scores(probs, "entropy", normalize=True)
    for how in ("max", "mean", "sum"):
        t = best_of(args.repeat, lambda h=how: aggregate_groups(scores, image_of_box, args.boxes // 4, h, 1.0))
        print(f"  aggregate_groups[{how:<4}] over {args.boxes // 4:,} images, boxes grouped {t:.3f} s")
    shuffled = rng.permutation(image_of_box)
    t = best_of(args.repeat, lambda: aggregate_groups(scores, shuffled, args.boxes // 4, "max", 1.0))
    print(f"  aggregate_groups[max ] over {args.boxes // 4:,} images, boxes shuffled {t:.3f} s")

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
        plan = strategy_plan(name, args.images)
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
        plan = Plan("hybrid", 2 * k, None, k, args.candidate_factor)
        t = best_of(min(args.repeat, 2), lambda p=plan: select_batch(
            ids, p, np.random.default_rng(1), scorer, embedder=embedder, labeled_ids=labeled))
        print(f"  select_batch[hybrid     ] k {k:,} of {int(args.candidate_factor * k):,} candidates, "
              f"batch {2 * k:,} {t:.3f} s")


if __name__ == "__main__":
    main()
