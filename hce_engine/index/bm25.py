"""BM25 lexical index over int64 document ids, built with ``bm25s``.

Tokenisation: bm25s' scikit-learn-style regex (tokens of >= 2 word characters), lowercased,
English stop words removed, PyStemmer English (Snowball/Porter2) stemming. Scoring: bm25s
defaults (``method="lucene"``, k1=1.5, b=0.75).

Scoring is done per query with ``BM25.get_scores_from_ids`` + our own top-k, rather than
``BM25.retrieve``: that sidesteps bm25s' failure modes for ``k > n_docs`` and for queries
that tokenise to nothing (only stop words / unknown words), and lets us return only documents
that actually match (score > 0; Lucene IDF is always positive), padding the rest with -1.
"""
from __future__ import annotations

import re
import threading
from typing import Sequence

import bm25s
import bm25s.stopwords
import numpy as np
import Stemmer

__all__ = ["BM25Index"]

_STOPWORDS = "en"
_LANGUAGE = "english"
_STOPWORD_SET = frozenset(bm25s.stopwords.STOPWORDS_EN)


class BM25Index:
    """BM25 index mapping document ids (int64) to texts. Build with :meth:`build`."""

    def __init__(self, retriever: bm25s.BM25 | None, doc_ids: np.ndarray, stemmer: "Stemmer.Stemmer"):
        self._retriever = retriever
        self._doc_ids = doc_ids
        self._stemmer = stemmer
        # PyStemmer objects are not thread-safe; scoring is cheap, so serialise searches.
        self._lock = threading.Lock()
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None  # (positions, ids) by id, for positions()

    @classmethod
    def build(cls, ids: Sequence[int], texts: Sequence[str]) -> "BM25Index":
        """Index ``texts[i]`` under ``ids[i]``. ``ids`` must be unique ints; texts may be empty."""
        doc_ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        texts = [t if isinstance(t, str) else "" for t in texts]
        if doc_ids.size != len(texts):
            raise ValueError(f"got {doc_ids.size} ids but {len(texts)} texts")
        if np.unique(doc_ids).size != doc_ids.size:
            raise ValueError("ids must be unique")
        stemmer = Stemmer.Stemmer(_LANGUAGE)
        retriever = bm25s.BM25()
        has_vocab = False
        if texts:
            tokens = bm25s.tokenize(texts, stopwords=_STOPWORDS, stemmer=stemmer,
                                    return_ids=True, show_progress=False)
            # bm25s.BM25.index crashes when no document has a single token
            has_vocab = len(tokens.vocab) > 0
            if has_vocab:
                retriever.index(tokens, show_progress=False)
        return cls(retriever if has_vocab else None, doc_ids, stemmer)

    def __len__(self) -> int:
        """Number of indexed documents."""
        return int(self._doc_ids.size)

    def ids(self) -> np.ndarray:
        """int64 (n,) indexed document ids, in build order."""
        return self._doc_ids.copy()

    def _query_token_ids(self, query: str) -> list[int]:
        if self._retriever is None:  # no document had any indexable token
            return []
        vocab = self._retriever.vocab_dict
        tokens = bm25s.tokenize([query], stopwords=_STOPWORDS, stemmer=self._stemmer,
                                return_ids=False, show_progress=False)[0]
        # "" is bm25s' placeholder "empty token": never score with it.
        return [vocab[t] for t in tokens if t and t in vocab]

    def _scores(self, query: str) -> np.ndarray | None:
        """float32 (n,) BM25 score of every document in build order; None when no query token is indexed."""
        token_ids = self._query_token_ids(query or "")
        if not token_ids or self._retriever is None:  # (no token ids without a retriever)
            return None
        return np.asarray(self._retriever.get_scores_from_ids(token_ids), dtype=np.float32)

    def all_scores(self, query: str) -> np.ndarray:
        """float32 (n,) BM25 score of every document, aligned with :meth:`ids` (zeros when nothing matches)."""
        with self._lock:
            scores = self._scores(query) if self._doc_ids.size else None
        return np.zeros(self._doc_ids.size, np.float32) if scores is None else scores

    def shared_terms(self, query: str, text: str) -> list[str]:
        """The query's words (as typed, lowercased, in order) whose stem also occurs in ``text``: the words
        BM25 matches, stop words excluded."""
        words = list(dict.fromkeys(w for w in re.findall(r"(?u)\b\w\w+\b", (query or "").lower())
                                   if w not in _STOPWORD_SET))
        with self._lock:
            have = set(self._stemmer.stemWords(re.findall(r"(?u)\b\w\w+\b", (text or "").lower())))
            stems = self._stemmer.stemWords(words)
        return [w for w, st in zip(words, stems, strict=True) if st in have]

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """int64 (m,) position of each id in :meth:`ids` / :meth:`all_scores` order (-1 for ids not indexed)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if not self._doc_ids.size:
            return np.full(len(ids), -1, dtype=np.int64)
        with self._lock:
            if self._sorted is None:
                order = np.argsort(self._doc_ids, kind="stable")
                self._sorted = (order, self._doc_ids[order])
            order, sorted_ids = self._sorted
        at = np.clip(np.searchsorted(sorted_ids, ids), 0, len(order) - 1)
        return np.where(sorted_ids[at] == ids, order[at], -1).astype(np.int64)

    def scores_and_top(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One scoring pass for one query: (every document's score float32 (n,) as :meth:`all_scores`, and
        the top-``k`` as :meth:`search` gives them: scores (k,), ids (k,))."""
        scores = self.all_scores(query)
        top_s = np.full(k, -np.inf, dtype=np.float32)
        top_i = np.full(k, -1, dtype=np.int64)
        cand = self._top(scores, k)
        top_s[:len(cand)], top_i[:len(cand)] = scores[cand], self._doc_ids[cand]
        return scores, top_s, top_i

    @staticmethod
    def _top(scores: np.ndarray, k: int) -> np.ndarray:
        """Positions of the top-``k`` matching documents (score > 0): score desc, then position asc.

        Only the matching documents are ranked: most of a large corpus scores 0 for a query, and selecting among
        a million mostly equal values took most of a hybrid search's time at 1M documents (benchmarks/growth.py)."""
        kk = min(k, len(scores))
        if kk <= 0:
            return np.zeros(0, dtype=np.int64)
        cand = np.flatnonzero(scores > 0)
        if kk < len(cand):  # all matches scoring >= the kk-th best (keeps boundary ties)
            thr = np.partition(scores[cand], len(cand) - kk)[len(cand) - kk]
            cand = cand[scores[cand] >= thr]
        return cand[np.lexsort((cand, -scores[cand]))][:kk]

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` documents per query.

        ``queries``: list of q strings (a single str is one query). Returns
        ``(scores float32 (q, k), ids int64 (q, k))``, best first; ties broken by build order.
        Only matching documents (score > 0) are returned; the remainder of each row is padded
        with score ``-inf`` and id ``-1`` (e.g. k > n_docs, or a stop-word-only query).
        """
        if isinstance(queries, str):
            queries = [queries]
        k = int(k)
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        nq = len(queries)
        out_scores = np.full((nq, k), -np.inf, dtype=np.float32)
        out_ids = np.full((nq, k), -1, dtype=np.int64)
        n = self._doc_ids.size
        if n == 0 or k == 0:
            return out_scores, out_ids
        kk = min(k, n)
        with self._lock:
            for qi, query in enumerate(queries):
                scores = self._scores(query)
                if scores is None:
                    continue
                cand = self._top(scores, kk)
                out_scores[qi, :cand.size] = scores[cand]
                out_ids[qi, :cand.size] = self._doc_ids[cand]
        return out_scores, out_ids
