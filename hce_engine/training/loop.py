"""The HCE training loop: ``train()`` builds the tree, then runs AdamW epochs of the hierarchical loss over
the sibling sampler's batches, validating, keeping the best weights, rebuilding the tree (co-training) and
checkpointing.

Inputs: an encoder (a TextEncoder that is a torch Module), the corpus texts by position, training
:class:`~.pairs.Pair` s and a :class:`~.config.TrainConfig`. Output: a :class:`~.events.TrainResult`; the
encoder is trained in place. ``train()`` never touches a database: it reports through callbacks
(``on_step``, ``on_tree``, ``on_epoch``) and polls ``should_cancel``. It imports only torch, numpy and the
standard library (plus the tree builder, lazily, when no ``tree_builder`` is given). Its parts:
:mod:`.gradcache` (one step's gradient), :mod:`.checkpoint` (``best/``, ``last/``, RNG state), :mod:`.optim`
(parameter groups, learning-rate schedule), :mod:`.validation` (hold-out, scoring), :mod:`.events`,
:mod:`.determinism` (what makes the same seed give the same weights besides seeding: deterministic kernels,
a pinned thread count).

Cancelling: ``should_cancel()`` is polled before every step (and between encode batches of corpus/validation
encodes). When it returns True the loop stops before the next step and ``train`` *returns* a
:class:`TrainResult` with ``status="cancelled"`` (it does not raise). The encoder (and ``best/``) then holds
the best weights validated so far: with ``select="best"`` the best validated epoch, else (``select="last"``,
whose epochs before the last are not validated, or a run without validation queries) the starting weights. A
cancelled run never hands back an unvalidated, partly trained epoch as if it were the run's result.
``checkpoint_dir/last`` holds the last completed epoch, from which ``resume_from`` continues.

Checkpoints (when ``checkpoint_dir`` is given; files in :mod:`.checkpoint`): ``best/``, the weights handed
back (loadable by ``load_encoder`` and sentence-transformers), and ``last/``, the run's state and tree after
every completed epoch (after any co-training rebuild), which ``resume_from`` continues.
"""
from __future__ import annotations

import os
import random
import time
from typing import Callable, Sequence

import numpy as np
import torch

from hce_engine.evaluation.outcome import check, verdict
from hce_engine.threads import fixed_threads
from hce_engine.tree.tree import Tree

from .checkpoint import Best, checkpoint_root, load_last, rng_state, save_last, set_rng_state
from .config import TrainConfig
from .determinism import deterministic_torch, run_threads
from .distributed import CANCELLED, Ranks, ShardedEmbedder, sync_grads
from .events import EpochEvent, StepEvent, TrainResult
from .gradcache import Embedder, train_step
from .loss import HierarchicalContrastiveLoss
from .optim import lr_factor, param_groups
from .pairs import Pair
from .sampler import HierarchicalSampler, HierBatch
from .teacher import HybridTeacher
from .validation import Validator, hold_out


class _Cancelled(Exception):
    pass


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------------- train
def train(encoder, doc_texts: Sequence[str], pairs: list[Pair], config: TrainConfig, *,
          val_pairs: list[Pair] | None = None, initial_vectors: np.ndarray | None = None,
          tree_builder: Callable[[np.ndarray], Tree] | None = None,
          on_step: Callable[[StepEvent], None] | None = None,
          on_tree: Callable[[int, Tree, np.ndarray], None] | None = None,
          on_epoch: Callable[[EpochEvent], None] | None = None,
          should_cancel: Callable[[], bool] | None = None,
          checkpoint_dir: str | None = None, resume_from: str | None = None,
          grad_chunk: int | None = None, initial_max_length: int | None = None,
          teacher: HybridTeacher | None = None, ranks: Ranks | None = None) -> TrainResult:
    """Train ``encoder`` in place with the HCE loss; see the module docstring.

    Args:
        encoder: a TextEncoder that is also a torch Module (``state_dict``/``load_state_dict``).
        doc_texts: the corpus, by position (the positions pairs and the tree use).
        pairs: training pairs. When ``val_pairs`` is None, ``config.val_fraction`` of their queries is held
            out for validation (supervised queries only, in a joint mix); pass ``val_pairs=[]`` to train on
            all pairs without validation.
        initial_vectors: (n_docs, d) normalised corpus vectors of the starting encoder (skips one corpus
            encode); the rebuilds of co-training always re-encode. ``initial_max_length``: the token limit
            they were encoded at; when it is ``config.max_length`` they also serve the starting encoder's
            validation.
        tree_builder: ``vectors -> Tree``; default ``hce_engine.tree.builders.build_tree`` with the config's
            builder, branching and seed.
        on_step(StepEvent), on_tree(rebuild_no, tree, vectors), on_epoch(EpochEvent): progress callbacks.
            ``on_tree`` is called for the initial tree (0) and each co-training rebuild (1, 2, ...), not for
            a tree restored by a resume.
        should_cancel: polled before every step; True stops the run (status "cancelled", no exception; the
            encoder holds the best validated weights, the starting ones when no later epoch was validated).
        checkpoint_dir: folder for ``best/`` and ``last/`` (none written when None).
        resume_from: a checkpoint dir (or its ``last/``) to continue from the last completed epoch, with the
            same config, pairs and corpus. ``checkpoint_dir`` defaults to it.
        grad_chunk: sequences per forward pass with gradient (None = :func:`.gradcache.auto_grad_chunk`: a token
            budget on CPU, all at once on large GPUs; 0 = all at once). Larger steps use gradient caching.
        teacher: the self signal's :class:`~.teacher.HybridTeacher` (required for ``signal="self"``), built
            on the starting encoder's corpus vectors; it is prepared here for the run's pseudo-queries with
            ``encoder`` before its first step.
        ranks: this process's rank in a started process group (data-parallel training, see
            :mod:`.distributed`): every rank calls ``train`` with the same arguments; rank 0 builds the tree,
            validates, checkpoints and calls the callbacks (the others' are ignored) and its result is the run's.
            With ``config.nproc > 1`` and no ``ranks``, :func:`.spawn.train_spawned` runs the ranks in spawned
            processes and hands back rank 0's result and weights (``tree_builder`` must then be picklable); under
            ``torchrun``, this process is rank 0 and torchrun's other processes the other ranks
            (:func:`.torchrun.lead`).
    """
    config.validate()
    if ranks is None and config.nproc > 1:
        from .spawn import train_spawned
        from .torchrun import lead, under_torchrun
        run_ranks = lead if under_torchrun() else train_spawned
        return run_ranks(encoder, doc_texts, pairs, config, val_pairs=val_pairs, initial_vectors=initial_vectors,
                         tree_builder=tree_builder, on_step=on_step, on_tree=on_tree, on_epoch=on_epoch,
                         should_cancel=should_cancel, checkpoint_dir=checkpoint_dir, resume_from=resume_from,
                         grad_chunk=grad_chunk, initial_max_length=initial_max_length, teacher=teacher)
    if ranks is not None and not ranks.root:
        on_step = on_tree = on_epoch = should_cancel = None
    # Same seed, same run (on one machine): seeded generators, deterministic kernels, a fixed thread count.
    with deterministic_torch(), fixed_threads(run_threads()):
        t_start = time.time()
        seed_everything(config.seed)
        dev = torch.device(getattr(encoder, "device", "cpu"))
        if resume_from is not None:
            resume_from = checkpoint_root(resume_from)
            checkpoint_dir = checkpoint_dir or resume_from
        ckpt = os.fspath(checkpoint_dir) if checkpoint_dir else None
        if ckpt:
            os.makedirs(ckpt, exist_ok=True)

        if val_pairs is None:
            train_pairs, val_pairs = hold_out(pairs, config)
        else:
            train_pairs, val_pairs = list(pairs), list(val_pairs)
        if config.max_pairs and len(train_pairs) > config.max_pairs:
            keep = np.random.default_rng(config.seed).choice(len(train_pairs), config.max_pairs, replace=False)
            train_pairs = [train_pairs[i] for i in np.sort(keep)]
        if not train_pairs:
            raise ValueError("no training pairs (after holding out validation queries)")
        if len(doc_texts) < 2:
            raise ValueError("the corpus needs at least 2 documents")
        if config.signal == "self" and teacher is None:
            raise ValueError("the self signal needs a teacher (HybridTeacher over the starting encoder's vectors)")
        if ranks is not None and ranks.world != config.nproc:
            raise ValueError(f"nproc is {config.nproc} but the process group has {ranks.world} ranks")
        if hasattr(encoder, "precision"):
            from hce_engine.precision import resolve_precision
            encoder.precision = resolve_precision(config.precision, dev)

        trainer = _Trainer(encoder, doc_texts, train_pairs, val_pairs, config, dev, ckpt, t_start,
                           tree_builder=tree_builder, on_step=on_step, on_tree=on_tree, on_epoch=on_epoch,
                           cancel=should_cancel or (lambda: False), grad_chunk=grad_chunk,
                           teacher=teacher if config.signal == "self" else None, ranks=ranks)
        status = "done"
        try:
            first_epoch = trainer.start(resume_from, initial_vectors, initial_max_length)
            for epoch in range(first_epoch, config.epochs):
                trainer.run_epoch(epoch)
            trainer.sync(None)  # the other ranks wait for rank 0's last validation
        except _Cancelled:
            status = "cancelled"
            if ranks is not None and ranks.root:  # the others wait for rank 0's next message: tell them
                ranks.from_root(CANCELLED)
        return trainer.finish(status)


class _Trainer:
    """One ``train()`` call. What ``last/`` saves is its state: :meth:`state_dict` (``epochs_done``, ``step``,
    ``rebuild_no``, ``history``, the encoder, loss-memory and optimizer state, the torch RNG) and ``tree``;
    ``best`` (:class:`~.checkpoint.Best`) keeps ``best/``. The rest (losses, timings) covers this call only."""

    def __init__(self, encoder, doc_texts: Sequence[str], train_pairs: list[Pair], val_pairs: list[Pair],
                 config: TrainConfig, dev: torch.device, ckpt: str | None, t_start: float, *,
                 tree_builder, on_step, on_tree, on_epoch, cancel: Callable[[], bool], grad_chunk: int | None,
                 teacher: HybridTeacher | None = None, ranks: Ranks | None = None):
        self.encoder, self.doc_texts, self.config, self.dev = encoder, doc_texts, config, dev
        self.ranks = ranks
        self.root = ranks is None or ranks.root  # builds trees, validates, checkpoints
        self.train_pairs, self.val_pairs = train_pairs, val_pairs
        if not self.root:
            ckpt = None
        self.ckpt, self.t_start, self.cancel, self.grad_chunk = ckpt, t_start, cancel, grad_chunk
        self.tree_builder, self.on_step, self.on_tree, self.on_epoch = tree_builder, on_step, on_tree, on_epoch
        self.best = Best(ckpt)
        self.teacher = teacher
        self.mined: np.ndarray | None = None  # teacher negatives per train pair (negatives="teacher")
        self.anchor: list[torch.Tensor] | None = None  # starting weights (config.anchor > 0)
        self.validator: Validator | None = None
        self.tree: Tree | None = None
        self.memory_levels = 0
        # checkpointed counters
        self.epochs_done = 0
        self.step = 0
        self.rebuild_no = 0
        self.history: list[dict] = []
        # this call only
        self.losses: list[float] = []
        self.train_seconds = 0.0
        self.examples = 0
        self.val_seconds: list[float] = []
        self.rebuild_seconds: list[float] = []
        # set by start(): loss_fn, sampler, optimizer, enc_params, n_batches, total_steps, embedder

    def sync(self, obj):
        """Rank 0's ``obj`` on every rank (``obj`` itself in one process). Every point where the other ranks
        wait for rank 0 goes through here: a rank told that rank 0 was cancelled raises _Cancelled."""
        if self.ranks is None:
            return obj
        got = self.ranks.from_root(obj)
        if isinstance(got, str) and got == CANCELLED:
            raise _Cancelled
        return got

    def poll(self) -> None:
        """Before every step: stop when cancelled (rank 0 asks ``cancel``; the others learn it from rank 0)."""
        if self.root and self.cancel():
            raise _Cancelled
        self.sync(None)

    # ------------------------------------------------------------------------------------ corpus and tree
    def encode_corpus(self) -> np.ndarray:
        try:
            return self.encoder.encode(list(self.doc_texts), max_length=self.config.max_length,
                                       cancel=self.cancel)
        except InterruptedError:
            raise _Cancelled from None

    def build(self, vectors: np.ndarray) -> Tree:
        if self.tree_builder is not None:
            return self.tree_builder(vectors)
        from hce_engine.tree.builders import build_tree  # lazy: keeps this package light
        c = self.config
        return build_tree(vectors, builder=c.builder, branching=c.branching, seed=c.seed, device=self.dev)

    def make_sampler(self) -> HierarchicalSampler:
        c = self.config
        assert self.tree is not None, "setup() builds or loads the tree first"
        return HierarchicalSampler(self.tree, self.train_pairs, self.doc_texts, batch_size=c.batch_size,
                                   negatives=c.negatives, siblings=c.siblings, memory_levels=self.memory_levels,
                                   level_loss=c.level_loss, seed=c.seed, mined=self.mined,
                                   batching=c.batching)

    def prepare_teacher(self) -> None:
        """Self signal: score the run's pseudo-queries with the teacher (the encoder still holds the starting
        weights) and take its top documents as negatives when ``negatives="teacher"``."""
        c, t = self.config, self.teacher
        if t is None:
            return
        pairs = self.train_pairs + self.val_pairs
        try:
            t.prepare(self.encoder, [p.query for p in pairs], [p.doc_pos for p in pairs],
                      top_k=max(c.siblings, 10), query_max_length=c.query_max_length, cancel=self.cancel)
        except InterruptedError:
            raise _Cancelled from None
        if c.negatives == "teacher":
            self.mined = np.stack([t.top_others(p.query)[0] for p in self.train_pairs])

    # ------------------------------------------------------------------------------------ start
    def start(self, resume_dir: str | None, initial_vectors: np.ndarray | None,
              initial_max_length: int | None) -> int:
        """Build the tree (or restore it and the state from ``resume_dir/last``), the loss, sampler and
        optimizer; validate the starting encoder unless resuming. Returns the first epoch to train."""
        c = self.config
        state, vectors = None, None
        if self.root and resume_dir is not None:
            state, self.tree = load_last(resume_dir, len(self.train_pairs), len(self.doc_texts))
        elif self.root:
            vectors = np.asarray(initial_vectors, dtype=np.float32) if initial_vectors is not None \
                else self.encode_corpus()
            if len(vectors) != len(self.doc_texts):
                raise ValueError(f"initial_vectors has {len(vectors)} rows for {len(self.doc_texts)} documents")
            self.tree = self.build(vectors)
            if self.on_tree:
                self.on_tree(0, self.tree, vectors)
        # the other ranks take rank 0's tree (and resumed state)
        state, self.tree = self.sync((state, self.tree))
        self.prepare_teacher()
        if c.anchor > 0:
            self.anchor = [p.detach().clone() for p in self.encoder.parameters()]
        self.validator = Validator(self.doc_texts, self.val_pairs, c, self.tree, teacher=self.teacher) \
            if self.root else None
        start_vectors = vectors if state is None and initial_vectors is not None \
            and self.validator is not None and self.validator.whole_corpus \
            and initial_max_length == c.max_length else None

        self.memory_levels = c.resolve_memory_levels(self.tree.depth, self.tree.n_nodes - 1)
        self.loss_fn = HierarchicalContrastiveLoss(self.tree, self.memory_levels, c.tau, c.level_loss,
                                                   c.bidirectional, leaf_weight=0.0 if self.teacher else 1.0
                                                   ).to(self.dev)
        self.sampler = self.make_sampler()
        self.optimizer = torch.optim.AdamW(param_groups(self.encoder, self.loss_fn, c))
        self.enc_params = [p for g in self.optimizer.param_groups[:2] for p in g["params"]]
        self.n_batches = len(self.sampler)
        self.total_steps = c.epochs * self.n_batches
        self.embedder = (Embedder if self.ranks is None else ShardedEmbedder)(self.encoder, self.dev, self.grad_chunk)
        if state is not None:
            self.load_state_dict(state)
        else:
            self.validate(0, None, start_vectors)
        return self.epochs_done

    def state_dict(self) -> dict:
        """What ``last/state.pt`` holds (:func:`~.checkpoint.save_last` adds ``format``)."""
        torch_rng, cuda_rng = rng_state(self.dev)
        return {"epoch": self.epochs_done, "step": self.step, "rebuild": self.rebuild_no, "history": self.history,
                "n_train_pairs": len(self.train_pairs), "n_docs": len(self.doc_texts),
                "encoder": self.encoder.state_dict(), "optimizer": self.optimizer.state_dict(),
                "loss": self.loss_fn.state_dict(), "torch_rng": torch_rng, "cuda_rng": cuda_rng,
                "config": self.config.to_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`state_dict` (after :meth:`start` built the tree's loss and optimizer)."""
        self.encoder.load_state_dict(state["encoder"])
        self.step, self.epochs_done, self.rebuild_no = int(state["step"]), int(state["epoch"]), int(state["rebuild"])
        self.history = list(state["history"])
        self.best.load_info()
        self.loss_fn.load_state_dict(state["loss"])
        self.optimizer.load_state_dict(state["optimizer"])
        set_rng_state((state["torch_rng"], state.get("cuda_rng")), self.dev)

    # ------------------------------------------------------------------------------------ epochs
    def run_epoch(self, epoch: int) -> None:
        """Train epoch ``epoch`` (0-based), validate, rebuild the tree when co-training, checkpoint."""
        c = self.config
        self.encoder.train()
        self.loss_fn.train()
        epoch_losses = []
        for b, batch in enumerate(self.sampler.batches(epoch)):
            self.poll()
            epoch_losses.append(self.train_batch(epoch, b, batch))
        self.epochs_done = epoch + 1
        self.validate(epoch + 1, float(np.mean(epoch_losses)) if epoch_losses else None)
        # Co-training: re-encode, rebuild, reset memory (not after the last epoch).
        if c.recluster_every and self.epochs_done % c.recluster_every == 0 and self.epochs_done < c.epochs:
            self.rebuild()
        if self.ckpt:
            assert self.tree is not None, "setup() builds or loads the tree first"
            save_last(self.ckpt, self.state_dict(), self.tree)

    def train_batch(self, epoch: int, b: int, batch: HierBatch) -> float:
        """One optimizer step on batch ``b`` of ``epoch``; reports a StepEvent; returns the loss."""
        c = self.config
        t0 = time.time()
        factor = lr_factor(self.step, self.total_steps, c.warmup_ratio, c.lr_schedule)
        for g in self.optimizer.param_groups:
            g["lr"] = g["base_lr"] * factor
        self.optimizer.zero_grad(set_to_none=True)
        details = train_step(self.embedder, self.loss_fn, batch, c, self.teacher)
        if self.ranks is not None:
            sync_grads(self.enc_params, list(self.loss_fn.memory.parameters()))
        if self.anchor is not None:  # gradient of anchor/2 * ||w - w0||^2
            for p, p0 in zip(self.encoder.parameters(), self.anchor, strict=True):
                if p.grad is not None:
                    p.grad.add_(p.detach() - p0, alpha=c.anchor)
        if c.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.enc_params, c.grad_clip)
            torch.nn.utils.clip_grad_norm_(list(self.loss_fn.memory.parameters()), c.grad_clip)
        self.optimizer.step()
        self.step += 1
        self.train_seconds += time.time() - t0
        self.examples += batch.size
        self.losses.append(details["loss"])
        if self.on_step:
            self.on_step(StepEvent(
                step=self.step, total_steps=self.total_steps, epoch=epoch + 1, epochs=c.epochs, batch=b + 1,
                batches=self.n_batches, loss=details["loss"], leaf_loss=details["leaf_loss"],
                level_loss=details["level_loss"], level_acc=details["level_acc"],
                leaf_acc=details["leaf_acc"], leaf_sibling_acc=details["leaf_sibling_acc"],
                level_mean=details["level_mean"], bidirectional_loss=details["bidirectional_loss"],
                lr=self.optimizer.param_groups[0]["lr"], sequences=batch.n_sequences,
                examples_per_s=self.examples / max(self.train_seconds, 1e-9), eta_s=self.eta(epoch),
                elapsed_s=time.time() - self.t_start, rebuild=self.rebuild_no,
                distill_loss=details.get("distill_loss"), teacher_agree=details.get("teacher_agree")))
        return details["loss"]

    def eta(self, epoch: int) -> float:
        """Seconds left: remaining steps at this call's mean step time, plus the remaining validations and
        rebuilds at the latest one's duration."""
        c = self.config
        per_step = self.train_seconds / max(1, len(self.losses))
        remaining_val = (c.epochs - epoch) * (self.val_seconds[-1] if self.val_seconds else 0.0)
        n_rebuilds = sum(1 for k in range(epoch + 1, c.epochs) if c.recluster_every and k % c.recluster_every == 0)
        remaining_rb = n_rebuilds * (self.rebuild_seconds[-1] if self.rebuild_seconds else 0.0)
        return (self.total_steps - self.step) * per_step + remaining_val + remaining_rb

    def validate(self, epoch: int, mean_loss: float | None, vectors: np.ndarray | None = None) -> None:
        """Validate (epoch 0 = the starting encoder, and every epoch with ``select="best"``, else only the
        last) and keep the weights the run hands back: the best validated epoch, or with ``select="last"`` or
        without validation the starting weights until the last epoch ends (so a cancel never hands back an
        unvalidated intermediate epoch)."""
        c = self.config
        if not self.root:
            return
        keep_last = c.select == "last" and epoch > 0
        if not self.validator or (c.select == "last" and epoch not in (0, c.epochs)):
            if epoch in (0, c.epochs):  # the starting weights, then the finished run's; none in between
                self.best.update(self.encoder, epoch, None)
            if self.on_epoch:
                self.on_epoch(EpochEvent(epoch, self.step, None, 0 < epoch == c.epochs, self.best.epoch or 0,
                                         mean_loss, time.time() - self.t_start))
            return
        self.encoder.eval()
        try:
            val = self.validator.run(self.encoder, self.cancel, corpus_vectors=vectors)
        except InterruptedError:
            raise _Cancelled from None
        self.val_seconds.append(val["seconds"])
        val = {"epoch": epoch, "step": self.step, **val}
        self.history.append(val)
        is_best = keep_last or self.best.val is None or val["mrr_at_10"] > self.best.val["mrr_at_10"]
        if is_best:
            self.best.update(self.encoder, epoch, val)
        if self.on_epoch:
            assert self.best.epoch is not None, "set with best.val: by the update above or an earlier one"
            self.on_epoch(EpochEvent(epoch, self.step, val, is_best, self.best.epoch, mean_loss,
                                     time.time() - self.t_start))

    def rebuild(self) -> None:
        """Co-training: re-encode the corpus, rebuild the tree, reset the loss's memory and its optimizer
        state, and sample from the new tree."""
        t0 = time.time()
        vectors = self.encode_corpus() if self.root else None
        self.tree = self.sync(self.build(vectors) if vectors is not None else None)
        self.rebuild_no += 1
        self.memory_levels = self.config.resolve_memory_levels(self.tree.depth, self.tree.n_nodes - 1)
        mem_group = self.optimizer.param_groups[2]
        for p in mem_group["params"]:
            self.optimizer.state.pop(p, None)
        self.loss_fn.reset_memory(self.tree, self.memory_levels)
        mem_group["params"] = list(self.loss_fn.memory.parameters())
        self.sampler = self.make_sampler()
        self.rebuild_seconds.append(time.time() - t0)
        if self.on_tree and vectors is not None:
            self.on_tree(self.rebuild_no, self.tree, vectors)

    # ------------------------------------------------------------------------------------ finish
    def finish(self, status: str) -> TrainResult:
        """Load the weights to hand back into the encoder and sum the run up."""
        best, history = self.best, self.history
        best.restore(self.encoder)
        self.encoder.eval()
        start_val = history[0] if history and history[0]["epoch"] == 0 else None
        checks = []
        if start_val is not None and best.val is not None and best.epoch:
            pseudo = all(p.kind in ("ict", "self") for p in self.val_pairs)  # no judged query held out
            name = "known item (held-out pseudo-queries)" if pseudo else "validation"
            checks.append(check(name, "mrr_at_10", start_val["mrr_at_10"], best.val["mrr_at_10"],
                                best.val["n_queries"]))
            if best.val.get("agreement_ndcg_at_10") is not None:
                checks.append(check("teacher agreement (held-out pseudo-queries)", "ndcg_at_10",
                                    start_val["agreement_ndcg_at_10"], best.val["agreement_ndcg_at_10"],
                                    best.val["n_queries"]))
        improved = None if not checks else verdict(checks) == "better"
        ckpt = self.ckpt
        last_dir = os.path.join(ckpt, "last") if ckpt and os.path.isdir(os.path.join(ckpt, "last")) else None
        return TrainResult(
            status=status, best_epoch=best.epoch if best.epoch is not None else self.epochs_done,
            val_history=history, start_val=start_val, best_val=best.val, improved=improved, tree=self.tree,
            steps=self.step, epochs_done=self.epochs_done,
            examples_per_s=self.examples / max(self.train_seconds, 1e-9), seconds=time.time() - self.t_start,
            checkpoint=best.dir if best.saved else None, last_checkpoint=last_dir, losses=self.losses,
            memory_levels=self.memory_levels, rebuilds=self.rebuild_no, n_train_pairs=len(self.train_pairs),
            n_val_pairs=len(self.val_pairs), checks=checks, threads=torch.get_num_threads(),
            corpus_vectors=self.validator.last_vectors if self.validator is not None and best.val is not None
            and best.val["epoch"] == self.epochs_done and status == "done" else None)
