"""Tree views: the hierarchy as a node table, one node's documents and children, quality per level and
rebuild, and how the trees of two runs (or two rebuilds of one run) differ."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError, NotFoundError
from . import label_of, rows_of, run_vectors

STAT_COLUMNS = ["n_nodes", "n_empty", "size_min", "size_median", "size_max", "size_mean", "intra_cos",
                "silhouette"]


def list_rebuilds(ws, run_id: int) -> list[dict]:
    """The stored trees of a run: [{rebuild, builder, branching, depth, created_at}] oldest first."""
    return [{"rebuild": int(t["rebuild"]), "builder": t["builder"], "branching": int(t["branching"]),
             "depth": int(t["depth"]), "created_at": str(t.get("created_at") or "")}
            for t in ws.tree_rebuilds(run_id)]


def tree_overview(ws, run_id: int, rebuild: int | None = None, max_level: int | None = None) -> dict:
    """The tree as a node table for sunburst/icicle charts and pickers.

    Returns {run_id, rebuild, depth, n_docs, n_nodes, n_leaves, builder, branching, nodes: DataFrame(node,
    parent, level, size, label, terms)} with non-empty nodes only, down to ``max_level`` (default: all),
    parents before children. ``label`` is the node's top 3 terms joined by " · " (or "node N").
    """
    run_tree = ws.tree(int(run_id), rebuild)
    tree, terms = run_tree.tree, run_tree.terms
    keep = tree.size > 0
    if max_level is not None:
        keep &= tree.level <= int(max_level)
    nodes = np.flatnonzero(keep)
    nodes = nodes[np.lexsort((nodes, tree.level[nodes]))]
    df = pd.DataFrame({
        "node": nodes.astype(np.int64), "parent": tree.parent[nodes].astype(np.int64),
        "level": tree.level[nodes].astype(np.int64), "size": tree.size[nodes].astype(np.int64),
        "label": [label_of(terms, int(n)) if n else "all documents" for n in nodes],
        "terms": [" · ".join(terms[n][:5]) for n in nodes],
    })
    return {"run_id": int(run_id), "rebuild": _rebuild_of(ws, run_id, rebuild), "depth": int(tree.depth),
            "n_docs": int(tree.n_docs), "n_nodes": int(tree.n_nodes),
            "n_leaves": int(((tree.level == tree.depth) & (tree.size > 0)).sum()),
            "builder": tree.builder, "branching": int(tree.branching), "nodes": df}


def _rebuild_of(ws, run_id: int, rebuild: int | None) -> int:
    if rebuild is not None:
        return int(rebuild)
    trees = ws.tree_rebuilds(run_id)
    if not trees:
        raise NotFoundError(f"run {run_id} has no tree")
    return int(trees[-1]["rebuild"])


def node_detail(ws, run_id: int, node: int, rebuild: int | None = None, max_docs: int = 200) -> dict:
    """One node: its path from the root, children and documents (most central first).

    Returns {node, level, size, label, terms, is_leaf, path [{node, level, label}], children [{node, label,
    size}] (by size), docs: DataFrame(doc_id, ext_id, title, leaf, leaf_label, cosine) with at most
    ``max_docs`` rows, ``cosine`` = similarity to the node's centroid in the run's vector space}.
    """
    from .siblings import _display_title, _node_reps

    info = ws.run(run_id, "explore")
    run_tree = ws.tree(int(run_id), rebuild)
    tree, terms = run_tree.tree, run_tree.terms
    node = int(node)
    if not 0 <= node < tree.n_nodes:
        raise NotFoundError(f"run {run_id}'s tree has no node {node}")
    anc, n = [], node
    while n >= 0:
        anc.append(n)
        n = int(tree.parent[n])
    kids = tree.children(node)
    kids = kids[np.argsort(-tree.size[kids], kind="stable")] if len(kids) else kids
    pos = tree.subtree_docs(node)
    doc_ids = tree.doc_ids[pos]
    ids, vecs = run_vectors(ws, int(run_id))
    rows = rows_of(ids, doc_ids)
    cos = np.full(len(doc_ids), np.nan)
    if len(doc_ids):
        rep = _node_reps(tree, np.asarray([node]), ids, vecs)[0]
        cos[rows >= 0] = vecs[rows[rows >= 0]] @ rep
    order = np.argsort(np.nan_to_num(-cos, nan=np.inf), kind="stable")[:int(max_docs)]
    docs = ws.documents(info.corpus, include_removed=True, doc_ids=doc_ids[order]).set_index("doc_id")
    leaves = tree.doc_leaf[pos[order]]
    out_docs = pd.DataFrame({
        "doc_id": doc_ids[order].astype(np.int64),
        "ext_id": [str(docs.loc[d, "ext_id"]) if d in docs.index else "" for d in doc_ids[order]],
        "title": [_display_title(docs.loc[d]) if d in docs.index else "(removed document)" for d in doc_ids[order]],
        "leaf": leaves.astype(np.int64),
        "leaf_label": [label_of(terms, int(lf)) for lf in leaves],
        "cosine": cos[order].astype(float),
    })
    return {"node": node, "level": int(tree.level[node]), "size": int(tree.size[node]),
            "label": label_of(terms, node) if node else "all documents", "terms": list(terms[node][:10]),
            "is_leaf": bool(tree.level[node] == tree.depth),
            "path": [{"node": int(a), "level": int(tree.level[a]),
                      "label": label_of(terms, int(a)) if a else "all documents"} for a in anc[::-1]],
            "children": [{"node": int(k), "label": label_of(terms, int(k)), "size": int(tree.size[k])}
                         for k in kids],
            "docs": out_docs}


def tree_quality(ws, run_id: int) -> dict:
    """Quality statistics of every stored tree of a run (from ``trees.stats``), plus the latest tree's leaf
    sizes and how well it keeps each judged query's relevant documents together.

    Returns {rebuilds: [{rebuild, builder, branching, depth, n_docs, silhouette, intra_cos_leaf}],
    levels: DataFrame(rebuild, level, n_nodes, n_empty, size_min, size_median, size_max, size_mean,
    intra_cos, silhouette), leaf_sizes: [int] (non-empty leaf clusters of the latest tree),
    coherence: DataFrame(level, queries, together) or None - over queries with at least two relevant
    documents, the mean fraction of them that sit in the query's most common node at that level}.
    """
    info = ws.run(run_id, "explore")
    trees = ws.tree_rebuilds(run_id)
    if not trees:
        raise NotFoundError(f"run {run_id} has no tree")
    rebuilds, rows = [], []
    for t in trees:
        st = t["stats"] or {}
        rebuilds.append({"rebuild": int(t["rebuild"]), "builder": t["builder"], "branching": int(t["branching"]),
                         "depth": int(t["depth"]), "n_docs": st.get("n_docs"), "silhouette": st.get("silhouette"),
                         "intra_cos_leaf": st.get("intra_cos_leaf")})
        for lv in st.get("levels", []):
            rows.append({"rebuild": int(t["rebuild"]), "level": int(lv["level"]),
                         **{c: lv.get(c) for c in STAT_COLUMNS}})
    levels = pd.DataFrame(rows, columns=["rebuild", "level", *STAT_COLUMNS])
    tree = ws.tree(int(run_id)).tree
    leaf_sizes = tree.size[(tree.level == tree.depth) & (tree.size > 0)].astype(int).tolist()
    return {"rebuilds": rebuilds, "levels": levels, "leaf_sizes": leaf_sizes,
            "coherence": _coherence(ws, info.corpus, tree)}


def _coherence(ws, corpus: str, tree) -> pd.DataFrame | None:
    docs = ws.documents(corpus, include_removed=True)[["doc_id", "ext_id"]]
    ext_to_id = dict(zip(docs["ext_id"], docs["doc_id"].astype(np.int64), strict=True))
    qrels = ws.qrels(corpus)
    groups = []
    for _, rel in qrels[qrels["score"] > 0].groupby(["split", "query_id"], sort=False):
        pos = tree.positions_of([ext_to_id[d] for d in rel["doc_ext_id"] if d in ext_to_id])
        pos = pos[pos >= 0]
        if len(pos) >= 2:
            groups.append(pos)
    if not groups:
        return None
    paths = tree.paths()
    out = []
    for lv in range(1, tree.depth + 1):
        fr = [np.bincount(np.unique(paths[g, lv - 1], return_inverse=True)[1]).max() / len(g) for g in groups]
        out.append({"level": lv, "queries": len(groups), "together": float(np.mean(fr))})
    return pd.DataFrame(out)


def _labels_at(tree, level: int) -> np.ndarray:
    """Node of every document position at ``level`` (1..depth); deeper levels clamp to the leaf."""
    paths = tree.paths()
    return paths[:, min(max(int(level), 1), tree.depth) - 1]


def compare_trees(ws, run_a: int, run_b: int, rebuild_a: int | None = None, rebuild_b: int | None = None,
                  n_moved: int = 20) -> dict:
    """How much two trees of one corpus agree.

    Args:
        run_a, run_b: finished runs of the same corpus (may be the same run, with two rebuilds).
        rebuild_a, rebuild_b: which stored trees (default: each run's latest).
        n_moved: how many of the most-moved documents to list.

    Returns {run_a, run_b, rebuild_a, rebuild_b, n_shared, only_a, only_b, depth_a, depth_b, leaves_a,
    leaves_b, ari_leaf, ari_level1, ari_levels [{level, ari}] (levels both trees have), mean_jaccard,
    unchanged (fraction of documents whose leaf-mates are identical), moved: DataFrame(doc_id, ext_id,
    title, jaccard, mates_a, mates_b, leaf_a, label_a, leaf_b, label_b)} over the documents both trees
    hold. A document's leaf-mates are the other shared documents of its leaf cluster; ``jaccard`` compares
    its two sets of leaf-mates (1 = same company, 0 = all new neighbours; two empty sets count as 1).
    """
    from sklearn.metrics import adjusted_rand_score

    from .siblings import _display_title

    ia, ib = ws.run(run_a, "explore"), ws.run(run_b, "explore")
    ia.check_same_corpus(ib)
    rt_a, rt_b = ws.tree(int(run_a), rebuild_a), ws.tree(int(run_b), rebuild_b)
    ta, terms_a, tb, terms_b = rt_a.tree, rt_a.terms, rt_b.tree, rt_b.terms
    shared = np.intersect1d(ta.doc_ids, tb.doc_ids)
    if len(shared) == 0:
        raise InputError("the two trees share no documents")
    pa, pb = ta.positions_of(shared), tb.positions_of(shared)
    leaf_a, leaf_b = ta.doc_leaf[pa], tb.doc_leaf[pb]

    def ari(x, y) -> float:
        return float(adjusted_rand_score(x, y))

    ari_levels = [{"level": lv, "ari": ari(_labels_at(ta, lv)[pa], _labels_at(tb, lv)[pb])}
                  for lv in range(1, min(ta.depth, tb.depth) + 1)]
    # leaf-mate Jaccard, vectorised through the contingency table of (leaf in A, leaf in B)
    _, ca = np.unique(leaf_a, return_inverse=True)
    _, cb = np.unique(leaf_b, return_inverse=True)
    size_a = np.bincount(ca)[ca] - 1
    size_b = np.bincount(cb)[cb] - 1
    pair = ca.astype(np.int64) * (cb.max() + 1) + cb
    _, inv, cnt = np.unique(pair, return_inverse=True, return_counts=True)
    inter = cnt[inv] - 1
    union = size_a + size_b - inter
    jac = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    order = np.lexsort((shared, -(size_a + size_b), jac))[:int(n_moved)]  # ties: most company lost first
    docs = ws.documents(ia.corpus, include_removed=True, doc_ids=shared[order]).set_index("doc_id")
    moved = pd.DataFrame({
        "doc_id": shared[order].astype(np.int64),
        "ext_id": [str(docs.loc[d, "ext_id"]) if d in docs.index else "" for d in shared[order]],
        "title": [_display_title(docs.loc[d]) if d in docs.index else "(removed document)" for d in shared[order]],
        "jaccard": jac[order].astype(float),
        "mates_a": size_a[order].astype(np.int64), "mates_b": size_b[order].astype(np.int64),
        "leaf_a": leaf_a[order].astype(np.int64), "label_a": [label_of(terms_a, int(n)) for n in leaf_a[order]],
        "leaf_b": leaf_b[order].astype(np.int64), "label_b": [label_of(terms_b, int(n)) for n in leaf_b[order]],
    })
    return {
        "run_a": int(run_a), "run_b": int(run_b),
        "rebuild_a": _rebuild_of(ws, run_a, rebuild_a), "rebuild_b": _rebuild_of(ws, run_b, rebuild_b),
        "n_shared": int(len(shared)), "only_a": int(ta.n_docs - len(shared)), "only_b": int(tb.n_docs - len(shared)),
        "depth_a": int(ta.depth), "depth_b": int(tb.depth),
        "leaves_a": int(len(np.unique(leaf_a))), "leaves_b": int(len(np.unique(leaf_b))),
        "ari_leaf": ari(leaf_a, leaf_b), "ari_level1": ari(_labels_at(ta, 1)[pa], _labels_at(tb, 1)[pb]),
        "ari_levels": ari_levels, "mean_jaccard": float(jac.mean()), "unchanged": float((jac >= 1.0).mean()),
        "moved": moved,
    }
