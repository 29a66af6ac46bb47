"""HCE training: pairs (supervised, ICT), the sibling sampler, the hierarchical loss and the training loop.

Imports only torch, numpy, transformers and the standard library (and the project's tree/encoder types), so
it runs on a GPU machine without the app's other dependencies. It never touches the database: the caller
wires ``train``'s callbacks to storage.
"""
from .config import MEMORY_NODE_LIMIT, PRESET_HELP, PRESETS, TrainConfig
from .distill import TeacherDistillationLoss
from .estimate import estimate_seconds, measure_seconds_per_sequence, measure_train_factor, tree_shape
from .events import EpochEvent, StepEvent, TrainResult
from .gradcache import auto_grad_chunk
from .loop import seed_everything, train
from .loss import HierarchicalContrastiveLoss
from .optim import lr_factor
from .pairs import (
    Pair,
    ict_pairs,
    make_pairs,
    mix_pairs,
    self_pairs,
    split_sentences,
    split_validation,
    supervised_pairs,
)
from .sampler import HierarchicalSampler, HierBatch, LevelCandidates
from .teacher import HybridTeacher

__all__ = [
    "TrainConfig", "PRESETS", "PRESET_HELP", "MEMORY_NODE_LIMIT",
    "Pair", "supervised_pairs", "ict_pairs", "self_pairs", "mix_pairs", "make_pairs", "split_validation",
    "split_sentences",
    "HierarchicalSampler", "HierBatch", "LevelCandidates",
    "HierarchicalContrastiveLoss", "TeacherDistillationLoss", "HybridTeacher",
    "train", "TrainResult", "StepEvent", "EpochEvent", "auto_grad_chunk", "lr_factor", "seed_everything",
    "estimate_seconds", "measure_seconds_per_sequence", "measure_train_factor", "tree_shape",
]
