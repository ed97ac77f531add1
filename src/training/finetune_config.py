"""How the backbone's tail and head are fine-tuned (`src.training.finetune`): a plain dataclass,
apart from the training code so that recipes and `python -m src train --help` load without torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class TailFinetuneConfig:
    """Fine-tuning the tail and head on cached activations (defaults chosen on a validation split: docs/experiments.md)."""

    epochs: int = 6  # passes over the cached activations; the best epoch on validation is kept
    batch_size: int = 64  # activation maps per optimiser step
    tail_lr: float = 1e-3  # peak learning rate of the backbone's tail (AdamW, one-cycle)
    head_lr: float = 3e-3  # peak learning rate of the new classifier head
    weight_decay: float = 0.05  # AdamW weight decay
    label_smoothing: float = 0.1  # cross-entropy label smoothing
    dropout: float = 0.2  # on the pooled features, during training only
    warmup_fraction: float = 0.15  # one-cycle schedule: warm up, then cosine down to ~0
    mixup_alpha: float = 0.0  # > 0: mix pairs of activation maps and their labels (lambda ~ Beta(a, a))
    ema_decay: float = 0.0  # > 0: score and keep an exponential moving average of the weights
    class_balance: float = 0.0  # loss weight of a class ~ (its training rows)^-class_balance: 0 none, 0.5 inverse square root
    cosine_scale: float = 0.0  # > 0: a cosine classifier (unit features and weights, logits x this scale); the tail must end in L2Normalize (`normalized_tail`)
    cosine_margin: float = 0.0  # > 0 with cosine_scale: CosFace, the true class's cosine lowered by this margin while training
    seed: int = 0  # shuffling, dropout and mixup seed
    bf16: Optional[bool] = None  # bfloat16 autocast (default: where the CPU computes bfloat16 natively)
