"""Placement scores (`SCORES`): per photo, how sure a position would be, computed from a fold's outputs
(`src.training.openset_cv.fold_placement_outputs`) or, for the scores the service computes
(`SERVED_SCORES`), from one photo's probability and nearest reference (`placement_score`). Plain numpy."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

GROUPS = ("known", "unknown", "objects", "generated", "others")  # others: landmarks outside the data, never trained (optional)


# ---- placement scores: per photo, higher = surer; the best landmark is what would be placed --------


def _best(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best landmark (background excluded: the last column) and its probability, 0 where the
    background class beats it (such a photo is never named, so never placed)."""
    landmark = probs[:, :-1]
    best = landmark.argmax(axis=1)
    probability = landmark[np.arange(len(probs)), best]
    return best, np.where(probs[:, -1] > probability, 0.0, probability)


def score_probability(fold: dict[str, np.ndarray], group: str) -> tuple[np.ndarray, np.ndarray]:
    """The best landmark's calibrated probability (the rule the naming threshold already uses)."""
    return _best(fold[f"{group}_probs"])


def score_mirror(fold: dict[str, np.ndarray], group: str) -> tuple[np.ndarray, np.ndarray]:
    """A second look: the best landmark's probability in the photo AND in its mirror image, the
    smaller of the two (both looks must be sure of the same landmark)."""
    best, probability = _best(fold[f"{group}_probs"])
    mirror = fold[f"{group}_mirror_probs"]
    mirror_probability = np.where(mirror[:, -1] > mirror[np.arange(len(best)), best], 0.0, mirror[np.arange(len(best)), best])
    return best, np.minimum(probability, mirror_probability)


def nearest_own_reference(embedding: np.ndarray, best: np.ndarray, references: np.ndarray, reference_truth: np.ndarray) -> np.ndarray:
    """Per photo, the cosine similarity to the most similar reference photo of its best landmark (-inf
    where that landmark has none); unit-length embeddings."""
    own = np.full(len(best), -np.inf, dtype=np.float32)
    similarity = embedding.astype(np.float32) @ references.astype(np.float32).T
    for landmark in np.unique(best):
        rows = best == landmark
        columns = reference_truth == landmark
        if columns.any():
            own[rows] = similarity[np.ix_(rows, columns)].max(axis=1)
    return own


def nearest_is_other(embedding: np.ndarray, best: np.ndarray, references: np.ndarray, reference_truth: np.ndarray,
                     others: np.ndarray) -> np.ndarray:
    """True where the photo's most similar reference photo of its best landmark is less similar than
    the most similar photo of some other landmark (a distractor): "it looks more like a landmark that
    is not ours"."""
    if len(others) == 0:
        return np.zeros(len(best), dtype=bool)
    other = (embedding.astype(np.float32) @ others.astype(np.float32).T).max(axis=1)
    return other > nearest_own_reference(embedding, best, references, reference_truth)


def score_distractors(fold: dict[str, np.ndarray], group: str) -> tuple[np.ndarray, np.ndarray]:
    """The probability, 0 where the photo is nearer to a distractor (other landmarks' photos) than to
    every reference photo of its best landmark."""
    best, probability = score_probability(fold, group)
    known_classes = fold["known_classes"]
    others = nearest_is_other(fold[f"{group}_embedding"], best, fold["references_embedding"],
                              np.searchsorted(known_classes, fold["references_truth"]), fold["other_embedding"])
    return best, np.where(others, 0.0, probability)


def score_mirror_distractors(fold: dict[str, np.ndarray], group: str) -> tuple[np.ndarray, np.ndarray]:
    """Both the mirror image's second look and the distractor check."""
    best, probability = score_mirror(fold, group)
    _, distractor = score_distractors(fold, group)
    return best, np.where(distractor == 0, 0.0, probability)


RESEMBLANCE_SCORES = ("reference", "probability*reference")  # need the photo's similarity to its landmark's photos
SERVED_SCORES = ("probability", *RESEMBLANCE_SCORES)  # what the Recognizer computes per photo (`placement_score`)


def placement_score(score: str, probability, nearest=None):
    """A served score from the best landmark's probability (0 where the background wins: never placed)
    and, for `RESEMBLANCE_SCORES`, the cosine similarity between the photo and that landmark's nearest
    reference (or taught) photo, mapped to [0, 1]. Scalars or arrays; cross-validation and the
    Recognizer both score through here, so what is measured is what is served.

    "reference": how much the photo looks like a photo of its best landmark. "probability*reference":
    sure of the landmark AND close to a photo of it; a photo of a palace the model never saw can be
    sure of a palace it knows yet lie far from every photo of it."""
    if score == "probability":
        return probability
    if score not in RESEMBLANCE_SCORES:
        raise ValueError(f"placement score {score!r} is not served (only {', '.join(SERVED_SCORES)})")
    if nearest is None:
        raise ValueError(f"placement score {score!r} needs the photo's similarity to its landmark's reference photos")
    closeness = np.where(np.asarray(probability) > 0, np.clip((np.asarray(nearest, dtype=np.float32) + 1) / 2, 0.0, 1.0), 0.0)
    return closeness if score == "reference" else probability * closeness


def _score_by_reference(score: str, fold: dict[str, np.ndarray], group: str) -> tuple[np.ndarray, np.ndarray]:
    best, probability = score_probability(fold, group)
    own = nearest_own_reference(fold[f"{group}_embedding"], best, fold["references_embedding"],
                                np.searchsorted(fold["known_classes"], fold["references_truth"]))
    return best, placement_score(score, probability, own)


def score_reference(fold: dict[str, np.ndarray], group: str) -> tuple[np.ndarray, np.ndarray]:
    """The similarity to the best landmark's nearest reference photo, in [0, 1] (`placement_score`)."""
    return _score_by_reference("reference", fold, group)


def score_probability_times_reference(fold: dict[str, np.ndarray], group: str) -> tuple[np.ndarray, np.ndarray]:
    """The probability times `score_reference` (`placement_score`)."""
    return _score_by_reference("probability*reference", fold, group)


SCORES: dict[str, Callable[[dict[str, np.ndarray], str], tuple[np.ndarray, np.ndarray]]] = {
    "probability": score_probability,
    "mirror": score_mirror,
    "distractors": score_distractors,
    "mirror+distractors": score_mirror_distractors,
    "reference": score_reference,
    "probability*reference": score_probability_times_reference,
}
