"""Retrieval metrics (nDCG@10, Recall@10/100, MRR@10) following trec_eval conventions.

Pure Python + numpy: no faiss / duckdb / torch imports, so it runs anywhere.

Conventions (identical to trec_eval, and to ranx for tie-free runs):

* A document is relevant iff its qrels value is > 0 (0 and negative values: not relevant).
* nDCG uses linear gain: ``DCG@10 = sum_{r=1..10} max(rel_r, 0) / log2(r + 1)``; the ideal DCG
  ranks the query's own positive qrels values in decreasing order.
* Recall@k = |relevant in top k| / |relevant| (denominator NOT capped at k).
* Recall@1 (per query only, with ``per_query=True``): 1 / |relevant| when the first document is relevant.
* MRR@10 = 1 / rank of the first relevant document within the top 10 (0 if none).
* Evaluated queries are the qrels queries with at least one relevant document; such a query
  missing from the ranking scores 0 on every metric. Ranking queries absent from qrels are
  ignored. Averages are over evaluated queries.
* A ranking given as ``{doc: score}`` is ordered by score descending, ties broken by doc id
  descending (string comparison), exactly as trec_eval re-sorts a run file. A ranking given as
  a list is taken in list order (later duplicates of a doc are dropped).
"""
from __future__ import annotations

import math
import os
from typing import IO, Any, Iterable, Mapping, Sequence, Union

import numpy as np

__all__ = [
    "METRICS",
    "METRIC_LABELS",
    "evaluate",
    "order_ranking",
    "rankings_from_arrays",
    "write_trec_run",
]

#: Names of the metrics returned by :func:`evaluate` (besides ``queries``).
METRICS = ("ndcg_at_10", "recall_at_10", "recall_at_100", "mrr_at_10")
#: Every metric the project reports (``recall_at_1`` only per query), in display order, with the label that
#: tables, figures and the CLI show for it: the one place these labels are written.
METRIC_LABELS: dict[str, str] = {"ndcg_at_10": "nDCG@10", "mrr_at_10": "MRR@10", "recall_at_1": "R@1",
                                 "recall_at_10": "R@10", "recall_at_100": "R@100"}

Ranking = Union[Sequence[str], Mapping[str, float]]

_LOG2 = [0.0] + [1.0 / math.log2(r + 1) for r in range(1, 11)]  # discount for rank r (1-based)


def order_ranking(ranking: Ranking) -> list[str]:
    """Doc ids of one query's ranking, best first.

    A mapping ``doc -> score`` is sorted by (score desc, doc id desc) like trec_eval; a sequence
    is kept in order with repeated doc ids dropped (first occurrence kept).
    """
    if isinstance(ranking, Mapping):
        return [doc for doc, _ in sorted(ranking.items(),
                                         key=lambda item: (float(item[1]), item[0]),
                                         reverse=True)]
    seen: set[str] = set()
    out = []
    for doc in ranking:
        if doc not in seen:
            seen.add(doc)
            out.append(doc)
    return out


def _query_metrics(docs: list[str], judged: Mapping[str, Any]) -> dict[str, float]:
    gains = sorted((float(v) for v in judged.values() if v > 0), reverse=True)
    n_rel = len(gains)
    idcg = sum(g * _LOG2[r] for r, g in enumerate(gains[:10], start=1))
    dcg = 0.0
    rr = 0.0
    hits1 = hits10 = hits100 = 0
    for r, doc in enumerate(docs[:100], start=1):
        rel = judged.get(doc, 0)
        if rel <= 0:
            continue
        hits100 += 1
        hits1 += r == 1
        if r <= 10:
            hits10 += 1
            dcg += float(rel) * _LOG2[r]
            if rr == 0.0:
                rr = 1.0 / r
    return {
        "ndcg_at_10": dcg / idcg if idcg > 0 else 0.0,
        "recall_at_10": hits10 / n_rel,
        "recall_at_100": hits100 / n_rel,
        "mrr_at_10": rr,
        "recall_at_1": hits1 / n_rel,
    }


def evaluate(
    ranking: Mapping[str, Ranking],
    qrels: Mapping[str, Mapping[str, int]],
    per_query: bool = False,
) -> dict:
    """Evaluate a run against qrels.

    ``ranking``: ``{qid: [doc, ...]}`` (best first) or ``{qid: {doc: score}}``.
    ``qrels``: ``{qid: {doc: relevance}}`` (graded ints; <= 0 means not relevant).

    Returns ``{"ndcg_at_10", "recall_at_10", "recall_at_100", "mrr_at_10"}`` as fractions in
    [0, 1] plus ``"queries"`` (number of evaluated queries). With ``per_query=True`` returns
    ``{"mean": <that dict>, "per_query": {qid: {metric: value}}}`` over the evaluated queries.
    """
    per: dict[str, dict[str, float]] = {}
    for qid, judged in qrels.items():
        if not any(v > 0 for v in judged.values()):
            continue
        run = ranking.get(qid)
        docs = order_ranking(run) if run is not None else []
        per[qid] = _query_metrics(docs, judged)
    n = len(per)
    mean: dict[str, Any] = {
        m: (math.fsum(q[m] for q in per.values()) / n if n else 0.0) for m in METRICS
    }
    mean["queries"] = n
    if per_query:
        return {"mean": mean, "per_query": per}
    return mean


def rankings_from_arrays(
    query_ids: Sequence[str],
    ids: np.ndarray,
    scores: np.ndarray,
    id_to_ext: Mapping[int, str] | Sequence[str],
) -> dict[str, dict[str, float]]:
    """Turn search output into ``{qid: {ext_doc_id: score}}``.

    ``query_ids``: q query ids; ``ids`` int64 (q, k) internal doc ids (-1 = padding, dropped);
    ``scores`` (q, k); ``id_to_ext``: internal id -> external doc id (dict, list or array).
    If a doc appears twice in a row its highest score is kept.
    """
    ids = np.asarray(ids)
    scores = np.asarray(scores)
    if ids.ndim != 2 or ids.shape != scores.shape:
        raise ValueError(f"ids and scores must be (q, k) arrays of one shape, got "
                         f"{ids.shape} and {scores.shape}")
    if ids.shape[0] != len(query_ids):
        raise ValueError(f"{len(query_ids)} query ids for {ids.shape[0]} result rows")
    out: dict[str, dict[str, float]] = {}
    for qid, row_ids, row_scores in zip(query_ids, ids.tolist(), scores.tolist(), strict=True):
        row: dict[str, float] = {}
        for i, s in zip(row_ids, row_scores, strict=True):
            if i < 0:
                continue
            doc = str(id_to_ext[i])
            if doc not in row or s > row[doc]:
                row[doc] = float(s)
        out[str(qid)] = row
    return out


def _check_field(value: str, what: str) -> str:
    value = str(value)
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"{what} {value!r} must be non-empty and contain no whitespace")
    return value


def write_trec_run(
    ranking: Mapping[str, Ranking],
    path_or_file: Union[str, os.PathLike, IO[str]],
    tag: str = "hce",
) -> int:
    """Write a standard 6-column TREC run: ``qid Q0 docid rank score tag``.

    ``ranking``: ``{qid: {doc: score}}`` (or ``{qid: [doc, ...]}``, scored n, n-1, ..., 1).
    Docs are written in trec_eval order (score desc, doc id desc), ranks from 1, scores with
    full float precision so trec_eval re-sorts them identically. ``path_or_file``: a path (file
    is overwritten) or a text file object. Returns the number of lines written.
    """
    tag = _check_field(tag, "tag")
    lines: list[str] = []
    for qid, run in ranking.items():
        qid = _check_field(qid, "query id")
        docs = order_ranking(run)
        if isinstance(run, Mapping):
            pairs: Iterable[tuple[str, float]] = ((d, float(run[d])) for d in docs)
        else:
            pairs = ((d, float(len(docs) - r)) for r, d in enumerate(docs))
        for rank, (doc, score) in enumerate(pairs, start=1):
            doc = _check_field(doc, "doc id")
            lines.append(f"{qid} Q0 {doc} {rank} {score!r} {tag}\n")
    if isinstance(path_or_file, (str, os.PathLike)):
        with open(path_or_file, "w", encoding="utf-8") as fh:
            fh.writelines(lines)
    else:
        path_or_file.writelines(lines)
    return len(lines)
