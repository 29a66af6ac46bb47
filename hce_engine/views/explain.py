"""Why a document ranks where it does for a query: the tree path, three retrievers, shared words, movers.

:func:`explain` answers, for one (query, document) pair under a run and the encoder it started from:

* **the path**: the document's branch at every tree level, the query's similarity to it and to the branch's
  siblings (the candidates HCE's loss contrasts), and which branch the query itself would have taken there;
* **the scores and ranks** of the document under the run's encoder, the starting encoder and BM25 (ranks
  over the whole corpus, exact);
* **the words** of the query that BM25 matches in the document (stemmed, stop words out);
* **what training moved**: the documents whose rank for this query changed most between the two encoders.

Pure data, no Streamlit: the Search page, ``hce explain`` and Python read the same dict.

Example:
    >>> why = explain(ws, run_id=7, query="vitamin D and bone density", doc_id=42)
    >>> why["retrievers"]["run"]["rank"], why["retrievers"]["start"]["rank"], why["path"][0]["took_branch"]
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError, NotFoundError
from ..runs import Run
from . import rows_of, run_vectors, snippet
from .siblings import default_compare_run, siblings_view

#: Documents considered for "what moved": the top of either encoder's ranking.
MOVED_POOL = 20


def _ranking(ws, info: Run, query: str) -> tuple[np.ndarray, np.ndarray]:
    """(doc ids ascending, exact cosine of every live document to the query) under a run's encoder."""
    ids, vecs = run_vectors(ws, info.run_id)
    return ids, vecs @ ws.encode_queries(info, [query])[0]


def _rank_of(scores: np.ndarray, row: int) -> int | None:
    return None if row < 0 else int(1 + (scores > scores[row]).sum())


def explain(ws, run_id: int, query: str, doc_id: int, compare_run: int | None = None, moved: int = 5,
            max_siblings: int = 8) -> dict:
    """Why ``doc_id`` ranks where it does for ``query`` under run ``run_id``.

    Args:
        ws: the Workspace. run_id: a finished run. doc_id: the document's store id.
        compare_run: the "before" run (default: the run's starting encoder, see ``default_compare_run``;
            for a zero-shot run there is none and the retrievers show that run and BM25 only).
        moved: how many documents to list whose rank moved most (up and down each).
        max_siblings: siblings listed per level.

    Returns:
        A JSON-friendly dict: run_id, compare_run, query, doc {doc_id, ext_id, title, snippet},
        retrievers {"run"/"start"/"bm25": {score, rank}} (rank over all documents, None when BM25 does not
        match it at all; "run" is the run's encoder, "start" the compare run's), shared_words,
        path [{level, node, label, score, rank, n_candidates, query_branch, query_branch_label,
        query_branch_score, took_branch, score_compare?, rank_compare?, siblings [{label, score, is_positive}]}],
        leaf {rank, n_candidates, score}, moved_up / moved_down [{doc_id, ext_id, title, rank, rank_compare}].
    """
    info = ws.run(run_id, "explore")
    query = (query or "").strip()
    if not query:
        raise InputError("the query is empty")
    if compare_run is None:
        compare_run = default_compare_run(ws, run_id)
    view = siblings_view(ws, run_id, doc_id=int(doc_id), query=query, compare_run=compare_run,
                         max_siblings=max_siblings)
    path = []
    for lv in view["levels"]:
        best = min(lv["candidates"], key=lambda c: (c["rank"], -c["score"]))
        mine = next(c for c in lv["candidates"] if c["is_positive"])
        step = {"level": lv["level"], "node": lv["positive"], "label": lv["positive_label"], "score": mine["score"],
                "rank": lv["rank"], "n_candidates": lv["n_candidates"], "query_branch": best["node"],
                "query_branch_label": best["label"], "query_branch_score": best["score"],
                "took_branch": best["node"] == lv["positive"],
                "siblings": [{"label": c["label"], "score": c["score"], "is_positive": c["is_positive"]}
                             for c in lv["candidates"]]}
        if "rank_compare" in lv:
            step.update(score_compare=mine.get("score_compare"), rank_compare=lv["rank_compare"])
        path.append(step)
    leaf = {"rank": view["leaf"]["rank"], "n_candidates": view["leaf"]["n_candidates"],
            "label": view["leaf"]["leaf_label"]}

    runs = {"run": info}
    if view["compare_run"] is not None:
        runs["start"] = ws.run(view["compare_run"], "explore")
    retrievers, rankings = {}, {}
    for name, r in runs.items():
        ids, scores = _ranking(ws, r, query)
        rankings[name] = (ids, scores)
        row = int(rows_of(ids, [doc_id])[0])
        if row < 0:
            raise NotFoundError(f"document {doc_id} has no vector in run {r.run_id}")
        retrievers[name] = {"run_id": r.run_id, "score": float(scores[row]), "rank": _rank_of(scores, row)}
    bm25 = ws.bm25(info.corpus)
    b_scores = bm25.all_scores(query)
    hit = np.flatnonzero(bm25.ids() == int(doc_id))
    b_row = int(hit[0]) if len(hit) else -1
    matched = b_row >= 0 and b_scores[b_row] > 0
    retrievers["bm25"] = {"score": float(b_scores[b_row]) if b_row >= 0 else 0.0,
                          "rank": _rank_of(b_scores, b_row) if matched else None}

    doc = view["doc"]
    text = ws.documents(info.corpus, include_removed=True, doc_ids=[int(doc_id)])
    full = f"{text.iloc[0]['title']} {text.iloc[0]['text']}" if len(text) else ""
    out = {"run_id": int(run_id), "compare_run": view["compare_run"], "query": query, "doc": doc,
           "retrievers": retrievers, "shared_words": bm25.shared_terms(query, full), "path": path, "leaf": leaf,
           "moved_up": [], "moved_down": []}
    if "start" in rankings:
        out.update(_movers(ws, info, rankings["run"], rankings["start"], moved))
    return out


def _movers(ws, info: Run, after: tuple, before: tuple, n: int) -> dict:
    """The documents among either ranking's top MOVED_POOL whose rank changed most (after vs before)."""
    ids, s_after = after
    b_ids, s_before = before
    rows = rows_of(b_ids, ids)
    keep = rows >= 0
    ids, s_after, s_b = ids[keep], s_after[keep], s_before[rows[keep]]
    r_after = np.empty(len(ids), np.int64)
    r_after[np.argsort(-s_after, kind="stable")] = np.arange(1, len(ids) + 1)
    r_before = np.empty(len(ids), np.int64)
    r_before[np.argsort(-s_b, kind="stable")] = np.arange(1, len(ids) + 1)
    pool = np.flatnonzero((r_after <= MOVED_POOL) | (r_before <= MOVED_POOL))
    delta = r_before[pool] - r_after[pool]  # > 0: moved up with training
    docs = ws.documents(info.corpus, include_removed=True, doc_ids=ids[pool]).set_index("doc_id")

    def rows_for(order) -> list[dict]:
        out = []
        for i in order[:n]:
            if delta[i] == 0:
                break
            d = int(ids[pool[i]])
            row = docs.loc[d] if d in docs.index else None
            out.append({"doc_id": d, "ext_id": str(row["ext_id"]) if row is not None else "",
                        "title": str(row["title"] or snippet(row["text"], 80)) if row is not None else "",
                        "rank": int(r_after[pool[i]]), "rank_compare": int(r_before[pool[i]])})
        return out
    return {"moved_up": rows_for(np.argsort(-delta, kind="stable")),
            "moved_down": rows_for(np.argsort(delta, kind="stable"))}


__all__ = ["explain", "MOVED_POOL"]
