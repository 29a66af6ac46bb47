"""Every training setting in one dataclass, with defaults from the method notes and help for the app.

:class:`TrainConfig` is stored as JSON with each run (``to_dict`` / ``from_dict``), validated before a run
starts (``validate``) and built from named presets (``TrainConfig.preset("quick", epochs=2)``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..settings import BUILDERS, DEFAULT_MAX_LENGTH, device_error
from ..settings import setting as _f
from .pairs import PSEUDO_QUERIES

SIGNALS = ("supervised", "ict", "joint", "self")
NEGATIVES = ("siblings", "random", "in-batch", "teacher")
LR_SCHEDULES = ("constant", "linear")
BATCHINGS = ("random", "tree")
SELECTIONS = ("last", "best")
PRECISIONS = ("auto", "bf16", "fp32")

#: With ``memory_levels=None`` every tree level gets learned memory vectors when the tree has at most this
#: many non-root nodes; above it, all levels are represented by sampled member documents (M = 0).
MEMORY_NODE_LIMIT = 50_000


@dataclass
class TrainConfig:
    """Settings of one HCE training run (defaults: the reference settings of ``docs/method.md``)."""

    signal: str = _f("supervised", "Training signal: supervised (query, relevant document) pairs from qrels; "
                     "ict (Inverse Cloze Task: a sentence finds its own document, no labels); joint (both, "
                     "mixed in each batch); or self (no labels: a sentence of a document is a pseudo-query and "
                     "the engine's own hybrid search, BM25 + the starting encoder, scores the other documents "
                     "for it; the encoder learns to rank them as the hybrid does).", SIGNALS)
    split: str = _f("train", "Query split whose qrels supply the supervised pairs.")
    negatives: str = _f("siblings", "Leaf negatives per pair: siblings (documents from the positive's leaf "
                        "cluster, the HCE signal), random (same count, uniformly drawn), in-batch (none extra).",
                        NEGATIVES)
    level_loss: bool = _f(True, "Add the per-level losses: at every tree level the query must pick the "
                          "positive's branch among its sibling branches.")
    epochs: int = _f(3, "Passes over the training pairs.")
    batch_size: int = _f(32, "Pairs per step; the other positives of a batch are in-batch negatives.")
    batching: str = _f("random", "How pairs are grouped into batches: random (shuffled), or tree (pairs whose "
                       "positives are neighbours in the tree share a batch, so the in-batch negatives are hard "
                       "ones at no extra encoding cost).", BATCHINGS)
    siblings: int = _f(15, "S: sibling (or random) negative documents per pair, encoded with gradient. "
                       "Time per step grows with S (the estimate before a run shows by how much).")
    branching: int = _f(10, "b: branching factor of the document tree (about b children per node).")
    builder: str = _f("agglomerative", "Tree builder: agglomerative (bottom-up spherical k-means, as in the "
                      "paper, up to ~1e5 documents), divisive (top-down, scalable) or auto.", BUILDERS)
    memory_levels: int | None = _f(None, "M: top tree levels represented by learned memory vectors "
                                   "(initialised from centroids); lower levels use a sampled member document. "
                                   f"Empty = all levels when the tree has <= {MEMORY_NODE_LIMIT:,} nodes, else 0.")
    tau: float = _f(0.05, "Temperature of the contrastive softmax (scores are cosine / tau).")
    lr: float = _f(2e-5, "Learning rate of the encoder (AdamW).")
    memory_lr: float = _f(1e-3, "Learning rate of the memory vectors.")
    warmup_ratio: float = _f(0.1, "Fraction of steps with linear learning-rate warm-up.")
    lr_schedule: str = _f("constant", "Learning rate after the warm-up: constant (the reference run) or linear "
                          "decay to 0 (about half the summed learning rate: less change, less gain; SciFact, "
                          "standard preset, seed 0: 0.704 nDCG@10 against 0.742).", LR_SCHEDULES)
    weight_decay: float = _f(0.01, "AdamW weight decay of the encoder weights (not biases/norms/memory).")
    grad_clip: float = _f(0.0, "Gradient-norm clipping (0 = off, the reference), applied to encoder and memory "
                          "separately. 1.0 changed nothing measurable on SciFact (standard preset, seed 0: 0.740 "
                          "nDCG@10 against 0.742).")
    max_length: int = _f(DEFAULT_MAX_LENGTH, "Document length limit in tokens during training (queries' positives).")
    sibling_max_length: int = _f(0, "Length limit in tokens of the negative documents (siblings, random, "
                                 "subtree representatives); 0 = max_length. Shorter is much cheaper: the S "
                                 "negatives are most of a step's tokens.")
    query_max_length: int = _f(64, "Query length limit in tokens during training.")
    recluster_every: int = _f(0, "E: co-training; every E epochs re-encode the corpus, rebuild the tree and "
                              "reset the memory vectors (0 = never).")
    bidirectional: bool = _f(False, "Also score each positive document against the batch's queries.")
    ict_remove_prob: float = _f(0.9, "ICT: probability that the pseudo-query sentence is removed from its "
                                "document.")
    ict_min_words: int = _f(4, "ICT: minimum words of a sentence to serve as a pseudo-query.")
    joint_ict_ratio: float = _f(0.5, "Joint signal: fraction of ICT pairs in the training mix.")
    teacher_weight: float = _f(0.8, "Self signal: dense weight of the hybrid teacher (its BM25 weight is 1 minus "
                               "this), fused as hybrid search fuses them (0.8 = hybrid search's default).")
    teacher_tau: float = _f(0.0, "Self signal: temperature of the teacher's softmax over the fused scores (0 = "
                            "auto: the dense part on the student's scale, so that with teacher_weight 1 the "
                            "teacher is the starting encoder itself).")
    pseudo_query: str = _f("sentence", "Self signal: each document's pseudo-query: a random sentence, the lead "
                           "(first) sentence, the salient one (its words weigh most in the document by BM25) or "
                           "the title (where it has ict_min_words words; else a random sentence).", PSEUDO_QUERIES)
    anchor: float = _f(0.0, "Weight of an L2 pull of the encoder's weights towards the starting weights (guards "
                       "against forgetting; 0 = off).")
    max_pairs: int = _f(0, "Train on at most this many pairs (a seeded sample, after the validation hold-out); "
                        "0 = all. Keeps the quick preset quick on large corpora.")
    val_fraction: float = _f(0.0, "Fraction of training queries held out from training to validate on "
                             "(0 = train on every pair, the reference). Held-out pairs are not trained on: 0.1 cost "
                             "0.023 nDCG@10 on SciFact (standard preset, seed 0: 0.719 against 0.742). ICT runs hold "
                             "out at least 100 pseudo-queries whatever this says: without labels, validation is their "
                             "only check.")
    val_pool: int = _f(20_000, "Validation ranks the held-out queries against the whole corpus when it has at "
                       "most this many documents, else against this many: the positives' tree neighbourhoods "
                       "(their leaf and parent clusters, the hardest candidates), then random documents.")
    select: str = _f("last", "Weights the run hands back: last (the final epoch, the reference) or best (the "
                     "epoch with the best validation MRR@10, the starting encoder included; with few held-out "
                     "queries it can pick noise: SciFact, standard, 10% held out: 0.705 nDCG@10 against 0.719 "
                     "for the last epoch).", SELECTIONS)
    precision: str = _f("auto", "auto: bf16 autocast where the hardware runs it fast (CUDA, CPUs with "
                        "AVX-512 BF16 or AMX; ~1.8x faster training on such CPUs), else fp32. Weights stay "
                        "float32.", PRECISIONS)
    seed: int = _f(0, "Random seed (tree, sampling, batching, dropout): same seed, same run, bit for bit on one "
                   "machine with the same thread count and precision (docs/method.md section 8).")
    device: str = _f("auto", "auto (GPU when present), cpu, cuda or cuda:N.")
    nproc: int = _f(1, "Processes that train the run together (torch.distributed data parallel): each embeds its "
                    "share of every batch, the loss sees the whole batch, gradients are summed; up to the GPUs "
                    "(device cuda or auto), or the CPU cores (on a CPU they add no compute: they share its "
                    "cores). Not with the self signal. Under torchrun (several machines, README.md) the run has the "
                    "ranks torchrun starts.")
    model: str | None = _f(None, "Starting encoder folder (empty = the bundled all-MiniLM-L6-v2).")

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every setting."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_dict`. Unknown keys raise ValueError; missing keys take defaults."""
        if not isinstance(data, dict):
            raise ValueError(f"TrainConfig.from_dict expects a dict, got {type(data).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown training setting(s): {', '.join(unknown)}; "
                             f"known: {', '.join(known)}")
        kwargs = {}
        for k, v in data.items():
            default = known[k].default
            # JSON stores 1e-3 and 1 alike: coerce ints into float settings, floats with integral value into int.
            if isinstance(default, float) and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            elif isinstance(default, int) and not isinstance(default, bool) and isinstance(v, float) \
                    and v.is_integer():
                v = int(v)
            kwargs[k] = v
        return cls(**kwargs)

    @classmethod
    def help(cls) -> dict[str, str]:
        """One-line help per setting, in declaration order (the app shows these)."""
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}

    @classmethod
    def choices(cls) -> dict[str, tuple]:
        """Allowed values of the settings that take one of a fixed set of strings."""
        return {f.name: f.metadata["choices"] for f in dataclasses.fields(cls) if "choices" in f.metadata}

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "TrainConfig":
        """A preset from :data:`PRESETS` with ``overrides`` applied (unknown names raise ValueError)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        data = {**PRESETS[name], **overrides}
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ validation
    def validate(self) -> "TrainConfig":
        """Raise ValueError listing every invalid setting; return self when all are fine."""
        errs: list[str] = []

        def check(ok: bool, msg: str) -> None:
            if not ok:
                errs.append(msg)

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        for name, allowed in self.choices().items():
            check(getattr(self, name) in allowed, f"{name} must be one of {', '.join(allowed)} "
                                                  f"(got {getattr(self, name)!r})")
        check(isinstance(self.split, str) and bool(self.split), "split must be a non-empty split name")
        for name in ("level_loss", "bidirectional"):
            check(isinstance(getattr(self, name), bool), f"{name} must be true or false")
        for name, lo in (("epochs", 1), ("batch_size", 1), ("siblings", 0), ("branching", 2),
                         ("max_length", 8), ("sibling_max_length", 0), ("query_max_length", 4), ("recluster_every", 0),
                         ("ict_min_words", 1), ("val_pool", 0), ("seed", 0), ("max_pairs", 0),
                         ("nproc", 1)):
            v = getattr(self, name)
            check(is_int(v) and v >= lo, f"{name} must be an integer >= {lo} (got {v!r})")
        check(self.memory_levels is None or (is_int(self.memory_levels) and self.memory_levels >= 0),
              f"memory_levels must be empty (auto) or an integer >= 0 (got {self.memory_levels!r})")
        check(is_num(self.tau) and self.tau > 0, f"tau must be > 0 (got {self.tau!r})")
        check(is_num(self.lr) and self.lr > 0, f"lr must be > 0 (got {self.lr!r})")
        check(is_num(self.memory_lr) and self.memory_lr >= 0, f"memory_lr must be >= 0 (got {self.memory_lr!r})")
        check(is_num(self.warmup_ratio) and 0 <= self.warmup_ratio < 1,
              f"warmup_ratio must be in [0, 1) (got {self.warmup_ratio!r})")
        check(is_num(self.weight_decay) and self.weight_decay >= 0,
              f"weight_decay must be >= 0 (got {self.weight_decay!r})")
        check(is_num(self.grad_clip) and self.grad_clip >= 0, f"grad_clip must be >= 0, 0 = off "
                                                              f"(got {self.grad_clip!r})")
        check(is_num(self.ict_remove_prob) and 0 <= self.ict_remove_prob <= 1,
              f"ict_remove_prob must be in [0, 1] (got {self.ict_remove_prob!r})")
        check(is_num(self.joint_ict_ratio) and 0 < self.joint_ict_ratio < 1,
              f"joint_ict_ratio must be in (0, 1) (got {self.joint_ict_ratio!r}); use signal "
              f"'supervised' or 'ict' for a pure signal")
        check(is_num(self.teacher_weight) and 0 <= self.teacher_weight <= 1,
              f"teacher_weight must be in [0, 1] (got {self.teacher_weight!r})")
        check(is_num(self.teacher_tau) and self.teacher_tau >= 0, f"teacher_tau must be >= 0, 0 = auto "
                                                                  f"(got {self.teacher_tau!r})")
        check(self.teacher_weight > 0 or self.teacher_tau > 0 or self.signal != "self",
              "teacher_weight 0 (BM25 alone) needs an explicit teacher_tau > 0")
        check(is_num(self.anchor) and self.anchor >= 0, f"anchor must be >= 0 (got {self.anchor!r})")
        check(self.negatives != "teacher" or self.signal == "self",
              "negatives 'teacher' needs the self signal (only it has a teacher)")
        check(self.sibling_max_length == 0 or self.sibling_max_length >= 8,
              f"sibling_max_length must be 0 (= max_length) or >= 8 (got {self.sibling_max_length!r})")
        check(is_num(self.val_fraction) and 0 <= self.val_fraction <= 0.5,
              f"val_fraction must be in [0, 0.5] (got {self.val_fraction!r})")
        check(device_error(self.device) is None, str(device_error(self.device)))
        check(self.nproc == 1 or self.signal != "self",
              "the self signal trains in one process (nproc 1): its teacher is not shared out")
        check(self.model is None or (isinstance(self.model, str) and bool(self.model)),
              "model must be empty (bundled model) or a folder path")
        if errs:
            raise ValueError("invalid training settings:\n- " + "\n- ".join(errs))
        return self

    # ------------------------------------------------------------------ derived
    @property
    def negative_max_length(self) -> int:
        """Token limit of negative documents (``sibling_max_length`` or ``max_length``)."""
        return self.sibling_max_length or self.max_length

    def resolve_memory_levels(self, depth: int, n_nodes: int) -> int:
        """M for a tree of ``depth`` levels and ``n_nodes`` non-root nodes (see ``memory_levels``)."""
        if self.memory_levels is None:
            return depth if n_nodes <= MEMORY_NODE_LIMIT else 0
        return max(0, min(int(self.memory_levels), depth))


#: Named starting points (measured time and quality: benchmarks/README.md, "SciFact quality bar").
#: ``quick`` shows the mechanics in minutes, not the gain (one epoch at 128 tokens gave HCE no edge over
#: in-batch training on SciFact). ``standard`` is the budget made affordable on a CPU: the reference run with
#: the negatives at 96 tokens under bf16 autocast (at 96 as good as at 128 on SciFact, 2 seeds each, and 1.3x
#: faster). ``full`` is the reference run of docs/method.md section 6 (3
#: epochs, batch 32, S = 15, b = 10, tau 0.05, 256/64 tokens, constant rate after a 10% warm-up, no clipping,
#: every train pair, the last epoch kept).
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"epochs": 1, "siblings": 3, "max_length": 128, "query_max_length": 32, "max_pairs": 512},
    "standard": {"epochs": 3, "batch_size": 32, "siblings": 15, "sibling_max_length": 96, "max_length": 256,
                 "query_max_length": 64, "precision": "auto"},
    "full": {"epochs": 3, "batch_size": 32, "siblings": 15, "branching": 10, "tau": 0.05, "lr": 2e-5,
             "memory_lr": 1e-3, "negatives": "siblings", "level_loss": True, "max_length": 256,
             "query_max_length": 64, "sibling_max_length": 0, "lr_schedule": "constant", "grad_clip": 0.0,
             "val_fraction": 0.0, "select": "last", "warmup_ratio": 0.1, "weight_decay": 0.01},
    "unsupervised": {"signal": "self", "negatives": "in-batch", "batching": "tree", "level_loss": False,
                     "epochs": 2, "batch_size": 32, "max_length": 128, "query_max_length": 64, "max_pairs": 6000,
                     "lr": 2e-5, "val_pool": 2000, "precision": "auto"},
}

#: Where each signal's labels come from, in one sentence (``hce train`` and the Train page say it).
LABEL_SOURCE: dict[str, str] = {
    "supervised": "Labels: your judged (query, relevant document) pairs.",
    "ict": "No labels needed: a sentence of each document is the query for the rest of that document.",
    "joint": "Labels: your judged pairs, mixed with sentences of documents as queries for the rest of them.",
    "self": "No labels needed: a sentence of each document is a pseudo-query, and this engine's own hybrid "
            "search (BM25 + the starting encoder) scores the documents around that document in the tree for it; "
            "the encoder learns to rank them as the hybrid does.",
}

#: The preset the app and ``hce train`` start from when none is named.
DEFAULT_PRESET = "quick"
#: ... and on a corpus without judged training queries (the self signal's preset).
UNLABELLED_PRESET = "unsupervised"

PRESET_HELP: dict[str, str] = {
    "quick": "1 epoch over at most 512 pairs, 3 siblings, 128/32 tokens: minutes, for seeing the mechanics, not "
             "the gain.",
    "standard": "3 epochs, 15 siblings at 96 tokens, bf16 where the CPU has it: the reference budget made "
                "affordable: half an hour to an hour for a few thousand documents on 2 CPU cores. The preset "
                "that shows HCE's gain over in-batch fine-tuning on SciFact (the figure: README.md, Presets).",
    "unsupervised": "No labels needed: 2 epochs over up to 6,000 pseudo-queries (a sentence of a document), each "
                    "taught by the engine's hybrid search over its batch's other documents, batched by the tree "
                    "so they are its source's neighbours (the source itself left out); 128 tokens, bf16 where the "
                    "CPU has it. About 20 minutes for SciFact's 5,183 abstracts on 2 cores; it gained on one of "
                    "SciFact's judged splits and not on the other, so not yet a reliable gain: judge a few queries "
                    "(Search page) to see whether it helps on yours.",
    "full": "The reference run (docs/method.md section 6): 15 siblings at 256 tokens; about 2 h for SciFact on 2 CPU "
            "cores, minutes on a GPU.",
}
