"""One training step's gradient in bounded memory: gradient caching (GradCache, Gao et al. 2021).

:func:`train_step` embeds a :class:`~.sampler.HierBatch`'s queries (``config.query_max_length`` tokens),
positive documents (``max_length``) and negatives (``negative_max_length``) as float32 (n, d) tensors,
computes the HCE loss and back-propagates it into the encoder and the loss's memory (gradients accumulate;
the caller steps the optimizer). :class:`Embedder` embeds each text kind directly or, when it has more than
``chunk`` texts (:func:`auto_grad_chunk`), with gradient caching.
"""
from __future__ import annotations

import numpy as np
import torch

from ..settings import DEFAULT_MAX_LENGTH
from .checkpoint import rng_state, set_rng_state
from .config import TrainConfig
from .distill import TeacherDistillationLoss
from .loss import HierarchicalContrastiveLoss
from .sampler import HierBatch
from .teacher import HybridTeacher

_DISTILL = TeacherDistillationLoss()

#: Tokens per forward pass with gradient when ``grad_chunk`` is automatic. On CPU, MiniLM training keeps
#: ~0.4 MB of activations per token (measured), so 4096 tokens ~ 1.8 GB; on a GPU under 40 GiB, 32768 tokens.
CPU_TOKEN_BUDGET = 4096
GPU_TOKEN_BUDGET = 32768


def auto_grad_chunk(device: torch.device | str, max_length: int = DEFAULT_MAX_LENGTH) -> int:
    """Sequences of ``max_length`` tokens per forward pass with gradient (0 = all at once).

    CPU: 4096 tokens per pass (16 documents at 256 tokens, 64 queries at 64). GPUs with >= 40 GiB: all at
    once (the reference setting, 544 sequences of 256 tokens, fits in bf16). Smaller GPUs: 32768 tokens.
    """
    device = torch.device(device)
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        if total >= 40 * 2 ** 30:
            return 0
        return max(8, GPU_TOKEN_BUDGET // max_length)
    return max(4, CPU_TOKEN_BUDGET // max_length)


class Embedder:
    """Embeds a step's texts with gradient, directly or with gradient caching.

    Direct: one ``encoder.embed`` call per text kind (the batch's texts together). Cached, when a kind has
    more than ``chunk`` texts: texts are sorted by length (little padding) and embedded in chunks without
    gradient; the loss is back-propagated to those embeddings; then each chunk is re-embedded with
    gradient (replaying the torch RNG so dropout masks match) and its cached gradient is pushed through.
    Gradients equal the direct path; memory is bounded by one chunk; compute is ~4/3.
    """

    def __init__(self, encoder, device: torch.device, chunk: int | None):
        self.encoder, self.device = encoder, device
        self.chunk = None if chunk is None else int(chunk)  # None: auto_grad_chunk per text kind

    def _call(self, texts: list[str], max_length: int) -> torch.Tensor:
        # precision (bf16 autocast or fp32) is the encoder's own: see hce_engine.precision
        return self.encoder.embed(texts, max_length).float()

    def forward(self, texts: list[str], max_length: int):
        """Returns (embeddings, pending) where pending is None or a cache to ``replay`` after backward."""
        chunk = auto_grad_chunk(self.device, max_length) if self.chunk is None else self.chunk
        if not chunk or len(texts) <= chunk:
            return self._call(texts, max_length), None
        lens = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        order = np.argsort(-lens, kind="stable")
        chunks = [order[s:s + chunk] for s in range(0, len(texts), chunk)]
        states, parts = [], []
        with torch.no_grad():
            for c in chunks:
                states.append(rng_state(self.device))
                parts.append(self._call([texts[i] for i in c], max_length))
        emb = torch.empty((len(texts), parts[0].shape[1]), device=parts[0].device)
        for c, p in zip(chunks, parts, strict=True):
            emb[torch.as_tensor(c, device=emb.device)] = p
        emb.requires_grad_(True)
        return emb, (texts, max_length, chunks, states, emb)

    def replay(self, pending) -> None:
        """Push the cached embedding gradients of ``forward``'s chunks through the encoder."""
        if pending is None:
            return
        texts, max_length, chunks, states, emb = pending
        if emb.grad is None:
            return
        end = rng_state(self.device)
        for c, st in zip(chunks, states, strict=True):
            set_rng_state(st, self.device)
            e = self._call([texts[i] for i in c], max_length)
            e.backward(emb.grad[torch.as_tensor(c, device=emb.device)])
        set_rng_state(end, self.device)


def train_step(embedder: Embedder, loss_fn: HierarchicalContrastiveLoss, batch: HierBatch,
               config: TrainConfig, teacher: HybridTeacher | None = None) -> dict:
    """Embed (each unique text once), compute the loss, back-propagate (gradients accumulate in place).
    Returns the loss's details dict (``loss``, ``leaf_loss``, ``level_loss``, ``level_acc``, ...).

    With a ``teacher`` (the self signal) the leaf candidates other than the source document are scored by
    :class:`~.distill.TeacherDistillationLoss` against the teacher's logits and added to the loss (whose own
    leaf term the caller weighted 0); ``distill_loss`` and ``teacher_agree`` join the details."""
    n_pos = len(batch.doc_texts) if batch.n_positive_texts < 0 else batch.n_positive_texts
    q, q_pending = embedder.forward(batch.queries, config.query_max_length)
    d, d_pending = embedder.forward(batch.doc_texts[:n_pos], config.max_length)
    pendings = [q_pending, d_pending]
    if n_pos < len(batch.doc_texts):
        neg, neg_pending = embedder.forward(batch.doc_texts[n_pos:], config.negative_max_length)
        d = torch.cat([d, neg])
        pendings.append(neg_pending)
    loss, details = loss_fn(q, d, batch)
    if teacher is not None:
        loss, extra = _distill(q, d, batch, teacher, config.tau, loss)
        details = {**details, **extra, "loss": float(loss.detach())}
    loss.backward()
    for pending in pendings:
        embedder.replay(pending)
    return details


def _distill(q: torch.Tensor, d: torch.Tensor, batch: HierBatch, teacher: HybridTeacher, tau: float,
             loss: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """``loss`` plus the distillation term over each pair's leaf candidates except column 0 (its source)."""
    dev = q.device
    qb = q.index_select(0, torch.as_tensor(batch.query_idx, device=dev))  # index_select: see loss.py
    leaf_idx = torch.as_tensor(batch.leaf_idx, device=dev).clamp(min=0)
    cand = d.index_select(0, leaf_idx.flatten()).view(*leaf_idx.shape, -1)
    student = torch.einsum("bd,bkd->bk", qb, cand) / tau
    mask = batch.leaf_mask.copy()
    mask[:, 0] = False
    teacher_logits = teacher.logits([batch.queries[j] for j in batch.query_idx], np.where(mask, batch.leaf_doc, -1))
    kl, info = _DISTILL(student, torch.as_tensor(teacher_logits, device=dev), torch.as_tensor(mask, device=dev))
    return loss + kl, {"distill_loss": info["kl"], "teacher_agree": info["agree_top1"]}
