"""How a taught landmark wins a photo from the model's own classes, on plain numpy arrays (no torch):
the serving side applies it (`src.serving.recognizer.recognize`, with the reference photos of
`src.serving.gallery.references`), leave-landmarks-out cross-validation measures it
(`src.training.openset_cv`), so there is one rule."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ReferenceRule:
    """margin: how much closer to a taught photo than to every reference a photo must be; temperature:
    the softmax over taught landmarks' similarities that gives their probabilities. Chosen on
    world_landmarks' TRAIN photos only (`python -m scripts.gallery_reference_rule`)."""

    margin: float = 0.03
    temperature: float = 0.03


def combine_by_reference(probs: np.ndarray, similarity: np.ndarray, reference_similarity: np.ndarray,
                         rule: ReferenceRule = ReferenceRule()) -> np.ndarray:
    """probs [N, classes], similarity [N, taught landmarks] (each landmark's most similar enrolled photo)
    and reference_similarity [N] (the most similar reference) -> probabilities [N, classes + taught].

    A photo closer to a taught photo than to every reference by `rule.margin` gets a softmax over the
    taught landmarks' similarities (trained classes 0); any other photo keeps the model's probabilities
    (taught landmarks 0)."""
    probs, similarity = np.asarray(probs, dtype=np.float32), np.asarray(similarity, dtype=np.float32)
    n, classes = probs.shape
    out = np.zeros((n, classes + similarity.shape[1]), dtype=np.float32)
    if similarity.shape[1] == 0:
        out[:] = probs
        return out
    taught = similarity.max(axis=1) >= np.asarray(reference_similarity) + rule.margin
    logits = (similarity - similarity.max(axis=1, keepdims=True)) / rule.temperature
    taught_probs = np.exp(logits)
    taught_probs /= taught_probs.sum(axis=1, keepdims=True)
    out[~taught, :classes] = probs[~taught]
    out[taught, classes:] = taught_probs[taught]
    return out
