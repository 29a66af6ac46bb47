"""Corpus encoding sharded over processes with torch.distributed: gloo on CPUs, NCCL on GPUs.

Every rank loads the encoder and plans the batches one process's ``encode`` would run (``TextEncoder.batches``:
the real encoder sorts texts by length and packs them), takes a contiguous run of those batches (about 1/N of
them) and encodes it; rank 0 gathers the rows back into input order. Every text is encoded in the same batch
as in one process, so the rows equal a one-process encode's up to the float rounding of a different torch thread
count (each spawned rank runs ``cores // N`` threads): max abs difference <= 1e-5 in fp32.

On a CPU the ranks share the machine's cores and add no compute (on a 2-core machine, 2 ranks run one core
each). The gain is on several GPUs, or several machines under ``torchrun``.

Depends only on torch, transformers, safetensors and numpy.
"""
from __future__ import annotations

import os
import queue
import socket
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.multiprocessing.spawn import start_processes

from ..threads import PROCESS_THREADS
from .base import Cancel, Progress, ProgressFn
from .encoder import load_encoder, resolve_device


def check_nproc(nproc: int, device: str) -> None:
    """Raise ValueError unless ``nproc`` ranks fit ``device``: at most the CPU count on a CPU, the GPU count on
    CUDA (rank r takes cuda:r, so name cuda or auto, not cuda:N); other devices run one process."""
    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
        raise ValueError(f"--nproc must be an integer >= 1 (got {nproc!r})")
    if nproc == 1:
        return
    dev = resolve_device(device)
    if dev.type == "cuda":
        if dev.index is not None:
            raise ValueError(f"--nproc {nproc} puts rank r on cuda:r: use device cuda or auto, not {device}")
        have, what = torch.cuda.device_count(), "GPUs"
    elif dev.type == "cpu":
        have, what = os.cpu_count() or 1, "CPU cores"
    else:
        raise ValueError(f"--nproc {nproc} needs device cpu or cuda (got {dev.type})")
    if nproc > have:
        raise ValueError(f"--nproc {nproc} is more than the {have} {what} here (use --nproc {have} or less)")


def free_port() -> int:
    """A free TCP port on localhost, for a process group's rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shard_rows(batches: list[np.ndarray], world: int) -> list[np.ndarray]:
    """Each rank's rows: rank r gets the r-th of ``world`` contiguous runs of ``batches`` (run lengths differ by
    at most one batch; ranks past the last batch get none), concatenated. int64 index arrays."""
    runs = np.array_split(np.arange(len(batches)), world)
    return [np.concatenate([batches[b] for b in run]) if len(run) else np.zeros(0, np.int64) for run in runs]


def encode_sharded(model_path: str, texts: Sequence[str], nproc: int, *, max_length: int | None = None,
                   batch_size: int | None = None, device: str = "auto", progress: ProgressFn | None = None,
                   cancel: Cancel | None = None) -> np.ndarray:
    """Encode ``texts`` on ``nproc`` spawned processes (one rank each); float32 (n, dim), rows in input order.

    ``model_path``: a folder :func:`load_encoder` loads (a real model or a saved FakeEncoder); ``max_length``,
    ``batch_size``, ``device`` as in loading and ``encode``. ``progress`` gets ``Progress("encode", done, n)``
    with ``done`` rank 0's share of its rows scaled to ``n`` (the ranks hold equal numbers of batches);
    ``cancel()`` returning True stops the ranks and raises InterruptedError. ``nproc=1`` encodes in this process.
    """
    check_nproc(nproc, device)
    texts = list(texts)
    if nproc == 1:
        return load_encoder(model_path, device=device, max_length=max_length).encode(
            texts, batch_size=batch_size, progress=progress, cancel=cancel)
    port = free_port()
    messages = mp.get_context("spawn").Queue()
    ranks = start_processes(_spawned_rank, nprocs=nproc, join=False, start_method="spawn",
                            args=(nproc, port, messages, model_path, texts, max_length, batch_size, device))

    def handle(kind: str, value):
        if kind == "vectors":
            return value
        if progress is not None:
            progress(Progress("encode", value, len(texts)))
        return None

    def poll() -> None:
        if cancel is not None and cancel():
            raise InterruptedError("encoding cancelled")
    return collect(ranks, messages, handle, poll, "the encoding ranks exited without returning vectors")


def collect(ranks, messages, handle: Callable[..., Any], poll: Callable[[], None], lost: str) -> Any:
    """Serve spawned ranks until one hands back a result: every ``(kind, *values)`` message from ``messages`` goes
    to ``handle(kind, *values)``, whose first non-None return is the result; ``poll()`` runs between messages
    (every 0.1 s). Raises what a rank raised (with its traceback), RuntimeError(``lost``) when the ranks exited
    without a result; the ranks still alive at the end are terminated."""
    out, exited = None, False
    try:
        while out is None:
            try:
                kind, *values = messages.get(timeout=0.1)
            except queue.Empty:
                if exited:
                    raise RuntimeError(lost) from None
            else:
                out = handle(kind, *values)
            poll()
            exited = exited or ranks.join(timeout=0)  # raises when a rank failed (with its traceback)
        while not exited:
            exited = ranks.join()
    finally:
        for p in ranks.processes:
            if p.is_alive():
                p.terminate()
                p.join()
    return out


def encode_distributed(model_path: str, texts: Sequence[str], *, max_length: int | None = None,
                       batch_size: int | None = None, device: str = "auto",
                       progress: ProgressFn | None = None) -> np.ndarray | None:
    """Under an external launcher (``torchrun``: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT set), every rank
    calls this with the same ``texts``: float32 (n, dim) on rank 0 (``progress`` as in :func:`encode_sharded`),
    None on the others. Rank r of a machine uses cuda:LOCAL_RANK on CUDA; the default process group is created
    when missing (gloo on CPU, nccl on CUDA) and left to the caller. Threads: as the launcher set them."""
    enc = _load(model_path, device, max_length, int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        dist.init_process_group(_backend(enc))
    return _encode_rank(enc, list(texts), batch_size, max_length, progress)


def _load(model_path: str, device: str, max_length: int | None, local_rank: int):
    """The encoder of one rank: on cuda:``local_rank`` when ``device`` means CUDA."""
    dev = resolve_device(device)
    return load_encoder(model_path, device=f"cuda:{local_rank}" if dev.type == "cuda" else dev,
                        max_length=max_length)


def _backend(enc) -> str:
    return "nccl" if enc.device.type == "cuda" else "gloo"


def _spawned_rank(rank: int, world: int, port: int, messages, model_path: str, texts: list[str],
                  max_length: int | None, batch_size: int | None, device: str) -> None:
    """One process of :func:`encode_sharded`: rank 0 puts ("progress", done) and finally ("vectors", array)."""
    torch.set_num_threads(max(1, PROCESS_THREADS // world))
    enc = _load(model_path, device, max_length, rank)
    if enc.device.type == "cuda":
        torch.cuda.set_device(enc.device)
    dist.init_process_group(_backend(enc), init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        report = (lambda p: messages.put(("progress", p.done))) if rank == 0 else None
        vecs = _encode_rank(enc, texts, batch_size, max_length, report)
    finally:
        dist.destroy_process_group()
    if rank == 0:
        messages.put(("vectors", vecs))


def _encode_rank(enc, texts: list[str], batch_size: int | None, max_length: int | None,
                 progress: ProgressFn | None) -> np.ndarray | None:
    """Encode this rank's shard and gather all shards on rank 0 (the process group is up): float32 (n, dim) in
    input order on rank 0, None on the others."""
    rank, world, n = dist.get_rank(), dist.get_world_size(), len(texts)
    rows = shard_rows(enc.batches(texts, batch_size, max_length), world)
    mine = rows[rank]
    report = None
    if progress is not None and rank == 0:
        def report(p: Progress) -> None:
            progress(Progress("encode", p.done * n // len(mine), n))
    vecs = enc.encode([texts[i] for i in mine], batch_size=batch_size, max_length=max_length, progress=report)
    # gather needs equal shapes: every shard padded to the longest (every rank knows all sizes from the plan)
    padded = torch.zeros((max(1, max(map(len, rows))), enc.dim), dtype=torch.float32)
    padded[:len(mine)] = torch.from_numpy(vecs)
    padded = padded.to(enc.device)
    parts = [torch.empty_like(padded) for _ in range(world)] if rank == 0 else None
    dist.gather(padded, parts, dst=0)
    if parts is None:
        return None
    out = np.empty((n, enc.dim), dtype=np.float32)
    for r, part in zip(rows, parts, strict=True):
        out[r] = part[:len(r)].cpu().numpy()
    return out
