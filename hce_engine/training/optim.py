"""The optimizer's setup: AdamW parameter groups and the learning-rate schedule.

:func:`param_groups` gives three groups, each with a ``base_lr`` the schedule scales: the encoder's weights
(``config.lr``, ``weight_decay``), its biases and norms (``lr``, no decay), and the loss's memory vectors
(``memory_lr``, no decay; group 2, which co-training re-points after a rebuild). :func:`lr_factor` is the
multiplier of step ``step`` out of ``total``.
"""
from __future__ import annotations

import math

import torch

from .config import TrainConfig
from .loss import HierarchicalContrastiveLoss


def param_groups(encoder, loss_fn: HierarchicalContrastiveLoss, config: TrainConfig) -> list[dict]:
    """AdamW groups: decayed encoder weights, undecayed biases/norms, the loss's memory (see above)."""
    named = list(encoder.named_parameters()) if hasattr(encoder, "named_parameters") else \
        [(f"p{i}", p) for i, p in enumerate(encoder.parameters())]
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
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
