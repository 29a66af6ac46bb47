"""Validation that can see a worse encoder: held-out queries ranked against the whole corpus.

:func:`hold_out` splits a run's pairs into (train, validation) pairs; :class:`Validator` scores an encoder
on them. The held-out queries are ranked against the whole corpus when it has at most ``config.val_pool``
documents, else against a pool as hard: the positives, then the members of their leaf clusters, then of their
parents' subtrees and so on up the tree, then random documents, ``val_pool`` in all. An ICT pseudo-query is
scored against its document *with the sentence removed* (never against the stored text that still contains
it word for word). Metrics come from :func:`hce_engine.evaluation.evaluate` (MRR@10, Recall@10, nDCG@10).

Self-signal pseudo-queries are scored twice: as ICT (their source document, sentence removed, is the known
item: ``mrr_at_10`` ...) and against their teacher (``agreement_ndcg_at_10``: nDCG@10 of the encoder's ranking of
the corpus without the source, graded by the teacher's top 10 other documents, 10 for its first down to 1):
neither needs a label.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from hce_engine.evaluation import evaluate
from hce_engine.tree.tree import Tree

from .config import TrainConfig
from .pairs import Pair, split_sentences, split_validation

#: ICT runs hold out at least this many pseudo-queries (or a tenth of them, if fewer) for validation.
ICT_MIN_VAL = 100


def hold_out(pairs: Sequence[Pair], config: TrainConfig) -> tuple[list[Pair], list[Pair]]:
    """(train pairs, validation pairs): hold out ``config.val_fraction`` of the queries; with a joint mix,
    only supervised queries are held out. When that holds out nothing and there are ICT pairs, hold out
    :data:`ICT_MIN_VAL` ICT pseudo-queries (a tenth when fewer): an unlabelled run has no other check."""
    pairs = list(pairs)
    sup = [p for p in pairs if p.kind not in ("ict", "self")]
    if sup and len(sup) < len(pairs):
        tr, val = split_validation(sup, config.val_fraction, config.seed)
    else:
        tr, val = split_validation(pairs, config.val_fraction, config.seed)
    ict = [p for p in pairs if p.kind in ("ict", "self")]
    if not val and len(ict) >= 20:
        n_q = len({p.query for p in ict})
        _, val = split_validation(ict, min(ICT_MIN_VAL, n_q // 10) / n_q, config.seed)
    val_q = {p.query for p in val}
    return [p for p in pairs if p.query not in val_q], val


def removed_text(pair: Pair, doc_texts: Sequence[str]) -> str:
    """The positive's text without the pair's query sentence (ICT), or its stored text (supervised)."""
    if pair.kind not in ("ict", "self"):
        return doc_texts[pair.doc_pos]
    if pair.doc_text is not None:
        return pair.doc_text
    return " ".join(s for s in split_sentences(doc_texts[pair.doc_pos]) if s != pair.query)


def validation_pool(n_docs: int, positives: np.ndarray, size: int, tree: Tree | None, seed: int) -> np.ndarray:
    """Sorted document positions to rank against: all ``n_docs`` when ``n_docs <= size``, else ``size`` of
    them: ``positives``, then their tree neighbourhoods from the leaf up, then seeded random documents."""
    if n_docs <= size:
        return np.arange(n_docs, dtype=np.int64)
    rng = np.random.default_rng([seed, 7919])
    chosen = list(dict.fromkeys(int(p) for p in positives))
    seen = set(chosen)

    def take(cands: np.ndarray) -> None:
        for d in rng.permutation(cands).tolist():
            if len(chosen) >= size:
                return
            if d not in seen:
                seen.add(d)
                chosen.append(d)

    if tree is not None and len(positives):
        node = tree.doc_leaf.copy()
        target = np.unique(node[positives])
        while len(chosen) < size and len(target) and (target >= 0).all():
            take(np.flatnonzero(np.isin(node, target)))
            node, target = tree.parent[node], np.unique(tree.parent[target])
            if (target < 0).any():
                break
    take(np.arange(n_docs))
    return np.sort(np.asarray(chosen[:size], dtype=np.int64))


class Validator:
    """Ranks held-out queries against the validation pool with the current encoder.

    Args:
        doc_texts: the corpus by position.
        val_pairs: held-out pairs (supervised and/or ICT).
        config: ``val_pool``, ``max_length``, ``query_max_length`` and ``seed`` are read.
        tree: the training tree (to pick a hard pool on large corpora; unused when the whole corpus fits).
        teacher: the self signal's prepared teacher (adds ``agreement_ndcg_at_10`` for "self" pairs).
    """

    def __init__(self, doc_texts: Sequence[str], val_pairs: Sequence[Pair], config: TrainConfig,
                 tree: Tree | None = None, teacher=None):
        self.config = config
        queries: dict[str, int] = {}
        qrels: dict[str, dict[str, int]] = {}
        self.replaced: list[tuple[int, int, str]] = []  # (query row, positive position, text to score instead)
        for p in val_pairs:
            qi = queries.setdefault(p.query, len(queries))
            qrels.setdefault(str(qi), {})[str(int(p.doc_pos))] = 1
            if p.kind in ("ict", "self"):
                self.replaced.append((qi, int(p.doc_pos), removed_text(p, doc_texts)))
        self.queries = list(queries)
        self.qrels = qrels
        # teacher agreement: graded qrels from the teacher's top 10 other documents, the source left out
        self.agree_qrels: dict[str, dict[str, int]] = {}
        self.agree_source: dict[int, set[int]] = {}
        if teacher is not None:
            for p in val_pairs:
                if p.kind != "self":
                    continue
                qi = queries[p.query]
                top, _ = teacher.top_others(p.query, 10)
                self.agree_qrels[str(qi)] = {str(int(d)): 10 - r for r, d in enumerate(top.tolist()) if d >= 0}
                self.agree_source.setdefault(qi, set()).add(int(p.doc_pos))
        extra = [int(d) for g in self.agree_qrels.values() for d in g]
        positives = np.asarray(sorted({int(p.doc_pos) for p in val_pairs} | set(extra)), dtype=np.int64)
        self.pool = validation_pool(len(doc_texts), positives, config.val_pool, tree, config.seed) \
            if self.queries else np.empty(0, np.int64)
        self.whole_corpus = len(self.pool) == len(doc_texts)
        self.doc_texts = doc_texts
        self.last_vectors: np.ndarray | None = None  # the whole corpus's vectors from the latest run()

    def __bool__(self) -> bool:
        return bool(self.queries)

    def run(self, encoder, cancel=None, corpus_vectors: np.ndarray | None = None) -> dict:
        """``{"mrr_at_10", "recall_at_10", "ndcg_at_10", "n_queries", "pool", "seconds"}`` for ``encoder``.

        ``corpus_vectors``: (n_docs, d) vectors of this encoder at ``config.max_length`` when already
        computed (skips the pool encode).
        """
        t0 = time.time()
        c = self.config
        if corpus_vectors is not None:
            D = np.asarray(corpus_vectors)[self.pool]
        else:
            D = encoder.encode([self.doc_texts[i] for i in self.pool.tolist()], max_length=c.max_length, cancel=cancel)
        self.last_vectors = D if self.whole_corpus else None
        Q = encoder.encode(self.queries, max_length=c.query_max_length, cancel=cancel)
        scores = Q @ D.T
        if self.replaced:
            col = {int(d): j for j, d in enumerate(self.pool)}
            R = encoder.encode([t for _, _, t in self.replaced], max_length=c.max_length, cancel=cancel)
            for (qi, pos, _), r in zip(self.replaced, R, strict=True):
                scores[qi, col[pos]] = float(Q[qi] @ r)
        k = min(100, scores.shape[1])
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        ranking = {str(qi): {str(int(self.pool[j])): float(scores[qi, j]) for j in row}
                   for qi, row in enumerate(top)}
        m = evaluate(ranking, self.qrels)
        out = {"mrr_at_10": m["mrr_at_10"], "recall_at_10": m["recall_at_10"], "ndcg_at_10": m["ndcg_at_10"],
               "n_queries": m["queries"], "pool": int(len(self.pool)), "seconds": time.time() - t0}
        if self.agree_qrels:
            col = {int(d): j for j, d in enumerate(self.pool)}
            agree_rank = {}
            for qs in self.agree_qrels:
                qi = int(qs)
                row = scores[qi].copy()
                for src in self.agree_source[qi]:
                    if src in col:
                        row[col[src]] = -np.inf
                top10 = np.argpartition(-row, min(10, len(row) - 1))[:11]
                agree_rank[qs] = {str(int(self.pool[j])): float(row[j]) for j in top10 if np.isfinite(row[j])}
            out["agreement_ndcg_at_10"] = evaluate(agree_rank, self.agree_qrels)["ndcg_at_10"]
            out["seconds"] = time.time() - t0
        return out
