"""What ``hybrid_max_labeled`` costs in pick quality and saves in time: hybrid with every labeled image
against hybrid with a seeded sample of them.

    nice -n 10 .venv/bin/python benchmarks/bench_hybrid_sample.py [--pool 100000] [--labeled 0.05,0.2,0.42]
        [--limit 2000] [--dim 64] [--clusters 60] [--seeds 0,1,2] [--predict-n 256] [--predict-imgsz 64]

The pool is built here: ``--pool`` image embeddings of ``--dim`` dimensions
in ``--clusters`` Gaussian clusters of Zipf-like sizes, each row carrying one
large common component (pooled detector features all point one way,
:func:`detal.selection._centred`), and uncertainty scores that are higher in
a few clusters. For each labeled fraction, a random labeled set is drawn and
one cycle's selection is run through :func:`detal.selection.select_batch`
with the cycle's plan (``strategy_plan("hybrid", T)``: subset 20 %, batch
10 %, k = half of it, candidates 3k), once with ``max_labeled=None`` (every
labeled image, as before) and once with ``--limit``, with the same seed.

Printed per labeled fraction (mean over ``--seeds``):

- overlap: the share of the k uncertain picks both runs make;
- the k-center objective, measured against the *full* labeled set for both
  runs: the radius (largest distance from a candidate to its nearest pick or
  labeled image; lower is better, what greedy k-center minimises) and the
  spread (mean distance from a pick to its nearest labeled image; higher is
  further from what is labeled), with top-k (no diversity) beside them for
  scale; cosine distance on the rows centred as hybrid centres them;
- the selection's own time, both ways;
- the embedding pass the cycle runs for the labeled images: how many images
  each way, and their time at the rate of a real tiny YOLOv8n (built from
  ``yolov8n.yaml``, untrained, 3 classes) predicting ``--predict-n`` images
  of 64 x 64 at ``--predict-imgsz`` with embeddings on this machine
  (``--predict-n 0``: not measured). The pass itself is extrapolated from
  that rate, not run at 42,000 images.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from detal.selection import select_batch, strategy_plan


def build_pool(n: int, dim: int, clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` embeddings (float32, unit norm) in clusters of Zipf-like sizes, and their scores."""
    g = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, clusters + 1)
    member = g.choice(clusters, size=n, p=weights / weights.sum())
    centres = g.normal(size=(clusters, dim))
    x = centres[member] + 0.6 * g.normal(size=(n, dim))
    x = 40.0 + x  # one dominant common direction, as pooled activations have
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    hot = g.choice(clusters, size=max(1, clusters // 10), replace=False)
    scores = g.random(n) * 0.6 + 0.4 * np.isin(member, hot)
    return x.astype(np.float32), scores


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)


def _nearest(a: np.ndarray, b: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Cosine distance from each row of ``a`` to its nearest row of ``b`` (unit rows)."""
    out = np.full(a.shape[0], np.inf, dtype=np.float32)
    for start in range(0, b.shape[0], chunk):
        np.minimum(out, 1.0 - (a @ b[start : start + chunk].T).max(axis=1), out=out)
    return out


class Objective:
    """The k-center objective of picks among ``candidates`` against every labeled image.

    Rows are centred as hybrid centres them (by the mean of the candidates and
    the labeled images), then compared by cosine distance.
    """

    def __init__(self, emb: np.ndarray, candidates: np.ndarray, labeled: np.ndarray) -> None:
        rows = np.concatenate([candidates, labeled])
        unit = _unit(emb[rows] - emb[rows].mean(axis=0, keepdims=True))
        self.cand, self.lab = unit[: candidates.size], unit[candidates.size :]
        self.pos = {int(i): n for n, i in enumerate(candidates)}
        self.to_labeled = _nearest(self.cand, self.lab)

    def __call__(self, picks: np.ndarray) -> tuple[float, float]:
        """(radius, spread): the largest distance from a candidate to its nearest pick or labeled image,
        and the mean distance from a pick to its nearest labeled image."""
        pick = self.cand[[self.pos[int(i)] for i in picks]]
        radius = float(np.minimum(self.to_labeled, _nearest(self.cand, pick)).max())
        spread = float(self.to_labeled[[self.pos[int(i)] for i in picks]].mean())
        return radius, spread


def predict_rate(n: int, imgsz: int) -> float:
    """Images per second of a real tiny YOLOv8n predicting with embeddings (detal's adapter, CPU)."""
    import cv2

    from detal.config import Config
    from detal.ultra import UltralyticsAdapter, prepare_ultralytics

    prepare_ultralytics()
    import torch
    from ultralytics.nn.tasks import DetectionModel

    work = Path(tempfile.mkdtemp(prefix="detal-bench-hybrid-"))
    g = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = work / f"im{i:05d}.png"
        cv2.imwrite(str(p), g.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        paths.append(p)
    torch.manual_seed(0)
    model = DetectionModel("yolov8n.yaml", nc=3, verbose=False)
    model.names = {0: "a", 1: "b", 2: "c"}
    weights = work / "tiny.pt"
    torch.save({"model": model, "train_args": {}}, weights)
    cfg = Config(model="yolov8n.yaml", imgsz=imgsz, device="cpu")
    adapter = UltralyticsAdapter(cfg)
    adapter.predict(weights, paths[:32], conf=0.1, progress=False, with_embeddings=True)  # warm-up
    t0 = time.perf_counter()
    adapter.predict(weights, paths, conf=0.1, progress=False, with_embeddings=True)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=int, default=100_000)
    ap.add_argument("--labeled", default="0.05,0.2,0.42", help="labeled fractions of the pool")
    ap.add_argument("--limit", type=int, default=2000, help="hybrid_max_labeled")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--clusters", type=int, default=60)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--predict-n", type=int, default=256)
    ap.add_argument("--predict-imgsz", type=int, default=64)
    args = ap.parse_args()
    fractions = [float(f) for f in args.labeled.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]

    emb, scores = build_pool(args.pool, args.dim, args.clusters, seed=123)
    plan_full = strategy_plan("hybrid", args.pool)
    plan_cut = strategy_plan("hybrid", args.pool, max_labeled=args.limit)
    rate = predict_rate(args.predict_n, args.predict_imgsz) if args.predict_n else None
    print(f"pool {args.pool:,} embeddings, {args.dim} dims, {args.clusters} clusters; batch {plan_full.batch_size:,}, "
          f"subset {plan_full.subset_size:,}, k {plan_full.n_uncertain:,} among "
          f"{int(np.ceil(3 * plan_full.n_uncertain)):,} candidates; hybrid_max_labeled {args.limit:,}; "
          f"seeds {seeds}; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    if rate:
        print(f"embedding pass rate: {rate:.0f} img/s (real untrained yolov8n, 64x64 images, "
              f"imgsz {args.predict_imgsz}, CPU, {args.predict_n} images)")
    print(f"{'labeled':>8s} {'overlap':>8s} {'radius full':>11s} {'sampled':>8s} {'top-k':>7s} "
          f"{'spread full':>11s} {'sampled':>8s} {'top-k':>7s} {'select s full':>13s} {'sampled':>8s} "
          f"{'pass imgs full':>14s} {'sampled':>8s} {'pass s full':>11s} {'sampled':>8s}")
    for fraction in fractions:
        n_labeled = round(fraction * args.pool)
        rows = []
        for seed in seeds:
            g = np.random.default_rng(seed)
            perm = g.permutation(args.pool)
            labeled, unlabeled = np.sort(perm[:n_labeled]), np.sort(perm[n_labeled:])
            asked: dict[str, np.ndarray] = {}
            out = {}
            for name, plan in (("full", plan_full), ("sampled", plan_cut)):
                def embedder(ids: np.ndarray, name: str = name, asked: dict = asked) -> np.ndarray:
                    asked[name] = ids
                    return emb[ids]

                t0 = time.perf_counter()
                sel = select_batch(unlabeled, plan, np.random.default_rng([seed, 1]), lambda i: scores[i],
                                   embedder=embedder, labeled_ids=labeled)
                out[name] = (sel, time.perf_counter() - t0)
            n_cand = int(np.ceil(plan_full.candidate_factor * plan_full.n_uncertain))
            candidates = asked["full"][:n_cand]
            full, cut = out["full"][0].uncertain_ids, out["sampled"][0].uncertain_ids
            topk = candidates[: full.size]
            overlap = len(set(full.tolist()) & set(cut.tolist())) / max(1, full.size)
            objective = Objective(emb, candidates, labeled)
            rows.append((
                overlap, *objective(full), *objective(cut), *objective(topk), out["full"][1], out["sampled"][1],
                asked["full"].size - n_cand, asked["sampled"].size - n_cand,
            ))
        m = np.mean(np.array(rows, dtype=np.float64), axis=0)
        overlap, r_full, s_full, r_cut, s_cut, r_top, s_top, t_full, t_cut, p_full, p_cut = m
        pass_full = f"{p_full / rate:11.1f}" if rate else f"{'-':>11s}"
        pass_cut = f"{p_cut / rate:8.1f}" if rate else f"{'-':>8s}"
        print(f"{n_labeled:8,d} {overlap:8.3f} {r_full:11.4f} {r_cut:8.4f} {r_top:7.4f} {s_full:11.4f} "
              f"{s_cut:8.4f} {s_top:7.4f} {t_full:13.2f} {t_cut:8.2f} {int(p_full):14,d} {int(p_cut):8,d} "
              f"{pass_full} {pass_cut}", flush=True)


if __name__ == "__main__":
    main()
