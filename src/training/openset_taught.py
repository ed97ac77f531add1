"""The gallery measured inside leave-landmarks-out cross-validation (`src.training.openset_cv`): each
fold's left-out landmarks taught from a few photos as a user would (`GALLERY_SHOTS`, with reference
photos of the fold's own classes; `src.evaluation.gallery_rule`), their other photos scored, and what
teaching does to the known landmarks, object photos and generated images."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from src.evaluation.gallery_rule import ReferenceRule, combine_by_reference
from src.evaluation.openset_rule import best_landmark, is_landmark

GALLERY_SHOTS = 5  # photos a user enrols per taught landmark
REFERENCES_PER_CLASS = 40  # as `python -m src gallery references`


def teach_fold(
    outputs: dict[str, tuple[torch.Tensor, torch.Tensor]], temperature: float, train_features: torch.Tensor, train_labels: torch.Tensor,
    background_features: torch.Tensor, unknown_labels: torch.Tensor, shots: int, seed: int, rule: ReferenceRule = ReferenceRule(),
) -> dict[str, np.ndarray]:
    """One fold's left-out landmarks taught from `shots` photos each: the combined probabilities
    (`combine_by_reference`, trained classes then taught landmarks) of their other photos and of the
    known, object and generated photos, with the model's own probabilities for comparison."""
    rng = np.random.default_rng(seed)
    landmarks = sorted(set(unknown_labels.tolist()))
    shot_rows = np.concatenate([rng.permutation(np.flatnonzero(unknown_labels.numpy() == c))[:shots] for c in landmarks])
    query_rows = np.setdiff1d(np.arange(len(unknown_labels)), shot_rows)
    taught_labels = np.array([landmarks.index(c) for c in unknown_labels.numpy()])
    unknown_logits, unknown_features = outputs["unknown"]
    enrolled = F.normalize(unknown_features[shot_rows], dim=1).numpy()
    keep = np.concatenate([np.flatnonzero(train_labels.numpy() == c)[:REFERENCES_PER_CLASS] for c in sorted(set(train_labels.tolist()))])
    references = F.normalize(torch.cat([train_features[keep], background_features]), dim=1).numpy()

    def combined(logits: torch.Tensor, features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        probs = torch.softmax(logits / temperature, dim=1).numpy()
        embedding = F.normalize(features, dim=1).numpy()
        similarity = embedding @ enrolled.T
        per_landmark = np.stack([similarity[:, taught_labels[shot_rows] == t].max(axis=1) for t in range(len(landmarks))], axis=1)
        return combine_by_reference(probs, per_landmark, (embedding @ references.T).max(axis=1), rule), probs

    out = {"taught_truth": unknown_logits.shape[1] + taught_labels[query_rows]}  # taught columns follow the trained ones
    out["taught"], _ = combined(unknown_logits[query_rows], unknown_features[query_rows])
    for group in ("known", "objects", "generated"):
        out[group], out[f"{group}_alone"] = combined(*outputs[group])
    return out


def taught_rates(folds: list[dict[str, np.ndarray]], known_truth: list[torch.Tensor], threshold: float) -> dict[str, float]:
    """Pooled over folds at the model's threshold: taught landmarks' photos named right, and what
    teaching did to the known landmarks, objects and generated images (the background is the last
    trained column)."""
    counts: dict[str, list[float]] = {}

    def add(key: str, values: np.ndarray) -> None:
        counts.setdefault(key, []).extend(values.astype(float).tolist())

    for fold, truth in zip(folds, known_truth):
        background = [fold["known_alone"].shape[1] - 1]

        def decide(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return best_landmark(probs, background), is_landmark(probs, background, threshold)

        top, named = decide(fold["taught"])
        add("taught_top1", top == fold["taught_truth"])
        add("taught_named_correctly", named & (top == fold["taught_truth"]))
        for when, key in (("before", "known_alone"), ("after", "known")):
            top, named = decide(fold[key])
            add(f"known_named_correctly_{when}", named & (top == truth.numpy()))
        for group in ("objects", "generated"):
            add(f"{group}_named_before", decide(fold[f"{group}_alone"])[1])
            add(f"{group}_named_after", decide(fold[group])[1])
    return {key: float(np.mean(values)) if values else None for key, values in counts.items()} | {"taught_photos_scored": len(counts["taught_top1"])}
