"""Batches for the hierarchical loss: the positive's path, its sibling branches at every level, and its leaf
negatives, as padded index arrays (numpy; the loss moves them to the device).

Per pair with positive document position ``p`` (path ``n_1 .. n_D = tree.path(p)``):

* **Level candidates** (t = 1..D): the children of ``n_{t-1}`` (the root's children for t = 1), padded with
  -1 into a (B, C_t) array, and the column of ``n_t``. Levels t <= M ("memory levels") are scored against
  learned vectors held by the loss. Levels t > M are scored against a *representative document* of each
  candidate node: one member document per node and batch, drawn uniformly from the node's subtree (shared by
  all pairs of the batch that see that node, so each is encoded once), encoded with gradient. A sibling
  node whose representative is a known positive of the pair's query (or the positive's text) is masked for
  that pair: the query is never pushed away from a document relevant to it.
* **Leaf negatives** (``negatives``):
  ``"siblings"`` draws up to S other documents of ``p``'s leaf cluster without replacement. When the leaf
  has fewer than S other documents the remaining slots are masked (so the compute per step varies and the
  expected count is below S for small leaves; with b = 10 leaves average ~10 documents).
  ``"random"`` draws exactly S documents uniformly from the whole corpus (same compute as S siblings).
  ``"in-batch"`` draws none. ``"teacher"`` takes the first S of the pair's row of ``mined`` (the self
  signal's hybrid teacher's best documents for the pseudo-query, its source excluded). Documents that are
  known positives of the same query (another relevant document in the qrels) are never drawn.
* **Leaf candidates**: column 0 the positive, columns 1..S the drawn negatives, columns S+1..S+B the batch's
  positives (in-batch negatives). Masked out: empty slots, the pair's own in-batch column, any in-batch
  positive that is a known positive of this query (the same document twice in a batch, or another relevant
  document of the same query), and repeats of a document already in the row (by position or identical
  text, so an exact duplicate of the positive stored under another id is never a negative).

Batches: pairs are shuffled every epoch with a generator seeded by ``(seed, epoch)``; a greedy pass keeps two
pairs with the same positive document out of one batch when possible (a bounded look-ahead; when it finds
too few, the batch is filled up with same-document pairs), and the masks above handle whatever remains. Every
batch but an epoch's last holds ``batch_size`` pairs, so an epoch has exactly ``len(sampler)`` batches (the
step count the learning-rate schedule and the ETA are sized by). ``batching="tree"`` instead sorts the pairs by
their positive's tree path (in a random order within each leaf), cuts that order into batches at a random
offset and shuffles the batches: a batch then holds neighbouring leaves, and its in-batch negatives are hard
ones. Everything is deterministic
given the seed, the tree and the pairs.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from hce_engine.tree.tree import Tree

from .pairs import Pair

NEGATIVE_MODES = ("siblings", "random", "in-batch", "teacher")


@dataclass
class LevelCandidates:
    """Candidates of one tree level for every pair of a batch.

    Attributes:
        level: tree level t (1..D).
        nodes: int64 (B, C) candidate node ids (children of ``n_{t-1}``), -1 = padding.
        target: int64 (B,) column of the positive node ``n_t`` in ``nodes``.
        memory: True when scored against the loss's memory vectors, False when against ``rep``.
        rep: int64 (B, C) index into ``HierBatch.doc_texts`` of each candidate's representative document
            (-1 = padding); None for memory levels.
        known: bool (B, C), True where a candidate other than the positive node is represented by a known
            positive of the pair's query (masked); None = none.
    """

    level: int
    nodes: np.ndarray
    target: np.ndarray
    memory: bool
    rep: np.ndarray | None = None
    known: np.ndarray | None = None

    @property
    def mask(self) -> np.ndarray:
        """(B, C) bool, True = a valid candidate: not padding, not represented by a known positive."""
        return (self.nodes >= 0) if self.known is None else (self.nodes >= 0) & ~self.known


@dataclass
class HierBatch:
    """One training batch (B pairs).

    Attributes:
        pair_idx: (B,) indices of the pairs in the sampler's pair list.
        queries: unique query texts of the batch; ``query_idx`` (B,) maps each pair to one.
        doc_texts: unique document texts to embed (positives, negatives, representatives; each once);
            ``doc_pos`` (U,) their corpus positions. The first ``n_positive_texts`` are the positives
            (embedded at the document length), the rest negatives (at ``TrainConfig.negative_max_length``).
        pos: (B,) index into ``doc_texts`` of each pair's positive; ``pos_doc`` (B,) its corpus position.
        leaf_idx: (B, 1 + S + B) index into ``doc_texts``: positive, S negatives, the B in-batch positives.
        leaf_mask: (B, 1 + S + B) bool, True = a valid candidate (column 0 always).
        leaf_doc: (B, 1 + S + B) corpus positions of the leaf candidates, -1 where masked.
        n_neg: S, the number of negative columns.
        levels: one :class:`LevelCandidates` per scored level, top level first.
        bidir_mask: (B, B) bool, [i, j] True when query j is a valid candidate for document i.
    """

    pair_idx: np.ndarray
    queries: list[str]
    query_idx: np.ndarray
    doc_texts: list[str]
    doc_pos: np.ndarray
    pos: np.ndarray
    pos_doc: np.ndarray
    leaf_idx: np.ndarray
    leaf_mask: np.ndarray
    leaf_doc: np.ndarray
    n_neg: int
    levels: list[LevelCandidates] = field(default_factory=list)
    bidir_mask: np.ndarray | None = None
    n_positive_texts: int = -1  # -1: all of doc_texts

    @property
    def size(self) -> int:
        return len(self.pair_idx)

    @property
    def neg_doc(self) -> np.ndarray:
        """(B, S) corpus positions of the drawn negatives, -1 for empty slots."""
        return self.leaf_doc[:, 1:1 + self.n_neg]

    @property
    def n_sequences(self) -> int:
        """Sequences this batch encodes: unique queries + unique documents."""
        return len(self.queries) + len(self.doc_texts)


def _csr(keys: np.ndarray, n_keys: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group positions by key: (order, start, count) so that members of k are order[start[k]:start[k]+count[k]]."""
    order = np.argsort(keys, kind="stable")
    count = np.bincount(keys, minlength=n_keys).astype(np.int64)
    start = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
    return order, start, count


class HierarchicalSampler:
    """Builds :class:`HierBatch` es from a tree and training pairs (see the module docstring).

    Args:
        tree: the document tree; positions in it are corpus positions.
        pairs: training pairs (``doc_pos`` < ``tree.n_docs``).
        doc_texts: stored document texts by corpus position.
        batch_size: pairs per batch (the last batch of an epoch may be smaller).
        negatives: "siblings", "random" or "in-batch".
        siblings: S, negatives per pair (ignored for "in-batch").
        memory_levels: M, the number of top levels scored against memory vectors (clipped to the depth).
        level_loss: when False, levels below M are not sampled (they would only cost encodes); memory
            levels are still returned for diagnostics.
        seed: base seed; epoch ``e`` uses generators seeded with ``(seed, e)``.
        batching: "random" or "tree" (neighbouring positives share a batch; see the module docstring).
        mined: int64 (n_pairs, >= S) negatives per pair for ``negatives="teacher"`` (-1 padded).
    """

    def __init__(self, tree: Tree, pairs: Sequence[Pair], doc_texts: Sequence[str], *, batch_size: int = 32,
                 negatives: str = "siblings", siblings: int = 15, memory_levels: int = 0,
                 level_loss: bool = True, seed: int = 0, mined: np.ndarray | None = None,
                 batching: str = "random"):
        if negatives not in NEGATIVE_MODES:
            raise ValueError(f"negatives must be one of {NEGATIVE_MODES}, got {negatives!r}")
        if negatives == "teacher" and (mined is None or len(mined) != len(pairs)):
            raise ValueError("negatives 'teacher' needs one row of mined negatives per pair")
        self.mined = None if mined is None else np.asarray(mined, dtype=np.int64)
        if batching not in ("random", "tree"):
            raise ValueError(f"batching must be random or tree, got {batching!r}")
        self.batching = batching
        if len(doc_texts) != tree.n_docs:
            raise ValueError(f"tree has {tree.n_docs} documents but {len(doc_texts)} texts were given")
        if not pairs:
            raise ValueError("no training pairs")
        self.tree, self.pairs, self.doc_texts = tree, list(pairs), doc_texts
        self.batch_size, self.negatives, self.seed = int(batch_size), negatives, int(seed)
        self.n_neg = 0 if negatives == "in-batch" else int(siblings)
        self.depth = tree.depth
        self.memory_levels = max(0, min(int(memory_levels), self.depth))
        self.level_loss = bool(level_loss)

        n_docs = tree.n_docs
        self.pair_doc = np.fromiter((p.doc_pos for p in self.pairs), dtype=np.int64, count=len(self.pairs))
        if self.pair_doc.min() < 0 or self.pair_doc.max() >= n_docs:
            raise ValueError(f"pair doc_pos out of range 0..{n_docs - 1}")
        # Known positives per query text: never drawn as negatives, masked as in-batch negatives.
        qid: dict[str, int] = {}
        self.pair_query = np.empty(len(self.pairs), dtype=np.int64)
        for i, p in enumerate(self.pairs):
            self.pair_query[i] = qid.setdefault(p.query, len(qid))
        self.query_pos: list[np.ndarray] = [np.empty(0, np.int64)] * len(qid)
        grouped: dict[int, set[int]] = {}
        for q, d in zip(self.pair_query.tolist(), self.pair_doc.tolist(), strict=True):
            grouped.setdefault(q, set()).add(d)
        for q, s in grouped.items():
            self.query_pos[q] = np.asarray(sorted(s), dtype=np.int64)

        # Tree tables: padded children, rank of each node among its siblings, per-level document groups.
        n_nodes = tree.n_nodes
        kids = [tree.children(n) for n in range(n_nodes)]
        self.n_kids = np.fromiter((len(k) for k in kids), dtype=np.int64, count=n_nodes)
        width = max(1, int(self.n_kids.max()) if n_nodes else 1)
        self.kids_pad = np.full((n_nodes, width), -1, dtype=np.int64)
        self.child_rank = np.zeros(n_nodes, dtype=np.int64)
        for n, k in enumerate(kids):
            self.kids_pad[n, :len(k)] = k
            self.child_rank[k] = np.arange(len(k))
        self.paths = tree.paths()  # (N, D)
        self.level_groups: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for t in range(1, self.depth + 1):
            if t == self.depth or (self.level_loss and t > self.memory_levels):
                self.level_groups[t] = _csr(self.paths[:, t - 1], n_nodes)

    # ------------------------------------------------------------------ batching
    def __len__(self) -> int:
        return math.ceil(len(self.pairs) / self.batch_size)

    def _rng(self, epoch: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(epoch), stream])

    def batch_order(self, epoch: int) -> list[np.ndarray]:
        """Pair indices of every batch of ``epoch`` (shuffled; same positive document kept apart when possible)."""
        B = self.batch_size
        if self.batching == "tree":
            rng = self._rng(epoch, 0)
            paths = self.paths[self.pair_doc]  # (P, D): sort by level 1, then 2, ..., random within a leaf
            order = np.lexsort((rng.random(len(self.pairs)),) + tuple(paths[:, t] for t in
                                                                      reversed(range(paths.shape[1]))))
            order = np.roll(order, -int(rng.integers(B)))
            cut = [order[s:s + B] for s in range(0, len(order), B)]
            return [cut[i].astype(np.int64) for i in rng.permutation(len(cut))]
        queue = deque(self._rng(epoch, 0).permutation(len(self.pairs)).tolist())
        doc = self.pair_doc
        out: list[np.ndarray] = []
        while queue:
            cur: list[int] = []
            seen: set[int] = set()
            skipped: list[int] = []
            while queue and len(cur) < B and len(skipped) <= 4 * B:
                i = queue.popleft()
                if doc[i] in seen:
                    skipped.append(i)
                else:
                    cur.append(i)
                    seen.add(int(doc[i]))
            if len(cur) < B:  # look-ahead spent or nothing else left: accept duplicates (they are masked), so
                take = B - len(cur)  # every batch but the epoch's last is full and there are len(self) of them
                cur.extend(skipped[:take])
                skipped = skipped[take:]
            queue.extendleft(reversed(skipped))
            out.append(np.asarray(cur, dtype=np.int64))
        return out

    def batches(self, epoch: int) -> Iterator[HierBatch]:
        """The batches of ``epoch`` (0-based), deterministic given the seed."""
        rng = self._rng(epoch, 1)
        for idx in self.batch_order(epoch):
            yield self.make_batch(idx, rng)

    # ------------------------------------------------------------------ one batch
    def _draw_negatives(self, p: int, known: np.ndarray, rng: np.random.Generator, pair: int) -> np.ndarray:
        S = self.n_neg
        if S == 0:
            return np.empty(0, np.int64)
        if self.negatives == "teacher":
            assert self.mined is not None
            row = self.mined[pair]
            return row[(row >= 0) & ~np.isin(row, known)][:S]
        if self.negatives == "siblings":
            order, start, count = self.level_groups[self.depth]
            leaf = self.tree.doc_leaf[p]
            members = order[start[leaf]:start[leaf] + count[leaf]]
            members = members[~np.isin(members, known)]
            k = min(S, len(members))
            return rng.choice(members, size=k, replace=False) if k else np.empty(0, np.int64)
        n = self.tree.n_docs
        avail = n - len(known)
        k = min(S, avail)
        if k <= 0:
            return np.empty(0, np.int64)
        draw = rng.choice(n, size=min(n, k + len(known)), replace=False)
        return draw[~np.isin(draw, known)][:k].astype(np.int64)

    def make_batch(self, idx: np.ndarray, rng: np.random.Generator) -> HierBatch:
        """Build the batch of pairs ``idx`` drawing negatives and representatives from ``rng``."""
        idx = np.asarray(idx, dtype=np.int64)
        B, S = len(idx), self.n_neg
        pairs = [self.pairs[i] for i in idx]

        qkeys: dict[str, int] = {}
        query_idx = np.array([qkeys.setdefault(p.query, len(qkeys)) for p in pairs], dtype=np.int64)
        queries = list(qkeys)

        doc_index: dict[str, int] = {}
        doc_texts: list[str] = []
        doc_pos: list[int] = []

        def add(pos: int, text: str | None = None) -> int:
            # Keyed by content: identical texts (duplicate documents) are embedded once and masked as one.
            text = self.doc_texts[pos] if text is None else text
            j = doc_index.get(text)
            if j is None:
                j = doc_index[text] = len(doc_texts)
                doc_texts.append(text)
                doc_pos.append(pos)
            return j

        pos_doc = self.pair_doc[idx]
        pos = np.array([add(int(p.doc_pos), p.doc_text) for p in pairs], dtype=np.int64)
        n_positive_texts = len(doc_texts)
        known = [self.query_pos[q] for q in self.pair_query[idx]]

        # Leaf candidates: [positive | S negatives | B in-batch positives].
        K = 1 + S + B
        leaf_idx = np.full((B, K), -1, dtype=np.int64)
        leaf_doc = np.full((B, K), -1, dtype=np.int64)
        leaf_idx[:, 0], leaf_doc[:, 0] = pos, pos_doc
        for i in range(B):
            neg = self._draw_negatives(int(pos_doc[i]), known[i], rng, int(idx[i]))
            leaf_idx[i, 1:1 + len(neg)] = [add(int(d)) for d in neg]
            leaf_doc[i, 1:1 + len(neg)] = neg
        leaf_idx[:, 1 + S:] = pos[None, :]
        leaf_doc[:, 1 + S:] = pos_doc[None, :]
        leaf_mask = leaf_idx >= 0
        inb = np.ones((B, B), dtype=bool)
        np.fill_diagonal(inb, False)
        for i in range(B):
            inb[i] &= ~np.isin(pos_doc, known[i])
        leaf_mask[:, 1 + S:] = inb
        # Each document (by position, and by text) at most once per row; first occurrence wins, so a
        # duplicate of the positive (column 0) is always the one masked.
        for i in range(B):
            for key in (leaf_doc, leaf_idx):
                cols = np.flatnonzero(leaf_mask[i])
                _, first = np.unique(key[i, cols], return_index=True)
                keep = np.zeros(len(cols), dtype=bool)
                keep[first] = True
                leaf_mask[i, cols[~keep]] = False
        leaf_idx = np.where(leaf_mask, leaf_idx, -1)
        leaf_doc = np.where(leaf_mask, leaf_doc, -1)

        # Level candidates.
        levels: list[LevelCandidates] = []
        paths = self.paths[pos_doc]  # (B, D)
        for t in range(1, self.depth + 1):
            memory = t <= self.memory_levels
            if not memory and not self.level_loss:
                continue
            parent = np.zeros(B, dtype=np.int64) if t == 1 else paths[:, t - 2]
            node = paths[:, t - 1]
            C = int(self.n_kids[parent].max())
            nodes = self.kids_pad[parent, :C]
            target = self.child_rank[node]
            rep = None
            if not memory:
                order, start, count = self.level_groups[t]
                uniq = np.unique(nodes[nodes >= 0])
                pick = order[start[uniq] + rng.integers(0, count[uniq])]
                node_to_doc = {int(n): add(int(d)) for n, d in zip(uniq, pick, strict=True)}
                rep = np.full_like(nodes, -1)
                valid = nodes >= 0
                rep[valid] = [node_to_doc[int(n)] for n in nodes[valid]]
            levels.append(LevelCandidates(t, nodes, target, memory, rep))
        # A sibling node represented by a known positive of the query (by text, so also a duplicate of one, or
        # of the positive) is no negative for that pair: masked. The positive node keeps any representative.
        if any(lc.rep is not None for lc in levels):
            known_text = [np.asarray([int(pos[i])] + [doc_index[self.doc_texts[k]] for k in known[i].tolist()
                                                      if self.doc_texts[k] in doc_index], dtype=np.int64)
                          for i in range(B)]
            for lc in levels:
                if lc.rep is None:
                    continue
                hit = np.stack([np.isin(lc.rep[i], known_text[i]) for i in range(B)]) & (lc.rep >= 0)
                hit[np.arange(B), lc.target] = False
                lc.known = hit if hit.any() else None

        bidir = np.ones((B, B), dtype=bool)
        for j in range(B):
            col = ~np.isin(pos_doc, known[j])
            col[j] = True
            bidir[:, j] = col

        return HierBatch(pair_idx=idx, queries=queries, query_idx=query_idx, doc_texts=doc_texts,
                         doc_pos=np.asarray(doc_pos, dtype=np.int64), pos=pos, pos_doc=pos_doc,
                         leaf_idx=leaf_idx, leaf_mask=leaf_mask, leaf_doc=leaf_doc, n_neg=S, levels=levels,
                         bidir_mask=bidir, n_positive_texts=n_positive_texts)
