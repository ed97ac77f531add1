"""Reference photos of what the model already knows, so that taught landmarks win by similarity.

A photo of a landmark the model was never trained on often gets a confident trained class: its
probabilities alone cannot tell "one of mine" from "one the user taught". Its embedding can. The
references are embeddings of training photos of every trained class and of the background class,
stored beside the model (`NAME.references.npz`, keyed to the model file's hash). A taught landmark
wins a photo when the photo is closer to the landmark's nearest enrolled photo than to any reference,
by a margin (`ReferenceRule`); otherwise the model decides alone, as if nothing were taught.
Measured against the softmax rule (`GalleryRule`) in docs/gallery.md
(`python -m scripts.gallery_reference_rule`). Made by `python -m src gallery references`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReferenceRule:
    """margin: how much closer to a taught photo than to every reference a photo must be; temperature:
    the softmax over taught landmarks' similarities that gives their probabilities. Chosen on
    world_landmarks' TRAIN photos only (`python -m scripts.gallery_reference_rule`)."""

    margin: float = 0.03
    temperature: float = 0.03


def references_path(model_path: str | Path) -> Path:
    path = Path(model_path)
    return path.with_name(path.stem + ".references.npz")


def save_references(model_path: str | Path, model_id: str, vectors: np.ndarray, labels: list[str]) -> Path:
    """Write the references beside the model, atomically."""
    path = references_path(model_path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, model_id=np.array(model_id), vectors=vectors.astype(np.float16), labels=np.array(labels))
    os.replace(tmp, path)
    return path


def load_references(model_path: str | Path, model_id: str) -> Optional[np.ndarray]:
    """The references [M, D] (float32, L2-normalised) of exactly this model, or None (with a log line
    saying why) when there are none or they belong to another version of the file."""
    path = references_path(model_path)
    if not path.exists():
        return None
    try:
        with np.load(path) as data:
            made_by, vectors = str(data["model_id"]), data["vectors"].astype(np.float32)
    except (OSError, ValueError, KeyError) as error:
        log.warning("ignoring %s: %s", path, error)
        return None
    if made_by != model_id:
        log.warning("ignoring %s: made by %s, the model is %s (python -m src gallery references ... remakes it)", path.name, made_by, model_id)
        return None
    return vectors


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
