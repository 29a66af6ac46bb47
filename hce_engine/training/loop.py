"""The HCE training loop: tree, sampler, loss, AdamW, validation, best checkpoint, co-training, resume.

``train()`` never touches a database: it reports through callbacks (``on_step``, ``on_tree``, ``on_epoch``)
and polls ``should_cancel``. It imports only torch, numpy and the standard library (plus the tree builder,
lazily, when no ``tree_builder`` is given).

Cancelling: ``should_cancel()`` is polled before every step (and between encode batches of corpus/validation
encodes). When it returns True the loop stops before the next step and ``train`` *returns* a
:class:`TrainResult` with ``status="cancelled"`` (it does not raise). The encoder then holds the best weights
validated so far (the starting weights if none), like a finished run; ``checkpoint_dir/last`` holds the last
completed epoch, from which ``resume_from`` continues.

Checkpoints (when ``checkpoint_dir`` is given):

* ``best/``: ``encoder.save()`` of the best-validated weights (loadable by ``load_encoder`` and
  sentence-transformers) plus ``hce_best.json`` (epoch, validation metrics).
* ``last/``: ``state.pt`` (encoder and optimizer state, memory vectors, torch RNG, epoch, step, history) and
  ``tree.npz`` (the tree in use), written after every completed epoch (after any co-training rebuild).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from hce_engine.atomic import recover_dir, replace_dir
from hce_engine.evaluation.outcome import check, outcome
from hce_engine.tree.tree import Tree

from .config import TrainConfig
from .loss import HierarchicalContrastiveLoss
from .pairs import Pair, split_validation
from .sampler import HierarchicalSampler, HierBatch
from .validation import ICT_MIN_VAL, Validator

STATE_FORMAT = 1


# ---------------------------------------------------------------------------------------------- events
@dataclass
class StepEvent:
    """Emitted after every optimizer step (``on_step``).

    ``step`` counts optimizer steps from 1 over the whole run; ``epoch`` is 1-based; ``batch`` is the
    1-based batch within the epoch. Per-level lists have one entry per tree level (level 1 first), None
    where no pair of the batch had more than one candidate at that level.
    """

    step: int
    total_steps: int
    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float
    leaf_loss: float
    level_loss: list
    level_acc: list
    leaf_acc: float
    leaf_sibling_acc: float | None
    level_mean: float | None
    bidirectional_loss: float | None
    lr: float
    sequences: int          # texts encoded this step (unique queries + unique documents)
    examples_per_s: float   # pairs per second of training time (validation/rebuilds excluded)
    eta_s: float            # estimated seconds to the end, including remaining validations and rebuilds
    elapsed_s: float
    rebuild: int            # the tree in use (0 = initial, k = k-th co-training rebuild)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class EpochEvent:
    """Emitted after each validation (``on_epoch``): epoch 0 = the starting encoder, then every epoch.

    ``val`` is None when there are no validation pairs. ``mean_loss`` is the epoch's mean training loss
    (None for epoch 0).
    """

    epoch: int
    step: int
    val: dict | None
    is_best: bool
    best_epoch: int
    mean_loss: float | None
    elapsed_s: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    """What ``train`` returns.

    Attributes:
        status: "done" or "cancelled".
        best_epoch: epoch whose weights the encoder now holds (0 = the starting encoder; without
            validation the last completed epoch).
        val_history: validation dicts (``epoch``, ``step``, ``mrr_at_10``, ``recall_at_10``, ``ndcg_at_10``,
            ``n_queries``, ``pool``, ``seconds``), epoch 0 first (:mod:`.validation`).
        start_val / best_val: the starting encoder's and the best validation dict (None without validation).
        improved: the validation check says "better" (None without validation); ``checks`` holds it
            (:func:`hce_engine.evaluation.check`), ``outcome`` the verdict.
        tree: the tree used in the last trained epoch; rebuilds: co-training rebuilds done.
        steps: optimizer steps done (whole run, including before a resume); epochs_done: completed epochs.
        examples_per_s, seconds: throughput and wall time of this call.
        checkpoint: ``checkpoint_dir/best`` when written, else None; last_checkpoint likewise for ``last``.
        losses: total loss of every step of this call, in order.
        memory_levels: M used; n_train_pairs / n_val_pairs: the split used.
        corpus_vectors: (n_docs, d) vectors of the returned encoder at ``config.max_length`` when its last
            validation encoded the whole corpus (spares the caller a corpus encode), else None.
    """

    status: str
    best_epoch: int
    val_history: list[dict]
    start_val: dict | None
    best_val: dict | None
    improved: bool | None
    tree: Tree | None
    steps: int
    epochs_done: int
    examples_per_s: float
    seconds: float
    checkpoint: str | None
    last_checkpoint: str | None
    losses: list[float] = field(default_factory=list)
    memory_levels: int = 0
    rebuilds: int = 0
    n_train_pairs: int = 0
    n_val_pairs: int = 0
    checks: list[dict] = field(default_factory=list)
    corpus_vectors: np.ndarray | None = None

    @property
    def outcome(self) -> dict:
        """Better, no better or worse than the starting encoder (:func:`hce_engine.evaluation.outcome`)."""
        return outcome(self.checks)


class _Cancelled(Exception):
    pass


# ---------------------------------------------------------------------------------------------- helpers
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def _rng_state(dev: torch.device) -> tuple:
    cuda = torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state: tuple, dev: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None and dev.type == "cuda":
        torch.cuda.set_rng_state(state[1], dev)


#: Tokens per forward pass with gradient when ``grad_chunk`` is automatic. On CPU, MiniLM training keeps
#: ~0.4 MB of activations per token (measured), so 4096 tokens ~ 1.8 GB; on a GPU under 40 GiB, 32768 tokens.
CPU_TOKEN_BUDGET = 4096
GPU_TOKEN_BUDGET = 32768


def auto_grad_chunk(device: torch.device | str, max_length: int = 256) -> int:
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


class _Embedder:
    """Embeds a step's texts with gradient, directly or with gradient caching (GradCache, Gao et al. 2021).

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
                states.append(_rng_state(self.device))
                parts.append(self._call([texts[i] for i in c], max_length))
        emb = torch.empty((len(texts), parts[0].shape[1]), device=parts[0].device)
        for c, p in zip(chunks, parts):
            emb[torch.as_tensor(c, device=emb.device)] = p
        emb.requires_grad_(True)
        return emb, (texts, max_length, chunks, states, emb)

    def replay(self, pending) -> None:
        if pending is None:
            return
        texts, max_length, chunks, states, emb = pending
        if emb.grad is None:
            return
        end = _rng_state(self.device)
        for c, st in zip(chunks, states):
            _set_rng_state(st, self.device)
            e = self._call([texts[i] for i in c], max_length)
            e.backward(emb.grad[torch.as_tensor(c, device=emb.device)])
        _set_rng_state(end, self.device)


def _param_groups(encoder, loss_fn: HierarchicalContrastiveLoss, config: TrainConfig) -> list[dict]:
    named = list(encoder.named_parameters()) if hasattr(encoder, "named_parameters") else \
        [(f"p{i}", p) for i, p in enumerate(encoder.parameters())]
    decay, no_decay = [], []
    for name, p in named:
        if not p.requires_grad:
            continue
        low = name.lower()
        (no_decay if low.endswith("bias") or "norm" in low else decay).append(p)
    return [
        {"params": decay, "lr": config.lr, "base_lr": config.lr, "weight_decay": config.weight_decay},
        {"params": no_decay, "lr": config.lr, "base_lr": config.lr, "weight_decay": 0.0},
        {"params": list(loss_fn.memory.parameters()), "lr": config.memory_lr, "base_lr": config.memory_lr,
         "weight_decay": 0.0},
    ]


def lr_factor(step: int, total: int, warmup_ratio: float, schedule: str = "constant") -> float:
    """Linear warm-up over ceil(warmup_ratio * total) steps, then constant (``schedule="constant"``) or
    linear decay to 0 (``"linear"``). ``step`` is 0-based."""
    warm = int(math.ceil(warmup_ratio * total))
    if step < warm:
        return (step + 1) / warm
    if schedule == "constant":
        return 1.0
    return max(0.0, (total - step) / max(1, total - warm))


def _save_tree(path: str, tree: Tree) -> None:
    np.savez(path, parent=tree.parent, level=tree.level, centroid=tree.centroid, size=tree.size,
             doc_leaf=tree.doc_leaf, doc_ids=tree.doc_ids, builder=np.array(tree.builder),
             branching=np.array(tree.branching))


def _load_tree(path: str) -> Tree:
    z = np.load(path, allow_pickle=False)
    return Tree(parent=z["parent"], level=z["level"], centroid=z["centroid"], size=z["size"],
                doc_leaf=z["doc_leaf"], doc_ids=z["doc_ids"], builder=str(z["builder"]),
                branching=int(z["branching"]))


def _split(pairs: Sequence[Pair], config: TrainConfig) -> tuple[list[Pair], list[Pair]]:
    """Hold out val_fraction of the queries; with a joint mix, only supervised queries are held out. When that
    holds out nothing and there are ICT pairs, hold out :data:`ICT_MIN_VAL` ICT pseudo-queries (a tenth when
    fewer): an unlabelled run has no other check."""
    pairs = list(pairs)
    sup = [p for p in pairs if p.kind != "ict"]
    if sup and len(sup) < len(pairs):
        tr, val = split_validation(sup, config.val_fraction, config.seed)
    else:
        tr, val = split_validation(pairs, config.val_fraction, config.seed)
    ict = [p for p in pairs if p.kind == "ict"]
    if not val and len(ict) >= 20:
        n_q = len({p.query for p in ict})
        _, val = split_validation(ict, min(ICT_MIN_VAL, n_q // 10) / n_q, config.seed)
    val_q = {p.query for p in val}
    return [p for p in pairs if p.query not in val_q], val


class _Best:
    """Keeps the weights the run hands back (the best-validated epoch, or the last one with
    ``select="last"``) in memory and, with a checkpoint dir, in ``best/``."""

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
        if self.state is None and self.saved and hasattr(type(encoder), "load"):
            fresh = type(encoder).load(self.dir, device="cpu")
            self.state = fresh.state_dict()
        if self.state is not None:
            encoder.load_state_dict(self.state)


# ---------------------------------------------------------------------------------------------- train
def train(encoder, doc_texts: Sequence[str], pairs: list[Pair], config: TrainConfig, *,
          val_pairs: list[Pair] | None = None, initial_vectors: np.ndarray | None = None,
          tree_builder: Callable[[np.ndarray], Tree] | None = None,
          on_step: Callable[[StepEvent], None] | None = None,
          on_tree: Callable[[int, Tree, np.ndarray], None] | None = None,
          on_epoch: Callable[[EpochEvent], None] | None = None,
          should_cancel: Callable[[], bool] | None = None,
          checkpoint_dir: str | None = None, resume_from: str | None = None,
          grad_chunk: int | None = None, initial_max_length: int | None = None) -> TrainResult:
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
        should_cancel: polled before every step; True stops the run (status "cancelled", no exception).
        checkpoint_dir: folder for ``best/`` and ``last/`` (none written when None).
        resume_from: a checkpoint dir (or its ``last/``) to continue from the last completed epoch, with the
            same config, pairs and corpus. ``checkpoint_dir`` defaults to it.
        grad_chunk: sequences per forward pass with gradient (None = :func:`auto_grad_chunk`: a token
            budget on CPU, all at once on large GPUs; 0 = all at once). Larger steps use gradient caching.
    """
    config.validate()
    t_start = time.time()
    seed_everything(config.seed)
    dev = torch.device(getattr(encoder, "device", "cpu"))
    cancel = should_cancel or (lambda: False)
    if resume_from is not None:
        resume_from = os.fspath(resume_from)
        if os.path.basename(os.path.normpath(resume_from)) == "last":
            resume_from = os.path.dirname(os.path.normpath(resume_from))
        checkpoint_dir = checkpoint_dir or resume_from
    ckpt = os.fspath(checkpoint_dir) if checkpoint_dir else None
    if ckpt:
        os.makedirs(ckpt, exist_ok=True)

    if val_pairs is None:
        train_pairs, val_pairs = _split(pairs, config)
    else:
        train_pairs, val_pairs = list(pairs), list(val_pairs)
    if config.max_pairs and len(train_pairs) > config.max_pairs:
        keep = np.random.default_rng(config.seed).choice(len(train_pairs), config.max_pairs, replace=False)
        train_pairs = [train_pairs[i] for i in np.sort(keep)]
    if not train_pairs:
        raise ValueError("no training pairs (after holding out validation queries)")
    if len(doc_texts) < 2:
        raise ValueError("the corpus needs at least 2 documents")
    if hasattr(encoder, "precision"):
        from hce_engine.precision import resolve_precision
        encoder.precision = resolve_precision(config.precision, dev)
    validator: Validator | None = None
    best = _Best(ckpt)

    history: list[dict] = []
    losses: list[float] = []
    step = 0
    start_epoch = 0
    rebuild_no = 0
    tree: Tree | None = None
    memory_levels = 0
    status = "done"
    state = None
    train_seconds = 0.0
    examples = 0
    val_seconds: list[float] = []
    rebuild_seconds: list[float] = []
    epochs_done = 0

    def build(vectors: np.ndarray) -> Tree:
        if tree_builder is not None:
            return tree_builder(vectors)
        from hce_engine.tree.builders import build_tree  # lazy: keeps this package light
        return build_tree(vectors, builder=config.builder, branching=config.branching, seed=config.seed,
                          device=dev)

    def encode_corpus() -> np.ndarray:
        try:
            return encoder.encode(list(doc_texts), max_length=config.max_length, cancel=cancel)
        except InterruptedError:
            raise _Cancelled from None

    def validate(epoch: int, mean_loss: float | None, vectors: np.ndarray | None = None) -> None:
        """Validate (epoch 0 = the starting encoder, and every epoch with ``select="best"``, else only the
        last) and keep the weights the run hands back."""
        keep_last = config.select == "last" and epoch > 0
        if not validator or (config.select == "last" and epoch not in (0, config.epochs)):
            if epoch > 0:
                best.update(encoder, epoch, None)
            if on_epoch:
                on_epoch(EpochEvent(epoch, step, None, epoch > 0, best.epoch or 0, mean_loss,
                                    time.time() - t_start))
            return
        encoder.eval()
        try:
            val = validator.run(encoder, cancel, corpus_vectors=vectors)
        except InterruptedError:
            raise _Cancelled from None
        val_seconds.append(val["seconds"])
        val = {"epoch": epoch, "step": step, **val}
        history.append(val)
        is_best = keep_last or best.val is None or val["mrr_at_10"] > best.val["mrr_at_10"]
        if is_best:
            best.update(encoder, epoch, val)
        if on_epoch:
            on_epoch(EpochEvent(epoch, step, val, is_best, best.epoch, mean_loss, time.time() - t_start))

    try:
        # ---------------------------------------------------------------- tree and state
        if resume_from is not None:
            last = os.path.join(resume_from, "last")
            recover_dir(last)
            try:
                state = torch.load(os.path.join(last, "state.pt"), map_location="cpu", weights_only=True)
            except FileNotFoundError:
                raise ValueError(f"no checkpoint to resume in {last}") from None
            if state.get("format") != STATE_FORMAT:
                raise ValueError(f"unsupported checkpoint format {state.get('format')!r}")
            if state["n_train_pairs"] != len(train_pairs) or state["n_docs"] != len(doc_texts):
                raise ValueError("resume: the pairs or the corpus differ from the checkpointed run")
            tree = _load_tree(os.path.join(last, "tree.npz"))
            encoder.load_state_dict(state["encoder"])
            step, start_epoch, rebuild_no = int(state["step"]), int(state["epoch"]), int(state["rebuild"])
            history = list(state["history"])
            best.load_info()
            epochs_done = start_epoch
        else:
            vectors = np.asarray(initial_vectors, dtype=np.float32) if initial_vectors is not None \
                else encode_corpus()
            if len(vectors) != len(doc_texts):
                raise ValueError(f"initial_vectors has {len(vectors)} rows for {len(doc_texts)} documents")
            tree = build(vectors)
            if on_tree:
                on_tree(0, tree, vectors)
        validator = Validator(doc_texts, val_pairs, config, tree)
        start_vectors = vectors if state is None and initial_vectors is not None and validator.whole_corpus \
            and initial_max_length == config.max_length else None

        memory_levels = config.resolve_memory_levels(tree.depth, tree.n_nodes - 1)
        loss_fn = HierarchicalContrastiveLoss(tree, memory_levels, config.tau, config.level_loss,
                                              config.bidirectional).to(dev)

        def make_sampler(t: Tree, m: int) -> HierarchicalSampler:
            return HierarchicalSampler(t, train_pairs, doc_texts, batch_size=config.batch_size,
                                       negatives=config.negatives, siblings=config.siblings, memory_levels=m,
                                       level_loss=config.level_loss, seed=config.seed)

        sampler = make_sampler(tree, memory_levels)
        optimizer = torch.optim.AdamW(_param_groups(encoder, loss_fn, config))
        n_batches = len(sampler)
        total_steps = config.epochs * n_batches
        embedder = _Embedder(encoder, dev, grad_chunk)

        if state is not None:
            loss_fn.load_state_dict(state["loss"])
            optimizer.load_state_dict(state["optimizer"])
            _set_rng_state((state["torch_rng"], state.get("cuda_rng")), dev)
            state = None
        else:
            validate(0, None, start_vectors)

        enc_params = [p for g in optimizer.param_groups[:2] for p in g["params"]]
        n_rebuilds_left = lambda e: sum(1 for k in range(e + 1, config.epochs)  # noqa: E731
                                        if config.recluster_every and k % config.recluster_every == 0)

        # ---------------------------------------------------------------- epochs
        for epoch in range(start_epoch, config.epochs):
            encoder.train()
            loss_fn.train()
            epoch_losses = []
            for b, batch in enumerate(sampler.batches(epoch)):
                if cancel():
                    raise _Cancelled
                t0 = time.time()
                factor = lr_factor(step, total_steps, config.warmup_ratio, config.lr_schedule)
                for g in optimizer.param_groups:
                    g["lr"] = g["base_lr"] * factor
                optimizer.zero_grad(set_to_none=True)
                details = _train_step(embedder, loss_fn, batch, config)
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(enc_params, config.grad_clip)
                    torch.nn.utils.clip_grad_norm_(list(loss_fn.memory.parameters()), config.grad_clip)
                optimizer.step()
                step += 1
                dt = time.time() - t0
                train_seconds += dt
                examples += batch.size
                losses.append(details["loss"])
                epoch_losses.append(details["loss"])
                if on_step:
                    per_step = train_seconds / max(1, len(losses))
                    remaining_val = (config.epochs - epoch) * (val_seconds[-1] if val_seconds else 0.0)
                    remaining_rb = n_rebuilds_left(epoch) * (rebuild_seconds[-1] if rebuild_seconds else 0.0)
                    eta = (total_steps - step) * per_step + remaining_val + remaining_rb
                    on_step(StepEvent(
                        step=step, total_steps=total_steps, epoch=epoch + 1, epochs=config.epochs, batch=b + 1,
                        batches=n_batches, loss=details["loss"], leaf_loss=details["leaf_loss"],
                        level_loss=details["level_loss"], level_acc=details["level_acc"],
                        leaf_acc=details["leaf_acc"], leaf_sibling_acc=details["leaf_sibling_acc"],
                        level_mean=details["level_mean"], bidirectional_loss=details["bidirectional_loss"],
                        lr=optimizer.param_groups[0]["lr"], sequences=batch.n_sequences,
                        examples_per_s=examples / max(train_seconds, 1e-9), eta_s=eta,
                        elapsed_s=time.time() - t_start, rebuild=rebuild_no))
            epochs_done = epoch + 1
            validate(epoch + 1, float(np.mean(epoch_losses)) if epoch_losses else None)

            # Co-training: re-encode, rebuild, reset memory (not after the last epoch).
            if config.recluster_every and epochs_done % config.recluster_every == 0 \
                    and epochs_done < config.epochs:
                t0 = time.time()
                vectors = encode_corpus()
                tree = build(vectors)
                rebuild_no += 1
                memory_levels = config.resolve_memory_levels(tree.depth, tree.n_nodes - 1)
                mem_group = optimizer.param_groups[2]
                for p in mem_group["params"]:
                    optimizer.state.pop(p, None)
                loss_fn.reset_memory(tree, memory_levels)
                mem_group["params"] = list(loss_fn.memory.parameters())
                sampler = make_sampler(tree, memory_levels)
                rebuild_seconds.append(time.time() - t0)
                if on_tree:
                    on_tree(rebuild_no, tree, vectors)

            if ckpt:
                _save_last(ckpt, encoder, optimizer, loss_fn, tree, dev, epoch=epochs_done, step=step,
                           rebuild=rebuild_no, history=history, n_train_pairs=len(train_pairs),
                           n_docs=len(doc_texts), config=config)
    except _Cancelled:
        status = "cancelled"

    # ---------------------------------------------------------------- finish: keep the best weights
    best.restore(encoder)
    encoder.eval()
    start_val = history[0] if history and history[0]["epoch"] == 0 else None
    checks = []
    if start_val is not None and best.val is not None and best.epoch:
        checks.append(check("validation", "mrr_at_10", start_val["mrr_at_10"], best.val["mrr_at_10"],
                            best.val["n_queries"]))
    improved = None if not checks else checks[0]["verdict"] == "better"
    last_dir = os.path.join(ckpt, "last") if ckpt and os.path.isdir(os.path.join(ckpt, "last")) else None
    return TrainResult(
        status=status, best_epoch=best.epoch if best.epoch is not None else epochs_done,
        val_history=history, start_val=start_val, best_val=best.val, improved=improved, tree=tree, steps=step,
        epochs_done=epochs_done, examples_per_s=examples / max(train_seconds, 1e-9),
        seconds=time.time() - t_start, checkpoint=best.dir if best.saved else None, last_checkpoint=last_dir,
        losses=losses, memory_levels=memory_levels, rebuilds=rebuild_no, n_train_pairs=len(train_pairs),
        n_val_pairs=len(val_pairs), checks=checks,
        corpus_vectors=validator.last_vectors if validator is not None and best.val is not None
        and best.val["epoch"] == epochs_done and status == "done" else None)


def _train_step(embedder: _Embedder, loss_fn: HierarchicalContrastiveLoss, batch: HierBatch,
                config: TrainConfig) -> dict:
    """Embed (each unique text once), compute the loss, back-propagate (gradients accumulate in place)."""
    n_pos = len(batch.doc_texts) if batch.n_positive_texts < 0 else batch.n_positive_texts
    q, q_pending = embedder.forward(batch.queries, config.query_max_length)
    d, d_pending = embedder.forward(batch.doc_texts[:n_pos], config.max_length)
    pendings = [q_pending, d_pending]
    if n_pos < len(batch.doc_texts):
        neg, neg_pending = embedder.forward(batch.doc_texts[n_pos:], config.negative_max_length)
        d = torch.cat([d, neg])
        pendings.append(neg_pending)
    loss, details = loss_fn(q, d, batch)
    loss.backward()
    for pending in pendings:
        embedder.replay(pending)
    return details


def _save_last(ckpt: str, encoder, optimizer, loss_fn, tree: Tree, dev: torch.device, **info: Any) -> None:
    last = os.path.join(ckpt, "last")
    tmp = last + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    torch_rng, cuda_rng = _rng_state(dev)
    config = info.pop("config")
    state = {"format": STATE_FORMAT, **info, "encoder": encoder.state_dict(), "optimizer": optimizer.state_dict(),
             "loss": loss_fn.state_dict(), "torch_rng": torch_rng, "cuda_rng": cuda_rng,
             "config": config.to_dict()}
    torch.save(state, os.path.join(tmp, "state.pt"))
    _save_tree(os.path.join(tmp, "tree.npz"), tree)
    replace_dir(tmp, last)
