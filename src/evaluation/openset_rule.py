"""The "is this one of our landmarks at all?" rule on plain numpy arrays (no torch), so the service
and the tagger can apply it without importing torch; `src.evaluation.openset` gives the same rule on
torch tensors for training, through these functions, so there is one rule."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MIN_SIDE = 32  # pixels: an image smaller than this a side cannot show a recognisable landmark


def too_small(size: tuple[int, ...]) -> bool:
    """True for an image under MIN_SIDE pixels on a side: never named, whatever the model says."""
    return min(size) < MIN_SIDE


def landmark_confidence(probs: np.ndarray, background: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the best landmark probability and the total probability of the background classes."""
    probs = np.asarray(probs)
    mask = np.ones(probs.shape[-1], dtype=bool)
    mask[np.asarray(list(background), dtype=np.int64)] = False
    best = probs[..., mask].max(axis=-1)
    background_total = probs[..., ~mask].sum(axis=-1) if len(background) else np.zeros_like(best)
    return best, background_total


def is_landmark(probs: np.ndarray, background: Sequence[int], threshold: float) -> np.ndarray:
    """True where the photo is confidently one of the landmarks: the best landmark's probability
    reaches the threshold and beats the "no landmark" classes."""
    best, background_total = landmark_confidence(probs, background)
    return (best >= threshold) & (best >= background_total)


def best_landmark(probs: np.ndarray, background: Sequence[int]) -> np.ndarray:
    """Per row: the index of the most probable landmark (a background class never wins)."""
    scores = np.array(probs, dtype=np.float32, copy=True)
    scores[..., np.asarray(list(background), dtype=np.int64)] = -np.inf
    return scores.argmax(axis=-1)
