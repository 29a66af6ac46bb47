"""The HCE training signal made visible: a path through the tree and, at every level, the siblings.

For a training pair (q, d+) with path n_1 .. n_D the loss asks, at level t, that q score its own branch n_t
above the other children of n_{t-1}; below the leaf cluster n_D it asks that q score d+ above the sibling
documents of that cluster. :func:`siblings_view` computes exactly those candidate sets for one document or
query, with the scores, the positive's rank and the cross-entropy term per level, under a run's encoder
and (optionally) under a second run's encoder on the *same* tree, e.g. before and after training.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError, NotFoundError
from . import label_of, normalise, rows_of, run_vectors, snippet

DEFAULT_TAU = 0.05


def _node_reps(tree, nodes: np.ndarray, vec_ids: np.ndarray, vecs: np.ndarray) -> np.ndarray:
    """Normalised mean of the given vectors over each node's documents (zeros for nodes without any)."""
    out = np.zeros((len(nodes), vecs.shape[1]), dtype=np.float32)
    for i, n in enumerate(nodes):
        rows = rows_of(vec_ids, tree.doc_ids[tree.subtree_docs(int(n))])
        rows = rows[rows >= 0]
        if len(rows):
            out[i] = vecs[rows].sum(0)
    return normalise(out) * (np.linalg.norm(out, axis=1, keepdims=True) > 0)


def _rank_stats(scores: np.ndarray, pos: int, tau: float) -> dict:
    """Rank of the positive (1 = best, ties counted in its favour), its softmax probability and CE loss."""
    s = np.asarray(scores, dtype=np.float64)
    logits = s / tau
    logits = logits - logits.max()
    logp = logits - np.log(np.exp(logits).sum())
    return {"rank": int(1 + (s > s[pos]).sum()), "p_positive": float(np.exp(logp[pos])),
            "loss": float(-logp[pos])}


def _ranks(scores: np.ndarray) -> np.ndarray:
    """Competition ranks (1 = highest score)."""
    s = np.asarray(scores, dtype=np.float64)
    return (1 + (s[None, :] > s[:, None]).sum(1)).astype(int)


def _pick_shown(scores: np.ndarray, pos: int, limit: int) -> np.ndarray:
    """Indices to display: the positive plus the best-scoring others, at most ``limit``, by score."""
    order = np.argsort(-scores, kind="stable")
    if len(order) > limit:
        keep = [i for i in order if i != pos][:max(limit - 1, 0)]
        order = np.asarray(sorted(keep + [pos], key=lambda i: (-scores[i], i)), dtype=np.int64)
    return order


def siblings_view(ws, run_id: int, doc_id: int | None = None, query: str | None = None,
                  compare_run: int | None = None, max_siblings: int = 30, rebuild: int | None = None,
                  tau: float | None = None, positive_text: str | None = None) -> dict:
    """The positive's path and its sibling candidates at every level of a run's tree.

    Args:
        ws: the Workspace. run_id: a finished run with vectors and a tree (its latest rebuild unless
            ``rebuild`` is given).
        doc_id: store id of the positive document. With ``query`` it is the query's relevant document;
            without, the document itself is the anchor (its stored vector plays the query).
        query: free text; its positive is ``doc_id`` if given, else its top-1 dense hit under ``run_id``.
        compare_run: another finished run of the same corpus (e.g. the zero-shot baseline, "before
            training"): the same tree and the same candidates, scored with that run's encoder and vectors.
        max_siblings: candidates listed per level (the positive plus the best-scoring others); ranks and
            losses always use every candidate.
        tau: softmax temperature for the loss terms (default: the run's training tau, else 0.05).
        positive_text: with ``query`` and ``doc_id``, the text that stands for the positive document (e.g. the
            document with the pseudo-query's sentence removed, see :func:`pseudo_queries`): each scoring run
            encodes it at its document length and it replaces the document's stored vector, at the leaf and in
            its nodes' centroids, as ICT and the self signal contrast it.

    Scores are cosines between the anchor (query embedding under the run's encoder, or the document's
    stored vector) and each node's representation: the normalised mean of the scoring run's document
    vectors over the node (its centroid in that run's space); at the leaf level the sibling documents'
    stored vectors. The rank of the positive is 1 + the number of candidates scoring strictly higher.

    Returns a JSON-friendly dict: run_id, compare_run, rebuild, corpus, anchor ("query" | "document"),
    query, positive_source ("relevant document" | "top hit" | "document"), tau, depth, doc {doc_id, ext_id,
    title, snippet}, path [{level, node, label, size}], levels [one per tree level t = 1..depth: level,
    parent, parent_label, positive, positive_label, n_candidates, rank, p_positive, loss (+ the same with
    ``_compare``), candidates [{node, label, terms, size, example, score, rank, is_positive (+ score_compare,
    rank_compare)}]], leaf {leaf_node, leaf_label, positive, n_candidates, rank, p_positive, loss (+
    ``_compare``), candidates [{doc_id, ext_id, title, score, rank, is_positive (+ compare)}]}.
    """
    if doc_id is None and not (query and query.strip()):
        raise InputError("pick a document or type a query")
    max_siblings = max(int(max_siblings), 2)
    info = ws.run(run_id, "explore")
    cinfo = None
    if compare_run is not None and int(compare_run) != int(run_id):
        cinfo = ws.run(compare_run, "explore")
        info.check_same_corpus(cinfo)
    run_tree = ws.tree(int(run_id), rebuild)
    tree, terms, reps = run_tree.tree, run_tree.terms, run_tree.representatives
    if tree.depth < 1:
        raise NotFoundError(f"run {run_id}'s tree has no levels")
    if tau is None:
        tau = float(info.config.tau) if info.is_train else DEFAULT_TAU

    runs = [info] + ([cinfo] if cinfo else [])
    vecs = [run_vectors(ws, r.run_id) for r in runs]
    query = query.strip() if query else None
    anchors: list[np.ndarray] = []
    if query:
        anchors = [ws.encode_queries(r, [query])[0] for r in runs]
    if doc_id is None:  # the query's top-1 dense hit among the tree's documents
        ids, v = vecs[0]
        rows = rows_of(ids, tree.doc_ids)
        cand = tree.doc_ids[rows >= 0]
        if not len(cand):
            raise NotFoundError(f"run {run_id} has no vectors for the documents of its tree")
        doc_id = int(cand[int(np.argmax(v[rows[rows >= 0]] @ anchors[0]))])
        source = "top hit"
    else:
        doc_id = int(doc_id)
        source = "relevant document" if query else "document"
    if positive_text is not None and query:
        vecs = [_with_doc_vector(ws, r, ids, v, doc_id, positive_text) for r, (ids, v) in zip(runs, vecs, strict=True)]
    pos = int(tree.positions_of([doc_id])[0])
    if pos < 0:
        raise NotFoundError(f"document {doc_id} is not in run {run_id}'s tree")
    if not query:
        for ids, v in vecs:
            r = rows_of(ids, [doc_id])[0]
            if r < 0:
                raise NotFoundError(f"document {doc_id} has no vector in this run")
            anchors.append(v[r])

    path = tree.path(pos)
    levels = []
    parent = 0
    for t, node in enumerate(path, start=1):
        cands = tree.children(parent)
        pi = int(np.flatnonzero(cands == node)[0])
        scores = [_node_reps(tree, cands, ids, v) @ a for (ids, v), a in zip(vecs, anchors, strict=True)]
        levels.append(_level_entry(t, parent, node, cands, pi, scores, tree, terms, reps, tau, max_siblings))
        parent = int(node)

    leaf_node = int(path[-1])
    members = tree.doc_ids[tree.leaf_docs(leaf_node)]
    pi = int(np.flatnonzero(members == doc_id)[0])
    leaf_scores = []
    for (ids, v), a in zip(vecs, anchors, strict=True):
        rows = rows_of(ids, members)
        s = np.full(len(members), np.nan, dtype=np.float64)
        s[rows >= 0] = v[rows[rows >= 0]] @ a
        leaf_scores.append(np.nan_to_num(s, nan=-1.0))
    leaf = _leaf_entry(ws, info, leaf_node, members, pi, leaf_scores, terms, tau, max_siblings)

    doc_row = ws.documents(info.corpus, include_removed=True, doc_ids=[doc_id])
    d = doc_row.iloc[0] if len(doc_row) else None
    rep_titles = _titles(ws, info.corpus, [c["example_id"] for lv in levels for c in lv["candidates"]])
    for lv in levels:
        for c in lv["candidates"]:
            c["example"] = rep_titles.get(c.pop("example_id"), "")
    return {
        "run_id": int(run_id), "compare_run": cinfo.run_id if cinfo else None,
        "rebuild": rebuild, "corpus": info.corpus, "anchor": "query" if query else "document",
        "query": query, "positive_source": source, "tau": float(tau), "depth": int(tree.depth),
        "doc": {"doc_id": doc_id, "ext_id": str(d["ext_id"]) if d is not None else "",
                "title": str(d["title"]) if d is not None else "",
                "snippet": snippet(d["text"]) if d is not None else ""},
        "path": [{"level": t, "node": int(n), "label": label_of(terms, int(n)), "size": int(tree.size[n])}
                 for t, n in enumerate(path, start=1)],
        "levels": levels,
        "leaf": leaf,
    }


def _with_doc_vector(ws, run, ids: np.ndarray, vecs: np.ndarray, doc_id: int, text: str):
    """(ids, vectors) with ``doc_id``'s row replaced by ``text`` encoded as a document by ``run``'s encoder."""
    row = int(rows_of(ids, [doc_id])[0])
    if row < 0:
        return ids, vecs
    vecs = vecs.copy()
    vecs[row] = ws.run_encoder(run).encode([text], max_length=run.doc_max_length)[0]
    return ids, vecs


def pseudo_queries(ws, corpus: str, limit: int = 200, doc_ids=None) -> list[dict]:
    """Pseudo-queries as ICT and the self signal make them, for a corpus without judged queries: for each live
    document (in corpus order, or those of ``doc_ids``) with two sentences or more, one of its sentences (with at
    least 4 words; the same draw as :func:`~hce_engine.training.pairs.ict_pairs` with seed 0) is the query and
    the document *without that sentence* is its positive, so the pair is not solved by copying.

    Returns [{doc_id, ext_id, title, query, doc_text}] for at most ``limit`` documents; documents that yield no
    pseudo-query (one sentence, or none long enough) are left out.
    """
    from ..corpus.text import doc_text
    from ..training.pairs import ict_pairs
    df = ws.documents(corpus, doc_ids=doc_ids)
    out = []
    for r in df.itertuples(index=False):
        pair = ict_pairs([doc_text(r.title, r.text)], seed=0, remove_prob=1.0)
        if pair:
            out.append({"doc_id": int(r.doc_id), "ext_id": str(r.ext_id), "title": str(r.title or "").strip()
                        or snippet(r.text, 60), "query": pair[0].query, "doc_text": pair[0].doc_text})
            if len(out) >= limit:
                break
    return out


def _level_entry(t, parent, node, cands, pi, scores, tree, terms, reps, tau, max_siblings) -> dict:
    entry = {"level": t, "parent": int(parent), "parent_label": label_of(terms, int(parent)),
             "positive": int(node), "positive_label": label_of(terms, int(node)), "n_candidates": int(len(cands))}
    _add_stats(entry, scores, pi, tau)
    ranks = [_ranks(s) for s in scores]
    out = []
    for i in _pick_shown(scores[0], pi, max_siblings):
        n = int(cands[i])
        c = {"node": n, "label": label_of(terms, n), "terms": list(terms[n][:5]) if n < len(terms) else [],
             "size": int(tree.size[n]), "example_id": int(reps[n]) if n < len(reps) else -1,
             **_scored(scores, ranks, i, pi)}
        out.append(c)
    entry["candidates"] = out
    return entry


def _scored(scores: list, ranks: list, i: int, pi: int) -> dict:
    """Candidate i's score and rank under the run (and under the compare run, when there is one)."""
    c = {"score": float(scores[0][i]), "rank": int(ranks[0][i]), "is_positive": bool(i == pi)}
    if len(scores) > 1:
        c.update(score_compare=float(scores[1][i]), rank_compare=int(ranks[1][i]))
    return c


def _add_stats(entry: dict, scores: list, pi: int, tau: float) -> None:
    entry.update(_rank_stats(scores[0], pi, tau))
    if len(scores) > 1:
        entry.update({f"{k}_compare": v for k, v in _rank_stats(scores[1], pi, tau).items()})


def _leaf_entry(ws, info, leaf_node, members, pi, scores, terms, tau, max_siblings) -> dict:
    entry = {"leaf_node": int(leaf_node), "leaf_label": label_of(terms, int(leaf_node)),
             "positive": int(members[pi]), "n_candidates": int(len(members))}
    _add_stats(entry, scores, pi, tau)
    ranks = [_ranks(s) for s in scores]
    shown = _pick_shown(scores[0], pi, max_siblings)
    docs = ws.documents(info.corpus, include_removed=True, doc_ids=members[shown]).set_index("doc_id")
    out = []
    for i in shown:
        did = int(members[i])
        row = docs.loc[did] if did in docs.index else None
        c = {"doc_id": did, "ext_id": str(row["ext_id"]) if row is not None else "",
             "title": _display_title(row), **_scored(scores, ranks, i, pi)}
        out.append(c)
    entry["candidates"] = out
    return entry


def _display_title(row) -> str:
    if row is None:
        return "(removed document)"
    title = str(row["title"] or "").strip()
    return title or snippet(row["text"], 60) or str(row["ext_id"])


def _titles(ws, corpus: str, doc_ids) -> dict[int, str]:
    ids = sorted({int(i) for i in doc_ids if i is not None and int(i) >= 0})
    if not ids:
        return {}
    df = ws.documents(corpus, include_removed=True, doc_ids=ids)
    return {int(r.doc_id): _display_title(r._asdict() if hasattr(r, "_asdict") else r)
            for r in df.itertuples(index=False)}


def doc_queries(ws, corpus: str, doc_id: int) -> list[dict]:
    """Judged queries of a document: [{query_id, text, split, score}] over every qrels split."""
    df = ws.documents(corpus, include_removed=True, doc_ids=[int(doc_id)])
    if not len(df):
        raise NotFoundError(f"no document {doc_id} in corpus {corpus!r}")
    qrels = ws.qrels(corpus)
    hits = qrels[(qrels["doc_ext_id"] == str(df.iloc[0]["ext_id"])) & (qrels["score"] > 0) & qrels["query"].notna()]
    out = [{"query_id": q, "text": t, "split": s, "score": int(v)}
           for s, q, t, v in zip(hits["split"], hits["query_id"], hits["query"], hits["score"], strict=True)]
    return sorted(out, key=lambda r: (r["split"], r["query_id"]))


def find_documents(ws, corpus: str, text: str = "", limit: int = 50) -> pd.DataFrame:
    """Documents whose title, id or text contains ``text`` (case-insensitive): title matches first, then
    id, then text. DataFrame (doc_id, ext_id, title), at most ``limit`` rows; the first ``limit`` documents
    when ``text`` is empty."""
    df = ws.documents(corpus)[["doc_id", "ext_id", "title", "text"]]
    text = (text or "").strip().lower()
    if text:
        hit_title = df["title"].str.lower().str.contains(text, regex=False)
        hit_id = df["ext_id"].str.lower().str.contains(text, regex=False)
        hit_text = df["text"].str.lower().str.contains(text, regex=False)
        prio = np.where(hit_title, 0, np.where(hit_id, 1, np.where(hit_text, 2, 3)))
        df = df.assign(_p=prio)
        df = df[df["_p"] < 3].sort_values(["_p", "doc_id"], kind="stable")
    df = df.head(int(limit))
    titles = [str(t).strip() or snippet(x, 60) for t, x in zip(df["title"], df["text"], strict=True)]
    return pd.DataFrame({"doc_id": df["doc_id"].astype("int64").to_numpy(), "ext_id": df["ext_id"].to_numpy(),
                         "title": titles})


def default_compare_run(ws, run_id: int) -> int | None:
    """The natural "before" of a run: for a trained run, its starting run (:attr:`~hce_engine.runs.Run.
    starting_run`) while it is finished; for one that records none (still running), the newest finished
    zero-shot (baseline) run of the same corpus with the same starting encoder (else the newest baseline); None
    for a baseline run."""
    info = ws.run(int(run_id))
    if not info.is_train:
        return None
    base = [r for r in ws.runs(info.corpus, status="done", kind="baseline") if r.run_id != info.run_id]
    if info.starting_run in {r.run_id for r in base}:
        return info.starting_run
    if not base:
        return None
    start = ws.model_for(info.config_dict.get("model"))
    same = [r for r in base if r.model == start]
    return (same or base)[-1].run_id


def judged_queries(ws, corpus: str, limit: int = 1000) -> list[dict]:
    """Queries that have relevant documents: [{query_id, text, split, doc_ids}] (train split first, then the
    others by name; query ids in natural order), at most ``limit``."""
    qrels = ws.qrels(corpus)
    qrels = qrels[qrels["query"].notna()]
    if qrels.empty:
        return []
    # only the judged documents' ids (a million-document corpus is not read whole)
    live = ws.doc_ids_of(corpus, qrels["doc_ext_id"].unique().tolist())
    out, seen = [], set()
    for split in sorted(set(qrels["split"]), key=lambda s: (s != "train", s)):
        judged = qrels[qrels["split"] == split].groupby("query_id", sort=False)
        for qid, rel in sorted(judged, key=lambda kv: _natural(kv[0])):
            scored = sorted(zip(rel["doc_ext_id"], rel["score"], strict=True), key=lambda kv: -kv[1])
            ids = [live[d] for d, s in scored if s > 0 and d in live]
            if qid in seen or not ids:
                continue
            seen.add(qid)
            out.append({"query_id": qid, "text": rel["query"].iloc[0], "split": split, "doc_ids": ids})
            if len(out) >= limit:
                return out
    return out


def _natural(key: str):
    import re
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(key))]
