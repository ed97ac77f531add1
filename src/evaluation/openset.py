"""The "is this one of our landmarks at all?" rule, shared by training (to choose the threshold on
validation data) and by the recognizer (to apply it)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from src.evaluation import openset_rule as rule
from src.evaluation.openset_rule import MIN_SIDE, too_small  # noqa: F401  (re-exported: the rule's names live here too)


def _numpy(probs: torch.Tensor) -> np.ndarray:
    probs = probs.detach().cpu()
    return (probs.float() if probs.dtype in (torch.bfloat16, torch.float16) else probs).numpy()


def landmark_confidence(probs: torch.Tensor, background: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: the best landmark probability and the total probability of the background classes."""
    best, background_total = rule.landmark_confidence(_numpy(probs), background)
    return torch.from_numpy(np.asarray(best)), torch.from_numpy(np.asarray(background_total))


def is_landmark(probs: torch.Tensor, background: Sequence[int], threshold: float) -> torch.Tensor:
    """True where the photo is confidently one of the landmarks: the best landmark's probability
    reaches the threshold and beats the "no landmark" classes (`openset_rule.is_landmark`)."""
    return torch.from_numpy(np.asarray(rule.is_landmark(_numpy(probs), background, threshold)))


def choose_threshold(landmark_probs: torch.Tensor, other_probs: torch.Tensor, background: Sequence[int], max_rejected: float = 0.02) -> dict:
    """The strictest threshold that rejects at most `max_rejected` of the landmark photos, preferring
    fewer non-landmark photos named; chosen on VALIDATION photos. Returns it with both rates there.

    Why the strictest: validation "no landmark" photos come from the object categories the background
    class was trained on, so they are named almost never at any threshold; the photos that slip through
    in use are of unseen things (other landmarks, new objects), which a higher threshold rejects.
    """
    best = None
    for threshold in torch.linspace(0.05, 0.95, 91).tolist():
        rejected = 1 - is_landmark(landmark_probs, background, threshold).float().mean().item()
        named = is_landmark(other_probs, background, threshold).float().mean().item() if len(other_probs) else 0.0
        if rejected > max_rejected and best is not None:
            continue  # (rejection only grows with the threshold: the lowest one is the fallback)
        if best is None or named <= best["named"]:
            best = {"threshold": round(threshold, 3), "rejected": rejected, "named": named}
    return best

BACKGROUND_CLASS = "no_landmark"  # the class learned from photos that show no landmark
GENERATED_EVAL_SEED = 2026  # generated non-photos for measuring: a seed no training run draws with


def closed_set_scores(scores: torch.Tensor, background: list[int]) -> torch.Tensor:
    """Probabilities or logits with the background classes taken out of the race (for "which
    landmark?" metrics). -inf, not -1: a logit can be below -1 and must still lose to a landmark."""
    scores = scores.clone()
    scores[:, background] = -torch.inf
    return scores


def background_indices(classes: list[str]) -> list[int]:
    """Indices of the background classes ("no_landmark") among `classes`; empty without one."""
    return [classes.index(BACKGROUND_CLASS)] if BACKGROUND_CLASS in classes else []


def is_landmark_label(y: torch.Tensor, background: list[int]) -> torch.Tensor:
    """True where the label is a landmark class (not one of the background classes)."""
    return ~torch.isin(y, torch.tensor(background, dtype=torch.long))


def closed_set_accuracy(logits: torch.Tensor, y: torch.Tensor, background: list[int]) -> float:
    """Accuracy on the landmark photos only, answering with the best landmark class."""
    keep = is_landmark_label(y, background)
    return (closed_set_scores(logits[keep], background).argmax(dim=1) == y[keep]).float().mean().item()


