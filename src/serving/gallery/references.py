"""Reference photos of what the model already knows, so that taught landmarks win by similarity.

A photo of a landmark the model was never trained on often gets a confident trained class: its
probabilities alone cannot tell "one of mine" from "one the user taught". Its embedding can. The
references are embeddings of training photos of every trained class and of the background class,
stored beside the model (`NAME.references.npz`, keyed to the model file's hash; `python -m src train` and
`gallery references --out` write there) or in $LANDMARK_HOME/references/ (`gallery references` by default,
so a user's run never rewrites the file that ships; looked at first). A taught landmark
wins a photo when the photo is closer to the landmark's nearest enrolled photo than to any reference,
by a margin (`src.evaluation.gallery_rule`); otherwise the model decides alone, as if nothing were taught.
Measured against the softmax rule (`GalleryRule`) in docs/gallery.md
(`python -m scripts.gallery_reference_rule`). Made by `python -m src gallery references`.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from src.home import user_output

log = logging.getLogger(__name__)


def references_path(model_path: str | Path) -> Path:
    """Beside the model: `NAME.references.npz`."""
    path = Path(model_path)
    return path.with_name(path.stem + ".references.npz")


def user_references_path(model_path: str | Path) -> Path:
    """The user's own copy: $LANDMARK_HOME/references/NAME.references.npz (`gallery references`' default)."""
    return user_output("references", references_path(model_path).name)


def save_references(model_path: str | Path, model_id: str, vectors: np.ndarray, labels: list[str], path: Optional[Path] = None) -> Path:
    """Write the references to `path` (default: beside the model), atomically."""
    path = Path(path) if path is not None else references_path(model_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, model_id=np.array(model_id), vectors=vectors.astype(np.float16), labels=np.array(labels))
    os.replace(tmp, path)
    return path


@dataclass(frozen=True)
class References:
    """Reference photos' embeddings [M, D] (float32, L2-normalised) and each one's class name."""

    vectors: np.ndarray
    labels: list[str]

    @functools.cached_property
    def _by_label(self) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """The vectors sorted by label, each label's first row among them, and each label's position."""
        labels = np.asarray(self.labels)
        order = np.argsort(labels, kind="stable")
        names, starts = np.unique(labels[order], return_index=True)
        return self.vectors[order], starts, {str(name): i for i, name in enumerate(names)}

    def nearest(self, embedding: np.ndarray, class_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per photo, the cosine similarity to the most similar reference photo [N], and per class to the
        class's most similar one [N, classes] (-1, the least there is, for a class without any)."""
        vectors, starts, position = self._by_label
        similarity = np.asarray(embedding, dtype=np.float32) @ vectors.T
        per_label = np.maximum.reduceat(similarity, starts, axis=1)
        per_class = np.full((len(similarity), len(class_names)), -1.0, dtype=np.float32)
        columns = [(c, position[name]) for c, name in enumerate(class_names) if name in position]
        if columns:
            mine, theirs = map(list, zip(*columns))
            per_class[:, mine] = per_label[:, theirs]
        return per_label.max(axis=1), per_class


def load_references(model_path: str | Path, model_id: str) -> Optional[References]:
    """The references of exactly this model: the user's ($LANDMARK_HOME/references/), else those beside the
    model; None (with a log line saying why) when there are none or they belong to another version of the file."""
    for path in (user_references_path(model_path), references_path(model_path)):
        if path.exists():
            found = _references_in(path, model_id)
            if found is not None:
                return found
    return None


def _references_in(path: Path, model_id: str) -> Optional[References]:
    try:
        with np.load(path) as data:
            made_by, vectors, labels = str(data["model_id"]), data["vectors"].astype(np.float32), data["labels"].tolist()
    except (OSError, ValueError, KeyError) as error:
        log.warning("ignoring %s: %s", path, error)
        return None
    if made_by != model_id:
        log.warning("ignoring %s: made by %s, the model is %s (python -m src gallery references ... remakes it)", path.name, made_by, model_id)
        return None
    return References(vectors, [str(label) for label in labels])
