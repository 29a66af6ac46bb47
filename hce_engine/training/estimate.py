"""Time estimates for a training run, shown before it starts.

Model of the cost (all in units of one measured *inference* encode of a corpus document at ``max_length``):

* one training step encodes B queries, B positives, B x S' leaf negatives and, for tree levels below the
  memory levels M (with level losses on), one representative document per candidate node of the batch.
  S' = S for random negatives, 0 for in-batch, and for siblings the expected number of other documents in
  the positive's leaf, capped at S (from the tree when given, else ~1.25 b - 1: k-means leaves average b
  documents, and a document sits in a larger-than-average leaf more often);
* forward + backward with gradient costs ``train_factor`` times an inference encode (default 3;
  :func:`measure_train_factor` measures it: training batches are padded to their longest text, inference
  batches are sorted by length); the factor depends on the length (attention and padding grow with it), so
  leaf negatives and representatives at their own shorter length take ``negative_train_factor``; when a kind
  of text exceeds ``grad_chunk`` sequences, gradient caching adds one more forward (x 4/3);
* a query costs ``query_seconds_per_sequence`` (default: the document cost scaled by
  query_max_length / max_length, an upper bound for short queries);
* the corpus is encoded once for the initial tree (unless vectors are given) and once per co-training
  rebuild; clustering time itself is not included (seconds for 1e4 documents, minutes near 1e5);
* leaf negatives and subtree representatives cost ``negative_seconds_per_sequence`` (default: the document
  cost scaled by negative_max_length / max_length);
* validation runs epochs + 1 times with ``select="best"``, twice (start and end) with ``"last"``, encoding the
  pool (the whole corpus up to ``val_pool`` documents) and the val queries; ICT runs hold out at least
  min(ICT_MIN_VAL, pairs / 10) pseudo-queries;
* a step encodes each text once: the documents of a step count as the distinct ones expected among its
  random draws (which matters on small corpora; queries repeated in a batch are not deduplicated).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .config import TrainConfig
from .gradcache import auto_grad_chunk
from .validation import ICT_MIN_VAL


@dataclass(frozen=True)
class LoopEstimate:
    """What :func:`estimate_seconds` expects of ``train(...)``: seconds on the measured device, and the run's shape.

    Attributes:
        total_seconds: train + tree + validation + teacher seconds.
        train_seconds: the steps; tree_seconds: corpus encodes for trees (``rebuild_seconds`` of them the
            co-training re-encodes, ``rebuilds`` of them); validation_seconds: ``validations`` validations;
            teacher_seconds: the self signal's teacher encoding its queries.
        steps, steps_per_epoch, seconds_per_step; sequences_per_step (texts a step encodes), negatives_per_pair,
            reps_per_step (subtree representatives); depth and memory_levels of the tree; n_train_pairs, n_val_pairs.
        assumptions: what the model assumes, in words.
    """
    total_seconds: float
    train_seconds: float
    tree_seconds: float
    teacher_seconds: float
    validation_seconds: float
    validations: int
    rebuild_seconds: float
    steps: int
    steps_per_epoch: int
    seconds_per_step: float
    sequences_per_step: float
    negatives_per_pair: float
    reps_per_step: float
    depth: int
    memory_levels: int
    rebuilds: int
    n_train_pairs: int
    n_val_pairs: int
    assumptions: tuple[str, ...]


@dataclass(frozen=True)
class TimeEstimate:
    """A training run's time on this machine, before it starts (:meth:`Workspace.estimate`). Seconds throughout.

    Attributes:
        loop: the training loop's estimate, at speeds measured here (:class:`LoopEstimate`).
        encode_seconds: the corpus encodes around the loop (the zero-shot baseline if missing, the final encode).
        model_stages: the run's stages (baseline, prepare, steps, finish) as the model puts them; ``stages`` the
            same scaled by how the last ``calibration_runs`` finished runs here compared with their estimates
            (``calibration_ratios``: measured over estimated, per stage).
        train_factor, negative_train_factor: forward+backward over an inference encode, measured at the
            config's max_length and negative_max_length.
        pairs: training pairs the config yields (validation included); device: where it runs.
        assumptions: the loop's, with the measured factors and the calibration.
    """
    loop: LoopEstimate
    encode_seconds: float
    model_stages: dict[str, float]
    stages: dict[str, float]
    calibration_runs: int
    calibration_ratios: dict[str, float]
    train_factor: float
    negative_train_factor: float
    pairs: int
    device: str
    assumptions: tuple[str, ...]

    @property
    def total_seconds(self) -> float:
        """The whole run: the sum of its calibrated stages."""
        return sum(self.stages.values())


def tree_shape(n_docs: int, branching: int) -> list[int]:
    """Expected nodes per level (level 1 first) of an agglomerative tree over ``n_docs`` documents."""
    counts, n = [], max(1, int(n_docs))
    while True:
        n = math.ceil(n / branching)
        counts.append(n)
        if n <= branching:
            break
    return counts[::-1]


def estimate_seconds(config: TrainConfig, n_pairs: int, n_docs: int, seconds_per_sequence: float, *,
                     query_seconds_per_sequence: float | None = None, tree: Any = None,
                     have_initial_vectors: bool = False, n_val_pairs: int | None = None,
                     grad_chunk: int | None = None, device: Any = None,
                     train_factor: float = 3.0, negative_seconds_per_sequence: float | None = None,
                     negative_train_factor: float | None = None,
                     encode_seconds_per_sequence: float | None = None) -> LoopEstimate:
    """Estimated wall time of ``train(...)`` with ``config`` (see the module docstring for the model).

    Args:
        n_pairs: all pairs passed to ``train`` (validation is held out of them unless ``n_val_pairs``).
        n_docs: corpus size.
        seconds_per_sequence: from :func:`measure_seconds_per_sequence` on the target device, one batch padded
            to its longest text (as a training step's chunks are).
        negative_train_factor: ``train_factor`` measured at ``negative_max_length`` (default ``train_factor``).
        encode_seconds_per_sequence: the same with ``encode``'s own batching (sorted by length, short texts
            packed), as the corpus and validation encodes run; default ``seconds_per_sequence``.
        tree: an existing Tree of the corpus, for exact depth / leaf sizes (optional).
        grad_chunk: as in ``train``: None = automatic for ``device`` (per text kind, see
            ``auto_grad_chunk``); an int applies to queries and documents alike.
        device: the device the run will use (None = cpu); only used when ``grad_chunk`` is None.

    Returns a :class:`LoopEstimate`.
    """
    c = config
    sps = float(seconds_per_sequence)
    qsps = float(query_seconds_per_sequence) if query_seconds_per_sequence is not None \
        else sps * min(1.0, c.query_max_length / c.max_length)
    nsps = float(negative_seconds_per_sequence) if negative_seconds_per_sequence is not None \
        else sps * min(1.0, c.negative_max_length / c.max_length)
    esps = float(encode_seconds_per_sequence) if encode_seconds_per_sequence is not None else sps
    if n_val_pairs is None:
        n_val_pairs = int(math.ceil(c.val_fraction * n_pairs)) if c.val_fraction > 0 and n_pairs > 1 else 0
        if not n_val_pairs and c.signal in ("ict", "joint", "self") and n_pairs >= 20:
            n_val_pairs = min(ICT_MIN_VAL, n_pairs // 10)  # the hold-out of validation.hold_out
    n_train = max(0, n_pairs - n_val_pairs)
    if c.max_pairs:
        n_train = min(n_train, c.max_pairs)
    B = c.batch_size
    steps_per_epoch = math.ceil(n_train / B) if n_train else 0
    steps = c.epochs * steps_per_epoch

    if tree is not None:
        depth = int(tree.depth)
        counts = [len(tree.nodes_at(t)) for t in range(1, depth + 1)]
        leaf_size = np.bincount(tree.doc_leaf, minlength=tree.n_nodes)[tree.doc_leaf]
        exp_siblings = float(np.mean(np.minimum(c.siblings, leaf_size - 1))) if len(leaf_size) else 0.0
    else:
        counts = tree_shape(n_docs, c.branching)
        depth = len(counts)
        exp_siblings = float(min(c.siblings, max(0.0, 1.25 * c.branching - 1), max(0, n_docs - 1)))
    M = c.resolve_memory_levels(depth, sum(counts))
    negs = {"siblings": exp_siblings, "random": float(min(c.siblings, n_docs - 1)), "in-batch": 0.0,
            "teacher": float(min(c.siblings, n_docs - 1))}[c.negatives]

    reps = 0.0
    if c.level_loss:
        for t in range(M + 1, depth + 1):
            parents = 1 if t == 1 else min(B, counts[t - 2])
            reps += min(counts[t - 1], parents * c.branching)
    b_eff = min(B, n_train) if n_train else B
    # a step encodes each text once: draws of b_eff x (1 + negs) documents from n_docs hold this many distinct
    # ones on average (drawn at random: N (1 - (1 - 1/N)^m)); what matters on small corpora
    draws = b_eff * (1 + negs)
    distinct = n_docs * (1 - (1 - 1 / n_docs) ** draws) if n_docs > 1 else draws
    docs_per_step = max(float(b_eff), min(draws, distinct)) + reps
    dev = device if device is not None else "cpu"
    chunk_d = auto_grad_chunk(dev, c.max_length) if grad_chunk is None else grad_chunk
    chunk_n = auto_grad_chunk(dev, c.negative_max_length) if grad_chunk is None else grad_chunk
    chunk_q = auto_grad_chunk(dev, c.query_max_length) if grad_chunk is None else grad_chunk
    gc_doc = 4 / 3 if chunk_d and b_eff > chunk_d else 1.0
    gc_neg = 4 / 3 if chunk_n and docs_per_step - b_eff > chunk_n else 1.0
    gc_q = 4 / 3 if chunk_q and b_eff > chunk_q else 1.0
    neg_factor = train_factor if negative_train_factor is None else float(negative_train_factor)
    step_s = train_factor * (b_eff * qsps * gc_q + b_eff * sps * gc_doc) \
        + neg_factor * (docs_per_step - b_eff) * nsps * gc_neg
    train_s = steps * step_s

    rebuilds = sum(1 for k in range(1, c.epochs) if c.recluster_every and k % c.recluster_every == 0)
    rebuild_s = rebuilds * n_docs * esps
    tree_s = (0 if have_initial_vectors else n_docs * esps) + rebuild_s
    pool = min(n_docs, c.val_pool) if n_val_pairs else 0
    n_validations = c.epochs + 1 if c.select == "best" else 2
    val_s = n_validations * (pool * esps + n_val_pairs * qsps) if n_val_pairs else 0.0
    teacher_s = (n_train + n_val_pairs) * qsps if c.signal == "self" else 0.0  # the teacher's query encode

    return LoopEstimate(
        total_seconds=train_s + tree_s + val_s + teacher_s, train_seconds=train_s, tree_seconds=tree_s,
        teacher_seconds=teacher_s, validation_seconds=val_s, validations=n_validations if n_val_pairs else 0,
        rebuild_seconds=rebuild_s, steps=steps, steps_per_epoch=steps_per_epoch, seconds_per_step=step_s,
        sequences_per_step=b_eff + docs_per_step, negatives_per_pair=negs, reps_per_step=reps, depth=depth,
        memory_levels=M, rebuilds=rebuilds, n_train_pairs=n_train, n_val_pairs=n_val_pairs,
        assumptions=(
            f"forward+backward = {train_factor:g}x an inference encode",
            "gradient caching (x4/3) when a step's documents exceed grad_chunk" if chunk_d
            else "all of a step's texts in one pass",
            "leaf negatives per pair: " + ("expected sibling count from the tree" if tree is not None and
                                           c.negatives == "siblings" else f"{negs:.1f}"),
            "clustering time not included; corpus encodes for trees are",
            "a step's documents counted once each (the distinct ones expected among its draws)",
        ))


def measure_seconds_per_sequence(encoder, sample_texts: Sequence[str], max_length: int,
                                 batch_size: int | None = 32, repeats: int = 2) -> float:
    """Seconds per sequence of ``encoder.encode`` on ``sample_texts`` (after a 2-text warm-up; the fastest of
    ``repeats`` passes). ``batch_size`` 32 puts ~32 texts in one batch padded to the longest (a training
    chunk's cost); None uses ``encode``'s own batching (a corpus encode's cost: far less padding where lengths
    vary).

    Use ~32-64 texts drawn at random from the corpus (their length matters, not their content), on the
    device the run will use. Inference cost only; the estimate multiplies by ``train_factor``.
    """
    texts = list(sample_texts)
    if not texts:
        raise ValueError("need at least one sample text")
    encoder.encode(texts[:2], max_length=max_length)
    return _fastest(encoder, lambda: encoder.encode(texts, batch_size=batch_size, max_length=max_length),
                    repeats) / len(texts)


def _fastest(encoder, fn, repeats: int = 2) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``fn`` (the first pass of a batch shape also pays one-off
    kernel set-up), waiting for ``encoder``'s GPU where it has one."""
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if getattr(encoder, "device", None) is not None and str(encoder.device).startswith("cuda"):
            import torch
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_train_factor(encoder, sample_texts: Sequence[str], max_length: int, batch_size: int = 16) -> float:
    """Seconds per sequence of a forward + backward pass (``encoder.embed``, gradients on, padded to the
    batch's longest text, as training does) over those of an inference ``encode`` of the same texts; >= 1.

    The gradients are dropped afterwards and the weights are not changed, so the encoder can be one that
    serves searches.
    """
    import torch
    texts = list(sample_texts)[:batch_size]
    if not texts:
        raise ValueError("need at least one sample text")
    infer = measure_seconds_per_sequence(encoder, texts, max_length, batch_size=batch_size)
    params = [p for p in encoder.parameters() if p.requires_grad]
    try:
        with torch.enable_grad():
            encoder.embed(texts[:2], max_length=max_length).sum().backward()  # warm-up
            train = _fastest(encoder, lambda: encoder.embed(texts, max_length=max_length).sum().backward()) \
                / len(texts)
    finally:
        for p in params:
            p.grad = None
    return max(1.0, train / infer)


def run_stages(est: LoopEstimate, n_docs: int, doc_seconds_per_sequence: float, *, baseline: bool,
               final_encode: bool) -> dict[str, float]:
    """Split an :func:`estimate_seconds` result into the stages a run reports (see
    :mod:`~hce_engine.training.run_clock`): ``baseline`` (the starting encoder's corpus encode, when the run must
    make one), ``prepare`` (the teacher's queries and the starting validation), ``steps`` (training, the
    validations and co-training rebuilds between epochs) and ``finish`` (the last validation and, when
    ``final_encode``, the trained encoder's corpus encode at the index's length)."""
    corpus_s = n_docs * float(doc_seconds_per_sequence)
    n_val = est.validations
    each_val = est.validation_seconds / n_val if n_val else 0.0
    return {
        "baseline": corpus_s if baseline else 0.0,
        "prepare": est.teacher_seconds + each_val,
        "steps": est.train_seconds + max(0, n_val - 2) * each_val + est.rebuild_seconds,
        "finish": (each_val if n_val >= 2 else 0.0) + (corpus_s if final_encode else 0.0),
    }
