"""The self signal made visible: a pseudo-query, its teacher's scores over its source's siblings, and the
student's scores before and after training.

A self-signal training example is a sentence of a document (the pseudo-query) and candidate documents around
its source in the run's first tree (the source itself is never one): with tree batching (the ``unsupervised``
preset) the other sources of its batch, i.e. its leaf siblings and the neighbouring leaves; with
``negatives="siblings"`` its leaf siblings. This view shows the leaf siblings, the candidates every setting has. The
teacher, hybrid search with the starting encoder (:class:`~hce_engine.training.teacher.HybridTeacher`), scores
each sibling; the loss asks the student's softmax over the same candidates to match the teacher's.
:func:`teacher_view` computes that example exactly as the run saw it (same seed, same sentence, same tree) and
scores it under the starting encoder and under the trained one.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError, NotFoundError
from . import rows_of, snippet

#: Siblings listed at most (the teacher's best first).
MAX_CANDIDATES = 16


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max())
    return z / z.sum()


def _ranks(scores: np.ndarray) -> list[int]:
    s = np.asarray(scores, dtype=np.float64)
    return (1 + (s[None, :] > s[:, None]).sum(1)).astype(int).tolist()


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 3:
        return None
    ra, rb = np.argsort(np.argsort(-a)), np.argsort(np.argsort(-b))
    c = np.corrcoef(ra, rb)[0, 1]
    return None if not np.isfinite(c) else float(c)


def teacher_view(ws, run_id: int, doc_id: int | None = None, max_candidates: int = MAX_CANDIDATES) -> dict:
    """One self-signal training example of a run: pseudo-query, teacher and student scores over its siblings.

    Args:
        ws: the Workspace. run_id: a finished training run (any signal: a run of another signal is shown
            as the self signal would have taught it, with its settings' ``teacher_weight``).
        doc_id: the source document (store id); default: the first document, in corpus order, that yields a
            pseudo-query and has siblings.
        max_candidates: siblings listed (the teacher's best first); the probabilities use them all.

    Returns a JSON-friendly dict: run_id, baseline_run, corpus, teacher_weight, tau, query (the pseudo-query),
    source {doc_id, ext_id, title, snippet}, leaf (node id), n_candidates, candidates [{doc_id, ext_id, title,
    bm25, cos_before, cos_after, teacher (fused score), p_teacher, p_before, p_after, rank_teacher,
    rank_before, rank_after}] (teacher's best first), kl_before / kl_after (KL(teacher || student) over the
    candidates) and spearman_before / spearman_after (rank correlation of the student's order with the
    teacher's).
    """
    from ..training import self_pairs
    info = ws.run(run_id, "explore")
    if not info.is_train:
        raise InputError(f"run {run_id} is a zero-shot run: pick a training run to see what it was taught")
    cfg = info.config
    base_run = info.starting_run
    if base_run is None:
        raise NotFoundError(f"run {run_id} records no starting (baseline) run")
    base = ws.run(base_run, "explore")
    tree = ws.tree(run_id, 0).tree
    ids, _, texts = ws._texts(info.corpus_id)
    titles = list(ws.documents(info.corpus)["title"]) if cfg.pseudo_query == "title" else None
    by_pos = {int(p.doc_pos): p for p in self_pairs(texts, seed=cfg.seed, min_words=cfg.ict_min_words,
                                                    choice=cfg.pseudo_query, titles=titles)}
    tree_pos = tree.positions_of(ids)
    if doc_id is None:
        for pos in by_pos:
            tp = int(tree_pos[pos])
            if tp >= 0 and len(tree.leaf_docs(int(tree.doc_leaf[tp]))) > 1:
                doc_id = int(ids[pos])
                break
        if doc_id is None:
            raise NotFoundError("no document yields a pseudo-query with siblings in this run's tree")
    doc_id = int(doc_id)
    pos_arr = np.flatnonzero(ids == doc_id)
    if not len(pos_arr):
        raise NotFoundError(f"document {doc_id} is not a live document of corpus {info.corpus!r}")
    pos = int(pos_arr[0])
    pair = by_pos.get(pos)
    if pair is None:
        raise InputError(f"document {doc_id} has no sentence of at least {cfg.ict_min_words} words beside "
                         "another: it yields no pseudo-query")
    tp = int(tree_pos[pos])
    if tp < 0:
        raise NotFoundError(f"document {doc_id} is not in run {run_id}'s first tree")
    leaf = int(tree.doc_leaf[tp])
    members = tree.doc_ids[tree.leaf_docs(leaf)]
    cand_ids = np.asarray([d for d in members.tolist() if d != doc_id], dtype=np.int64)
    if not len(cand_ids):
        raise NotFoundError(f"document {doc_id} is alone in its leaf cluster: the pseudo-query has no sibling")
    cand_pos = rows_of(ids, cand_ids)
    cand_ids, cand_pos = cand_ids[cand_pos >= 0], cand_pos[cand_pos >= 0]

    teacher = ws.teacher(info.corpus, cfg, base.run_id)
    start_encoder = ws.run_encoder(base)
    teacher.prepare(start_encoder, [pair.query], [pos], top_k=0, query_max_length=base.query_max_length)
    fused = teacher.scores([pair.query], cand_pos[None])[0]
    t_logits = fused * teacher.scale([pair.query])[0]
    bm25 = teacher.lexical(pair.query)[cand_pos]
    tau = float(cfg.tau)

    def student(run) -> np.ndarray:
        vid, v = ws.vectors(run.run_id)
        q = ws.encode_queries(run, [pair.query])[0]
        rows = rows_of(vid, cand_ids)
        out = np.full(len(cand_ids), np.nan, dtype=np.float64)
        out[rows >= 0] = v[rows[rows >= 0]] @ q
        return out

    before, after = student(base), student(info)
    p_t = _softmax(t_logits)
    p_b, p_a = _softmax(np.nan_to_num(before, nan=-1.0) / tau), _softmax(np.nan_to_num(after, nan=-1.0) / tau)

    def kl(p_s: np.ndarray) -> float:
        return float(np.sum(p_t * (np.log(np.maximum(p_t, 1e-30)) - np.log(np.maximum(p_s, 1e-30)))))

    order = np.argsort(-fused, kind="stable")[:max(int(max_candidates), 1)]
    rk_t, rk_b, rk_a = _ranks(fused), _ranks(np.nan_to_num(before, nan=-1)), _ranks(np.nan_to_num(after, nan=-1))
    docs = ws.documents(info.corpus, doc_ids=np.concatenate([[doc_id], cand_ids[order]]))
    docs = docs.set_index("doc_id")

    def title(d: int) -> str:
        if d not in docs.index:
            return ""
        row = docs.loc[d]
        return str(row["title"]) or snippet(row["text"], 80)

    src = docs.loc[doc_id] if doc_id in docs.index else None
    return {
        "run_id": int(run_id), "baseline_run": int(base.run_id), "corpus": info.corpus,
        "teacher_weight": float(cfg.teacher_weight), "tau": tau, "query": pair.query, "leaf": leaf,
        "source": {"doc_id": doc_id, "ext_id": str(src["ext_id"]) if src is not None else "",
                   "title": str(src["title"]) if src is not None else "",
                   "snippet": snippet(src["text"]) if src is not None else ""},
        "n_candidates": int(len(cand_ids)),
        "candidates": [{"doc_id": int(cand_ids[i]), "ext_id": str(docs.loc[int(cand_ids[i]), "ext_id"])
                        if int(cand_ids[i]) in docs.index else "", "title": title(int(cand_ids[i])),
                        "bm25": float(bm25[i]), "cos_before": float(before[i]), "cos_after": float(after[i]),
                        "teacher": float(fused[i]), "p_teacher": float(p_t[i]), "p_before": float(p_b[i]),
                        "p_after": float(p_a[i]), "rank_teacher": rk_t[i], "rank_before": rk_b[i],
                        "rank_after": rk_a[i]} for i in order.tolist()],
        "kl_before": kl(p_b), "kl_after": kl(p_a),
        "spearman_before": _spearman(np.nan_to_num(before, nan=-1), fused),
        "spearman_after": _spearman(np.nan_to_num(after, nan=-1), fused),
    }
