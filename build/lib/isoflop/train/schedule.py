"""Learning-rate schedules, as pure functions of the step.

All three share the same linear warmup, given in steps: step s < warmup_steps runs at
lr * (s + 1) / warmup_steps. After warmup:

    cosine    cosine from lr down to min_lr_frac * lr, reached at the last step
    wsd       warmup-stable-decay (Hagele et al. 2024): constant lr, then over the last
              decay_steps = round(decay_frac * total_steps) steps a decay to min_lr_frac * lr,
              linear or "1-sqrt" (lr_min + (lr - lr_min) * (1 - sqrt(progress)), their best shape)
    constant  lr forever: the trunk that wsd runs of every length branch from

A wsd run and the constant trunk with the same warmup agree exactly on every step before the decay,
which is what lets one trunk serve many token budgets.
"""

from __future__ import annotations

import math

import numpy as np

from isoflop.errors import UserError

SCHEDULES = ("cosine", "wsd", "constant")
DECAY_SHAPES = ("linear", "1-sqrt")


def decay_start(total_steps: int, decay_frac: float) -> int:
    """The first step of a wsd run's decay phase."""
    if not 0.0 < decay_frac <= 1.0:
        raise UserError(f"train.decay_frac={decay_frac} must be in (0, 1]")
    return total_steps - max(1, round(decay_frac * total_steps))


def lr_schedule(
    total_steps: int,
    *,
    lr: float,
    schedule: str,
    warmup_steps: int,
    min_lr_frac: float = 0.1,
    decay_frac: float = 0.2,
    decay_shape: str = "linear",
) -> np.ndarray:
    """The learning rate of each step 0 .. total_steps - 1, as a float64 array."""
    if schedule not in SCHEDULES:
        raise UserError(f"train.schedule={schedule!r}: expected one of {SCHEDULES}")
    if decay_shape not in DECAY_SHAPES:
        raise UserError(f"train.decay_shape={decay_shape!r}: expected one of {DECAY_SHAPES}")
    if warmup_steps < 0 or total_steps < 1:
        raise UserError(f"train: need warmup_steps >= 0 and at least one step, got {warmup_steps} and {total_steps}")
    steps = np.arange(total_steps, dtype=np.float64)
    min_lr = min_lr_frac * lr
    rates = np.full(total_steps, lr, dtype=np.float64)

    if schedule == "cosine":
        if warmup_steps >= total_steps:
            raise UserError(f"train.warmup_steps={warmup_steps} leaves no cosine phase in {total_steps} steps")
        progress = (steps - warmup_steps + 1) / (total_steps - warmup_steps)
        rates = min_lr + (lr - min_lr) * 0.5 * (1.0 + np.cos(math.pi * progress))
    elif schedule == "wsd":
        start = decay_start(total_steps, decay_frac)
        if warmup_steps > start:
            raise UserError(
                f"train.warmup_steps={warmup_steps} runs into the wsd decay, which starts at step {start} of {total_steps}"
            )
        progress = np.clip((steps - start + 1) / (total_steps - start), 0.0, 1.0)
        shape = progress if decay_shape == "linear" else np.sqrt(progress)
        rates = np.where(steps >= start, lr - (lr - min_lr) * shape, lr)

    warm = steps < warmup_steps
    rates[warm] = lr * (steps[warm] + 1) / warmup_steps
    return rates
