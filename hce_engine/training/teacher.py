"""The self signal's teacher: the engine's own hybrid ranker (BM25 + the starting encoder), fixed for a run.

For a pseudo-query ``q`` and a document ``d`` at corpus position ``p`` the teacher's score is the fused score
hybrid search gives when both retrievers rank the whole corpus (:func:`hce_engine.index.fusion.weighted`)::

    fused(q, d) = w * (cos(q, d) + 1) / (max_d' cos(q, d') + 1) + (1 - w) * bm25(q, d) / max_d' bm25(q, d')

with ``cos`` from the *starting* encoder's query vector and the stored corpus vectors, ``bm25`` from the
corpus's BM25 index and ``w`` = ``TrainConfig.teacher_weight`` (a BM25 maximum of 0 gives the lexical part 0).
Its logits are ``fused * scale``: ``1 / teacher_tau`` when set, else (auto) ``(max cos + 1) / (w * tau)``, which
puts the dense part on the student's scale (``cos / tau`` plus a per-query constant): with ``w = 1`` the
teacher's softmax is the starting student's own.

Imports numpy only: the lexical scores come from a callable (the workspace passes ``BM25Index.all_scores``).

Example:
    ::

        teacher = HybridTeacher(doc_vectors, bm25.all_scores, weight=0.8, tau=0.05)
        teacher.prepare(encoder, ["a pseudo-query"], sources=[3], top_k=16)
        teacher.scores(["a pseudo-query"], np.array([[5, 8, -1]]))   # (1, 3) fused, nan at -1
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

LexicalFn = Callable[[str], np.ndarray]  # query -> float32 (n_docs,) BM25 score of every corpus position


class HybridTeacher:
    """Fused hybrid scores of pseudo-queries over corpus positions (see the module docstring).

    Args:
        doc_vectors: float32 (n_docs, d) normalised vectors of the starting encoder, by corpus position.
        lexical: query text -> float32 (n_docs,) BM25 scores by corpus position.
        weight: the dense weight ``w`` in [0, 1].
        tau: the student's temperature (for the auto scale).
        teacher_tau: explicit temperature of the teacher's softmax (0 = auto).
    """

    def __init__(self, doc_vectors: np.ndarray, lexical: LexicalFn, weight: float = 0.8, tau: float = 0.05,
                 teacher_tau: float = 0.0):
        self.doc_vectors = np.ascontiguousarray(doc_vectors, dtype=np.float32)
        self.lexical = lexical
        self.weight, self.tau, self.teacher_tau = float(weight), float(tau), float(teacher_tau)
        if self.weight <= 0 and self.teacher_tau <= 0:
            raise ValueError("a teacher of BM25 alone (weight 0) needs teacher_tau > 0")
        self.row: dict[str, int] = {}
        self.qvec = np.zeros((0, self.doc_vectors.shape[1]), np.float32)
        self.max_cos = np.zeros(0, np.float32)
        self.max_lex = np.zeros(0, np.float32)
        self.top = np.zeros((0, 0), np.int64)  # (n_queries, top_k) best other documents, -1 padded
        self.top_scores = np.zeros((0, 0), np.float32)

    def __len__(self) -> int:
        return len(self.row)

    # ------------------------------------------------------------------ preparation
    def prepare(self, encoder, queries: Sequence[str], sources: Sequence[int] | None = None, top_k: int = 16,
                query_max_length: int = 64, cancel=None) -> None:
        """Encode ``queries`` with ``encoder`` (the starting encoder: call before any training step) and keep,
        per query, its vector, both maxima and its ``top_k`` best documents other than its sources
        (``sources[i]``, the corpus position ``queries[i]`` came from; a sentence found in several documents
        has them all left out). Queries prepared before are skipped; ``top_k`` must stay the same across calls.
        """
        src_of: dict[str, list[int]] = {}
        for i, q in enumerate(queries):
            src_of.setdefault(q, [])
            if sources is not None and 0 <= int(sources[i]) < len(self.doc_vectors):
                src_of[q].append(int(sources[i]))
        texts = [q for q in src_of if q not in self.row]
        if len(self.row) and top_k != self.top.shape[1]:
            raise ValueError(f"teacher prepared with top_k={self.top.shape[1]}, asked for {top_k}")
        if not texts:
            return
        Q = np.asarray(encoder.encode(texts, max_length=query_max_length, cancel=cancel), np.float32)
        n = len(texts)
        max_cos = np.empty(n, np.float32)
        max_lex = np.empty(n, np.float32)
        top = np.full((n, top_k), -1, np.int64)
        top_s = np.full((n, top_k), np.nan, np.float32)
        for i, (q, v) in enumerate(zip(texts, Q, strict=True)):
            cos = self.doc_vectors @ v
            lex = np.asarray(self.lexical(q), np.float32)
            max_cos[i], max_lex[i] = cos.max(), lex.max()
            if top_k:
                fused = self._fuse(cos, lex, float(max_cos[i]), float(max_lex[i]))
                src = sorted(set(src_of[q]))
                fused[src] = -np.inf
                k = min(top_k, len(fused) - len(src))
                if k > 0:
                    cand = np.argpartition(-fused, k - 1)[:k]
                    cand = cand[np.lexsort((cand, -fused[cand]))]
                    top[i, :k], top_s[i, :k] = cand, fused[cand]
        base = len(self.row)
        for j, q in enumerate(texts):
            self.row[q] = base + j
        if base == 0:
            self.top = np.zeros((0, top_k), np.int64)
            self.top_scores = np.zeros((0, top_k), np.float32)
        self.qvec = np.concatenate([self.qvec, Q])
        self.max_cos = np.concatenate([self.max_cos, max_cos])
        self.max_lex = np.concatenate([self.max_lex, max_lex])
        self.top = np.concatenate([self.top, top])
        self.top_scores = np.concatenate([self.top_scores, top_s])

    def _fuse(self, cos: np.ndarray, lex: np.ndarray, max_cos: float, max_lex: float) -> np.ndarray:
        w = self.weight
        dense = (cos + 1.0) / (max_cos + 1.0) if max_cos > -1.0 else np.zeros_like(cos)
        lexical = lex / max_lex if max_lex > 0 else np.zeros_like(lex)
        return (w * dense + (1.0 - w) * lexical).astype(np.float32)

    def _rows(self, queries: Sequence[str]) -> np.ndarray:
        missing = [q for q in queries if q not in self.row]
        if missing:
            raise KeyError(f"teacher not prepared for {len(missing)} query(ies), e.g. {missing[0][:60]!r}")
        return np.asarray([self.row[q] for q in queries], dtype=np.int64)

    # ------------------------------------------------------------------ scoring
    def scores(self, queries: Sequence[str], doc_pos: np.ndarray) -> np.ndarray:
        """float32 (B, K) fused score of ``queries[i]`` for corpus position ``doc_pos[i, j]``; nan where < 0."""
        doc_pos = np.asarray(doc_pos, dtype=np.int64)
        rows = self._rows(queries)
        out = np.full(doc_pos.shape, np.nan, np.float32)
        for i, (q, r) in enumerate(zip(queries, rows, strict=True)):
            valid = doc_pos[i] >= 0
            if not valid.any():
                continue
            pos = doc_pos[i][valid]
            cos = self.doc_vectors[pos] @ self.qvec[r]
            lex = np.asarray(self.lexical(q), np.float32)[pos]
            out[i, valid] = self._fuse(cos, lex, float(self.max_cos[r]), float(self.max_lex[r]))
        return out

    def scale(self, queries: Sequence[str]) -> np.ndarray:
        """float32 (B,) factor turning each query's fused scores into softmax logits."""
        rows = self._rows(queries)
        if self.teacher_tau > 0:
            return np.full(len(rows), 1.0 / self.teacher_tau, np.float32)
        return ((self.max_cos[rows] + 1.0) / (self.weight * self.tau)).astype(np.float32)

    def logits(self, queries: Sequence[str], doc_pos: np.ndarray) -> np.ndarray:
        """float32 (B, K) teacher logits (``scores * scale``), nan where ``doc_pos`` < 0."""
        return self.scores(queries, doc_pos) * self.scale(queries)[:, None]

    def top_others(self, query: str, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(positions int64 (k,), fused scores (k,)): the teacher's best documents for ``query`` other than its
        source, best first (-1 / nan padded)."""
        r = self._rows([query])[0]
        k = self.top.shape[1] if k is None else k
        return self.top[r, :k].copy(), self.top_scores[r, :k].copy()
