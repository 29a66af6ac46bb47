"""Fusing a dense and a lexical (BM25) ranking of one query into one hybrid ranking.

Two fusion functions, both on plain numpy arrays (one query at a time):

* :func:`weighted` - a convex combination of normalised scores (TM2C2 in Bruch et al.): each list's
  scores are mapped to [0, 1] by ``(s - floor) / (max - floor)``, with the scoring function's *theoretical*
  minimum as the floor (-1 for cosine similarity, 0 for BM25) and the list's best score as the max; the
  fused score is ``weight * dense + (1 - weight) * lexical``. A document missing from one list scores that
  list's floor there (0 after normalising). One parameter, ``weight``, which :func:`fit_weight` fits on
  judged queries.
* :func:`rrf` - reciprocal rank fusion (Cormack et al.): ``sum_i w_i / (c + rank_i)``, a document missing
  from a list contributing nothing; no parameter to fit.

Ties are broken by the best rank the document has in any list, then by its id (ascending), so fusion is
deterministic.

References:
    Bruch, Gai, Ingber: An Analysis of Fusion Functions for Hybrid Retrieval. ACM TOIS 42(1), 2023.
    Cormack, Clarke, Buettcher: Reciprocal Rank Fusion outperforms Condorcet and individual Rank Learning
    Methods. SIGIR 2009.

Example:
    >>> import numpy as np
    >>> dense = (np.array([0.9, 0.5], np.float32), np.array([7, 3]))
    >>> bm25 = (np.array([12.0, 4.0], np.float32), np.array([3, 9]))
    >>> weighted(dense, bm25, weight=0.5, k=3)[1].tolist()
    [3, 7, 9]
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

__all__ = ["DEFAULT_WEIGHT", "DENSE_FLOOR", "FUSIONS", "INDEX_KINDS", "MODES", "LEXICAL_FLOOR", "RRF_C", "WEIGHT_GRID",
           "fit_weight", "fuse", "rrf", "scorer", "weighted"]

MODES = ("dense", "bm25", "hybrid")  # the retrievers a user picks from: the encoder, BM25, or both fused
FUSIONS = ("weighted", "rrf")
#: The dense index a search goes through: the run's own (exact below 100k documents, else HNSW), or its tree.
INDEX_KINDS = ("auto", "tree")
#: Dense weight used where no judged queries fit one (measured in benchmarks/README.md, "Hybrid search").
DEFAULT_WEIGHT = 0.8
DENSE_FLOOR = -1.0  # cosine similarity of unit vectors
LEXICAL_FLOOR = 0.0  # BM25 scores are >= 0
RRF_C = 60
WEIGHT_GRID = tuple(round(w, 2) for w in np.arange(0.0, 1.0001, 0.05))

Ranked = tuple[np.ndarray, np.ndarray]  # (scores float (n,), ids int64 (n,)), best first; id -1 = padding


def _valid(ranked: Ranked) -> Ranked:
    scores, ids = (np.asarray(a).reshape(-1) for a in ranked)
    if scores.shape != ids.shape:
        raise ValueError(f"scores and ids differ in length: {scores.shape} vs {ids.shape}")
    keep = (ids >= 0) & np.isfinite(scores)
    return scores[keep].astype(np.float64), ids[keep].astype(np.int64)


def _ranks(ids: np.ndarray, union: np.ndarray) -> np.ndarray:
    """1-based rank of each ``union`` id in ``ids`` (first occurrence), 0 where absent."""
    first: dict[int, int] = {}
    for r, i in enumerate(ids.tolist(), start=1):
        first.setdefault(i, r)
    return np.asarray([first.get(i, 0) for i in union.tolist()], dtype=np.int64)


def _top(union: np.ndarray, fused: np.ndarray, ranks: list[np.ndarray], k: int) -> Ranked:
    best = np.min(np.stack([np.where(r > 0, r, np.iinfo(np.int64).max) for r in ranks]), axis=0)
    order = np.lexsort((union, best, -fused))[:k]
    return fused[order].astype(np.float32), union[order]


def weighted(dense: Ranked, lexical: Ranked, weight: float, k: int,
             floors: tuple[float, float] = (DENSE_FLOOR, LEXICAL_FLOOR)) -> Ranked:
    """Convex combination of min-max normalised scores (theoretical minimum as the floor).

    Args:
        dense, lexical: (scores (n,), ids (n,)) of one query, best first; ids < 0 are padding.
        weight: the dense list's weight in [0, 1]; the lexical list gets ``1 - weight``.
        k: how many fused documents to return.
        floors: the lowest score each list's scoring function can give.

    Returns:
        (scores float32 (m,), ids int64 (m,)), m = min(k, distinct documents), best first.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    lists = [_valid(dense), _valid(lexical)]
    union = np.unique(np.concatenate([ids for _, ids in lists]))
    fused = np.zeros(len(union))
    ranks = []
    for (scores, ids), floor, w in zip(lists, floors, (weight, 1.0 - weight), strict=True):
        ranks.append(_ranks(ids, union))
        if len(ids) == 0:
            continue
        span = scores.max() - floor
        norm = (scores - floor) / span if span > 0 else np.zeros_like(scores)
        best: dict[int, float] = {}
        for i, s in zip(ids.tolist(), norm.tolist(), strict=True):
            best[i] = max(s, best.get(i, s))
        fused += w * np.asarray([best.get(i, 0.0) for i in union.tolist()])
    return _top(union, fused, ranks, k)


def rrf(rankings: Sequence[np.ndarray], k: int, c: int = RRF_C, weights: Sequence[float] | None = None) -> Ranked:
    """Reciprocal rank fusion of several rankings of one query.

    Args:
        rankings: ids int64 (n_i,) per list, best first; ids < 0 are padding.
        k: how many fused documents to return.
        c: the constant damping the top ranks (60 in the paper).
        weights: one per list (default 1 each).

    Returns:
        (scores float32 (m,), ids int64 (m,)), best first; score = sum over lists of ``w / (c + rank)``.
    """
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    lists = [np.asarray(r, dtype=np.int64).reshape(-1) for r in rankings]
    lists = [r[r >= 0] for r in lists]
    union = np.unique(np.concatenate(lists)) if lists else np.zeros(0, np.int64)
    fused = np.zeros(len(union))
    ranks = []
    for ids, w in zip(lists, weights, strict=True):
        r = _ranks(ids, union)
        ranks.append(r)
        fused += np.where(r > 0, w / (c + np.maximum(r, 1)), 0.0)
    if not ranks:
        return np.zeros(0, np.float32), union
    return _top(union, fused, ranks, k)


def fuse(dense: Ranked, lexical: Ranked, k: int, fusion: str = "weighted", weight: float = DEFAULT_WEIGHT) -> Ranked:
    """One query's hybrid ranking by ``fusion`` ("weighted" or "rrf"; RRF ignores ``weight``)."""
    if fusion == "weighted":
        return weighted(dense, lexical, weight, k)
    if fusion == "rrf":
        return rrf([dense[1], lexical[1]], k)
    raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")


def fit_weight(dense: Sequence[Ranked], lexical: Sequence[Ranked], query_ids: Sequence[str],
               score: Callable[[dict[str, list[int]]], float], grid: Sequence[float] = WEIGHT_GRID,
               prefer: float = DEFAULT_WEIGHT) -> tuple[float, dict[float, float]]:
    """The dense weight of :func:`weighted` that maximises ``score`` over judged queries.

    Args:
        dense, lexical: one (scores, ids) per query, aligned with ``query_ids``.
        score: maps ``{qid: [doc id, ...] best first}`` to a number to maximise (e.g. mean nDCG@10).
        grid: the weights tried.
        prefer: among equally good weights, the one closest to this wins.

    Returns:
        (best weight, {weight: score} for every weight tried).
    """
    table: dict[float, float] = {}
    for w in grid:
        runs = {q: weighted(d, b, float(w), 100)[1].tolist() for q, d, b in zip(query_ids, dense, lexical, strict=True)}
        table[float(w)] = float(score(runs))
    top = max(table.values())
    best = min((w for w, s in table.items() if s >= top - 1e-12), key=lambda w: (abs(w - prefer), w))
    return best, table


def scorer(qrels: Mapping[str, Mapping[str, int]], id_to_ext: Mapping[int, str],
           metric: str = "ndcg_at_10") -> Callable[[dict[str, list[int]]], float]:
    """A ``score`` for :func:`fit_weight`: mean ``metric`` of internal-id rankings against ``qrels``."""
    from ..evaluation import evaluate

    def score(runs: dict[str, list[int]]) -> float:
        return evaluate({q: [id_to_ext[i] for i in ids] for q, ids in runs.items()}, qrels)[metric]
    return score
