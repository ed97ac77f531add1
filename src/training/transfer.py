"""The transfer recipe: frozen ImageNet trunk -> cached activations -> fine-tuned tail + head -> export.

    python -m src train --data ../shared/indian_monuments ../shared/world_landmarks --no-landmark ../shared/no_landmark
    python -m src train --recipe accurate ...    # more views and epochs (`RECIPES`)

1. The backbone's trunk (all but its last block) runs once per photo and view; its activations are
   cached on disk (`src.training.features`).
2. Linear probe: the frozen tail gives pooled features, a logistic regression fits the head (its
   strength chosen on validation).
3. Fine-tune: the tail and a new head train on the cached activations for a few epochs
   (`src.training.finetune`); the better of probe and fine-tune on validation is kept.

With `refit` (the default) steps 2-3 give way to one fine-tune on EVERY training photo (validation
split included), for the number of epochs and with the "no landmark" threshold that cross-validation
chose (`src.training.crossval`): 25 % more photos, where no held-out photo is left to choose anything on.

Optionally a "no landmark" background class is learned from photos that show no landmark; the
decision threshold is chosen on validation photos. Only half of the no-landmark object categories
are used for training and validation: the other half is kept apart to measure, honestly, how often
the model names a landmark in a photo of something it has never seen.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional

import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from src.data.folders import (
    DecodedImageDataset,
    decode_folder,
    decode_paths,
    scan_split,
    split_no_landmark,
)
from src.data.loaders import DataConfig, build_datasets
from src.data.location import data_roots
from src.data.synthetic import degenerate_tensors
from src.data.transforms import Preprocessing
from src.evaluation.calibration import fit_temperature, scale_head
from src.evaluation.openset import (
    BACKGROUND_CLASS,
    background_indices,
    choose_threshold,
    closed_set_accuracy,
    is_landmark_label,
)
from src.export import Predictor, export
from src.export_openvino import export_openvino_beside
from src.machine import bf16_is_fast
from src.models.backbones import (
    TransferModel,
    create_backbone,
    get_backbone_spec,
    split_trunk_and_tail,
)
from src.training import distributed
from src.training.features import FrozenGraph, cached_activations, frozen_graph, openvino_is_chosen, run_in_batches
from src.training.finetune import finetune_tail
from src.training.recipes import (
    TransferRecipe,
    evaluation_preprocessing,
    training_preprocessing,
)


@dataclass
class ActivationSplits:
    """Cached trunk activations per split ("train" holds all its views), with labels."""

    x: dict[str, torch.Tensor]
    y: dict[str, torch.Tensor]


def load_datasets(recipe: TransferRecipe) -> dict:
    """train/valid/test datasets of the recipe, decoded for the backbone's preprocessing."""
    spec = get_backbone_spec(recipe.backbone)
    return build_datasets(
        DataConfig(data_dir=recipe.data_dir, valid_size=recipe.valid_size, seed=recipe.seed, limit=recipe.limit, preprocessing=spec.preprocessing)
    )


def compute_activations(
    recipe: TransferRecipe, trunk: torch.nn.Module, datasets: dict, splits: tuple[str, ...], background_valid_trains: bool = False,
    eval_prep: Optional[Preprocessing] = None,
) -> tuple[ActivationSplits, list[str], dict]:
    """Trunk activations of the requested splits: "train" (centre crop + augmented views), "valid",
    "test", and with a no-landmark folder also "no_landmark_held_out" (background photos join
    train/valid; with background_valid_trains, all of them join train); generated non-photos
    (`TransferRecipe.generated_background`) join train's background too. Returns them with the class
    names and the background photo counts. eval_prep: another input for the non-training rows than
    the recipe's (`evaluation_preprocessing`)."""
    classes = list(datasets["train"].classes)
    trunk_name = f"{recipe.backbone}-trunk-{recipe.tail_stages}"
    # Training rows use the training crop; validation, test and held-out rows the evaluation input.
    train_prep, eval_prep = training_preprocessing(recipe), eval_prep or evaluation_preprocessing(recipe)
    # Convert or trace the trunk once per input size, for every split and view: building the graph
    # costs seconds, and `extract_features` would otherwise rebuild it for each of them.
    graphs: dict[int, FrozenGraph] = {}

    def activations(images, identity, view, prep, seed=0):
        if prep.crop not in graphs:
            graphs[prep.crop] = frozen_graph(trunk, torch.zeros(1, 3, prep.crop, prep.crop).contiguous(memory_format=torch.channels_last))
        return cached_activations(trunk_name, graphs[prep.crop], images, identity, view, prep, seed=seed)

    x, y = {}, {}
    for split in [s for s in ("train", "valid", "test") if s in splits]:
        dataset = datasets[split]
        images = [dataset.raw(i)[0] for i in range(len(dataset))]
        identity = "|".join(dataset.decoded.paths[i] for i in dataset.indices)
        views = ["eval"] + ([f"aug{k}" for k in range(recipe.train_views)] if split == "train" else [])
        prep = train_prep if split == "train" else eval_prep
        x[split] = torch.cat([activations(images, identity, view, prep, seed=k - 1) for k, view in enumerate(views)])
        y[split] = torch.tensor(dataset.targets).repeat(len(views))

    background_info: dict[str, int] = {}
    background = len(classes)

    def add(key: str, acts: torch.Tensor) -> None:
        labels = torch.full((len(acts),), background)
        x[key], y[key] = (torch.cat([x[key], acts]), torch.cat([y[key], labels])) if key in x else (acts, labels)

    if recipe.no_landmark_dir:
        folder = Path(recipe.no_landmark_dir)
        for part, paths in split_no_landmark(folder, recipe.seed).items():
            key = {"train": "train", "valid": "train" if background_valid_trains else "valid", "held_out": "no_landmark_held_out"}[part]
            background_info[part] = len(paths)
            if key not in splits:
                continue
            images = distributed.main_first(lambda paths=paths: decode_paths(paths, folder, BACKGROUND_CLASS))
            add(key, activations(images, "|".join(map(str, paths)), "eval", train_prep if key == "train" else eval_prep))
    if recipe.generated_background > 0:
        background_info["generated"] = recipe.generated_background
        if "train" in splits:  # seeded by the recipe; measurements draw theirs with other seeds
            images = degenerate_tensors(recipe.generated_background, seed=recipe.seed)
            add("train", activations(images, f"generated|{recipe.generated_background}|{recipe.seed}", "eval", train_prep))
    if recipe.no_landmark_dir or recipe.generated_background > 0:
        classes = classes + [BACKGROUND_CLASS]
    return ActivationSplits(x=x, y=y), classes, background_info


@dataclass
class TrainingPhotos:
    """Every training photo of a recipe's data roots with its cached trunk activations: what
    cross-validation folds are cut from (`src.training.crossval`, `src.training.openset_cv`)."""

    recipe: TransferRecipe
    extractor: torch.nn.Module
    trunk: torch.nn.Module
    tail: torch.nn.Module
    photos: DecodedImageDataset
    activations: ActivationSplits
    classes: list[str]
    background_info: dict

    def evaluation_rows(self, prep: Optional[Preprocessing] = None) -> torch.Tensor:
        """Every photo as the exported model sees it (`TransferRecipe.eval_crop`), or at `prep`."""
        evaluation, _, _ = compute_activations(
            replace(self.recipe, no_landmark_dir=None, generated_background=0), self.trunk,
            {"train": self.photos, "valid": self.photos}, ("valid",), eval_prep=prep,
        )
        return evaluation.x["valid"]


def training_photos(recipe: TransferRecipe, splits: tuple[str, ...] = ("train",)) -> TrainingPhotos:
    """The backbone split into trunk and tail, and the activations of every training photo (with the
    background photos, and the other `splits` of `compute_activations` asked for)."""
    extractor, _ = create_backbone(recipe.backbone)
    trunk, tail = split_trunk_and_tail(extractor, recipe.tail_stages)
    photos = DecodedImageDataset(decode_folder(scan_split(data_roots(recipe.data_dir), "train")))
    activations, classes, background_info = compute_activations(recipe, trunk, {"train": photos}, splits)
    return TrainingPhotos(recipe, extractor, trunk, tail, photos, activations, classes, background_info)


def fit_head(x: torch.Tensor, y: torch.Tensor, c: float, seed: int = 0) -> torch.nn.Linear:
    """Multinomial logistic regression (scikit-learn), folded into one nn.Linear on raw features."""
    scaler = StandardScaler().fit(x.numpy())
    classifier = LogisticRegression(C=c, max_iter=300, random_state=seed).fit(scaler.transform(x.numpy()), y.numpy())
    weight = classifier.coef_ / scaler.scale_  # standardisation folded into the weights
    bias = classifier.intercept_ - weight @ scaler.mean_
    head = torch.nn.Linear(x.shape[1], weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight).float())
        head.bias.copy_(torch.from_numpy(bias).float())
    return head


def zero_head(in_features: int, n_classes: int) -> torch.nn.Linear:
    """A new head for fine-tuning that starts from "no opinion" (all logits 0): the tail's features
    are good already, and a random head would first have to be unlearned."""
    head = torch.nn.Linear(in_features, n_classes)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    return head


@dataclass
class FittedHead:
    """What fitting produced: the head on the (possibly fine-tuned) tail, how, and the threshold."""

    head: torch.nn.Linear
    method: str
    threshold: float
    report: dict
    probe: Optional[tuple[torch.nn.Module, torch.nn.Linear]] = None  # frozen tail + probe head, to report its test accuracy


def choose_on_validation(recipe: TransferRecipe, extractor, tail: torch.nn.Module, x: dict, y: dict, classes: list[str]) -> FittedHead:
    """Linear probe (C on validation), optional fine-tuning (kept if it wins on validation), threshold
    on validation. `tail` ends up holding the kept weights."""
    background = background_indices(classes)
    start = time.perf_counter()
    pooled = {split: run_in_batches(tail, x[split], fast=True) for split in ("train", "valid")}
    probe_scores, probe_heads = {}, {}
    for c in recipe.c_grid:
        probe_heads[c] = fit_head(pooled["train"], y["train"], c, recipe.seed)
        probe_scores[c] = closed_set_accuracy(probe_heads[c](pooled["valid"]), y["valid"], background)
    best_c = max(probe_scores, key=probe_scores.get)
    head, method = probe_heads[best_c], "linear probe"
    probe_seconds = time.perf_counter() - start

    probe_head, frozen_tail = head, copy.deepcopy(tail)
    finetune_report = None
    if recipe.finetune is not None:
        new_head = zero_head(extractor.feature_dim, len(classes))
        result = finetune_tail(
            tail, new_head, x["train"], y["train"], x["valid"],
            lambda logits: closed_set_accuracy(logits, y["valid"], background), recipe.finetune,
        )
        finetune_report = {"best_epoch": result.best_epoch, "valid_accuracy": result.best_valid_score, "history": result.history}
        if result.best_valid_score > probe_scores[best_c]:
            head, method = new_head, "fine-tuned tail"
        else:
            tail.load_state_dict(frozen_tail.state_dict())
    head.eval()
    with torch.no_grad():
        valid_logits = head(run_in_batches(tail, x["valid"]))
    temperature = fit_temperature(valid_logits, y["valid"])  # every validation photo is held out
    scale_head(head, temperature)
    valid_probs = torch.softmax(valid_logits / temperature, dim=1)
    landmark_valid = is_landmark_label(y["valid"], background)
    threshold = choose_threshold(valid_probs[landmark_valid], valid_probs[~landmark_valid], background)
    report = {
        "C": best_c,
        "valid_accuracy_by_C": {str(c): v for c, v in probe_scores.items()},
        "valid_accuracy_probe": probe_scores[best_c],
        "finetune": finetune_report,
        "valid_rates": threshold,
        "temperature": temperature,
        "probe_seconds": probe_seconds,
    }
    return FittedHead(head, method, threshold["threshold"], report, probe=(frozen_tail, probe_head))


def refit_on_every_photo(recipe: TransferRecipe, extractor, tail: torch.nn.Module, x: dict, y: dict, classes: list[str]) -> FittedHead:
    """Fine-tune `tail` and a new head on every training photo for the recipe's epochs (the last one is
    kept); the temperature (folded into the head) and the threshold are the recipe's, chosen out of
    fold by `src.training.crossval`."""
    head = zero_head(extractor.feature_dim, len(classes))
    result = finetune_tail(tail, head, x["train"], y["train"], None, None, recipe.finetune)
    scale_head(head, recipe.temperature).eval()
    report = {
        "finetune": {"epochs": recipe.finetune.epochs, "history": result.history},
        "temperature": recipe.temperature,
        "threshold_source": "recipe: out of fold, src.training.crossval",
    }
    return FittedHead(head, "fine-tuned tail, refit on every training photo", recipe.threshold, report)


def every_training_photo(datasets: dict) -> DecodedImageDataset:
    """train + valid as one dataset, in the training folder's order (as `src.training.crossval` reads it, so
    the two share cached activations)."""
    train, valid = datasets["train"], datasets["valid"]
    return DecodedImageDataset(train.decoded, sorted(train.indices + valid.indices))


def train_transfer(recipe: TransferRecipe) -> dict:
    """Activations; then a refit on every training photo (cross-validated epochs and threshold) or,
    without `refit`, probe and fine-tune chosen on validation; export. Returns the training report,
    which the exported file also carries. The test split is never read here: the exported file is
    evaluated afterwards (`src.evaluation.evaluate.evaluate_export`).

    Under torchrun the trunk pass, nearly all of the work, is split across the ranks
    (`features.cached_activations`); rank 0 alone then fits, exports and reports (others return {}).
    """
    distributed.setup()
    if recipe.finetune is not None and recipe.finetune.cosine_scale > 0:
        raise ValueError("the cosine classifier is measured by `crossval` only: the exported model has no L2Normalize after pooling")
    if recipe.refit and recipe.finetune is None:
        raise ValueError("refit fine-tunes the tail for a cross-validated number of epochs: give recipe.finetune, or refit=False for a linear probe")
    start = time.perf_counter()
    extractor, spec = create_backbone(recipe.backbone)
    trunk, tail = split_trunk_and_tail(extractor, recipe.tail_stages)
    datasets = distributed.main_first(lambda: load_datasets(recipe))  # rank 0 fills the decode cache
    fit_sets = {"train": every_training_photo(datasets)} if recipe.refit else datasets
    splits, classes, background_info = compute_activations(
        recipe, trunk, fit_sets, ("train",) if recipe.refit else ("train", "valid"), background_valid_trains=recipe.refit
    )
    feature_seconds = time.perf_counter() - start
    if not distributed.is_main():
        return {}
    background = background_indices(classes)
    fit = (refit_on_every_photo if recipe.refit else choose_on_validation)(recipe, extractor, tail, splits.x, splits.y, classes)
    report = {
        "backbone": recipe.backbone,
        "method": fit.method,
        "classes": len(classes) - len(background),
        "train_views": recipe.train_views,
        "train_crop": training_preprocessing(recipe).crop,
        "eval_input": evaluation_preprocessing(recipe).crop,
        "train_photos": len(fit_sets["train"]),
        "bf16_autocast": bf16_is_fast(),
        **fit.report,
        "threshold": fit.threshold,
        "feature_seconds": feature_seconds,  # trunk activations of everything the model is fitted on
        "feature_engine": "openvino" if openvino_is_chosen() else "torch",  # what ran the trunk (features.frozen_graph)
        "train_seconds_total": time.perf_counter() - start,  # activations, fitting, threshold
        "background_photos": background_info,
    }
    model = TransferModel(extractor, n_classes=len(classes), frozen=True, spec=spec)
    model.head.load_state_dict(fit.head.state_dict())
    predictor = Predictor(model, classes, preprocessing=evaluation_preprocessing(recipe))
    valid = datasets["valid"]  # a few validation photos to verify the export with (trained on, when refitting)
    check = [valid.raw(i) for i in range(0, len(valid), max(1, len(valid) // 24))][:24]
    export(
        predictor, recipe.export_path, [image for image, _ in check], [label for _, label in check],
        min_accuracy=0.5, metadata={
            "model": f"{recipe.backbone} + {fit.method}", "threshold": fit.threshold,
            **({"min_confidence": recipe.min_confidence} if recipe.min_confidence is not None else {}),
            "background_classes": [BACKGROUND_CLASS] if background else [], "recipe": asdict(recipe), "report": report,
        },
    )
    export_openvino_beside(recipe.export_path, network=model)  # the faster serving copy (src.serving.recognizer.runtime)
    report["export_path"] = recipe.export_path
    report["export_megabytes"] = Path(recipe.export_path).stat().st_size / 1e6
    return report


