"""Loss, optimizer and learning-rate schedule."""

from __future__ import annotations

import math
import time
from typing import Optional

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


class TimeBudgetCosine:
    """Warm-up then cosine decay over a WALL-CLOCK budget instead of a step count.

    On a shared 2-core machine an epoch can take 40 s or 100 s; a step-count schedule then either
    overruns the budget or ends with a high learning rate. Here the learning rate is a function of the
    training time spent so far, and `finished` tells the loop to stop when the budget is used up.
    The elapsed time is part of the state dict, so a resumed run continues the same schedule.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, budget_seconds: float, warmup_fraction: float = 0.03):
        self.optimizer = optimizer
        self.budget = float(budget_seconds)
        self.warmup = warmup_fraction
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.elapsed_before = 0.0
        self._start: Optional[float] = None
        self._set(0.0)

    @property
    def elapsed(self) -> float:
        running = time.perf_counter() - self._start if self._start is not None else 0.0
        return self.elapsed_before + running

    @property
    def finished(self) -> bool:
        return self.elapsed >= self.budget

    def _factor(self, progress: float) -> float:
        if progress < self.warmup:
            return 0.1 + 0.9 * progress / self.warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - self.warmup) / (1 - self.warmup))))

    def _set(self, progress: float) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * self._factor(progress)

    def step(self) -> None:
        if self._start is None:
            self._start = time.perf_counter()
        self._set(self.elapsed / self.budget)

    def state_dict(self) -> dict:
        return {"elapsed": self.elapsed, "budget": self.budget, "base_lrs": self.base_lrs}

    def load_state_dict(self, state: dict) -> None:
        self.elapsed_before, self.budget, self.base_lrs = state["elapsed"], state["budget"], state["base_lrs"]
        self._start = None
