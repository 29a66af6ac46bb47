"""Data-parallel training over torch.distributed ranks: one step's global batch, shared out.

Every rank holds the same global :class:`~.sampler.HierBatch`. For each text kind (queries, positives,
negatives) rank r embeds the r-th contiguous share of the texts (:func:`share`) and :func:`gather_rows`
all-gathers the shares into the global (n, d) matrix, with the rank's own rows put back in their slot so that
they keep their autograd path. Every rank then computes the same global loss; back-propagated, it gives rank r
the gradient through its own rows only, so the SUM of the ranks' encoder gradients is the one-process
gradient of the global batch's mean loss. The loss's memory vectors get the full gradient on every rank (they
enter the loss directly), so theirs are averaged. :func:`sync_grads` does both in one all_reduce.

The reduction is explicit rather than DistributedDataParallel's backward hooks: gradient caching
(:class:`~.gradcache.Embedder`) back-propagates several times per step and calls ``encoder.embed``, not the
module's ``forward``. (DDP's reduction is a mean; with it the loss would have to be scaled by the world size
and the memory gradients divided by it: the same result.)

Depends only on torch, numpy and the training package.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.distributed as dist

from .gradcache import Embedder

#: What rank 0 sends (:meth:`Ranks.from_root`) instead of its message when its part of the run was cancelled.
CANCELLED = "__hce_cancelled__"


def share_sizes(n: int, world: int) -> list[int]:
    """Rows of each rank when ``n`` rows are shared out in contiguous runs (sizes differ by at most one, the
    larger first)."""
    return [len(a) for a in np.array_split(np.arange(n), world)]


def share(n: int, world: int, rank: int) -> slice:
    """Rank ``rank``'s contiguous run of ``n`` rows (see :func:`share_sizes`)."""
    sizes = share_sizes(n, world)
    start = sum(sizes[:rank])
    return slice(start, start + sizes[rank])


def gather_rows(local: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """All ranks' rows in rank order: ``local`` (sizes[rank], d) -> (sum(sizes), d). The other ranks' rows are
    constants; this rank's are ``local`` itself (gradient flows back into it)."""
    rank = dist.get_rank()
    padded = local.new_zeros((max(sizes), local.shape[1]))
    padded[:len(local)] = local.detach()
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([local if r == rank else p[:n] for r, (p, n) in enumerate(zip(parts, sizes, strict=True))])


class ShardedEmbedder(Embedder):
    """An :class:`~.gradcache.Embedder` whose ``forward`` embeds this rank's share of the texts (directly or with
    gradient caching, as one process would decide for that many texts) and returns the global (n, d)
    embeddings; ``replay`` pushes the cached gradient of the share through the encoder."""

    def forward(self, texts: list[str], max_length: int):
        rank, world = dist.get_rank(), dist.get_world_size()
        mine = texts[share(len(texts), world, rank)]
        if mine:
            local, pending = super().forward(mine, max_length)
        else:
            local, pending = torch.zeros((0, self.encoder.dim), device=self.device), None
        return gather_rows(local, share_sizes(len(texts), world)), pending


def sync_grads(summed: Sequence[torch.nn.Parameter], averaged: Sequence[torch.nn.Parameter]) -> None:
    """One all_reduce: the gradients of ``summed`` (the encoder's) become their sum over the ranks, those of
    ``averaged`` (the loss's memory) their mean. A parameter without a gradient on every rank keeps None (as in
    one process: AdamW skips it)."""
    params = list(summed) + list(averaged)
    if not params:
        return
    ref = params[0]
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).to(ref.dtype)
                      for p in params]
                     + [torch.tensor([p.grad is not None for p in params], dtype=ref.dtype, device=ref.device)])
    dist.all_reduce(flat)
    has = flat[-len(params):].tolist()
    world, at = dist.get_world_size(), 0
    for i, p in enumerate(params):
        g = flat[at:at + p.numel()].view_as(p).to(p.dtype)
        at += p.numel()
        p.grad = None if has[i] == 0 else (g / world if i >= len(summed) else g)


def to_rank_device(encoder, local_rank: int) -> torch.device:
    """Move ``encoder`` to its rank's device and return it: ``cuda:local_rank`` (made the current device) when the
    encoder is on CUDA, else the CPU. Sets ``encoder.device``."""
    cuda = torch.device(getattr(encoder, "device", "cpu")).type == "cuda"
    dev = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(dev)
    encoder.to(dev)
    encoder.device = dev
    return dev


class Ranks:
    """This process's place in a started process group: ``rank``, ``world`` and rank 0's messages.

    ``device``: where the collectives' tensors live (the rank's GPU under NCCL, else the CPU)."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.device = torch.device(device)

    @property
    def root(self) -> bool:
        return self.rank == 0

    def from_root(self, obj: Any = None) -> Any:
        """Rank 0's ``obj`` on every rank (a pickled broadcast; the others' ``obj`` is ignored)."""
        box = [obj if self.root else None]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]
