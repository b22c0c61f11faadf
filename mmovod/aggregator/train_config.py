"""Every choice of an aggregator training run, and the learning-rate schedule that follows from it alone.

Plain values only (no torch), so the training tool's parser shows the defaults at once."""
from __future__ import annotations

import math
from dataclasses import dataclass

from mmovod.io.errors import InputError

K_PAIRINGS = ("independent", "same")
VIEW_SAMPLINGS = ("all", "one")


@dataclass
class TrainConfig:
    """Every training choice; saved in each checkpoint. Defaults and their sources: docs/aggregator-training.md."""

    steps: int = 20000
    batch_classes: int = 256
    k_min: int = 1
    k_max: int = 10
    logit_scale: float = 100.0
    lr: float = 1e-4
    weight_decay: float = 0.05
    warmup_steps: int = 1000
    min_lr_ratio: float = 0.01
    grad_clip: float = 1.0
    num_layers: int = 4
    seed: int = 0
    k_pairing: str = "independent"
    view_sampling: str = "all"

    def check(self) -> None:
        if not 1 <= self.k_min <= self.k_max:
            raise InputError(f"need 1 <= --k-min <= --k-max, got {self.k_min} and {self.k_max}")
        if self.batch_classes < 2:
            raise InputError(f"--batch-classes must be at least 2 (the other classes are the negatives), got {self.batch_classes}")
        if self.steps < 1 or self.warmup_steps < 0:
            raise InputError("--steps must be positive and --warmup-steps not negative")
        if self.k_pairing not in K_PAIRINGS:
            raise InputError(f"--k-pairing must be one of {', '.join(K_PAIRINGS)}, got {self.k_pairing!r}")
        if self.view_sampling not in VIEW_SAMPLINGS:
            raise InputError(f"--view-sampling must be one of {', '.join(VIEW_SAMPLINGS)}, got {self.view_sampling!r}")
        if not self.logit_scale > 0:
            raise InputError(f"--logit-scale must be positive, got {self.logit_scale}")
        if not (self.lr > 0 and self.weight_decay >= 0 and 0 <= self.min_lr_ratio <= 1 and self.grad_clip >= 0):
            raise InputError("need --lr > 0, --weight-decay >= 0, 0 <= --min-lr-ratio <= 1 and --grad-clip >= 0 "
                             f"(got {self.lr}, {self.weight_decay}, {self.min_lr_ratio}, {self.grad_clip})")
        if self.num_layers < 1:
            raise InputError(f"--num-layers must be at least 1, got {self.num_layers}")
        if self.seed < 0:
            raise InputError(f"--seed must not be negative, got {self.seed}")

    # Fields that may change when resuming (how long to train), all others must match the checkpoint.
    RESUMABLE_CHANGES = ("steps",)


def lr_factor(step: int, config: TrainConfig) -> float:
    """Linear warm-up over `warmup_steps`, then cosine decay to `min_lr_ratio` at `steps` (0-based step)."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

