"""Fine-tune a backbone's tail (its last block + pooling) and a new head on cached trunk activations.

The trunk is frozen and its activations are cached (`src.features.cached_activations`), so an epoch
costs only the tail's forward and backward passes: about 14 s for 9,000 views of EfficientNet-Lite0
on 2 CPU cores. BatchNorm layers keep their ImageNet statistics (eval mode): with a few thousand
photos, re-estimating them adds noise, not accuracy. The epoch kept is the best on validation.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from src.training.features import fast_autocast
from src.training.finetune_config import TailFinetuneConfig  # defined apart so that `--help` needs no torch; imported from here too


@dataclass
class FinetuneResult:
    best_epoch: int
    best_valid_score: float
    history: list[dict] = field(default_factory=list)  # per epoch: loss, valid score, seconds


def class_weights(labels: torch.Tensor, power: float, n_classes: int) -> Optional[torch.Tensor]:
    """Per-class loss weights ~ count^-power, scaled so that the average training row weighs 1
    (None for power 0: plain cross-entropy). Classes absent from `labels` weigh 0."""
    if power == 0:
        return None
    counts = torch.bincount(labels, minlength=n_classes).float()
    weights = torch.where(counts > 0, counts.clamp(min=1) ** -power, torch.zeros_like(counts))
    return weights * len(labels) / (weights * counts).sum()


class L2Normalize(nn.Module):
    """Features scaled to unit length: the end of the tail under a cosine classifier."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1)


def normalized_tail(tail: nn.Module, config: TailFinetuneConfig) -> nn.Module:
    """The tail to fine-tune and score with: `tail` itself, or `tail` then L2Normalize when the
    config asks for a cosine classifier (its head is then a plain Linear on unit features)."""
    return nn.Sequential(tail, L2Normalize()) if config.cosine_scale > 0 else tail


class _CosineLinear(nn.Module):
    """scale x cos(feature, class weight), training `head`'s weight (NormSoftmax); `fold` turns it
    into the plain Linear that gives the same logits on unit features."""

    def __init__(self, head: nn.Linear, scale: float):
        super().__init__()
        self.head, self.scale = head, scale
        if not head.weight.detach().abs().sum():  # a zero head has no direction to normalise
            nn.init.normal_(head.weight, std=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.linear(F.normalize(x, dim=1), F.normalize(self.head.weight, dim=1))

    @torch.no_grad()
    def fold(self) -> None:
        self.head.weight.copy_(self.scale * F.normalize(self.head.weight, dim=1))
        self.head.bias.zero_()


def _freeze_batchnorm(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def finetune_tail(
    tail: nn.Module,
    head: nn.Linear,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    valid_x: Optional[torch.Tensor],
    valid_score: Optional[Callable[[torch.Tensor], float]],
    config: TailFinetuneConfig = TailFinetuneConfig(),
    progress: bool = True,
) -> FinetuneResult:
    """Train `tail` -> dropout -> `head` on cached activations `train_x` [N, C, H, W] with labels `train_y`.

    valid_score(logits of valid_x) -> a number to maximise (e.g. accuracy); after every epoch the
    best-so-far weights are kept, and `tail` and `head` end up holding the best epoch's weights.
    valid_x None (a refit on every photo, its length chosen beforehand): the last epoch is kept.
    """
    if len(train_x) != len(train_y):
        raise ValueError(f"{len(train_x)} activations but {len(train_y)} labels")
    if config.epochs < 1:
        raise ValueError("epochs must be at least 1")
    with torch.random.fork_rng():  # dropout draws from the global generator: seed it, leave the caller's alone
        torch.manual_seed(config.seed)
        return _finetune(tail, head, train_x, train_y, valid_x, valid_score, config, progress)


def _finetune(tail, head, train_x, train_y, valid_x, valid_score, config, progress) -> FinetuneResult:
    generator = torch.Generator().manual_seed(config.seed)
    if config.cosine_scale > 0 and not isinstance(list(tail.modules())[-1], L2Normalize):
        raise ValueError("a cosine classifier reads unit features: fine-tune normalized_tail(tail, config)")
    if config.cosine_margin and config.cosine_scale <= 0:
        raise ValueError("cosine_margin is a margin on cosines: it needs cosine_scale > 0")
    classifier = _CosineLinear(head, config.cosine_scale) if config.cosine_scale > 0 else head
    model = nn.Sequential(tail, nn.Dropout(config.dropout), classifier).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in tail.parameters() if p.requires_grad], "lr": config.tail_lr},
            {"params": head.parameters(), "lr": config.head_lr},
        ],
        weight_decay=config.weight_decay,
    )
    steps_per_epoch = math.ceil(len(train_x) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[config.tail_lr, config.head_lr], total_steps=config.epochs * steps_per_epoch, pct_start=config.warmup_fraction
    )

    # The averaged weights are what gets scored and kept; BatchNorm is frozen, so no statistics to redo.
    average = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(config.ema_decay)) if config.ema_decay > 0 else None
    kept = model if average is None else average.module
    mix = np.random.default_rng(config.seed)
    weights = class_weights(train_y, config.class_balance, head.out_features)

    @torch.no_grad()
    def score() -> float:
        kept.eval()
        logits = torch.cat([kept(valid_x[i : i + 256].float()) for i in range(0, len(valid_x), 256)])
        return valid_score(logits)

    result = FinetuneResult(best_epoch=-1, best_valid_score=-math.inf)
    best_state = None
    start = time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        _freeze_batchnorm(model)
        order = torch.randperm(len(train_x), generator=generator)
        total_loss = 0.0
        for i in tqdm(range(0, len(order), config.batch_size), desc=f"fine-tune {epoch + 1}/{config.epochs}", ncols=90, disable=not progress, leave=False):
            batch = order[i : i + config.batch_size]
            x, y = train_x[batch].float(), train_y[batch]
            if config.mixup_alpha > 0:
                lam, partner = float(mix.beta(config.mixup_alpha, config.mixup_alpha)), torch.randperm(len(batch), generator=generator)
                x = lam * x + (1 - lam) * x[partner]
            with fast_autocast(config.bf16):
                logits = model(x.contiguous(memory_format=torch.channels_last)).float()
            if config.cosine_margin:  # CosFace (Wang et al. 2018): the true class must win by the margin
                logits = logits - config.cosine_scale * config.cosine_margin * F.one_hot(y, logits.shape[1])
            loss = F.cross_entropy(logits, y, weight=weights, label_smoothing=config.label_smoothing)
            if config.mixup_alpha > 0:
                loss = lam * loss + (1 - lam) * F.cross_entropy(logits, y[partner], weight=weights, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if average is not None:
                average.update_parameters(model)
            total_loss += loss.item() * len(batch)
        valid = None if valid_x is None else score()
        result.history.append({"epoch": epoch, "loss": total_loss / len(order), "valid_score": valid, "seconds": time.perf_counter() - start})
        if progress:
            print(f"fine-tune epoch {epoch + 1}/{config.epochs}: loss {total_loss / len(order):.3f}" + ("" if valid is None else f", valid {valid:.4f}"), flush=True)
        if valid is not None and valid > result.best_valid_score:
            result.best_epoch, result.best_valid_score = epoch, valid
            best_state = copy.deepcopy(kept.state_dict())
    if valid_x is None:
        result.best_epoch, result.best_valid_score = config.epochs - 1, math.nan
        best_state = kept.state_dict()
    model.load_state_dict(best_state)
    model.eval()
    if isinstance(classifier, _CosineLinear):
        classifier.fold()
    return result
