"""Sibling-group coherence against retrieval gain (the ``coherence`` recipe's analysis).

For each subtree of the tree an experiment's runs started from (the nodes of the shallowest level with at least
``MIN_SUBTREES`` of them: agglomerative trees often have two or three top-level nodes): how tight its sibling
groups are (the mean cosine of a document to its leaf's centre, over the subtree's documents) beside the mean
per-query gain (arm minus control, nDCG@10) of the judged queries whose first relevant document lies in it, and
the rank correlation of the two over subtrees with enough queries.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..tree.tree import Tree

#: The analysis uses the shallowest tree level with at least this many nodes (else the leaf level).
MIN_SUBTREES = 8


def leaf_tightness(tree: Tree, vectors: np.ndarray) -> np.ndarray:
    """float64 (n_docs,): each document's cosine to its leaf's centroid (``vectors``: the (n_docs, d) unit
    vectors the tree was built from, in the tree's document order)."""
    cent = tree.centroid[tree.doc_leaf].astype(np.float64)
    cent /= np.maximum(np.linalg.norm(cent, axis=1, keepdims=True), 1e-12)
    return np.einsum("ij,ij->i", np.asarray(vectors, dtype=np.float64), cent)


def subtree_level(tree: Tree, min_subtrees: int = MIN_SUBTREES) -> int:
    """The shallowest level (1 = below the root) with at least ``min_subtrees`` nodes, else the leaf level."""
    return next((lv for lv in range(1, tree.depth + 1) if len(tree.nodes_at(lv)) >= min_subtrees), tree.depth)


def coherence_against_gain(tree: Tree, vectors: np.ndarray, query_doc: Mapping[str, int],
                           gain: Mapping[str, float], labels: Sequence[str] | None = None,
                           min_queries: int = 3, level: int | None = None) -> dict:
    """Per subtree (a node of ``level``, default :func:`subtree_level`): documents, coherence, queries and their
    mean gain; and the correlations.

    Args:
        tree, vectors: the starting tree and the (n_docs, d) vectors it was built from.
        query_doc: {query id: document position} of each judged query's first relevant document.
        gain: {query id: arm - control} per query.
        labels: a label per node (e.g. its top terms), shown in the rows.
        min_queries: subtrees with fewer queries are shown but left out of the correlation.

    Returns ``{"level", "subtrees": [{node, label, docs, coherence, queries, gain}], "spearman", "spearman_p",
    "pearson", "n_subtrees", "min_queries"}`` (correlations None with fewer than 3 subtrees).
    """
    from scipy.stats import pearsonr, spearmanr
    level = subtree_level(tree) if level is None else level
    top = tree.paths()[:, level - 1] if tree.depth else np.zeros(tree.n_docs, dtype=np.int64)
    tight = leaf_tightness(tree, vectors)
    by_node: dict[int, list[float]] = {}
    for q, pos in query_doc.items():
        if q in gain:
            by_node.setdefault(int(top[pos]), []).append(float(gain[q]))
    rows = []
    for node in np.unique(top).tolist():
        members = top == node
        gains = by_node.get(node, [])
        rows.append({"node": node, "label": labels[node] if labels is not None else str(node),
                     "docs": int(members.sum()), "coherence": float(tight[members].mean()),
                     "queries": len(gains), "gain": float(np.mean(gains)) if gains else None})
    used = [r for r in rows if r["queries"] >= min_queries]
    out: dict = {"level": level, "subtrees": rows, "n_subtrees": len(used), "min_queries": min_queries,
                 "spearman": None, "spearman_p": None, "pearson": None}
    xs, ys = [r["coherence"] for r in used], [r["gain"] for r in used]
    if len(used) >= 3 and np.ptp(xs) > 0 and np.ptp(ys) > 0:
        rho, p = spearmanr(xs, ys)
        out.update(spearman=float(rho), spearman_p=float(p), pearson=float(pearsonr(xs, ys)[0]))
    return out
