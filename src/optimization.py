"""Loss, optimizer and learning-rate schedule."""

from __future__ import annotations

import torch
from torch import nn

OPTIMIZERS = ("sgd", "adam", "adamw")


def get_loss(label_smoothing: float = 0.0) -> nn.CrossEntropyLoss:
    """Cross-entropy; label smoothing (e.g. 0.1) helps from-scratch models generalise."""
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)


def get_optimizer(
    model: nn.Module,
    optimizer: str = "SGD",
    learning_rate: float = 0.01,
    momentum: float = 0.5,
    weight_decay: float = 0,
) -> torch.optim.Optimizer:
    """SGD, Adam or AdamW (any case) over the parameters that require gradients."""
    name = optimizer.lower()
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=learning_rate, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=learning_rate, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")


def get_scheduler(
    optimizer: torch.optim.Optimizer, n_epochs: int, steps_per_epoch: int, warmup_epochs: float = 1.0
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step schedule: linear warm-up, then cosine decay to ~0 at the last step."""
    total = max(1, n_epochs * steps_per_epoch)
    warmup = min(total - 1, int(warmup_epochs * steps_per_epoch))
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total - warmup))
    if warmup <= 0:
        return cosine
    linear = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=warmup)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [linear, cosine], milestones=[warmup])
