"""Leave-landmarks-out cross-validation: how honest is "I don't know"?

In each fold whole landmarks are left out of training and must come back "unknown", beside held-out
photos of the landmarks that were trained (they must be named, and named right), photos of object
categories that training never saw (`split_no_landmark`'s held-out half) and generated non-photos
(`src.data.synthetic`). Several rejection scores are computed from the same fold models:

    max_probability    the best landmark's calibrated probability (0 where "no landmark" wins)
    max_logit          the best landmark's logit
    energy             logsumexp of the landmark logits
    nearest_photo      cosine similarity to the closest training photo (the embedding the classifier reads)
    nearest_prototype  cosine similarity to the mean embedding of the predicted landmark's photos

For each, the threshold that rejects at most `max_rejected` of the known landmarks' photos is read
off the pooled out-of-fold scores, and the rates it gives on every group are reported, so the rule to
ship is chosen on photos no model trained on. The test split is never read.

With `negative_groups` > 0 the next groups after the left-out one are not scored but trained as
background ("other landmarks", the Google Landmarks v2 way of saying "none of these"): this measures
whether photos of other landmarks teach the model to reject landmarks it has seen neither as a class
nor as a negative.

The left-out landmarks are also taught to each fold's model as a user would (`GALLERY_SHOTS` photos
each, with reference photos of the fold's own classes; `src.evaluation.gallery_rule`), and their
other photos scored: the gallery measured on landmarks new to the model that embeds them
(`src.training.openset_taught`).

`other_landmarks` (a root whose train/ holds landmarks outside the data roots, e.g.
../shared/other_landmarks) joins every fold in one `other_role`: "references" (their embeddings are
distractors: a photo nearest to one of them is "some other landmark") or "background" (trained as
part of the "no landmark" class). Either way they are never scored as unknown. With `outputs_path`
every fold's per-photo outputs (probabilities of the photo and of its mirror image, embeddings, true
landmarks) are saved, so the placement rule's candidates (`src.evaluation.placement`) can be measured
on them without training again.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

from src.data.folders import decode_folder, default_cache_dir, decode_paths, scan_split, split_no_landmark
from src.data.landmarks import sites
from src.data.location import data_roots
from src.data.synthetic import degenerate_tensors
from src.evaluation.calibration import fit_temperature
from src.evaluation.gallery_rule import ReferenceRule
from src.evaluation.openset import BACKGROUND_CLASS
from src.evaluation.placement import class_roots_of, for_record, placement_report, save_fold_outputs
from src.training.features import cached_activations, frozen_graph, run_in_batches
from src.training.finetune import finetune_tail, normalized_tail
from src.training.openset_taught import GALLERY_SHOTS, REFERENCES_PER_CLASS, taught_rates, teach_fold
from src.training.recipes import TransferRecipe, evaluation_preprocessing, training_preprocessing
from src.training.transfer import training_photos, zero_head

RULES = ("max_probability", "max_logit", "energy", "nearest_photo", "nearest_prototype")
GROUPS = ("known", "unknown", "objects", "generated")


def landmark_groups(n_classes: int, groups: int, seed: int, places: Optional[list[list[int]]] = None) -> list[list[int]]:
    """The landmark classes shuffled (seeded) into `groups` folds of nearly equal size. With `places`
    (`src.data.landmarks.sites`), the landmarks of one place stay in one fold: a fold that left out the
    Iron Pillar but trained the Qutub Minar beside it would count a right position as a wrong one."""
    if places is None or all(len(place) == 1 for place in places):
        order = np.random.default_rng(seed).permutation(n_classes)
        return [sorted(part.tolist()) for part in np.array_split(order, groups)]
    folds: list[list[int]] = [[] for _ in range(groups)]
    shuffled = [places[i] for i in np.random.default_rng(seed).permutation(len(places))]
    for place in sorted(shuffled, key=len, reverse=True):  # stable: equal sizes keep the shuffled order
        min(folds, key=len).extend(place)
    return [sorted(fold) for fold in folds]


def negative_landmarks(folds: list[list[int]], fold: int, negative_groups: int) -> list[int]:
    """The landmarks fold `fold` trains as background: the `negative_groups` groups after its left-out one."""
    return sorted(c for j in range(1, negative_groups + 1) for c in folds[(fold + j) % len(folds)])


def training_references(train_features: torch.Tensor, train_labels: torch.Tensor, n_landmarks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What the embedding rules compare with, once per fold: every training photo's normalised
    embedding, and each landmark's normalised mean embedding (its prototype)."""
    gallery = F.normalize(train_features, dim=1)
    prototypes = F.normalize(torch.stack([train_features[train_labels == c].mean(dim=0) for c in range(n_landmarks)]), dim=1)
    return gallery, prototypes


def rule_scores(logits: torch.Tensor, features: torch.Tensor, temperature: float, gallery: torch.Tensor, prototypes: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every rule's score per row (higher: more like a known landmark). The last logit column is the
    background class; where it beats the best landmark, every score is at its floor (rejected).
    gallery, prototypes: `training_references` of the fold."""
    landmark_logits = logits[:, :-1]
    probs = torch.softmax(logits / temperature, dim=1)
    best_prob, best = probs[:, :-1].max(dim=1)
    background_wins = probs[:, -1] > best_prob
    embedding = F.normalize(features, dim=1)
    scores = {
        "max_probability": best_prob,
        "max_logit": landmark_logits.max(dim=1).values,
        "energy": torch.logsumexp(landmark_logits, dim=1),
        "nearest_photo": (embedding @ gallery.T).max(dim=1).values,
        "nearest_prototype": (embedding * prototypes[best]).sum(dim=1),
    }
    return {name: torch.where(background_wins, torch.full_like(score, -torch.inf), score) for name, score in scores.items()}


def rates_at(scores: dict[str, torch.Tensor], correct: torch.Tensor, threshold: float) -> dict[str, float]:
    """What a threshold does to each group: known photos rejected / named wrong, the others named
    (None for a group without photos, e.g. when no object photos were given)."""
    named = {group: (score >= threshold) for group, score in scores.items()}
    known = named["known"]
    return {
        "known_rejected": 1 - known.float().mean().item(),
        "known_named_wrong": (known & ~correct).float().mean().item(),
        **{f"{group}_named": named[group].float().mean().item() if len(named[group]) else None for group in GROUPS[1:]},
    }


def choose_rule_thresholds(pooled: dict[str, dict[str, torch.Tensor]], correct: torch.Tensor, max_rejected: float) -> dict[str, dict]:
    """Per rule: the threshold that rejects at most `max_rejected` of the known photos, and its rates."""
    out = {}
    for rule in RULES:
        known = pooled["known"][rule]
        finite = known[torch.isfinite(known)]
        threshold = float(torch.quantile(finite, max_rejected)) if len(finite) else float("inf")
        out[rule] = {"threshold": threshold, **rates_at({g: pooled[g][rule] for g in GROUPS}, correct, threshold)}
    return out


def wrong_position_curve(probability: dict[str, torch.Tensor], correct: torch.Tensor) -> list[dict[str, float]]:
    """For each candidate minimum confidence: the share of each group's photos that would get a WRONG
    position written (known: named wrong; the others: named at all) and of known photos written right."""
    curve = []
    for threshold in np.round(np.arange(0.30, 1.0, 0.01), 2).tolist():
        rates = rates_at(probability, correct, threshold)
        wrong = {"known": rates["known_named_wrong"], **{g: rates[f"{g}_named"] for g in GROUPS[1:] if rates[f"{g}_named"] is not None}}
        curve.append({"min_confidence": threshold, "worst_group_wrong": max(wrong.values()), **{f"{g}_wrong": v for g, v in wrong.items()},
                      "known_written_right": 1 - rates["known_rejected"] - rates["known_named_wrong"]})
    return curve


def _eval_rows(recipe: TransferRecipe, trunk: torch.nn.Module, images: list[torch.Tensor], identity: str, training: bool = False) -> torch.Tensor:
    """Trunk activations of photos as the exported model sees them (the recipe's evaluation input),
    or with `training` as the training rows are cut (the training crop, centred: their "eval" view)."""
    prep = training_preprocessing(recipe) if training else evaluation_preprocessing(recipe)
    graph = frozen_graph(trunk, torch.zeros(1, 3, prep.crop, prep.crop).contiguous(memory_format=torch.channels_last))
    return cached_activations(f"{recipe.backbone}-trunk-{recipe.tail_stages}", graph, images, identity, "eval", prep)


OTHER_ROLES = ("references", "background")


def _other_landmark_photos(root: str) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Every training photo of `root`'s landmarks, decoded (cached) as the data roots are, and their landmarks."""
    decoded = decode_folder(scan_split(data_roots(root), "train"))
    return decoded.images, torch.tensor(decoded.labels)


def mirrored(images: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each CHW photo flipped left to right: the second look of a test-time mirror."""
    return [torch.flip(image, dims=[-1]) for image in images]


def leave_landmarks_out(
    recipe: TransferRecipe, groups: int = 5, seed: int = 0, known_valid: float = 0.2, generated_eval: int = 400,
    max_rejected: float = 0.03, progress: bool = True, negative_groups: int = 0,
    other_landmarks: Optional[str] = None, other_role: str = "references", outputs_path: Optional[Path] = None,
) -> dict:
    """Out-of-fold scores of every rule on the four groups of photos, the threshold each rule needs
    and the rates it gives, the pooled temperature, and the minimum-confidence curve for writing GPS."""
    if recipe.finetune is None:
        raise ValueError("leave-landmarks-out cross-validation fine-tunes each fold: give recipe.finetune")
    start = time.perf_counter()
    cached = training_photos(recipe, ("train", "no_landmark_held_out"))
    extractor, tail, trunk, every_photo, classes = cached.extractor, cached.tail, cached.trunk, cached.photos, cached.classes
    background_info = cached.background_info
    if BACKGROUND_CLASS not in classes:
        raise ValueError("leave-landmarks-out CV needs a background class: give no_landmark_dir or generated_background")
    if not 0 <= negative_groups <= groups - 2:
        raise ValueError(f"negative_groups must be between 0 and groups - 2 = {groups - 2} (one group is left out, one or more trained): got {negative_groups}")
    if other_role not in OTHER_ROLES:
        raise ValueError(f"other_role must be one of {OTHER_ROLES}, got {other_role!r}")
    x, y = cached.activations.x["train"], cached.activations.y["train"]
    objects_x = cached.activations.x.get("no_landmark_held_out", x[:0])
    eval_x = cached.evaluation_rows()
    generated_x = _eval_rows(recipe, trunk, degenerate_tensors(generated_eval, seed=recipe.seed + 1), f"generated|{generated_eval}|{recipe.seed + 1}")
    other_x, other_labels = x[:0], torch.zeros(0, dtype=torch.long)
    if other_landmarks:
        other_images, other_labels = _other_landmark_photos(other_landmarks)
        other_x = _eval_rows(recipe, trunk, other_images, f"other|{other_landmarks}|{len(other_images)}")
        other_train_x = _eval_rows(recipe, trunk, other_images, f"other|{other_landmarks}|{len(other_images)}", training=True) \
            if other_role == "background" else other_x
    mirror_x: dict[str, torch.Tensor] = {}
    if outputs_path is not None:  # the mirror image of every scored photo, for a test-time second look
        photos = [every_photo.raw(i)[0] for i in range(len(every_photo))]
        mirror_x["photos"] = _eval_rows(recipe, trunk, mirrored(photos), "mirrored|" + "|".join(every_photo.decoded.paths))
        held_out = split_no_landmark(Path(recipe.no_landmark_dir), recipe.seed)["held_out"] if recipe.no_landmark_dir else []
        mirror_x["objects"] = _eval_rows(recipe, trunk, mirrored(decode_paths(held_out, Path(recipe.no_landmark_dir), BACKGROUND_CLASS)),
                                         "mirrored|" + "|".join(map(str, held_out))) if held_out else objects_x
        mirror_x["generated"] = _eval_rows(recipe, trunk, mirrored(degenerate_tensors(generated_eval, seed=recipe.seed + 1)),
                                           f"mirrored|generated|{generated_eval}|{recipe.seed + 1}")
        if len(other_x):
            mirror_x["others"] = _eval_rows(recipe, trunk, mirrored(other_images), f"mirrored|other|{other_landmarks}|{len(other_images)}")
    activation_seconds = time.perf_counter() - start

    labels = torch.tensor(every_photo.targets)
    n, n_landmarks, views = len(labels), len(classes) - 1, 1 + recipe.train_views
    background_rows = torch.arange(views * n, len(x))
    pooled = {group: {rule: [] for rule in RULES} for group in GROUPS}
    pooled_logits, pooled_labels, correct = [], [], []
    taught_folds: list[dict[str, np.ndarray]] = []
    fold_outputs: list[dict[str, np.ndarray]] = []
    folds = landmark_groups(n_landmarks, groups, seed, sites(classes[:n_landmarks]))
    negatives_by_fold = [negative_landmarks(folds, k, negative_groups) for k in range(groups)]
    for k, unknown in enumerate(folds):
        negatives = negatives_by_fold[k]
        known_classes = [c for c in range(n_landmarks) if c not in unknown and c not in negatives]
        mapping = torch.full((n_landmarks + 1,), -1, dtype=torch.long)
        mapping[known_classes] = torch.arange(len(known_classes))
        mapping[negatives + [n_landmarks]] = len(known_classes)  # the background class stays last
        known_idx = torch.nonzero(torch.isin(labels, torch.tensor(known_classes))).flatten()
        unknown_idx = torch.nonzero(torch.isin(labels, torch.tensor(unknown))).flatten()
        negative_idx = torch.nonzero(torch.isin(labels, torch.tensor(negatives, dtype=torch.long))).flatten()
        fit_idx, valid_idx = train_test_split(known_idx.numpy(), test_size=known_valid, stratify=labels[known_idx].numpy(), random_state=seed + k)
        fit_idx, valid_idx = torch.from_numpy(fit_idx), torch.from_numpy(valid_idx)
        rows = torch.cat([torch.cat([fit_idx, negative_idx]) + view * n for view in range(views)] + [background_rows])
        fold_x, fold_y = x[rows], mapping[y[rows]]
        if other_role == "background" and len(other_x):  # other landmarks taught as "none of ours"
            fold_x, fold_y = torch.cat([fold_x, other_train_x]), torch.cat([fold_y, torch.full((len(other_train_x),), len(known_classes))])
        fold_tail = normalized_tail(copy.deepcopy(tail), recipe.finetune)
        head = zero_head(extractor.feature_dim, len(known_classes) + 1)
        finetune_tail(fold_tail, head, fold_x, fold_y, None, None, recipe.finetune, progress=progress)
        head.eval()

        def forward(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if len(inputs) == 0:  # e.g. no object photos given
                return torch.zeros(0, len(known_classes) + 1), torch.zeros(0, extractor.feature_dim)
            with torch.no_grad():
                features = run_in_batches(fold_tail, inputs)
                return head(features), features

        _, train_features = forward(eval_x[fit_idx])
        outputs = {"known": forward(eval_x[valid_idx]), "unknown": forward(eval_x[unknown_idx]), "objects": forward(objects_x), "generated": forward(generated_x)}
        valid_truth = mapping[labels[valid_idx]]
        temperature = fit_temperature(outputs["known"][0], valid_truth)
        gallery, prototypes = training_references(train_features, mapping[labels[fit_idx]], len(known_classes))
        for group, (logits, features) in outputs.items():
            for rule, score in rule_scores(logits, features, temperature, gallery, prototypes).items():
                pooled[group][rule].append(score)
        background_features = forward(x[background_rows])[1]
        taught_folds.append(teach_fold(outputs, temperature, train_features, mapping[labels[fit_idx]], background_features,
                                       labels[unknown_idx], GALLERY_SHOTS, seed + k))
        if outputs_path is not None:
            mirror_inputs = {"known": mirror_x["photos"][valid_idx], "unknown": mirror_x["photos"][unknown_idx],
                             "objects": mirror_x["objects"], "generated": mirror_x["generated"]}
            scored, truths = dict(outputs), {"known": labels[valid_idx], "unknown": labels[unknown_idx]}
            if len(other_x) and other_role == "references":  # never trained: photos of landmarks outside the data, scored too
                scored["others"], mirror_inputs["others"], truths["others"] = forward(other_x), mirror_x["others"], other_labels
            fold_outputs.append(fold_placement_outputs(
                scored, {g: forward(v) for g, v in mirror_inputs.items()}, temperature, truths, known_classes,
                train_features, labels[fit_idx], forward(other_x)[1] if other_role == "references" else torch.zeros(0, extractor.feature_dim),
                background_features))
        correct.append(outputs["known"][0][:, :-1].argmax(dim=1) == valid_truth)
        pooled_logits.append(outputs["known"][0])
        pooled_labels.append(valid_truth)
        if progress:
            print(f"fold {k + 1}/{groups}: {len(unknown)} landmarks left out, temperature {temperature:.3f}", flush=True)

    scores = {group: {rule: torch.cat(values) for rule, values in rules.items()} for group, rules in pooled.items()}
    correct_all = torch.cat(correct)
    rules = choose_rule_thresholds(scores, correct_all, max_rejected)
    placement = None
    if outputs_path is not None:
        save_fold_outputs(outputs_path, fold_outputs, classes)
        roots = data_roots(recipe.data_dir) if recipe.data_dir else []
        placement = for_record(placement_report(fold_outputs, classes, class_roots_of(classes, roots) if roots else None))
    return {
        "other_landmarks": other_landmarks,
        "other_role": other_role if other_landmarks else None,
        "other_photos": len(other_x),
        "outputs": str(outputs_path) if outputs_path is not None else None,
        "groups": groups,
        "group_seed": seed,
        "landmarks_left_out": [[classes[c] for c in fold] for fold in folds],
        "negative_groups": negative_groups,
        "negative_landmarks_by_fold": [[classes[c] for c in fold] for fold in negatives_by_fold],
        "photos": {group: len(scores[group]["max_probability"]) for group in GROUPS},
        "background_photos": background_info,
        "known_accuracy": correct_all.float().mean().item(),
        "temperature_out_of_fold": float(np.median([fit_temperature(lg, lb) for lg, lb in zip(pooled_logits, pooled_labels)])),
        "max_rejected": max_rejected,
        "rules": rules,
        "taught": {"shots": GALLERY_SHOTS, "references_per_class": REFERENCES_PER_CLASS, "rule": vars(ReferenceRule()),
                   "threshold": rules["max_probability"]["threshold"],
                   **taught_rates(taught_folds, pooled_labels, rules["max_probability"]["threshold"])},
        "min_confidence_curve": wrong_position_curve({g: scores[g]["max_probability"] for g in GROUPS}, correct_all),
        "placement": placement,
        "activation_seconds": activation_seconds,
        "seconds_total": time.perf_counter() - start,
    }


def fold_placement_outputs(
    outputs: dict[str, tuple[torch.Tensor, torch.Tensor]], mirror: dict[str, tuple[torch.Tensor, torch.Tensor]], temperature: float,
    truths: dict[str, torch.Tensor], known_classes: list[int], train_features: torch.Tensor, train_labels: torch.Tensor,
    other_features: torch.Tensor, background_features: torch.Tensor,
) -> dict[str, np.ndarray]:
    """One fold's per-photo outputs in global terms: for each group its calibrated probabilities
    (background last), those of the mirror image, normalised embeddings (the mirror image's too) and
    true landmark (-1 for objects and generated images; for "others", the landmark in the other
    landmarks' own numbering); and the fold's references: its training photos' embeddings with their
    landmarks, its background class's training rows (what `gallery references` adds to the reference
    photos), and the other landmarks' embeddings (distractors; empty when they were trained as background)."""
    out: dict[str, np.ndarray] = {"known_classes": np.asarray(known_classes), "temperature": np.float32(temperature)}
    for group, (logits, features) in outputs.items():
        out[f"{group}_probs"] = torch.softmax(logits / temperature, dim=1).numpy().astype(np.float32)
        out[f"{group}_mirror_probs"] = torch.softmax(mirror[group][0] / temperature, dim=1).numpy().astype(np.float32)
        out[f"{group}_embedding"] = F.normalize(features, dim=1).numpy().astype(np.float16)
        out[f"{group}_mirror_embedding"] = F.normalize(mirror[group][1], dim=1).numpy().astype(np.float16)
        out[f"{group}_truth"] = truths[group].numpy() if group in truths else np.full(len(logits), -1)
    out["references_embedding"] = F.normalize(train_features, dim=1).numpy().astype(np.float16)
    out["references_truth"] = train_labels.numpy()
    out["background_embedding"] = F.normalize(background_features, dim=1).numpy().astype(np.float16)
    out["other_embedding"] = F.normalize(other_features, dim=1).numpy().astype(np.float16)
    return out


def default_outputs_path(settings: dict) -> Path:
    """Where a run's per-photo outputs go by default: the cache folder, named by the run's settings."""
    key = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return default_cache_dir() / "openset" / f"outputs-{key}.npz"


def choose_min_confidence(curve: list[dict[str, float]], max_wrong: float = 0.01) -> Optional[dict[str, float]]:
    """The lowest minimum confidence whose worst group gets a wrong position written at most
    `max_wrong` of the time (None if no candidate does)."""
    return next((point for point in curve if point["worst_group_wrong"] <= max_wrong), None)
