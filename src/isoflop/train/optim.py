"""The optimizer of a run: AdamW with weight decay on matrices only (nanoGPT), one fused kernel, and a
learning-rate factor per parameter group (``lr_scale``) that the loop multiplies into every step's lr, so that
muP's hidden matrices learn at lr / width multiplier (see ``model.Transformer.lr_scale``)."""

from __future__ import annotations

import torch

from isoflop.train.model import Transformer


def parameter_groups(model: Transformer, weight_decay: float) -> list[dict]:
    """Groups of the trainable parameters that share (weight decay, lr_scale), in the order they first appear.
    Under the standard parametrisation these are the matrices (decayed) and the vectors (not decayed)."""
    groups: dict[tuple[float, float], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        key = (weight_decay if param.dim() >= 2 else 0.0, model.lr_scale(name))
        groups.setdefault(key, {"params": [], "weight_decay": key[0], "lr_scale": key[1]})["params"].append(param)
    return list(groups.values())


def make_optimizer(model: Transformer, train) -> torch.optim.AdamW:
    """AdamW over `parameter_groups` with the settings of `train` (a ``TrainConfig``)."""
    return torch.optim.AdamW(parameter_groups(model, train.weight_decay), lr=train.lr,
                             betas=(train.beta1, train.beta2), eps=1e-8, fused=True)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set this step's learning rate: `lr` times each group's ``lr_scale`` (1 in a checkpoint saved before
    groups had one, when every group learnt at the run's lr)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
