"""The trained tree as the search index: its leaf clusters as the inverted lists of an IVF index.

HCE discards its tree at inference; this index keeps it. Every document sits in its tree leaf's list (a FAISS
``IndexIVFFlat`` filled with those assignments, so no k-means runs to build it). Each node's centroid is
re-centred on the run's vectors (the normalised sum of the vectors below it), so a trained run's tree routes
its trained encoder's queries. A query descends the tree by beam search: at every level the children of the
``beam`` best nodes are scored against the query and the best kept; at the leaf level the ``probe`` best
leaves are scanned exactly (inner product). By default ``beam = probe`` = 10% of the leaves (16 to 256). The
cost of one query in distance computations is the centroids scored on the way down plus the documents in the
probed leaves (see :meth:`TreeIndex.route`).

Adding documents puts each under the leaf its tree gave it (or, without one, the leaf the descent reaches
with the index's beam) and moves the centroids above it; removing takes it out of its list. The tree's
shape does not change (rebuild the run's tree to re-cluster).

Example:
    >>> index = TreeIndex.build(tree, ids, vectors)          # the run's tree and its stored vectors
    >>> scores, ids = index.search(query_vectors, 10)
    >>> leaves, cost = index.route(query_vectors)            # which leaves each query visited, at what cost
"""
from __future__ import annotations

import threading

import faiss
import numpy as np

from ..tree.tree import Tree
from .vector_index import SERIAL_SEARCH_WORK, _omp_threads

__all__ = ["TreeIndex", "DEFAULT_PROBE_SHARE", "MIN_PROBE", "MAX_PROBE"]

#: Leaves scanned by default: this share of the leaves, clipped to [MIN_PROBE, MAX_PROBE]; the beam keeps as
#: many nodes per level. Measured (benchmarks/README.md, "The tree as the index"): SciFact's 519 leaves at 52
#: probed give recall@10 ~0.96 against exact search; synthetic 50k/200k reach 0.99+ with far fewer.
DEFAULT_PROBE_SHARE = 0.1
MIN_PROBE = 16
MAX_PROBE = 256


class TreeIndex:
    """Inner-product search through a document tree. Build with :meth:`build`; thread-safe."""

    kind = "tree"

    def __init__(self, tree: Tree, dim: int, beam: int | None = None, probe: int | None = None):
        self._lock = threading.RLock()
        self._parent = tree.parent.copy()
        self._level = tree.level.copy()
        self._depth = tree.depth
        self._dim = int(dim)
        n_nodes = len(self._parent)
        kids = np.argsort(self._parent[1:], kind="stable") + 1  # non-root nodes grouped by parent
        self._child_ptr = np.searchsorted(self._parent[kids], np.arange(n_nodes + 1))
        self._child_idx = kids
        self._leaves = np.flatnonzero(self._level == self._depth)
        self._sums = np.zeros((n_nodes, self._dim), dtype=np.float64)
        self._fallback = tree.centroid.astype(np.float32).copy()  # for nodes with no document yet
        self._centroid = self._fallback.copy()
        self._list_size = np.zeros(n_nodes, dtype=np.int64)
        self._leaf_of: dict[int, int] = {}
        self._ivf: faiss.IndexIVFFlat  # set by _new_ivf
        self._new_ivf()
        n_leaves = len(self._leaves)
        default = min(max(MIN_PROBE, int(round(DEFAULT_PROBE_SHARE * n_leaves))), MAX_PROBE, max(n_leaves, 1))
        self.probe = int(probe) if probe else default
        self.beam = int(beam) if beam else self.probe

    @classmethod
    def build(cls, tree: Tree, ids: np.ndarray, vectors: np.ndarray, beam: int | None = None,
              probe: int | None = None) -> "TreeIndex":
        """An index over ``ids`` int64 (n,) / ``vectors`` float32 (n, d): documents in ``tree`` go to their
        leaf; others are placed by descent. Centroids are re-centred on ``vectors``."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index = cls(tree, vectors.shape[-1], beam, probe)
        ids = np.asarray(ids, dtype=np.int64)
        pos = tree.positions_of(ids)
        leaves = np.where(pos >= 0, tree.doc_leaf[np.maximum(pos, 0)], -1)
        index.add(ids, vectors, leaves)
        return index

    def _new_ivf(self) -> None:
        quantizer = faiss.IndexFlatIP(self._dim)
        quantizer.add(self._centroid)  # never searched (queries are routed by the beam); makes the IVF "trained"
        self._quantizer = quantizer  # the IVF holds a raw pointer: keep the object alive
        self._ivf = faiss.IndexIVFFlat(quantizer, self._dim, len(self._parent), faiss.METRIC_INNER_PRODUCT)
        self._ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # a removed document's vector, by id

    # ------------------------------------------------------------------ contents
    def __len__(self) -> int:
        return len(self._leaf_of)

    def __contains__(self, doc_id: object) -> bool:
        return int(doc_id) in self._leaf_of  # type: ignore[call-overload]

    def ids(self) -> np.ndarray:
        """int64 ascending ids of the indexed documents."""
        with self._lock:
            return np.asarray(sorted(self._leaf_of), dtype=np.int64)

    @property
    def n_leaves(self) -> int:
        return len(self._leaves)

    def list_size(self, node: int) -> int:
        """Documents in a leaf's list (0 for other nodes)."""
        return int(self._list_size[node])

    def centroids(self, nodes) -> np.ndarray:
        """float32 (m, d) re-centred centroids of the given nodes."""
        with self._lock:
            return self._centroid[np.asarray(nodes, dtype=np.int64)].copy()

    def leaf_of(self, ids) -> np.ndarray:
        """int64 leaf node of each id (-1 when not indexed)."""
        return np.asarray([self._leaf_of.get(int(i), -1) for i in np.asarray(ids).reshape(-1)], dtype=np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray, leaves: np.ndarray | None = None) -> None:
        """Add documents under ``leaves`` int64 (m,) (entries < 0, or None: the leaf the descent reaches).
        Ids already present are replaced."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self._dim)
        if len(ids) == 0:
            return
        with self._lock:
            self.remove(ids[np.isin(ids, list(self._leaf_of))])
            leaves = np.full(len(ids), -1, np.int64) if leaves is None else np.asarray(leaves, np.int64).copy()
            todo = leaves < 0
            if todo.any():
                leaves[todo] = self._descend(vectors[todo], self.beam, 1)[0][:, 0]
            if not np.isin(leaves, self._leaves).all():
                raise ValueError("documents must go under leaf clusters")
            self._ivf.add_core(len(ids), faiss.swig_ptr(vectors), faiss.swig_ptr(ids), faiss.swig_ptr(leaves))
            self._list_size += np.bincount(leaves, minlength=len(self._list_size))
            self._move(leaves, vectors.astype(np.float64))
            self._leaf_of.update(zip(ids.tolist(), leaves.tolist(), strict=True))

    def remove(self, ids: np.ndarray) -> int:
        """Remove documents by id (unknown ids are ignored). Returns how many were removed."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        with self._lock:
            known = np.asarray([i for i in ids.tolist() if i in self._leaf_of], dtype=np.int64)
            if not len(known):
                return 0
            vecs = self._ivf.reconstruct_batch(known).astype(np.float64)
            self._ivf.remove_ids(faiss.IDSelectorArray(len(known), faiss.swig_ptr(known)))
            leaves = np.asarray([self._leaf_of.pop(i) for i in known.tolist()], dtype=np.int64)
            self._list_size -= np.bincount(leaves, minlength=len(self._list_size))
            self._move(leaves, -vecs)
            return len(known)

    def _move(self, leaves: np.ndarray, delta: np.ndarray) -> None:
        """Add ``delta`` (m, d) to the sums of each leaf and its ancestors; re-centre the touched nodes."""
        levels = []
        nodes = leaves
        while len(nodes):
            order = np.argsort(nodes, kind="stable")
            nodes, first = np.unique(nodes[order], return_index=True)
            delta = np.add.reduceat(delta[order], first, axis=0)  # one row per distinct node
            self._sums[nodes] += delta
            levels.append(nodes)
            keep = self._parent[nodes] >= 0
            nodes, delta = self._parent[nodes][keep], delta[keep]
        touched = np.concatenate(levels)
        norm = np.linalg.norm(self._sums[touched], axis=1, keepdims=True)
        fresh = np.where(norm > 1e-12, self._sums[touched] / np.maximum(norm, 1e-12), self._fallback[touched])
        self._centroid[touched] = fresh.astype(np.float32)

    # ------------------------------------------------------------------ search
    def _descend(self, queries: np.ndarray, beam: int, probe: int) -> tuple[np.ndarray, np.ndarray]:
        """Beam search down the tree: (leaves int64 (q, probe) best first, -1 padded; centroids scored (q,))."""
        out = np.full((len(queries), probe), -1, dtype=np.int64)
        scored = np.zeros(len(queries), dtype=np.int64)
        for qi, q in enumerate(queries):
            frontier = np.zeros(1, dtype=np.int64)  # the root
            for level in range(1, self._depth + 1):
                start, end = self._child_ptr[frontier], self._child_ptr[frontier + 1]
                lens = end - start
                if lens.sum() == 0:
                    break
                offsets = np.repeat(start - np.cumsum(lens) + lens, lens)
                cand = self._child_idx[offsets + np.arange(lens.sum())]
                sims = self._centroid[cand] @ q
                scored[qi] += len(cand)
                keep = probe if level == self._depth else beam
                if len(cand) > keep:
                    top = np.argpartition(-sims, keep - 1)[:keep]
                    cand, sims = cand[top], sims[top]
                frontier = cand[np.argsort(-sims, kind="stable")]
            out[qi, :len(frontier)] = frontier[:probe]
        return out, scored

    def route(self, queries: np.ndarray, beam: int | None = None, probe: int | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """The leaves each query scans and what it costs.

        Returns ``(leaves int64 (q, probe), distance computations int64 (q,))``: leaves best first (-1
        padded); computations = centroids scored on the way down + documents in the probed leaves.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self._dim)
        with self._lock:
            leaves, scored = self._descend(queries, beam or self.beam, probe or self.probe)
            scanned = np.where(leaves >= 0, self._list_size[np.maximum(leaves, 0)], 0).sum(axis=1)
        return leaves, scored + scanned

    def search(self, queries: np.ndarray, k: int, beam: int | None = None, probe: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by inner product among the documents of the probed leaves.

        ``queries`` float32 (q, d). Returns ``(scores float32 (q, k), ids int64 (q, k))``, best first,
        padded with -inf / -1.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self._dim)
        k = int(k)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        if k <= 0 or not len(queries):
            return scores, ids
        with self._lock:
            if not self._leaf_of:
                return scores, ids
            leaves, _ = self._descend(queries, beam or self.beam, probe or self.probe)
            self._ivf.nprobe = leaves.shape[1]
            work = int(np.where(leaves >= 0, self._list_size[np.maximum(leaves, 0)], 0).sum()) * self._dim
            with _omp_threads(1 if work <= SERIAL_SEARCH_WORK else 1 << 16):  # see vector_index.SERIAL_SEARCH_WORK
                d, i = self._ivf.search_preassigned(queries, k, leaves, np.zeros(leaves.shape, dtype=np.float32))
        valid = i >= 0
        scores[:, :i.shape[1]] = np.where(valid, d, -np.inf)
        ids[:, :i.shape[1]] = np.where(valid, i, -1)
        return scores, ids

    def __repr__(self) -> str:
        return (f"TreeIndex(docs={len(self)}, leaves={self.n_leaves}, depth={self._depth}, beam={self.beam}, "
                f"probe={self.probe})")
