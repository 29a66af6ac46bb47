"""Checkpoints of a training run: the weights it hands back (``best/``), the state it resumes from
(``last/``) and the torch RNG state both (and gradient caching) save and restore.

* :class:`Best`: the best-validated weights (or the last epoch's with ``select="last"``), in memory and, with
  a checkpoint dir, in ``best/``: ``encoder.save()`` plus ``hce_best.json`` ({"epoch", "val"}).
* :func:`save_last` / :func:`load_last`: ``last/state.pt`` (a dict from ``torch.save``: ``format``, ``epoch``,
  ``step``, ``rebuild``, ``history``, ``n_train_pairs``, ``n_docs``, the ``encoder``, ``optimizer`` and
  ``loss`` state dicts, ``torch_rng``, ``cuda_rng``, ``config``) and ``last/tree.npz`` (:meth:`Tree.save`).
  Both folders are replaced atomically (:mod:`hce_engine.atomic`).
"""
from __future__ import annotations

import json
import os
import shutil

import torch

from hce_engine.atomic import recover_dir, replace_dir
from hce_engine.tree.tree import Tree

STATE_FORMAT = 1


def rng_state(dev: torch.device) -> tuple:
    """(torch CPU generator state, CUDA generator state of ``dev`` or None)."""
    cuda = torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None
    return torch.get_rng_state(), cuda


def set_rng_state(state: tuple, dev: torch.device) -> None:
    """Restore what :func:`rng_state` returned (the CUDA part only on a CUDA device)."""
    torch.set_rng_state(state[0])
    if state[1] is not None and dev.type == "cuda":
        torch.cuda.set_rng_state(state[1], dev)


def checkpoint_root(path: str | os.PathLike) -> str:
    """The checkpoint dir that ``path`` names: itself, or its parent when ``path`` is its ``last/``."""
    path = os.fspath(path)
    if os.path.basename(os.path.normpath(path)) == "last":
        return os.path.dirname(os.path.normpath(path))
    return path


def save_last(ckpt: str, state: dict, tree: Tree) -> None:
    """Write ``state`` (tagged with :data:`STATE_FORMAT`) and ``tree`` to ``ckpt/last``, replacing it whole."""
    last = os.path.join(ckpt, "last")
    tmp = last + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    torch.save({"format": STATE_FORMAT, **state}, os.path.join(tmp, "state.pt"))
    tree.save(os.path.join(tmp, "tree.npz"))
    replace_dir(tmp, last)


def load_last(ckpt: str, n_train_pairs: int, n_docs: int) -> tuple[dict, Tree]:
    """(state dict, tree) of ``ckpt/last`` (tensors on the CPU). Raises ValueError when there is none, its
    format is unknown, or it was written for another number of training pairs or documents."""
    last = os.path.join(ckpt, "last")
    recover_dir(last)
    try:
        state = torch.load(os.path.join(last, "state.pt"), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"no checkpoint to resume in {last}") from None
    if state.get("format") != STATE_FORMAT:
        raise ValueError(f"unsupported checkpoint format {state.get('format')!r}")
    if state["n_train_pairs"] != n_train_pairs or state["n_docs"] != n_docs:
        raise ValueError("resume: the pairs or the corpus differ from the checkpointed run")
    return state, Tree.load(os.path.join(last, "tree.npz"))


class Best:
    """Keeps the weights the run hands back (the best-validated epoch, or the last one with ``select="last"``
    once it ended; the starting weights until then) in memory and, with a checkpoint dir, in ``best/``."""

    def __init__(self, ckpt: str | None):
        self.dir = os.path.join(ckpt, "best") if ckpt else None
        self.state: dict | None = None
        self.epoch: int | None = None
        self.val: dict | None = None
        self.saved = False

    def update(self, encoder, epoch: int, val: dict | None) -> None:
        self.state = {k: v.detach().to("cpu", copy=True) for k, v in encoder.state_dict().items()}
        self.epoch, self.val = epoch, val
        if self.dir:
            tmp = self.dir + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            encoder.save(tmp)
            with open(os.path.join(tmp, "hce_best.json"), "w") as f:
                json.dump({"epoch": epoch, "val": val}, f)
            replace_dir(tmp, self.dir)
            self.saved = True

    def load_info(self) -> None:
        """After a resume: learn which epoch ``best/`` holds (weights are read lazily in ``restore``)."""
        if self.dir:
            recover_dir(self.dir)
        if self.dir and os.path.isfile(os.path.join(self.dir, "hce_best.json")):
            with open(os.path.join(self.dir, "hce_best.json")) as f:
                info = json.load(f)
            self.epoch, self.val, self.saved = int(info["epoch"]), info["val"], True

    def restore(self, encoder) -> None:
        """Load the kept weights into ``encoder`` (from ``best/`` after a resume); no-op when none are kept."""
        if self.state is None and self.saved and hasattr(type(encoder), "load"):
            fresh = type(encoder).load(self.dir, device="cpu")
            self.state = fresh.state_dict()
        if self.state is not None:
            encoder.load_state_dict(self.state)
