"""``train()`` with ``config.nproc > 1`` in one call: the ranks of a data-parallel run in spawned processes.

:func:`train_spawned` pickles the encoder (a copy per rank; on CUDA rank r moves it to cuda:r), starts
``config.nproc`` processes joined in a process group (gloo on CPU, NCCL on CUDA, a free localhost port) and
runs :func:`~.loop.train` with ``ranks`` in each. Rank 0's callbacks reach the caller's ``on_step``,
``on_tree`` and ``on_epoch`` in the calling process (through a queue), ``should_cancel`` is polled here and
relayed to rank 0, which stops every rank; rank 0's TrainResult is returned and its final weights are loaded
into the caller's ``encoder``. Everything passed to the ranks must pickle (``tree_builder`` included).

Depends only on torch, numpy and the training and encoder packages.
"""
from __future__ import annotations

import io

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.multiprocessing.spawn import start_processes

from ..encoder.sharded import check_nproc, collect, free_port
from ..threads import PROCESS_THREADS
from .config import TrainConfig
from .distributed import Ranks, to_rank_device
from .events import TrainResult
from .pairs import Pair


def train_spawned(encoder, doc_texts, pairs: list[Pair], config: TrainConfig, *, on_step=None, on_tree=None,
                  on_epoch=None, should_cancel=None, **kwargs) -> TrainResult:
    """Run ``train(encoder, doc_texts, pairs, config, **kwargs)`` on ``config.nproc`` spawned ranks (see the
    module docstring); the callbacks run in this process. Raises what a rank raised."""
    check_nproc(config.nproc, config.device)
    blob = io.BytesIO()
    torch.save(encoder, blob)
    ctx = mp.get_context("spawn")
    messages, stop = ctx.Queue(), ctx.Event()
    ranks = start_processes(_rank, nprocs=config.nproc, join=False, start_method="spawn",
                            args=(config.nproc, free_port(), messages, stop, blob.getvalue(), list(doc_texts),
                                  pairs, config, kwargs))
    handlers = {"step": on_step, "tree": on_tree, "epoch": on_epoch}

    def handle(kind: str, *value):
        if kind == "result":
            return value
        if handlers[kind] is not None:
            handlers[kind](*value)
        return None

    def poll() -> None:
        if should_cancel is not None and should_cancel():
            stop.set()
    out = collect(ranks, messages, handle, poll, "the training ranks exited without a result")
    result, state = out
    encoder.load_state_dict(torch.load(io.BytesIO(state), map_location="cpu", weights_only=True))
    encoder.eval()
    return result


def _rank(rank: int, world: int, port: int, messages, stop, blob: bytes, doc_texts: list[str], pairs: list[Pair],
          config: TrainConfig, kwargs: dict) -> None:
    """One rank: rank 0 puts ("step"|"tree"|"epoch", *callback args) and finally ("result", TrainResult, the
    encoder's state dict saved by ``torch.save``)."""
    from .loop import train
    torch.set_num_threads(max(1, PROCESS_THREADS // world))
    encoder = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=False)
    dev = to_rank_device(encoder, rank)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    root = rank == 0

    def relay(kind: str):
        return (lambda *a: messages.put((kind, *a))) if root else None

    try:
        result = train(encoder, doc_texts, pairs, config, ranks=Ranks(dev), on_step=relay("step"),
                       on_tree=relay("tree"), on_epoch=relay("epoch"), should_cancel=stop.is_set, **kwargs)
    finally:
        dist.destroy_process_group()
    if root:
        state = io.BytesIO()
        torch.save({k: v.cpu() for k, v in encoder.state_dict().items()}, state)
        messages.put(("result", result, state.getvalue()))
