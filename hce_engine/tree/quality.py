"""Tree quality statistics (numpy only, JSON-serialisable output)."""
from __future__ import annotations

import numpy as np

from .tree import Tree

_CHUNK = 1 << 14


def _silhouette(v: np.ndarray, labels: np.ndarray, sample: np.ndarray, sums: np.ndarray,
                counts: np.ndarray) -> float | None:
    """Exact cosine silhouette of the sampled documents against *all* documents.

    For unit vectors the mean cosine distance from x to cluster c is 1 - x.S_c / n_c (S_c the member sum),
    so a(x) = 1 - (x.S_own - 1) / (n_own - 1) and b(x) = min over other non-empty clusters. Documents
    alone in their cluster score 0 (sklearn's convention). None when there are fewer than 2 clusters.
    """
    nonempty = counts > 0
    if nonempty.sum() < 2:
        return None
    xs = v[sample]
    own = labels[sample]
    scores = np.empty(len(sample), dtype=np.float64)
    safe = np.maximum(counts, 1).astype(np.float64)
    for s in range(0, len(sample), 512):
        x = xs[s:s + 512].astype(np.float64)
        o = own[s:s + 512]
        dot = x @ sums.T.astype(np.float64)  # (m, L)
        mean_dist = 1.0 - dot / safe
        mean_dist[:, ~nonempty] = np.inf
        rows = np.arange(len(o))
        self_dot = np.einsum("ij,ij->i", x, x)
        n_own = counts[o].astype(np.float64)
        a = 1.0 - (dot[rows, o] - self_dot) / np.maximum(n_own - 1, 1)
        mean_dist[rows, o] = np.inf
        b = mean_dist.min(axis=1)
        sc = (b - a) / np.maximum(np.maximum(a, b), 1e-12)
        sc[n_own <= 1] = 0.0
        scores[s:s + 512] = sc
    return float(scores.mean())


def tree_stats(tree: Tree, vectors, sample: int = 2000, seed: int = 0) -> dict:
    """Summary statistics of a tree over its document vectors.

    Args:
        tree: the Tree. vectors: float32 (n_docs, d), aligned with document positions (re-normalised).
        sample: number of documents (seeded random sample) whose silhouette is computed.
    Returns (JSON-serialisable dict):
        n_docs, depth, n_nodes, builder, branching,
        levels: list over levels 1..depth of {level, n_nodes, n_empty, size_min, size_median, size_max,
            size_mean (over non-empty nodes; 0 if none), intra_cos (mean cosine of a document to its
            level-``level`` ancestor's centroid), silhouette (cosine silhouette of the sample with that
            level's nodes as labels, None if < 2 non-empty nodes)},
        intra_cos_leaf, silhouette (leaf-cluster labels), silhouette_sample (sample size used).
    """
    v = np.asarray(vectors, dtype=np.float32)
    if len(v) != tree.n_docs:
        raise ValueError(f"got {len(v)} vectors for {tree.n_docs} documents")
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    n = tree.n_docs
    rng = np.random.default_rng(seed)
    m = min(int(sample), n)
    smp = np.sort(rng.choice(n, size=m, replace=False)) if m < n else np.arange(n)
    paths = tree.paths() if n else np.zeros((0, tree.depth), np.int64)
    levels = []
    for lv in range(1, tree.depth + 1):
        nodes = tree.nodes_at(lv)
        sizes = tree.size[nodes]
        ne = sizes[sizes > 0]
        anc = paths[:, lv - 1]
        cos_sum = 0.0
        for s in range(0, n, _CHUNK):
            cos_sum += float(np.einsum("ij,ij->i", v[s:s + _CHUNK], tree.centroid[anc[s:s + _CHUNK]]).sum())
        # silhouette with this level's nodes as labels, from per-node member sums
        local = np.full(tree.n_nodes, -1, dtype=np.int64)
        local[nodes] = np.arange(len(nodes))
        lab = local[anc]
        sums = np.zeros((len(nodes), v.shape[1]), dtype=np.float64)
        _add_rows(sums, lab, v)
        counts = np.bincount(lab, minlength=len(nodes))
        sil = _silhouette(v, lab, smp, sums, counts) if m else None
        levels.append({
            "level": lv,
            "n_nodes": int(len(nodes)),
            "n_empty": int((sizes == 0).sum()),
            "size_min": int(ne.min()) if len(ne) else 0,
            "size_median": float(np.median(ne)) if len(ne) else 0.0,
            "size_max": int(ne.max()) if len(ne) else 0,
            "size_mean": float(ne.mean()) if len(ne) else 0.0,
            "intra_cos": float(cos_sum / n) if n else None,
            "silhouette": sil,
        })
    leaf = levels[-1] if levels else {}
    return {
        "n_docs": int(n),
        "depth": int(tree.depth),
        "n_nodes": int(tree.n_nodes),
        "builder": str(tree.builder),
        "branching": int(tree.branching),
        "levels": levels,
        "intra_cos_leaf": leaf.get("intra_cos"),
        "silhouette": leaf.get("silhouette"),
        "silhouette_sample": int(m),
    }


def _add_rows(sums: np.ndarray, lab: np.ndarray, v: np.ndarray) -> None:
    """sums[lab[i]] += v[i] via sorting and ``np.add.reduceat`` (much faster than ``np.add.at``)."""
    if not len(lab):
        return
    order = np.argsort(lab, kind="stable")
    ls = lab[order]
    starts = np.flatnonzero(np.r_[True, ls[1:] != ls[:-1]])
    for s in range(0, len(starts), 4096):
        st = starts[s:s + 4096]
        end = starts[s + 4096] if s + 4096 < len(starts) else len(order)
        block = v[order[st[0]:end]].astype(np.float64)
        sums[ls[st]] += np.add.reduceat(block, st - st[0], axis=0)


def leaf_fit(tree: Tree, doc_ids, vectors) -> float | None:
    """Mean cosine between documents and the centroid of the leaf cluster they hang under.

    Args:
        doc_ids: int64 (m,) store ids; ids not in the tree are skipped.
        vectors: float32 (m, d) their unit vectors, in the same order.
    Returns None when none of the documents is in the tree.
    """
    pos = tree.positions_of(doc_ids)
    keep = pos >= 0
    if not keep.any():
        return None
    v = np.asarray(vectors, dtype=np.float32)[keep]
    return float(np.einsum("ij,ij->i", v, tree.centroid[tree.doc_leaf[pos[keep]]]).mean())
