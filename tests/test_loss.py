"""Tests for hce_engine.training.loss: the hierarchical contrastive loss against hand/loop computations."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hce_engine.training import HierarchicalContrastiveLoss, HierarchicalSampler, Pair
from hce_engine.tree.tree import Tree


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_tree(parent, doc_leaf, d=8, seed=0) -> Tree:
    """A Tree from a parent list (node 0 = root) and each document's leaf; random unit centroids."""
    parent = np.asarray(parent)
    level = np.zeros(len(parent), dtype=np.int64)
    for n in range(1, len(parent)):
        p, lv = parent[n], 1
        while p != 0:
            p, lv = parent[p], lv + 1
        level[n] = lv
    size = np.zeros(len(parent), dtype=np.int64)
    for leaf in doc_leaf:
        n = leaf
        while n >= 0:
            size[n] += 1
            n = parent[n]
    c = np.random.default_rng(seed).normal(size=(len(parent), d)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    return Tree(parent=parent, level=level, centroid=c, size=size, doc_leaf=np.asarray(doc_leaf))


def unit(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g), dim=-1)


def ce(scores: torch.Tensor, target: int) -> torch.Tensor:
    return torch.logsumexp(scores, 0) - scores[target]


# Irregular 3-level tree: root -> 1,2,3; 1 -> 4,5; 2 -> 6; 3 -> 7,8,9; leaves 10..18; 30 documents.
IRREGULAR_PARENT = [-1, 0, 0, 0, 1, 1, 2, 3, 3, 3, 4, 4, 5, 6, 7, 7, 8, 9, 9]
IRREGULAR_LEAVES = [10] * 5 + [11] * 3 + [12] * 1 + [13] * 6 + [14] * 4 + [15] * 2 + [16] * 1 + [17] * 5 + [18] * 3


def reference_loss(tree, loss_fn, q_emb, doc_emb, batch, pairs, tau, level_loss=True):
    """Per-example loops straight from docs/method.md section 2 (uses the batch only for its random draws)."""
    known: dict[str, set] = {}
    for p in pairs:
        known.setdefault(p.query, set()).add(p.doc_pos)
    stored = {int(batch.doc_pos[j]): j for j in range(len(batch.doc_texts))}
    rep_of = {}
    for lc in batch.levels:
        if lc.rep is not None:
            for n, r in zip(lc.nodes.ravel(), lc.rep.ravel()):
                if n >= 0:
                    rep_of[(lc.level, int(n))] = int(r)
    M = loss_fn.memory_levels
    totals = []
    for i in range(batch.size):
        pair = pairs[batch.pair_idx[i]]
        q = q_emb[batch.query_idx[i]]
        p = pair.doc_pos
        cand = [doc_emb[batch.pos[i]]]
        seen = {p}
        for d in batch.neg_doc[i]:
            if d >= 0:
                assert d not in seen
                cand.append(doc_emb[stored[int(d)]])
                seen.add(int(d))
        for j in range(batch.size):
            dj = int(batch.pos_doc[j])
            if j != i and dj not in known[pair.query] and dj not in seen:
                cand.append(doc_emb[batch.pos[j]])
                seen.add(dj)
        leaf = ce(torch.stack(cand) @ q / tau, 0)
        terms = []
        path = tree.path(p)
        for t in range(1, tree.depth + 1):
            kids = tree.children(0 if t == 1 else path[t - 2])
            if t > M:  # a sibling represented by a known positive of the query is no negative
                kids = np.asarray([k for k in kids if k == path[t - 1] or
                                   int(batch.doc_pos[rep_of[(t, int(k))]]) not in known[pair.query]])
            if len(kids) < 2:
                continue
            if t <= M:
                rows = [int(np.flatnonzero(tree.nodes_at(t) == k)[0]) for k in kids]
                reps = F.normalize(loss_fn.memory[t - 1][rows], dim=-1)
            else:
                reps = torch.stack([doc_emb[rep_of[(t, int(k))]] for k in kids])
            terms.append(ce(reps @ q / tau, int(np.flatnonzero(kids == path[t - 1])[0])))
        level = torch.stack(terms).mean() if (terms and level_loss) else torch.zeros(())
        totals.append(leaf + level)
    return torch.stack(totals).mean()


def embeddings_for(batch, seed=1, n_docs=64, d=8):
    table = unit(n_docs, d, seed=seed)
    q = unit(len(batch.queries), d, seed=seed + 100).requires_grad_(True)
    docs = table[torch.as_tensor(batch.doc_pos)].clone().requires_grad_(True)
    return q, docs


def test_hand_computed_two_level_tree():
    # root -> 1, 2; 1 -> leaves 3, 4; 2 -> leaf 5 (a single child: level 2 has one candidate there).
    tree = make_tree([-1, 0, 0, 1, 1, 2], [3, 3, 4, 4, 5, 5], d=4)
    pairs = [Pair("q0", 0), Pair("q1", 4)]
    sampler = HierarchicalSampler(tree, pairs, [f"doc {i}" for i in range(6)], batch_size=2, siblings=1,
                                  memory_levels=2)
    batch = sampler.make_batch(np.array([0, 1]), np.random.default_rng(0))
    tau = 0.1
    loss_fn = HierarchicalContrastiveLoss(tree, memory_levels=2, tau=tau)
    g = torch.Generator().manual_seed(3)
    E = F.normalize(torch.randn(6, 4, generator=g), dim=-1)  # document embeddings by position
    Q = F.normalize(torch.randn(2, 4, generator=g), dim=-1)
    loss, det = loss_fn(Q, E[torch.as_tensor(batch.doc_pos)], batch)

    C = torch.as_tensor(tree.centroid)
    s = lambda a, b: float(a @ b) / tau  # noqa: E731
    # pair 0: doc 0, leaf sibling doc 1, in-batch doc 4; level 1 {1*, 2}; level 2 {3*, 4}
    leaf0 = -math.log(math.exp(s(Q[0], E[0])) / sum(math.exp(s(Q[0], E[k])) for k in (0, 1, 4)))
    l1_0 = -math.log(math.exp(s(Q[0], C[1])) / sum(math.exp(s(Q[0], C[k])) for k in (1, 2)))
    l2_0 = -math.log(math.exp(s(Q[0], C[3])) / sum(math.exp(s(Q[0], C[k])) for k in (3, 4)))
    # pair 1: doc 4, leaf sibling doc 5, in-batch doc 0; level 1 {1, 2*}; level 2 {5} (single: not counted)
    leaf1 = -math.log(math.exp(s(Q[1], E[4])) / sum(math.exp(s(Q[1], E[k])) for k in (4, 5, 0)))
    l1_1 = -math.log(math.exp(s(Q[1], C[2])) / sum(math.exp(s(Q[1], C[k])) for k in (1, 2)))
    expected = ((leaf0 + (l1_0 + l2_0) / 2) + (leaf1 + l1_1)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert det["loss"] == pytest.approx(expected, rel=1e-5)
    assert det["leaf_loss"] == pytest.approx((leaf0 + leaf1) / 2, rel=1e-5)
    assert det["level_count"] == [2, 1]
    assert det["level_loss"][0] == pytest.approx((l1_0 + l1_1) / 2, rel=1e-5)
    assert det["level_loss"][1] == pytest.approx(l2_0, rel=1e-5)

    off = HierarchicalContrastiveLoss(tree, memory_levels=2, tau=tau, level_loss=False)
    loss_off, det_off = off(Q, E[torch.as_tensor(batch.doc_pos)], batch)
    assert loss_off.item() == pytest.approx((leaf0 + leaf1) / 2, rel=1e-5)
    assert det_off["level_mean"] is None and det_off["level_count"] == [2, 1]  # still reported


@pytest.mark.parametrize("memory_levels,negatives,level_loss", [
    (3, "siblings", True), (1, "siblings", True), (0, "random", True), (2, "in-batch", True),
    (3, "siblings", False),
])
def test_vectorised_loss_matches_per_example_reference(memory_levels, negatives, level_loss):
    tree = make_tree(IRREGULAR_PARENT, IRREGULAR_LEAVES)
    rng = np.random.default_rng(5)
    pairs = [Pair(f"q{i}", int(d)) for i, d in enumerate(rng.choice(30, 12, replace=False))]
    pairs += [Pair("q0", int(d)) for d in range(30) if d != pairs[0].doc_pos][:1]  # a 2nd relevant doc of q0
    pairs += [Pair("q-dup", pairs[1].doc_pos)]  # the same document as another pair's positive
    sampler = HierarchicalSampler(tree, pairs, [f"doc {i}" for i in range(30)], batch_size=len(pairs),
                                  siblings=3, memory_levels=memory_levels, negatives=negatives,
                                  level_loss=level_loss, seed=1)
    batch = sampler.make_batch(np.arange(len(pairs)), np.random.default_rng(2))
    loss_fn = HierarchicalContrastiveLoss(tree, memory_levels=memory_levels, tau=0.05, level_loss=level_loss)
    with torch.no_grad():  # move memory away from the centroids so they are not trivially aligned
        for p in loss_fn.memory:
            p.add_(0.3 * unit(*p.shape, seed=9))
    q, d = embeddings_for(batch)
    loss, det = loss_fn(q, d, batch)
    ref = reference_loss(tree, loss_fn, q, d, batch, pairs, 0.05, level_loss)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    # candidate sets of different widths are padded per level
    widths = {lc.level: lc.nodes.shape[1] for lc in batch.levels}
    if 1 in widths:
        assert widths[1] == 3
    assert all((lc.nodes >= 0).sum(1).min() >= 1 for lc in batch.levels)


def test_duplicate_positive_and_other_relevant_docs_are_masked():
    tree = make_tree(IRREGULAR_PARENT, IRREGULAR_LEAVES)
    # docs 0..4 share leaf 10. q-a is relevant to 0 and 1; q-b's positive is again doc 0.
    pairs = [Pair("q-a", 0), Pair("q-a", 1), Pair("q-b", 0), Pair("q-c", 9)]
    sampler = HierarchicalSampler(tree, pairs, [f"doc {i}" for i in range(30)], batch_size=4, siblings=4,
                                  memory_levels=3)
    for seed in range(20):
        batch = sampler.make_batch(np.arange(4), np.random.default_rng(seed))
        S = batch.n_neg
        inb = batch.leaf_mask[:, 1 + S:]
        assert not inb[0, 1] and not inb[1, 0]      # the other relevant doc of the same query
        assert not inb[0, 2] and not inb[2, 0]      # the same document twice in the batch
        assert inb[0, 3] and inb[2, 3] and not inb[3, 3]
        assert 1 not in batch.neg_doc[0] and 0 not in batch.neg_doc[1]  # never drawn as siblings
        for i in range(4):
            assert batch.pos_doc[i] not in batch.neg_doc[i]
            docs = batch.doc_pos[batch.leaf_idx[i][batch.leaf_mask[i]]]
            assert len(docs) == len(set(docs))  # each document at most once per row
    # scored with the duplicate in the batch, the loss still matches the per-example reference
    loss_fn = HierarchicalContrastiveLoss(tree, memory_levels=3)
    batch = sampler.make_batch(np.arange(4), np.random.default_rng(0))
    q, d = embeddings_for(batch)
    loss, _ = loss_fn(q, d, batch)
    assert loss.item() == pytest.approx(reference_loss(tree, loss_fn, q, d, batch, pairs, 0.05).item(), rel=1e-5)
    assert len(batch.queries) == 3  # the repeated query is embedded once


def test_level_representatives_that_are_known_positives_are_masked():
    """Below the memory levels a sibling node is scored by a sampled member document: when that document is
    another relevant document of the query, the node is masked for that pair (not pushed away), and only
    for that pair."""
    # root -> 1, 2 (leaves); docs 0..2 in leaf 1, docs 3..4 in leaf 2. q-a is relevant to 0 and to 3 and 4 (all
    # of leaf 2), so leaf 2's representative is always a known positive of q-a; q-b (doc 1) may see it.
    tree = make_tree([-1, 0, 0], [1, 1, 1, 2, 2])
    pairs = [Pair("q-a", 0), Pair("q-a", 3), Pair("q-a", 4), Pair("q-b", 1)]
    sampler = HierarchicalSampler(tree, pairs, [f"doc {i}" for i in range(5)], batch_size=4, siblings=1,
                                  memory_levels=0)
    loss_fn = HierarchicalContrastiveLoss(tree, memory_levels=0)
    for seed in range(5):
        batch = sampler.make_batch(np.array([0, 3]), np.random.default_rng(seed))
        (lc,) = batch.levels
        assert not lc.memory and lc.nodes.tolist() == [[1, 2], [1, 2]]
        assert lc.mask.tolist() == [[True, False], [True, True]]  # q-a: leaf 2 masked; q-b: both candidates
        q, d = embeddings_for(batch, n_docs=5)
        _, det = loss_fn(q, d, batch)
        assert det["level_count"] == [1]  # q-a's level has one candidate left: not counted
        loss, _ = loss_fn(q, d, batch)
        assert loss.item() == pytest.approx(reference_loss(tree, loss_fn, q, d, batch, pairs, 0.05).item(),
                                            rel=1e-5)
    # the positive node keeps its representative even when that is another relevant document (it is the target)
    for seed in range(8):
        batch = sampler.make_batch(np.array([1, 3]), np.random.default_rng(seed))  # q-a's doc 3: target leaf 2
        (lc,) = batch.levels
        rep_doc = batch.doc_pos[lc.rep[0]].tolist()  # leaf 1's, leaf 2's representative for the pair
        assert lc.mask[0].tolist() == [rep_doc[0] != 0, True]  # leaf 1 masked only when doc 0 stands for it


def test_single_candidate_levels_contribute_nothing():
    # root -> 1 (only child) -> leaves 2, 3: level 1 has a single candidate for every pair.
    tree = make_tree([-1, 0, 1, 1], [2, 2, 3, 3])
    pairs = [Pair("a", 0), Pair("b", 2)]
    sampler = HierarchicalSampler(tree, pairs, ["w"] * 4, batch_size=2, siblings=1, memory_levels=2)
    batch = sampler.make_batch(np.arange(2), np.random.default_rng(0))
    loss_fn = HierarchicalContrastiveLoss(tree, memory_levels=2, tau=0.05)
    q, d = embeddings_for(batch, n_docs=4)
    loss, det = loss_fn(q, d, batch)
    assert det["level_count"] == [0, 2] and det["level_loss"][0] is None and det["level_acc"][0] is None
    assert det["loss"] == pytest.approx(det["leaf_loss"] + det["level_loss"][1], rel=1e-5)
    # a tree where no level has a choice: the total is the leaf term alone
    flat = make_tree([-1, 0], [1, 1, 1])
    s2 = HierarchicalSampler(flat, [Pair("a", 0)], ["x", "y", "z"], batch_size=1, siblings=2, memory_levels=1)
    b2 = s2.make_batch(np.arange(1), np.random.default_rng(0))
    l2, det2 = HierarchicalContrastiveLoss(flat, memory_levels=1)(*embeddings_for(b2, n_docs=3), b2)
    assert det2["level_count"] == [0] and det2["loss"] == pytest.approx(det2["leaf_loss"], rel=1e-6)


@pytest.mark.parametrize("level_loss", [True, False])
def test_gradients_reach_siblings_and_memory(level_loss):
    tree = make_tree(IRREGULAR_PARENT, IRREGULAR_LEAVES)
    pairs = [Pair("a", 0), Pair("b", 20)]
    sampler = HierarchicalSampler(tree, pairs, [f"d{i}" for i in range(30)], batch_size=2, siblings=3,
                                  memory_levels=2, level_loss=level_loss)
    batch = sampler.make_batch(np.arange(2), np.random.default_rng(0))
    loss_fn = HierarchicalContrastiveLoss(tree, memory_levels=2, level_loss=level_loss)
    q, d = embeddings_for(batch)
    loss, _ = loss_fn(q, d, batch)
    loss.backward()
    sib_rows = batch.leaf_idx[:, 1:1 + batch.n_neg][batch.leaf_mask[:, 1:1 + batch.n_neg]]
    assert len(sib_rows) > 0
    assert all(d.grad[r].abs().sum() > 0 for r in sib_rows)
    assert q.grad.abs().sum() > 0
    if level_loss:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in loss_fn.memory)
        # level 3 (below M = 2) is represented by sampled documents that receive gradient
        lc3 = [lc for lc in batch.levels if lc.level == 3][0]
        reps = lc3.rep[lc3.rep >= 0]
        assert not lc3.memory and all(d.grad[r].abs().sum() > 0 for r in reps)
    else:
        assert all(p.grad is None for p in loss_fn.memory)
        assert [lc.level for lc in batch.levels] == [1, 2]  # no representatives sampled without level loss


def test_representatives_belong_to_their_node():
    tree = make_tree(IRREGULAR_PARENT, IRREGULAR_LEAVES)
    pairs = [Pair(f"q{i}", i) for i in range(0, 30, 3)]
    sampler = HierarchicalSampler(tree, pairs, [f"d{i}" for i in range(30)], batch_size=10, siblings=2,
                                  memory_levels=0)
    paths = tree.paths()
    batch = sampler.make_batch(np.arange(10), np.random.default_rng(0))
    for lc in batch.levels:
        assert not lc.memory
        for n, r in zip(lc.nodes.ravel(), lc.rep.ravel()):
            assert (n < 0) == (r < 0)
            if n >= 0:
                assert paths[batch.doc_pos[r], lc.level - 1] == n
        # the positive node is the target column
        assert (lc.nodes[np.arange(10), lc.target] == paths[batch.pos_doc, lc.level - 1]).all()


def test_bidirectional_term_and_reset_memory():
    tree = make_tree(IRREGULAR_PARENT, IRREGULAR_LEAVES)
    pairs = [Pair("a", 0), Pair("b", 20), Pair("c", 25)]
    sampler = HierarchicalSampler(tree, pairs, [f"d{i}" for i in range(30)], batch_size=3, siblings=2,
                                  memory_levels=3)
    batch = sampler.make_batch(np.arange(3), np.random.default_rng(0))
    q, d = embeddings_for(batch)
    base, _ = HierarchicalContrastiveLoss(tree, memory_levels=3)(q, d, batch)
    both, det = HierarchicalContrastiveLoss(tree, memory_levels=3, bidirectional=True)(q, d, batch)
    dp = d[torch.as_tensor(batch.pos)]
    s = dp @ q[torch.as_tensor(batch.query_idx)].T / 0.05
    expected = F.cross_entropy(s, torch.arange(3))
    assert det["bidirectional_loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert both.item() == pytest.approx(base.item() + expected.item(), rel=1e-5)

    loss_fn = HierarchicalContrastiveLoss(tree, memory_levels=5)
    assert loss_fn.memory_levels == 3 and [p.shape[0] for p in loss_fn.memory] == [3, 6, 9]
    assert torch.allclose(loss_fn.memory[1].detach(), torch.as_tensor(tree.centroid[tree.nodes_at(2)]))
    small = make_tree([-1, 0, 0, 1, 2], [3, 3, 4])
    loss_fn.reset_memory(small)
    assert loss_fn.depth == 2 and [p.shape[0] for p in loss_fn.memory] == [2, 2]


def test_identical_text_under_another_id_is_never_a_negative():
    tree = make_tree(IRREGULAR_PARENT, IRREGULAR_LEAVES)
    texts = [f"doc {i}" for i in range(30)]
    texts[1] = texts[0]   # same leaf (10) as doc 0
    texts[20] = texts[0]  # another leaf; doc 20 is a positive in the batch below
    pairs = [Pair("a", 0), Pair("b", 20), Pair("c", 9)]
    sampler = HierarchicalSampler(tree, pairs, texts, batch_size=3, siblings=4, memory_levels=3)
    for seed in range(10):
        batch = sampler.make_batch(np.arange(3), np.random.default_rng(seed))
        assert batch.doc_texts.count("doc 0") == 1  # embedded once
        for i in range(2):
            row = batch.leaf_idx[i][batch.leaf_mask[i]]
            assert (row == batch.pos[i]).sum() == 1  # the positive's text appears only as the positive
        assert (batch.neg_doc[0] != 1).all()
