"""Tree builders (agglomerative and divisive spherical k-means) and incremental updates.

Compute core: imports only numpy and torch. All builders return a :class:`Tree` whose nodes are numbered
level by level (root 0, then level 1, ...) and, within a level, grouped by parent in parent order, so
node ids follow a depth-first leaf order and every node's children are a contiguous id range.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..threads import one_thread_if
from . import kmeans
from .kmeans import _cluster_sums, _to_tensor, normalize_rows, spherical_kmeans_torch
from .tree import Tree

#: ``build_tree(builder="auto")`` uses the divisive builder above this many documents.
DIVISIVE_THRESHOLD = 50_000

_DOC_CHUNK = 1 << 14


def _prepare(vectors, device) -> torch.Tensor:
    x = _to_tensor(vectors, device)
    return normalize_rows(x)


def _check_branching(branching: int) -> int:
    b = int(branching)
    if b < 2:
        raise ValueError("branching must be >= 2")
    return b


def _finalize(parent_raw: np.ndarray, level_raw: np.ndarray, doc_leaf_raw: np.ndarray, x: torch.Tensor,
              builder: str, branching: int, doc_ids=None) -> Tree:
    """Renumber raw nodes (raw 0 must be the root) level by level, grouped by parent, and compute
    sizes and centroids (normalised mean of the documents under each node) bottom-up."""
    m = len(parent_raw)
    depth = int(level_raw.max())
    new_id = np.full(m, -1, dtype=np.int64)
    new_id[0] = 0
    nxt = 1
    for lv in range(1, depth + 1):
        nodes = np.flatnonzero(level_raw == lv)
        order = np.lexsort((nodes, new_id[parent_raw[nodes]]))  # by new parent id, then raw id
        nodes = nodes[order]
        new_id[nodes] = np.arange(nxt, nxt + len(nodes))
        nxt += len(nodes)
    assert nxt == m, "every raw node must sit on a level 0..depth"
    parent = np.full(m, -1, dtype=np.int64)
    level = np.zeros(m, dtype=np.int64)
    parent[new_id[1:]] = new_id[parent_raw[1:]]
    level[new_id] = level_raw
    doc_leaf = new_id[doc_leaf_raw]

    n, d = x.shape
    # Documents hang under leaves only; internal sizes and sums come from their children, bottom-up.
    size = np.bincount(doc_leaf, minlength=m).astype(np.int64)
    acc = torch.float32 if kmeans._is_cpu(x) else torch.float64
    sums = _cluster_sums(x, torch.from_numpy(doc_leaf).to(x.device), m, acc)
    # Fallback direction for a node whose members cancel out: its first document's vector.
    first_doc = np.zeros(m, dtype=np.int64)
    seen, idx = np.unique(doc_leaf[::-1], return_index=True)
    first_doc[seen] = n - 1 - idx
    fallback = x[torch.from_numpy(first_doc).to(x.device)]
    for lv in range(depth, 0, -1):
        nodes = np.flatnonzero(level == lv)
        p = parent[nodes]
        np.add.at(size, p, size[nodes])
        nt = torch.from_numpy(nodes).to(x.device)
        sums.index_add_(0, torch.from_numpy(p).to(x.device), sums[nt])
        up, first = np.unique(p, return_index=True)  # internal nodes: first child's fallback
        fallback[torch.from_numpy(up).to(x.device)] = fallback[torch.from_numpy(nodes[first]).to(x.device)]
    centroid = normalize_rows(sums.to(torch.float32), fallback=fallback)
    return Tree(parent=parent, level=level, centroid=centroid.cpu().numpy(), size=size, doc_leaf=doc_leaf,
                doc_ids=doc_ids, builder=builder, branching=branching)


def build_agglomerative(vectors, branching: int = 10, seed: int = 0, iters: int = 20,
                        device: str | torch.device = "cpu", doc_ids=None) -> Tree:
    """Bottom-up tree (docs/method.md section 1).

    Cluster the N documents into ceil(N/b) clusters with spherical k-means, then those centroids into
    ceil(N/b^2), ... until at most b nodes remain; they hang under the root. Empty clusters are dropped.
    Centroids are clustered weighted by their number of documents (so outliers do not become top nodes).
    Depth is always >= 1: with N <= b the tree is root -> one leaf cluster holding every document.

    Args:
        vectors: float32 (N, d) document embeddings (re-normalised here).
        branching: b >= 2. seed: seeds every k-means call. iters: Lloyd iterations per call.
        device: torch device for k-means. doc_ids: int64 (N,) store ids (default: positions).
    Returns:
        Tree with equal-length paths; node centroids are normalised means of the documents below.
    Cost: first level O(N * N/b * d * iters); each upper level O(N * k * d * iters) with a smaller k.
    """
    b = _check_branching(branching)
    x = _prepare(vectors, device)
    n = x.shape[0]
    if n == 0:
        raise ValueError("cannot build a tree over zero documents")
    maps: list[np.ndarray] = []  # bottom-up: docs -> level D, level D -> level D-1, ...
    cur, doc_to_cur = x, None     # current level's centroids; each document's cluster at that level
    j = 1
    while True:
        k = min(max(1, math.ceil(n / b ** j)), cur.shape[0])
        # Upper levels cluster centroids weighted by their documents (each document contributes its
        # cluster's centroid): unweighted, a handful of outlier clusters became whole top-level nodes and
        # one node held nearly every document, which leaves the level-1 contrast trivial.
        rows = x if doc_to_cur is None else cur[doc_to_cur]
        cent, row_assign = spherical_kmeans_torch(rows, k, iters=iters, seed=seed + 7919 * (j - 1))
        if doc_to_cur is None:
            assign = row_assign
        else:  # all rows of one cluster are the same vector, hence share an assignment: take the first's
            first = torch.empty(cur.shape[0], dtype=torch.int64, device=x.device)
            first[doc_to_cur.flip(0)] = torch.arange(n - 1, -1, -1, device=x.device)
            assign = row_assign[first]
        maps.append(assign.cpu().numpy())
        doc_to_cur = assign if doc_to_cur is None else assign[doc_to_cur]
        cur = cent
        j += 1
        if cur.shape[0] <= b:
            break
    depth = len(maps)
    counts = [len(maps[i + 1]) if i + 1 < depth else cur.shape[0] for i in range(depth)]  # bottom-up
    # raw ids top-down: root 0, level 1 = counts[-1] nodes, level 2 = counts[-2], ...
    offsets = {}
    nxt = 1
    for lv in range(1, depth + 1):
        offsets[lv] = nxt
        nxt += counts[depth - lv]
    parent_raw = np.zeros(nxt, dtype=np.int64)
    level_raw = np.zeros(nxt, dtype=np.int64)
    parent_raw[0] = -1
    for lv in range(1, depth + 1):
        ids = np.arange(offsets[lv], offsets[lv] + counts[depth - lv])
        level_raw[ids] = lv
        if lv == 1:
            parent_raw[ids] = 0
        else:
            parent_raw[ids] = offsets[lv - 1] + maps[depth - lv + 1]
    doc_leaf_raw = offsets[depth] + maps[0]
    return _finalize(parent_raw, level_raw, doc_leaf_raw, x, "agglomerative", b, doc_ids)


def _capacity_assign(sim: np.ndarray, cap: int) -> np.ndarray:
    """Assign rows to columns of ``sim`` (n, k) by similarity with at most ``cap`` rows per column.

    Greedy rounds: every unassigned row proposes to its most similar column that still has room; each
    column accepts its best proposers up to its remaining room. At most k + 1 rounds; needs k * cap >= n.
    Returns int64 (n,) column ids renumbered to the non-empty columns 0..k'-1.
    """
    n, k = sim.shape
    if k * cap < n:
        raise ValueError("capacity too small")
    assign = np.full(n, -1, dtype=np.int64)
    room = np.full(k, cap, dtype=np.int64)
    todo = np.arange(n)
    while len(todo):
        s = np.where(room > 0, sim[todo], -np.inf)
        choice = np.argmax(s, axis=1)
        best = s[np.arange(len(todo)), choice]
        order = np.lexsort((np.arange(len(todo)), -best, choice))  # by column, best first
        ch = choice[order]
        first = np.searchsorted(ch, ch, side="left")
        accept = (np.arange(len(ch)) - first) < room[ch]
        assign[todo[order[accept]]] = ch[accept]
        room -= np.bincount(ch[accept], minlength=k)
        todo = np.flatnonzero(assign < 0)
    used = np.unique(assign)
    remap = np.zeros(k, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return remap[assign]


def build_divisive(vectors, branching: int = 10, seed: int = 0, iters: int = 20, leaf_size: int | None = None,
                   device: str | torch.device = "cpu", doc_ids=None) -> Tree:
    """Top-down tree: recursive spherical k-means with b children (DSI-style), O(N b d depth iters).

    A node with n > ``leaf_size`` (default b) documents is split by k-means into min(b, ceil(n/leaf_size))
    children (b for large nodes; fewer near the bottom, so a node of 15 documents becomes 2 leaves of ~7
    rather than 10 leaves of ~1-2, which keeps sibling sets useful); a node with at most ``leaf_size``
    documents is a leaf cluster. A node with at most b * leaf_size documents is always split into leaf
    clusters: after k-means, documents are assigned to the centroids greedily by cosine with at most
    ``leaf_size`` per cluster, so a lopsided last split cannot add a level. The root is always split, so
    depth >= 1. If k-means cannot split a node (identical vectors), its documents are cut into equal chunks, so
    leaf sizes never exceed ``leaf_size``.

    Equal path lengths: a leaf cluster that ends at level l < D (the deepest leaf level) is extended
    downwards by a chain of single-child pass-through nodes with the same documents (hence the same size
    and centroid), ending at level D, where its documents hang. At the chain levels the level loss has a
    single candidate and contributes nothing; the original node still competes with its siblings.

    Args/returns as :func:`build_agglomerative`, plus ``leaf_size`` (>= 1).
    """
    b = _check_branching(branching)
    ls = b if leaf_size is None else int(leaf_size)
    if ls < 1:
        raise ValueError("leaf_size must be >= 1")
    with one_thread_if(str(device).startswith("cpu")):
        return _build_divisive(vectors, b, ls, seed, iters, device, doc_ids)


def _build_divisive(vectors, b: int, ls: int, seed: int, iters: int, device, doc_ids) -> Tree:
    x = _prepare(vectors, device)
    n = x.shape[0]
    if n == 0:
        raise ValueError("cannot build a tree over zero documents")
    parent_raw = [-1]
    level_raw = [0]
    leaf_members: list[tuple[int, np.ndarray]] = []  # (raw leaf id, doc positions)
    queue = [(0, np.arange(n, dtype=np.int64))]  # nodes to split, breadth-first
    head = 0
    while head < len(queue):
        node, idx = queue[head]
        head += 1
        lv = level_raw[node]
        if len(idx) <= ls:
            groups = [idx]  # only reached for the root: one leaf cluster under it
        else:
            k = min(b, math.ceil(len(idx) / ls))
            last = len(idx) <= b * ls  # this split yields the leaf clusters
            sub = x[torch.from_numpy(idx).to(x.device)] if len(idx) < n else x
            cent, assign = spherical_kmeans_torch(sub, k, iters=iters, seed=(seed * 1_000_003 + node) % (2 ** 31))
            if last:
                # k-means may return fewer than k centroids (duplicates): repeat them so k * ls >= n
                cent = cent[torch.arange(k, device=cent.device) % cent.shape[0]]
                a = _capacity_assign((sub @ cent.t()).cpu().numpy(), ls)
            else:
                a = assign.cpu().numpy()
            if a.max() == 0:  # k-means could not separate them (duplicates): cut into chunks
                groups = np.array_split(idx, k)
            else:
                order = np.argsort(a, kind="stable")
                cuts = np.flatnonzero(np.diff(a[order])) + 1
                groups = np.split(idx[order], cuts)
        for g in groups:
            child = len(parent_raw)
            parent_raw.append(node)
            level_raw.append(lv + 1)
            if len(g) <= ls:
                leaf_members.append((child, g))
            else:
                queue.append((child, g))
    depth = max(level_raw)
    doc_leaf_raw = np.empty(n, dtype=np.int64)
    for leaf, members in leaf_members:
        bottom = leaf
        for lv in range(level_raw[leaf] + 1, depth + 1):  # pass-through chain down to level D
            parent_raw.append(bottom)
            level_raw.append(lv)
            bottom = len(parent_raw) - 1
        doc_leaf_raw[members] = bottom
    return _finalize(np.asarray(parent_raw, dtype=np.int64), np.asarray(level_raw, dtype=np.int64),
                     doc_leaf_raw, x, "divisive", b, doc_ids)


def build_tree(vectors, builder: str = "agglomerative", branching: int = 10, seed: int = 0, **kw) -> Tree:
    """Build a tree with ``builder`` in {"agglomerative", "divisive", "auto"}.

    "auto" picks divisive above ``DIVISIVE_THRESHOLD`` documents, agglomerative otherwise. Extra keyword
    arguments (iters, device, doc_ids, leaf_size) go to the builder; ``leaf_size`` is ignored by the
    agglomerative builder.
    """
    if builder == "auto":
        builder = "divisive" if len(vectors) > DIVISIVE_THRESHOLD else "agglomerative"
    if builder == "agglomerative":
        kw.pop("leaf_size", None)
        return build_agglomerative(vectors, branching=branching, seed=seed, **kw)
    if builder == "divisive":
        return build_divisive(vectors, branching=branching, seed=seed, **kw)
    raise ValueError(f"unknown builder {builder!r} (agglomerative, divisive or auto)")


# --------------------------------------------------------------------------------------------- updates

#: :func:`place_documents` scores every leaf cluster of a tree with at most this many; a larger tree (a million
#: documents make about 100k leaves: 1,000 new documents x 100k leaves x 384 dimensions, seconds on the project's
#: 2-core CPU) is descended level by level, keeping the :data:`PLACE_BEAM` best nodes of each level.
EXACT_PLACE_LEAVES = 32_768
#: Nodes kept per level by the descent of :func:`place_documents` in a tree above :data:`EXACT_PLACE_LEAVES`.
PLACE_BEAM = 32
#: Documents descended together: each level gathers (chunk, beam x branching, d) centroids, which at 16 stays in
#: cache (at 128, 63 MB a level: 1,000 documents placed in 0.46 s instead of 0.28 s in a 200k-document tree).
_PLACE_CHUNK = 16
#: The descent of :func:`place_documents` scores every node of the deepest level above the leaves that has at
#: most this many nodes (one matrix product, no gather) and descends the levels below it with its beam.
EXACT_LEVEL_NODES = 16_384


def place_documents(tree: Tree, vectors, beam: int | None = None) -> np.ndarray:
    """Nearest leaf cluster by cosine for each row of ``vectors`` float32 (m, d) -> int64 (m,) node ids.

    All level-``depth`` nodes are candidates, including ones emptied by :func:`remove_documents`. Exact (every
    leaf scored) for trees of up to :data:`EXACT_PLACE_LEAVES` leaves; above, or with ``beam`` given, a beam
    search from the root keeps the ``beam`` (default :data:`PLACE_BEAM`) nodes most similar to the document at
    each level and returns the best leaf among the last level's, which is the exact nearest leaf unless a
    level's beam missed its ancestor.
    """
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim == 1:
        v = v[None, :]
    leaves = tree.nodes_at(tree.depth)
    if beam is None and len(leaves) > EXACT_PLACE_LEAVES:
        beam = PLACE_BEAM
    if beam is not None and tree.depth > 0:
        return _place_by_descent(tree, v, int(beam))
    c = tree.centroid[leaves]
    out = np.empty(len(v), dtype=np.int64)
    for s in range(0, len(v), _DOC_CHUNK):
        sim = v[s:s + _DOC_CHUNK] @ c.T  # the row norm does not change the argmax
        out[s:s + _DOC_CHUNK] = leaves[np.argmax(sim, axis=1)]
    return out


#: (parent array, its children matrix) of the last trees descended: trees grown by :func:`add_documents` share
#: their parent array, so a run's adds build the matrix once (the array is held, so its id stays its own).
_KIDS: list[tuple[np.ndarray, np.ndarray]] = []


def _children_matrix(tree: Tree) -> np.ndarray:
    """int64 (n_nodes + 1, most children): each node's children, padded with -1; the last row (all -1) is
    where a padded beam entry (-1) looks up its children. Cached for the last few parent arrays."""
    for parent, kids in _KIDS:
        if parent is tree.parent:
            return kids
    kids = _build_children_matrix(tree)
    _KIDS.insert(0, (tree.parent, kids))
    del _KIDS[4:]
    return kids


def _build_children_matrix(tree: Tree) -> np.ndarray:
    n = tree.n_nodes
    child = np.argsort(tree.parent[1:], kind="stable") + 1  # child node ids grouped by parent
    counts = np.bincount(tree.parent[1:], minlength=n)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.full((n + 1, max(int(counts.max()), 1)), -1, dtype=np.int64)
    out[tree.parent[child], np.arange(n - 1) - start[tree.parent[child]]] = child
    return out


def _place_by_descent(tree: Tree, v: np.ndarray, beam: int) -> np.ndarray:
    kids = _children_matrix(tree)
    counts = np.bincount(tree.level)  # nodes per level, from one scan of the levels (not per chunk and level)
    depth, n_nodes = len(counts) - 1, tree.n_nodes
    # the deepest level above the leaves small enough to score every node of it for every document (one matrix
    # product, no gather): the descent starts there from that level's exact top ``beam``
    start = max((lv for lv in range(1, depth) if counts[lv] <= EXACT_LEVEL_NODES), default=0)
    start_nodes = tree.nodes_at(start) if start else np.zeros(1, dtype=np.int64)
    start_cent = tree.centroid[start_nodes]
    width = min(beam, len(start_nodes))
    fronts = np.empty((len(v), width), dtype=np.int64)
    for s in range(0, len(v), 512):  # (512, level nodes) scores at a time
        sim = v[s:s + 512] @ start_cent.T
        top = np.argpartition(-sim, width - 1, axis=1)[:, :width] if width < len(start_nodes) else \
            np.broadcast_to(np.arange(width), sim.shape)
        fronts[s:s + 512] = start_nodes[top]
    out = np.empty(len(v), dtype=np.int64)
    for s in range(0, len(v), _PLACE_CHUNK):
        q, front = v[s:s + _PLACE_CHUNK], fronts[s:s + _PLACE_CHUNK]
        for step in range(start, depth):
            cand = kids[np.where(front >= 0, front, n_nodes)].reshape(len(q), -1)
            sim = np.einsum("md,mcd->mc", q, tree.centroid[np.maximum(cand, 0)])
            sim[cand < 0] = -np.inf
            if step == depth - 1:
                front = np.take_along_axis(cand, np.argmax(sim, axis=1)[:, None], axis=1)
            elif cand.shape[1] > beam:
                front = np.take_along_axis(cand, np.argpartition(-sim, beam - 1, axis=1)[:, :beam], axis=1)
            else:
                front = cand
        out[s:s + _PLACE_CHUNK] = front[:, 0]
    return out


def _add_along_paths(tree: Tree, size: np.ndarray, leaves: np.ndarray, delta: int) -> None:
    cur = np.asarray(leaves, dtype=np.int64)
    while len(cur):
        np.add.at(size, cur, delta)
        cur = tree.parent[cur]
        cur = cur[cur >= 0]


def add_documents(tree: Tree, vectors, doc_ids) -> Tree:
    """New Tree with documents appended (positions n_docs .. n_docs+m-1) under their nearest leaves.

    Args: vectors float32 (m, d); doc_ids int64 (m,) store ids, not already in the tree.
    Sizes of the leaves and all their ancestors grow; the new tree shares the old one's parent, level and centroid
    arrays (unchanged; trees are never modified in place).
    """
    ids = np.asarray(doc_ids, dtype=np.int64).reshape(-1)
    v = (np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1) if len(ids)
         else np.zeros((0, tree.centroid.shape[1]), np.float32))
    if len(np.unique(ids)) != len(ids) or (tree.positions_of(ids) >= 0).any():
        raise ValueError("doc_ids must be new and unique")
    leaves = place_documents(tree, v) if len(ids) else np.zeros(0, dtype=np.int64)
    size = tree.size.copy()
    _add_along_paths(tree, size, leaves, 1)
    # the structure and centroids do not change: shared, not copied (430 MB of centroids at a million documents)
    return Tree(parent=tree.parent, level=tree.level, centroid=tree.centroid, size=size,
                doc_leaf=np.concatenate([tree.doc_leaf, leaves]), doc_ids=np.concatenate([tree.doc_ids, ids]),
                builder=tree.builder, branching=tree.branching)


def remove_documents(tree: Tree, doc_ids, strict: bool = True) -> Tree:
    """New Tree without the documents whose store ids are in ``doc_ids``.

    Remaining documents keep their order but are renumbered 0..n-1 (``doc_ids`` keeps the store ids).
    Sizes along the removed documents' paths shrink; nodes are never deleted, so a node may remain with
    size 0 (its centroid is kept and it can still receive documents through :func:`add_documents`).
    Raises KeyError for ids not in the tree when ``strict``; otherwise ignores them.
    """
    ids = np.asarray(doc_ids, dtype=np.int64).reshape(-1)
    if strict:
        missing = ids[~np.isin(ids, tree.doc_ids)]
        if len(missing):
            raise KeyError(f"doc ids not in the tree: {missing[:10].tolist()}")
    gone = np.isin(tree.doc_ids, ids)
    size = tree.size.copy()
    _add_along_paths(tree, size, tree.doc_leaf[gone], -1)
    return Tree(parent=tree.parent.copy(), level=tree.level.copy(), centroid=tree.centroid.copy(), size=size,
                doc_leaf=tree.doc_leaf[~gone], doc_ids=tree.doc_ids[~gone], builder=tree.builder,
                branching=tree.branching)


def subtree_docs(tree: Tree, node: int) -> np.ndarray:
    """Document positions under ``node`` (any level), as a view into one precomputed array."""
    return tree.subtree_docs(node)
