"""What ``train()`` reports: :class:`StepEvent` per optimizer step (``on_step``), :class:`EpochEvent` per
validation (``on_epoch``) and the :class:`TrainResult` it returns. Plain dataclasses; ``to_dict`` is JSON-safe.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hce_engine.evaluation.outcome import outcome
from hce_engine.tree.tree import Tree


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
    distill_loss: float | None = None  # self signal: KL(teacher || student) over the leaf candidates
    teacher_agree: float | None = None  # self signal: share of queries whose top candidate is the teacher's

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
        threads: torch intra-op threads the run trained on. Same seed, same settings, same machine and same
            count: the same weights, bit for bit; another count rounds differently (``docs/method.md``).
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
    threads: int = 0

    @property
    def outcome(self) -> dict:
        """Better, no better or worse than the starting encoder (:func:`hce_engine.evaluation.outcome`)."""
        return outcome(self.checks)

