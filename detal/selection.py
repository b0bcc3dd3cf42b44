"""Batch selection: pure functions from ids (and scores) to ids.

Every random choice takes an explicit :class:`numpy.random.Generator`, so the
same seed gives the same picks. Ids are non-negative integers that stay stable
for the life of a pool; functions never see labeled or validation ids because
callers pass only the unlabeled ones, and every function checks that its
inputs hold no duplicate id.

Primitives:

- :func:`random_subset` draws ``k`` ids uniformly without replacement;
- :func:`top_k` keeps the ``k`` highest-scoring ids, ties broken by smaller id
  (or by a given tiebreak order);
- :func:`select_batch` composes them into every strategy of ``docs/method.md``:

  1. draw a random subset of the unlabeled ids (or take all of them),
  2. score only that subset,
  3. keep the ``n_uncertain`` most uncertain of it,
  4. fill the rest of the batch uniformly at random from the unlabeled ids not
     yet picked.

The named strategies are just parameter sets of that composition
(:data:`STRATEGIES`, :func:`strategy_plan`): ``random`` scores nothing,
``topk`` scores everything and keeps the top ``B``, ``subset_topk`` keeps the
top ``B`` of a random subset, and ``mixed`` (the DataHunt schedule) keeps the
top ``uncertain_share * B`` of the subset and draws the rest at random.

``hybrid`` (``docs/method.md``, "Diversity") has the shape of ``mixed`` and changes only
step 3: the uncertain share ``k`` is chosen by greedy k-center
(:func:`k_center_greedy`, cosine distance on image embeddings) among the top
``candidate_factor * k`` of the subset, with distances running to the labeled
images too: to all of them, or to a random sample of ``max_reference`` of them
when there are more (``hybrid_max_labeled``), so that a large labeled set does
not have to be predicted again every cycle for its embeddings. ``hold`` is the benchmark's control: it picks nothing, so the
labeled set stays the initial one while training goes on as for the others.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from detal.errors import ConfigError, DataError, unknown

__all__ = [
    "STRATEGIES",
    "Plan",
    "Selection",
    "cap_plan",
    "fraction_count",
    "initial_size",
    "k_center_greedy",
    "labeling_cap",
    "random_subset",
    "reference_sample",
    "schedule_length",
    "select_batch",
    "strategy_plan",
    "top_k",
]

STRATEGIES = ("random", "topk", "subset_topk", "mixed", "hybrid", "hold")

Scorer = Callable[[np.ndarray], np.ndarray]
Embedder = Callable[[np.ndarray], np.ndarray]
"""Maps an array of image ids to their embeddings, ``(n, d)``, one row per id (unit norm)."""


def _check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def _as_ids(ids: object, name: str = "ids") -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise DataError(f"{name} must be a 1-D array of integer ids, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{name} must hold integer ids, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    ordered = np.sort(arr)
    if np.any(ordered[1:] == ordered[:-1]):
        raise DataError(f"{name} holds duplicate ids")
    return arr


def _check_k(k: int, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise DataError(f"{name} must be a non-negative integer, got {k!r}")
    return int(k)


def fraction_count(fraction: float, total: int) -> int:
    """``fraction`` of ``total`` items, rounded half up, and at least 1 when both are positive."""
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"fraction must lie in [0, 1], got {fraction!r}")
    if total <= 0 or fraction == 0.0:
        return 0
    return max(1, math.floor(fraction * total + 0.5))


def labeling_cap(max_labeled_fraction: float, pool_size: int) -> int:
    """The most images a run may have labeled or out: ``floor(max_labeled_fraction * T)``.

    The budget rounds down, so a run never exceeds the fraction it was given:
    ``max_labeled_fraction: 0.42`` on a pool of 1,007 images stops at 422
    (41.9%), not 423 (42.006%). The one budget rule of detal: ``init``,
    ``cycle`` and ``simulate`` all call this function.
    """
    if not 0.0 <= max_labeled_fraction <= 1.0:
        raise ConfigError(f"max_labeled_fraction must lie in [0, 1], got {max_labeled_fraction!r}")
    if pool_size <= 0:
        return 0
    # the epsilon absorbs float error (0.3 * 20 = 6.000000000000001, 0.7 * 10 = 6.999999999999999)
    return min(pool_size, math.floor(max_labeled_fraction * pool_size + 1e-9))


def initial_size(initial_fraction: float, max_labeled_fraction: float, pool_size: int) -> int:
    """Images in the initial random set: ``initial_fraction`` of ``T`` (rounded), within the budget."""
    return min(fraction_count(initial_fraction, pool_size), labeling_cap(max_labeled_fraction, pool_size))


def schedule_length(
    pool_size: int, *, initial_fraction: float, batch_fraction: float, max_labeled_fraction: float
) -> int:
    """How many trained cycles a budget-limited run has on a pool of ``pool_size`` images.

    The first cycle trains on the initial set; every later one on one more
    batch of ``B = batch_fraction * T`` (the last batch cut at the budget);
    the last cycle trains on exactly the budget. A strategy that labels less
    per cycle (or nothing) is given the same number of cycles, so that every
    strategy trains as often.
    """
    cap = labeling_cap(max_labeled_fraction, pool_size)
    n0 = initial_size(initial_fraction, max_labeled_fraction, pool_size)
    if n0 == 0:
        return 0
    batch = fraction_count(batch_fraction, pool_size)
    return 1 + (math.ceil((cap - n0) / batch) if batch else 0)


def random_subset(ids: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``min(k, len(ids))`` ids drawn uniformly without replacement, in draw order."""
    ids = _as_ids(ids)
    return _draw(np.sort(ids), _check_k(k), _check_rng(rng))


def _draw(sorted_ids: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    # Drawing positions in the sorted array makes the picks depend only on the
    # set of ids, not on the order the caller listed them in.
    k = min(k, sorted_ids.size)
    if k == 0:
        return sorted_ids[:0]
    return sorted_ids[rng.choice(sorted_ids.size, size=k, replace=False)]


def top_k(ids: np.ndarray, scores: np.ndarray, k: int, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """The ``k`` ids with the highest score, highest first.

    Ties go to the smaller ``tiebreak`` value (default: the smaller id). NaN
    scores (images that could not be scored) rank below every real score.
    """
    ids = _as_ids(ids)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.shape != ids.shape:
        raise DataError(f"got {ids.size} ids but {s.size} scores")
    tb = ids if tiebreak is None else np.asarray(tiebreak).reshape(-1)
    if tb.shape != ids.shape:
        raise DataError(f"got {ids.size} ids but {tb.size} tiebreak values")
    k = min(_check_k(k), ids.size)
    if k == 0:
        return ids[:0]
    s = np.where(np.isnan(s), -np.inf, s)
    if k < ids.size:
        # Keep every id that scores at least the k-th best, then order exactly.
        kth = np.partition(s, ids.size - k)[ids.size - k]
        keep = s >= kth
        ids, s, tb = ids[keep], s[keep], tb[keep]
    order = np.lexsort((tb, -s))
    return ids[order[:k]]


@dataclass(frozen=True)
class Plan:
    """How one strategy fills a batch of ``batch_size`` from the unlabeled ids.

    ``subset_size`` is how many unlabeled ids get scored (``None``: all of
    them, ``0``: none). ``n_uncertain`` of the batch come from the top of the
    scored subset; the rest are random. With ``candidate_factor`` set
    (``hybrid``), the ``n_uncertain`` are chosen for diversity among the top
    ``ceil(candidate_factor * n_uncertain)`` of the subset, and ``max_reference``
    bounds how many labeled images the distances run to (``None``: all of them).
    """

    strategy: str
    batch_size: int
    subset_size: int | None
    n_uncertain: int
    candidate_factor: float | None = None
    max_reference: int | None = None

    @property
    def needs_scores(self) -> bool:
        return self.n_uncertain > 0 and self.subset_size != 0

    @property
    def needs_embeddings(self) -> bool:
        return self.candidate_factor is not None and self.needs_scores


def strategy_plan(
    strategy: str,
    pool_size: int,
    *,
    batch_fraction: float = 0.10,
    subset_fraction: float = 0.20,
    uncertain_share: float = 0.5,
    candidate_factor: float = 3.0,
    max_labeled: int | None = None,
) -> Plan:
    """Turn a named strategy and the pool size ``T`` into a :class:`Plan`.

    Fractions are of the whole pool (labeled and unlabeled, validation
    excluded), as in ``docs/method.md``: ``B = batch_fraction * T`` and the subset is
    ``subset_fraction * T``. ``candidate_factor`` (``m``, at least 1) and
    ``max_labeled`` (the most labeled images the k-center distances run to, at
    least 1; ``None``: all) only matter for ``hybrid``.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(unknown("strategy", strategy, STRATEGIES))
    for name, value in (("batch_fraction", batch_fraction), ("subset_fraction", subset_fraction)):
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"{name} must lie in (0, 1], got {value!r}")
    if not 0.0 <= uncertain_share <= 1.0:
        raise ConfigError(f"uncertain_share must lie in [0, 1], got {uncertain_share!r}")
    if not (math.isfinite(candidate_factor) and candidate_factor >= 1.0):
        raise ConfigError(f"candidate_factor must be a finite number >= 1, got {candidate_factor!r}")
    if max_labeled is not None and (isinstance(max_labeled, bool) or not isinstance(max_labeled, int)
                                    or max_labeled < 1):
        raise ConfigError(f"hybrid_max_labeled must be a positive integer or null, got {max_labeled!r}")
    batch = fraction_count(batch_fraction, pool_size)
    if strategy == "hold":
        return Plan(strategy, 0, 0, 0)
    if strategy == "random":
        return Plan(strategy, batch, 0, 0)
    if strategy == "topk":
        return Plan(strategy, batch, None, batch)
    subset = fraction_count(subset_fraction, pool_size)
    if strategy == "subset_topk":
        return Plan(strategy, batch, subset, batch)
    n_uncertain = math.floor(uncertain_share * batch + 0.5)
    if strategy == "hybrid":
        return Plan(strategy, batch, subset, n_uncertain, float(candidate_factor), max_labeled)
    return Plan(strategy, batch, subset, n_uncertain)


def cap_plan(plan: Plan, room: int) -> Plan:
    """``plan`` with its batch cut to ``room`` images (the budget left), keeping its uncertain share.

    The uncertain part is rounded half up: a 50:50 plan cut to 3 images takes
    2 uncertain and 1 random; a pure top-k plan stays pure top-k.
    """
    room = max(0, int(room))
    if room >= plan.batch_size:
        return plan
    n_uncertain = math.floor(plan.n_uncertain * room / plan.batch_size + 0.5)
    return dataclasses.replace(plan, batch_size=room, n_uncertain=min(room, n_uncertain))


@dataclass(frozen=True)
class Selection:
    """The outcome of one selection round.

    ``ids`` is the batch (uncertain picks first, then random ones);
    ``scored_ids`` and ``scores`` are what the scorer returned for the subset.
    """

    ids: np.ndarray
    uncertain_ids: np.ndarray
    random_ids: np.ndarray
    scored_ids: np.ndarray
    scores: np.ndarray


def k_center_greedy(
    candidates: np.ndarray, k: int, reference: np.ndarray | None = None, *, chunk: int = 4096
) -> np.ndarray:
    """Greedy k-center over ``candidates`` (rows, most uncertain first); positions in pick order.

    Distances are cosine distances, ``1 - cos``, between rows (each row is
    L2-normalised here, so callers may pass raw features). The first pick is
    row 0, the most uncertain candidate (``docs/method.md``, "Diversity"); every later
    pick is the candidate farthest from everything already chosen and from
    every row of ``reference`` (the labeled images). Ties go to the earlier
    row, so the result is deterministic. Cost: ``O(k * n * d)`` for the picks
    plus ``O(n * r * d)`` for the reference, computed ``chunk`` rows at a time.
    """
    cand = _unit_rows(candidates, "candidates")
    k = min(_check_k(k), cand.shape[0])
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    nearest = np.full(cand.shape[0], np.inf, dtype=np.float32)
    if reference is not None and np.asarray(reference).size:
        ref = _unit_rows(reference, "reference")
        if ref.shape[1] != cand.shape[1]:
            raise DataError(f"reference has {ref.shape[1]} dimensions, candidates {cand.shape[1]}")
        for start in range(0, ref.shape[0], chunk):
            sims = cand @ ref[start : start + chunk].T
            np.minimum(nearest, 1.0 - sims.max(axis=1), out=nearest)
    picked = np.empty(k, dtype=np.int64)
    taken = np.zeros(cand.shape[0], dtype=bool)
    nxt = 0
    for i in range(k):
        picked[i] = nxt
        taken[nxt] = True
        np.minimum(nearest, 1.0 - cand @ cand[nxt], out=nearest)
        if i + 1 < k:
            # argmax returns the first of equal values: the more uncertain candidate.
            nxt = int(np.argmax(np.where(taken, -np.inf, nearest)))
    return picked


def _unit_rows(x: object, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 2:
        raise DataError(f"{name} embeddings must be a 2-D (n, d) array, got shape {arr.shape}")
    if arr.size and not np.all(np.isfinite(arr)):
        raise DataError(f"{name} embeddings must be finite")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    if arr.shape[0] and np.any(norms == 0):
        raise DataError(f"{name} embeddings hold an all-zero row (no direction for a cosine distance)")
    return arr / np.maximum(norms, np.finfo(np.float32).tiny)


def select_batch(
    unlabeled_ids: np.ndarray,
    plan: Plan,
    rng: np.random.Generator,
    scorer: Scorer | None = None,
    *,
    embedder: Embedder | None = None,
    labeled_ids: np.ndarray | None = None,
) -> Selection:
    """Fill ``plan.batch_size`` picks from ``unlabeled_ids``.

    ``scorer`` maps an array of ids to an array of uncertainties (higher means
    more uncertain); it is called once, on the subset only (in random draw
    order), and only when the plan needs scores. Equal scores are broken by
    that random order, so the same seed gives the same picks. When fewer than
    ``batch_size`` ids remain, every remaining id is picked.

    A ``hybrid`` plan also needs ``embedder``, called once with the candidate
    ids (the top ``candidate_factor * n_uncertain`` of the subset, images that
    could not be scored excluded) followed by ``labeled_ids``; the
    uncertain share is their greedy k-center (:func:`k_center_greedy`) on
    embeddings centred by the mean of those rows. With more labeled ids than
    ``plan.max_reference``, a sample of that many, drawn with ``rng`` before
    the random share, stands for them (then, and only then, the random share
    differs from an unbounded plan's with the same seed).
    """
    unlabeled = np.sort(_as_ids(unlabeled_ids, "unlabeled_ids"))
    rng = _check_rng(rng)
    empty_f = np.zeros(0, dtype=np.float64)
    batch = min(plan.batch_size, unlabeled.size)

    scored_ids, scores, uncertain = unlabeled[:0], empty_f, unlabeled[:0]
    if plan.needs_scores and batch > 0:
        if scorer is None:
            raise DataError(f"strategy {plan.strategy!r} needs a scorer")
        if plan.needs_embeddings and embedder is None:
            raise DataError(f"strategy {plan.strategy!r} needs image embeddings")
        # The subset comes in random draw order (for topk: all of them, shuffled), and
        # ties break by that order: images that score the same (e.g. every image
        # with no box gets empty_image_score) are taken at random, not by id, which
        # would favour whatever order the pool was listed in.
        size = unlabeled.size if plan.subset_size is None else plan.subset_size
        scored_ids = _draw(unlabeled, size, rng)
        scores = np.asarray(scorer(scored_ids), dtype=np.float64).reshape(-1)
        if scores.shape != scored_ids.shape:
            raise DataError(f"scorer returned {scores.size} scores for {scored_ids.size} ids")
        order = np.arange(scored_ids.size)
        n_uncertain = min(plan.n_uncertain, batch)
        if plan.needs_embeddings:
            uncertain = _diverse_top(scored_ids, scores, order, n_uncertain, plan, embedder, labeled_ids, rng)
        else:
            uncertain = top_k(scored_ids, scores, n_uncertain, tiebreak=order)

    remaining = np.ones(unlabeled.size, dtype=bool)
    remaining[np.searchsorted(unlabeled, uncertain)] = False
    randoms = _draw(unlabeled[remaining], batch - uncertain.size, rng)
    return Selection(
        ids=np.concatenate([uncertain, randoms]),
        uncertain_ids=uncertain,
        random_ids=randoms,
        scored_ids=scored_ids,
        scores=scores,
    )


def _diverse_top(
    scored_ids: np.ndarray, scores: np.ndarray, order: np.ndarray, k: int, plan: Plan,
    embedder: Embedder, labeled_ids: np.ndarray | None, rng: np.random.Generator,
) -> np.ndarray:
    """The hybrid uncertain share: greedy k-center among the top ``m * k`` scored ids."""
    finite = np.isfinite(scores)
    m = math.ceil(float(plan.candidate_factor or 1.0) * k)
    candidates = top_k(scored_ids[finite], scores[finite], m, tiebreak=order[finite])
    if candidates.size <= k:
        return candidates
    labeled = np.zeros(0, np.int64) if labeled_ids is None else labeled_ids
    labeled = reference_sample(labeled, plan.max_reference, rng)
    emb = np.asarray(embedder(np.concatenate([candidates, labeled])))
    if emb.ndim != 2 or emb.shape[0] != candidates.size + labeled.size:
        raise DataError(
            f"embedder returned shape {emb.shape} for {candidates.size + labeled.size} ids"
        )
    cand, ref = _centred(emb, candidates.size)
    picked = k_center_greedy(cand, k, ref)
    return candidates[picked]


def reference_sample(labeled_ids: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    """The labeled ids hybrid's distances run to: all of them as given, or ``limit`` drawn with ``rng``.

    Under the limit neither ``rng`` nor the order is touched, so the picks are
    those of an unbounded plan, bit for bit. Over it, the sample depends only
    on the set of ids and the generator, and comes sorted.
    """
    ids = _as_ids(labeled_ids, "labeled_ids")
    if limit is None or ids.size <= limit:
        return ids
    return np.sort(_draw(np.sort(ids), limit, rng))


def _centred(emb: np.ndarray, n_candidates: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate and reference rows minus their common mean.

    Pooled detector features are non-negative activations that share one
    dominant direction: on a weakly trained model two unrelated images can
    have cosine similarity 0.9999. Subtracting the mean of the rows that take
    part (candidates and labeled images) keeps what tells images apart, so
    the cosine distance of the centred rows (a correlation distance) ranks
    differences instead of rounding error. A row that equals the mean keeps
    its raw value.
    """
    x = np.asarray(emb, dtype=np.float32)
    centred = x - x.mean(axis=0, keepdims=True)
    flat = np.linalg.norm(centred, axis=1) <= 1e-6 * np.maximum(np.linalg.norm(x, axis=1), 1e-30)
    centred[flat] = x[flat]
    return centred[:n_candidates], centred[n_candidates:]
