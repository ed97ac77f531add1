"""How taught landmarks compete with the trained classes when the model has no reference photos beside it:
a taught landmark's similarity becomes a logit beside the model's log-probabilities (`combine`). With
reference photos, `src.evaluation.gallery_rule.combine_by_reference` decides instead."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GalleryRule:
    """How a photo's similarity to a taught landmark competes with the trained classes' probabilities.

    A taught landmark's logit is (similarity - bias) / temperature, where similarity is the cosine
    between the photo's embedding and the landmark's most similar enrolled photo; the trained
    classes' logits are their log-probabilities. A softmax over both gives one distribution. The
    defaults were chosen on world_landmarks' TRAIN photos only (`python -m scripts.gallery_eval`,
    docs/gallery.md): enrol some, query the others, and keep unenrolled landmarks unknown.
    """

    bias: float = 0.725
    temperature: float = 0.03


def combine(probs, similarity, rule: GalleryRule = GalleryRule()):
    """probs [N, classes] and similarity [N, taught landmarks] -> probabilities [N, classes + taught].
    numpy arrays (what the runtimes give); torch tensors in, a torch tensor out (scripts, tests)."""
    p = np.asarray(probs)
    logits = np.concatenate([np.log(np.maximum(p, 1e-12)), (np.asarray(similarity).astype(p.dtype) - rule.bias) / rule.temperature], axis=1)
    logits -= logits.max(axis=1, keepdims=True)
    combined = np.exp(logits)
    combined /= combined.sum(axis=1, keepdims=True)
    if isinstance(probs, np.ndarray):
        return combined
    import torch  # a tensor was given, so torch is loaded already

    return torch.from_numpy(combined)
