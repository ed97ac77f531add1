"""The "is this one of our landmarks at all?" rule, shared by training (to choose the threshold on
validation data) and by the recognizer (to apply it)."""

from __future__ import annotations

from typing import Sequence

import torch


def landmark_confidence(probs: torch.Tensor, background: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: the best landmark probability and the total probability of the background classes."""
    mask = torch.ones(probs.shape[-1], dtype=torch.bool)
    mask[list(background)] = False
    best = probs[..., mask].max(dim=-1).values
    background_total = probs[..., ~mask].sum(dim=-1) if len(background) else torch.zeros_like(best)
    return best, background_total


def is_landmark(probs: torch.Tensor, background: Sequence[int], threshold: float) -> torch.Tensor:
    """True where the photo is confidently one of the landmarks: the best landmark's probability
    reaches the threshold and beats the "no landmark" classes."""
    best, background_total = landmark_confidence(probs, background)
    return (best >= threshold) & (best >= background_total)


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
MIN_SIDE = 32  # pixels: an image smaller than this a side cannot show a recognisable landmark
GENERATED_EVAL_SEED = 2026  # generated non-photos for measuring: a seed no training run draws with


def too_small(size: tuple[int, ...]) -> bool:
    """True for an image under MIN_SIDE pixels on a side: never named, whatever the model says."""
    return min(size) < MIN_SIDE


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


