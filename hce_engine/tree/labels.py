"""Node labels: distinctive terms per node (class-based TF-IDF, as BERTopic) and representative documents."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .tree import Tree

# Tokens of two or more word characters that are not pure numbers.
_TOKEN_PATTERN = r"(?u)\b(?!\d+\b)\w\w+\b"


def _count_matrix(texts: Sequence[str]):
    """Sparse doc-term counts (CSR, n_docs x V) and the vocabulary, or (None, None) if nothing is left."""
    from sklearn.feature_extraction.text import CountVectorizer

    n = len(texts)
    # Words seen in a single document are noise on real corpora but all there is on tiny ones.
    for min_df in ((2, 1) if n >= 50 else (1,)):
        try:
            cv = CountVectorizer(stop_words="english", ngram_range=(1, 1), min_df=min_df,
                                 token_pattern=_TOKEN_PATTERN, dtype=np.float64)
            counts = cv.fit_transform(["" if t is None else str(t) for t in texts])
            return counts.tocsr(), cv.get_feature_names_out()
        except ValueError:  # empty vocabulary
            continue
    return None, None


def _top_terms(row_data: np.ndarray, row_idx: np.ndarray, vocab, top_n: int) -> list[str]:
    keep = row_data > 0
    data, idx = row_data[keep], row_idx[keep]
    if not len(data):
        return []
    order = np.lexsort((idx, -data))[:top_n]  # score desc, then vocabulary (alphabetical) order
    return [str(vocab[i]) for i in idx[order]]


def node_terms(tree: Tree, texts: Sequence[str], top_n: int = 5) -> list[list[str]]:
    """Top ``top_n`` distinctive terms of every node.

    c-TF-IDF per level: the documents under each node of a level form one class; a term's weight is its
    class frequency (normalised by the class's total count) times log(1 + A / f_t), with A the mean
    number of words per class and f_t the term's count over the level. One CountVectorizer pass over the
    corpus (English stop words, unigrams, min_df 2 from 50 documents on, else 1); one sparse product per
    level. The root gets the corpus's most frequent terms.

    Args: texts aligned with document positions (len == tree.n_docs).
    Returns: list of n_nodes lists of terms (empty for empty nodes or text-less corpora).
    """
    import scipy.sparse as sp

    if len(texts) != tree.n_docs:
        raise ValueError(f"got {len(texts)} texts for {tree.n_docs} documents")
    out: list[list[str]] = [[] for _ in range(tree.n_nodes)]
    counts, vocab = _count_matrix(texts)
    if counts is None:
        return out
    total = np.asarray(counts.sum(axis=0)).ravel()
    out[0] = _top_terms(total, np.arange(len(total)), vocab, top_n)
    paths = tree.paths()
    for lv in range(1, tree.depth + 1):
        nodes = tree.nodes_at(lv)
        local = np.full(tree.n_nodes, -1, dtype=np.int64)
        local[nodes] = np.arange(len(nodes))
        cls = local[paths[:, lv - 1]]
        member = sp.csr_matrix((np.ones(tree.n_docs), (cls, np.arange(tree.n_docs))),
                               shape=(len(nodes), tree.n_docs))
        tf = (member @ counts).tocsr()  # (nodes, V) class term counts
        words = np.asarray(tf.sum(axis=1)).ravel()
        f_t = np.asarray(tf.sum(axis=0)).ravel()
        nonempty = words > 0
        if not nonempty.any():
            continue
        avg = words[nonempty].mean()
        idf = np.log1p(avg / np.maximum(f_t, 1e-12))
        tf = sp.diags(1.0 / np.maximum(words, 1e-12)) @ tf @ sp.diags(idf)
        tf = tf.tocsr()
        for i, node in enumerate(nodes):
            lo, hi = tf.indptr[i], tf.indptr[i + 1]
            out[node] = _top_terms(tf.data[lo:hi], tf.indices[lo:hi], vocab, top_n)
    return out


def representative_docs(tree: Tree, vectors) -> np.ndarray:
    """Position of the document closest (cosine) to each node's centroid; int64 (n_nodes,), -1 if empty.

    Args: vectors float32 (n_docs, d) aligned with document positions.
    """
    v = np.asarray(vectors, dtype=np.float32)
    if len(v) != tree.n_docs:
        raise ValueError(f"got {len(v)} vectors for {tree.n_docs} documents")
    out = np.full(tree.n_nodes, -1, dtype=np.int64)
    if tree.n_docs == 0:
        return out
    norm = np.maximum(np.linalg.norm(v, axis=1), 1e-12)
    paths = np.concatenate([np.zeros((tree.n_docs, 1), np.int64), tree.paths()], axis=1)  # root first
    for col in range(paths.shape[1]):
        anc = paths[:, col]
        sim = np.empty(tree.n_docs, dtype=np.float32)
        for s in range(0, tree.n_docs, 1 << 14):
            e = min(tree.n_docs, s + (1 << 14))
            sim[s:e] = np.einsum("ij,ij->i", v[s:e], tree.centroid[anc[s:e]]) / norm[s:e]
        order = np.lexsort((np.arange(tree.n_docs), -sim, anc))  # per node: best first, ties by position
        a_sorted = anc[order]
        first = np.flatnonzero(np.r_[True, a_sorted[1:] != a_sorted[:-1]])
        out[a_sorted[first]] = order[first]
    return out


def node_label(terms: Sequence[str], max_terms: int = 3, sep: str = " · ", fallback: str = "") -> str:
    """Short display label from a node's terms, e.g. "gene · protein · cell" (``fallback`` if none)."""
    terms = [t for t in terms if t][:max_terms]
    return sep.join(terms) if terms else fallback
