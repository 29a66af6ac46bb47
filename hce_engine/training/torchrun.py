"""``hce train`` under ``torchrun``: the ranks of one run on several machines.

torchrun starts the same command on every machine (``--nnodes``, ``--nproc-per-node``, a rendezvous endpoint) and
gives each process its ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``. Rank 0 must run on the machine that holds the
workspace: it runs ``hce train`` as one machine would (the workspace, the pairs, the run's encodes, the tree,
validation, checkpoints and the run's record) and, where one machine spawns its ranks (:func:`.spawn.train_spawned`),
:func:`lead` sends every other rank what the training loop needs: the encoder, the corpus's texts, the pairs and
the settings. The other ranks open no workspace and read no file: :func:`follow` receives those and runs the same
loop (:func:`.loop.train` with ``ranks``). Cancel and resume go through rank 0, as with spawned ranks.

    torchrun --nnodes 2 --nproc-per-node 1 --node-rank 0 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        -m hce_engine.cli -- --workspace WS train --corpus NAME --preset full

(``--`` keeps torchrun's parser, which accepts abbreviations of its own flags, off ``hce``'s.)

Depends only on torch and the training package.
"""
from __future__ import annotations

import datetime
import io
import os

import torch
import torch.distributed as dist

from .distributed import Ranks, to_rank_device
from .events import TrainResult

#: How long a rank waits in a collective: the others wait while rank 0 encodes the corpus (its tree, a rebuild).
TIMEOUT = datetime.timedelta(hours=12)
_sent = False  # whether this rank 0 has sent the other ranks their run (lead) or told them there is none (release)

#: ``train`` arguments that stay with rank 0: its callbacks, its workspace's checkpoint folders and the corpus
#: vectors its first tree is built from (the other ranks take rank 0's tree).
ROOT_ONLY = ("on_step", "on_tree", "on_epoch", "should_cancel", "checkpoint_dir", "resume_from", "initial_vectors")


def under_torchrun() -> bool:
    """Whether torchrun started this process (it sets ``TORCHELASTIC_RUN_ID`` and ``WORLD_SIZE``)."""
    return "TORCHELASTIC_RUN_ID" in os.environ and "WORLD_SIZE" in os.environ


def rank() -> int:
    """This process's rank under torchrun (0 elsewhere)."""
    return int(os.environ.get("RANK", "0"))


def world() -> int:
    """The number of ranks torchrun started (1 elsewhere)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _join() -> None:
    """Join torchrun's process group: gloo for CPU tensors, and NCCL for CUDA tensors where this machine has GPUs."""
    if not dist.is_initialized():
        dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo", timeout=TIMEOUT)


def _to_local_device(encoder) -> torch.device:
    """Move ``encoder`` to this rank's device: its machine's GPU ``LOCAL_RANK`` when the run trains on CUDA."""
    return to_rank_device(encoder, int(os.environ.get("LOCAL_RANK", "0")))


def lead(encoder, doc_texts, pairs, config, **kwargs) -> TrainResult:
    """Rank 0: send the other ranks the encoder, ``doc_texts``, ``pairs``, ``config`` and the ``train`` arguments
    they share, then run :func:`.loop.train` as rank 0 with the callbacks in this process. Returns its result; the
    trained weights are in ``encoder``."""
    from .loop import train
    if config.nproc != world():
        raise ValueError(f"nproc is {config.nproc} but torchrun started {world()} ranks")
    global _sent
    _join()
    try:
        dev = _to_local_device(encoder)
        blob = io.BytesIO()
        torch.save(encoder, blob)
        shared = {k: v for k, v in kwargs.items() if k not in ROOT_ONLY}
        Ranks("cpu").from_root((blob.getvalue(), list(doc_texts), list(pairs), config, shared))
        _sent = True
        return train(encoder, doc_texts, pairs, config, ranks=Ranks(dev), **kwargs)
    finally:
        dist.destroy_process_group()


def release() -> None:
    """Rank 0, once its command has ended: if it never reached :func:`lead` (a bad setting, a missing corpus), tell
    the ranks waiting in :func:`follow` that there is no run, so that they stop too."""
    global _sent
    if _sent:
        return
    _join()
    try:
        Ranks("cpu").from_root(None)
        _sent = True
    finally:
        dist.destroy_process_group()


def follow() -> bool:
    """A rank other than 0: receive what :func:`lead` sends and train with it; returns when the run ends (rank 0
    keeps the result): True, or False when rank 0 ended without a run (:func:`release`)."""
    from .loop import train
    _join()
    try:
        sent = Ranks("cpu").from_root()
        if sent is None:
            return False
        blob, doc_texts, pairs, config, shared = sent
        encoder = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=False)  # rank 0's, not a user's
        dev = _to_local_device(encoder)
        train(encoder, doc_texts, pairs, config, ranks=Ranks(dev), **shared)
        return True
    finally:
        dist.destroy_process_group()
