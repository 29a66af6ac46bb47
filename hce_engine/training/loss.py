"""The hierarchy-aware contrastive loss of HCE (docs/method.md section 2)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hce_engine.tree.tree import Tree

from .sampler import HierBatch


class HierarchicalContrastiveLoss(torch.nn.Module):
    """Contrast the positive against its siblings at every level of a document tree, and at the leaf.

    For a pair (q, d+) with tree path n_1 .. n_D:

    * level t = 1..D: the candidates are the children of n_{t-1} (the root's children for t = 1); the
      score of a node is ``cos(q, r(n)) / tau`` and the level term is the cross-entropy of n_t. For the top
      ``memory_levels`` levels r(n) is a learned vector per node (the "memory layers", initialised from the
      tree's centroids); below, r(n) is the embedding (with gradient) of a sampled member document of n, and
      a sibling whose sampled document is a known positive of the query is masked (``LevelCandidates.mask``).
      A level where the pair has a single candidate contributes nothing and is not counted.
    * leaf: the candidates are d+, its sampled sibling documents (encoded with gradient) and the other
      positives of the batch; the term is the cross-entropy of d+. Duplicates of the positive and other
      known positives of the query are masked by the sampler.
    * total = leaf + mean over the pair's counted levels of the level terms (``level_loss=True``), averaged
      over the batch; ``level_loss=False`` gives the leaf term alone (level scores are still reported,
      for memory levels, computed without gradient). ``bidirectional=True`` adds the cross-entropy of each
      positive document against the batch's queries.

    All candidate sets are padded per level into (B, C) tensors with a mask; there is no Python loop over
    examples.

    Args:
        tree: the document tree (memory vectors are initialised from its centroids); may be given later
            with :meth:`reset_memory`.
        memory_levels: M, the number of top levels with learned vectors (clipped to the tree depth).
        tau: temperature; scores are cosine similarities divided by ``tau``.
        level_loss: add the per-level terms to the leaf term.
        bidirectional: add the document-to-queries term.
        leaf_weight: weight of the leaf term in the total (0 for the self signal, whose leaf candidates are
            scored by :class:`~hce_engine.training.distill.TeacherDistillationLoss` instead; still reported).

    Inputs:
        +------------+----------------------------------------------------------+-------------------------+
        | argument   | meaning                                                  | shape                   |
        +============+==========================================================+=========================+
        | q_emb      | normalised embeddings of ``batch.queries``, with grad    | float (Q, d)            |
        +------------+----------------------------------------------------------+-------------------------+
        | doc_emb    | normalised embeddings of ``batch.doc_texts``, with grad  | float (U, d)            |
        +------------+----------------------------------------------------------+-------------------------+
        | batch      | index arrays and masks from :class:`HierarchicalSampler` | :class:`HierBatch`      |
        +------------+----------------------------------------------------------+-------------------------+

        Returns ``(loss, details)``: a scalar tensor and a dict of floats for plotting: ``loss``,
        ``leaf_loss``, ``leaf_acc`` (positive ranked first among all leaf candidates), ``leaf_sibling_acc``
        (first among itself and its drawn negatives; None when no pair had any), ``level_loss`` /
        ``level_acc`` / ``level_count`` (lists of length D, level 1 first; None where no pair counted),
        ``level_mean`` (the averaged level part, None when off or empty), ``bidirectional_loss`` (or None).

    References:
        T. Chen, A. Sharma, A. Pauls, B. Van Durme. "Hierarchical corpus encoder: Fusing generative
        retrieval and dense indices", arXiv 2502.18877 (2025).

    Relations:
        With ``negatives="in-batch"`` and ``level_loss=False`` this is MultipleNegativesRankingLoss
        (InfoNCE with in-batch negatives) with scale 1/tau; with sibling negatives and no level terms it is
        MNRL with hard negatives mined from the positive's leaf cluster.

    Example:
        ::

            from hce_engine.encoder import FakeEncoder
            from hce_engine.settings import DEFAULT_MAX_LENGTH
            from hce_engine.training import HierarchicalContrastiveLoss, HierarchicalSampler, Pair
            from hce_engine.tree import build_tree

            doc_texts = ["rocket launch orbit", "planet star telescope", "bake bread oven", "pasta sauce"]
            pairs = [Pair("space launch", 0), Pair("italian food", 3)]
            encoder = FakeEncoder(dim=32)  # or hce_engine.encoder.load_encoder(path)
            tree = build_tree(encoder.encode(doc_texts), branching=2)
            sampler = HierarchicalSampler(tree, pairs, doc_texts, batch_size=2, siblings=1,
                                          memory_levels=tree.depth)
            loss_fn = HierarchicalContrastiveLoss(tree, memory_levels=tree.depth, tau=0.05)
            for batch in sampler.batches(epoch=0):
                q = encoder.embed(batch.queries, max_length=64)
                d = encoder.embed(batch.doc_texts, max_length=DEFAULT_MAX_LENGTH)
                loss, details = loss_fn(q, d, batch)
                loss.backward()
    """

    node_row: torch.Tensor  # a buffer (see __init__): memory row of each node at its level

    def __init__(self, tree: Tree | None = None, memory_levels: int = 0, tau: float = 0.05,
                 level_loss: bool = True, bidirectional: bool = False, leaf_weight: float = 1.0):
        super().__init__()
        if tau <= 0:
            raise ValueError("tau must be > 0")
        self.leaf_weight = float(leaf_weight)
        self.tau, self.level_loss, self.bidirectional = float(tau), bool(level_loss), bool(bidirectional)
        self.memory_levels = int(memory_levels)
        self.depth = 0
        self.memory = torch.nn.ParameterList()
        self.register_buffer("node_row", torch.zeros(0, dtype=torch.long))
        if tree is not None:
            self.reset_memory(tree, memory_levels)

    def reset_memory(self, tree: Tree, memory_levels: int | None = None) -> None:
        """(Re-)initialise the memory vectors from ``tree``'s centroids (after a tree rebuild).

        Creates new Parameter objects (an optimizer must be pointed at ``self.memory`` again). They live
        on the device of the module's buffers.
        """
        device = self.node_row.device
        if memory_levels is not None:
            self.memory_levels = int(memory_levels)
        self.depth = tree.depth
        M = max(0, min(self.memory_levels, self.depth))
        self.memory_levels = M
        node_row = np.zeros(tree.n_nodes, dtype=np.int64)
        params = []
        for t in range(1, M + 1):
            nodes = tree.nodes_at(t)
            node_row[nodes] = np.arange(len(nodes))
            cent = torch.as_tensor(np.asarray(tree.centroid[nodes], dtype=np.float32), device=device)
            params.append(torch.nn.Parameter(F.normalize(cent, dim=-1)))
        self.memory = torch.nn.ParameterList(params)
        self.node_row = torch.as_tensor(node_row, device=device)

    def extra_repr(self) -> str:
        return (f"depth={self.depth}, memory_levels={self.memory_levels}, tau={self.tau}, "
                f"level_loss={self.level_loss}, bidirectional={self.bidirectional}")

    def forward(self, q_emb: torch.Tensor, doc_emb: torch.Tensor, batch: HierBatch
                ) -> tuple[torch.Tensor, dict[str, Any]]:
        dev = q_emb.device
        q_emb, doc_emb = q_emb.float(), doc_emb.float()
        B = batch.size

        def t(a: np.ndarray, dtype=torch.long) -> torch.Tensor:
            return torch.as_tensor(a, dtype=dtype, device=dev)

        # Rows are picked with index_select, never x[idx]: on a CPU the backward of x[idx] adds duplicate rows'
        # gradients with parallel atomic adds (from 32768 elements), in an order that changes run to run.
        q = q_emb.index_select(0, t(batch.query_idx))           # (B, d)
        scores = q @ doc_emb.T / self.tau                       # (B, U): every (query, batch doc) score
        neg_inf = torch.finfo(scores.dtype).min

        # Leaf term.
        leaf_mask = t(batch.leaf_mask, torch.bool)
        leaf = scores.gather(1, t(batch.leaf_idx).clamp(min=0)).masked_fill(~leaf_mask, neg_inf)
        zeros = torch.zeros(B, dtype=torch.long, device=dev)
        leaf_loss = F.cross_entropy(leaf, zeros)
        with torch.no_grad():
            leaf_acc = (leaf.argmax(1) == 0).float().mean()
            S = batch.n_neg
            has_neg = leaf_mask[:, 1:1 + S].any(1) if S else torch.zeros(B, dtype=torch.bool, device=dev)
            sib_hit = (leaf[:, :1 + S].argmax(1) == 0) & has_neg
            n_has = has_neg.sum()

        # Level terms.
        D = self.depth or max((lc.level for lc in batch.levels), default=0)
        level_sum = torch.zeros(B, device=dev)
        level_cnt = torch.zeros(B, device=dev)
        per_loss: list[Any] = [None] * D
        per_acc: list[Any] = [None] * D
        per_cnt: list[int] = [0] * D
        stats = []
        for lc in batch.levels:
            use_grad = self.level_loss and torch.is_grad_enabled()
            with torch.set_grad_enabled(use_grad):
                nodes = t(lc.nodes)
                mask = t(lc.mask, torch.bool)  # padding, and siblings represented by a known positive
                target = t(lc.target)
                if lc.memory:
                    mem = F.normalize(self.memory[lc.level - 1], dim=-1)
                    rows = self.node_row[nodes.clamp(min=0)]
                    reps = mem.index_select(0, rows.flatten()).view(*rows.shape, -1)  # (B, C, d)
                    s = torch.einsum("bd,bcd->bc", q, reps) / self.tau
                else:
                    assert lc.rep is not None, "the sampler gives representatives for levels without memory"
                    s = scores.gather(1, t(lc.rep).clamp(min=0))
                s = s.masked_fill(~mask, neg_inf)
                valid = mask.sum(1) > 1
                ce = F.cross_entropy(s, target, reduction="none") * valid
            if self.level_loss:
                level_sum = level_sum + ce
                level_cnt = level_cnt + valid
            with torch.no_grad():
                hit = (s.argmax(1) == target) & valid
                stats.append((lc.level - 1, ce.detach().sum(), hit.sum(), valid.sum()))

        total = leaf_loss * self.leaf_weight
        level_mean = None
        if self.level_loss and batch.levels:
            level_part = (level_sum / level_cnt.clamp(min=1)).mean()
            total = total + level_part
            level_mean = level_part
        bidir_loss = None
        if self.bidirectional:
            assert batch.bidir_mask is not None, "the bidirectional term needs the batch's bidir_mask"
            d_pos = doc_emb.index_select(0, t(batch.pos))
            s = (d_pos @ q.T / self.tau).masked_fill(~t(batch.bidir_mask, torch.bool), neg_inf)
            bidir_loss = F.cross_entropy(s, torch.arange(B, device=dev))
            total = total + bidir_loss

        # One device->host transfer for every reported number.
        vals = [total, leaf_loss, leaf_acc, sib_hit.sum(), n_has]
        if level_mean is not None:
            vals.append(level_mean)
        if bidir_loss is not None:
            vals.append(bidir_loss)
        for _, a, b, c in stats:
            vals += [a, b, c]
        host = torch.stack([v.detach().float().reshape(()) for v in vals]).cpu().tolist()
        total_f, leaf_f, acc_f, sib_hits, n_has_f = host[:5]
        k = 5
        level_mean_f = bidir_f = None
        if level_mean is not None:
            level_mean_f = host[k]
            k += 1
        if bidir_loss is not None:
            bidir_f = host[k]
            k += 1
        for (li, _, _, _), j in zip(stats, range(k, len(host), 3), strict=True):
            ce_sum, hits, n = host[j:j + 3]
            per_cnt[li] = int(n)
            if n > 0:
                per_loss[li] = ce_sum / n
                per_acc[li] = hits / n
        details = {
            "loss": total_f, "leaf_loss": leaf_f, "leaf_acc": acc_f,
            "leaf_sibling_acc": (sib_hits / n_has_f) if n_has_f > 0 else None,
            "level_loss": per_loss, "level_acc": per_acc, "level_count": per_cnt,
            "level_mean": level_mean_f, "bidirectional_loss": bidir_f,
        }
        return total, details
