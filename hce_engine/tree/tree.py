"""The Tree type: a document hierarchy with equal-length root-to-document paths.

Nodes are numbered 0..n_nodes-1; node 0 is the root (level 0). Internal levels run 1..depth, where
level ``depth`` holds the leaf clusters; documents hang under leaf clusters and are addressed by their
position 0..n_docs-1 in the array the tree was built from (``doc_ids`` maps positions to store ids).
``Tree.save``/``Tree.load`` keep one in an ``.npz`` file (no pickle).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Tree:
    """A hierarchy over ``n_docs`` documents.

    Attributes:
        parent: int64 (n_nodes,), parent node of each node; -1 for the root.
        level: int64 (n_nodes,), 0 for the root, ``depth`` for leaf clusters.
        centroid: float32 (n_nodes, d), L2-normalised mean direction of the node's documents.
        size: int64 (n_nodes,), number of documents under the node.
        doc_leaf: int64 (n_docs,), the leaf cluster of each document position.
        doc_ids: int64 (n_docs,), store ids of the documents (defaults to positions).
        builder: "agglomerative" or "divisive".
        branching: the branching factor b used to build it.
    """

    parent: np.ndarray
    level: np.ndarray
    centroid: np.ndarray
    size: np.ndarray
    doc_leaf: np.ndarray
    doc_ids: np.ndarray = None  # type: ignore[assignment]  # None: positions, filled in by __post_init__
    builder: str = "agglomerative"
    branching: int = 10
    _children: list[np.ndarray] | None = field(default=None, repr=False, compare=False)
    _leaf_docs: list[np.ndarray] | None = field(default=None, repr=False, compare=False)
    _euler: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)
    _by_id: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.parent = np.asarray(self.parent, dtype=np.int64)
        self.level = np.asarray(self.level, dtype=np.int64)
        self.centroid = np.asarray(self.centroid, dtype=np.float32)
        self.size = np.asarray(self.size, dtype=np.int64)
        self.doc_leaf = np.asarray(self.doc_leaf, dtype=np.int64)
        if self.doc_ids is None:
            self.doc_ids = np.arange(len(self.doc_leaf), dtype=np.int64)
        self.doc_ids = np.asarray(self.doc_ids, dtype=np.int64)

    @property
    def n_nodes(self) -> int:
        return len(self.parent)

    @property
    def n_docs(self) -> int:
        return len(self.doc_leaf)

    @property
    def depth(self) -> int:
        """Number of internal levels below the root (leaf clusters are at this level)."""
        return int(self.level.max()) if self.n_nodes else 0

    def children(self, node: int) -> np.ndarray:
        """Child node ids of ``node`` (empty for leaf clusters), ascending."""
        if self._children is None:
            order = np.argsort(self.parent, kind="stable")
            kids: list[list[int]] = [[] for _ in range(self.n_nodes)]
            for n in order:
                if self.parent[n] >= 0:
                    kids[self.parent[n]].append(int(n))
            self._children = [np.asarray(k, dtype=np.int64) for k in kids]
        return self._children[node]

    def leaf_docs(self, leaf: int) -> np.ndarray:
        """Document positions under leaf cluster ``leaf``, ascending."""
        if self._leaf_docs is None:
            buckets: list[list[int]] = [[] for _ in range(self.n_nodes)]
            for pos, lf in enumerate(self.doc_leaf):
                buckets[lf].append(pos)
            self._leaf_docs = [np.asarray(b, dtype=np.int64) for b in buckets]
        return self._leaf_docs[leaf]

    def path(self, doc_pos: int) -> list[int]:
        """Node ids from level 1 down to the document's leaf cluster (length ``depth``)."""
        out = []
        n = int(self.doc_leaf[doc_pos])
        while n > 0:
            out.append(n)
            n = int(self.parent[n])
        return out[::-1]

    def paths(self) -> np.ndarray:
        """int64 (n_docs, depth): every document's path, level 1 first."""
        d = self.depth
        out = np.empty((self.n_docs, d), dtype=np.int64)
        cur = self.doc_leaf.copy()
        for col in range(d - 1, -1, -1):
            out[:, col] = cur
            cur = self.parent[cur]
        return out

    def nodes_at(self, level: int) -> np.ndarray:
        return np.flatnonzero(self.level == level)

    def euler(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Depth-first document order, cached: (order int64 (n_docs,), start, end int64 (n_nodes,)).

        ``order[start[n]:end[n]]`` are the document positions under node ``n`` (any level), ascending
        within each leaf; empty nodes get ``start == end``. Built in one vectorised pass.
        """
        if self._euler is None:
            d = self.depth
            leaves = self.nodes_at(d)
            # leaves in depth-first order: lexsort by their ancestors, level 1 first
            anc = np.empty((d, len(leaves)), dtype=np.int64)
            cur = leaves
            for col in range(d - 1, -1, -1):
                anc[col] = cur
                cur = self.parent[cur]
            leaf_rank = np.empty(self.n_nodes, dtype=np.int64)
            leaf_rank[leaves[np.lexsort(anc[::-1])]] = np.arange(len(leaves))
            order = np.lexsort((np.arange(self.n_docs), leaf_rank[self.doc_leaf])).astype(np.int64)
            start = np.zeros(self.n_nodes, dtype=np.int64)
            end = np.zeros(self.n_nodes, dtype=np.int64)
            if self.n_nodes:
                end[0] = self.n_docs
            cur = self.doc_leaf[order]
            for _ in range(d):
                nodes, first, cnt = np.unique(cur, return_index=True, return_counts=True)
                start[nodes] = first
                end[nodes] = first + cnt
                cur = self.parent[cur]
            self._euler = (order, start, end)
        return self._euler

    def subtree_docs(self, node: int) -> np.ndarray:
        """Document positions under ``node`` (a read-only view into the cached depth-first order)."""
        order, start, end = self.euler()
        out = order[start[node]:end[node]]
        out.flags.writeable = False
        return out

    def positions_of(self, doc_ids) -> np.ndarray:
        """Positions int64 (m,) of the given store ids; -1 for ids not in the tree."""
        ids = np.asarray(doc_ids, dtype=np.int64).reshape(-1)
        if self.n_docs == 0:
            return np.full(len(ids), -1, dtype=np.int64)
        if self._by_id is None:  # sorted once per tree (a search asks for 10 positions among 200k)
            srt = np.argsort(self.doc_ids, kind="stable")
            self._by_id = (srt, self.doc_ids[srt])
        srt, sorted_ids = self._by_id
        i = np.clip(np.searchsorted(sorted_ids, ids), 0, len(srt) - 1)
        return np.where(sorted_ids[i] == ids, srt[i], -1).astype(np.int64)

    def validate(self) -> None:
        """Raise AssertionError unless the structural invariants hold: node 0 is the only root, levels
        increase by one from parent to child, every leaf cluster sits at ``depth``, documents hang only
        under leaf clusters, and each size equals the number of documents below the node."""
        n = self.n_nodes
        assert n >= 1 and self.parent[0] == -1 and self.level[0] == 0, "node 0 must be the root"
        assert (self.parent[1:] >= 0).all() and (self.parent[1:] < n).all(), "bad parent ids"
        assert (self.level[1:] == self.level[self.parent[1:]] + 1).all(), "levels must step by one"
        has_child = np.zeros(n, dtype=bool)
        has_child[self.parent[1:]] = True
        assert (has_child | (self.level == self.depth)).all(), "a childless node above the leaf level"
        assert not has_child[self.level == self.depth].any()
        assert (self.level[self.doc_leaf] == self.depth).all(), "documents must hang under leaf clusters"
        size = np.bincount(self.doc_leaf, minlength=n)
        for lv in range(self.depth, 0, -1):
            nodes = self.nodes_at(lv)
            np.add.at(size, self.parent[nodes], size[nodes])
        assert (size == self.size).all(), "sizes disagree with the documents below"
        assert len(self.doc_ids) == self.n_docs and len(np.unique(self.doc_ids)) == self.n_docs
        assert self.centroid.shape[0] == n

    def save(self, path: str | os.PathLike) -> None:
        """Write the arrays, ``builder`` and ``branching`` to an ``.npz`` file (numpy appends ``.npz`` to a
        path without it)."""
        np.savez(path, parent=self.parent, level=self.level, centroid=self.centroid, size=self.size,
                 doc_leaf=self.doc_leaf, doc_ids=self.doc_ids, builder=np.array(self.builder),
                 branching=np.array(self.branching))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Tree":
        """Read a tree written by :meth:`save` (``allow_pickle=False``)."""
        with np.load(path, allow_pickle=False) as z:
            return cls(parent=z["parent"], level=z["level"], centroid=z["centroid"], size=z["size"],
                       doc_leaf=z["doc_leaf"], doc_ids=z["doc_ids"], builder=str(z["builder"]),
                       branching=int(z["branching"]))
