"""The from-scratch recipe: train MyModel, pick the test resolution on validation, export.

    python -m src.training.scratch --data ../shared/indian_monuments --epochs 40

The notebook calls the same functions with a smaller ScratchRecipe.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from src.data.loaders import DataConfig, make_loaders
from src.data.transforms import Preprocessing
from src.export import Predictor, export, predict_dataset
from src.export_openvino import export_openvino_beside
from src.models.scratch import MyModel
from src.training import distributed
from src.training.loop import History, load_checkpoint, optimize
from src.training.optimization import (
    TimeBudgetCosine,
    get_loss,
    get_optimizer,
    get_scheduler,
)
from src.training.recipes import ScratchRecipe


def build_model(recipe: ScratchRecipe, num_classes: int) -> MyModel:
    return MyModel(num_classes=num_classes, dropout=recipe.dropout, widths=tuple(recipe.widths))


def train_scratch(recipe: ScratchRecipe, interactive_tracking: bool = False):
    """Train MyModel; returns (model, history, loaders). Resumes an interrupted run.

    Under torchrun it trains with DistributedDataParallel (`src.training.distributed`): each rank takes
    its shard of every epoch and batch_size / processes photos per step (the same global batch).
    """
    distributed.setup()
    torch.manual_seed(0)
    config = DataConfig(
        data_dir=recipe.data_dir, batch_size=recipe.batch_size, num_workers=recipe.num_workers,
        limit=recipe.limit, train_crop=recipe.train_crop,
    )
    loaders = distributed.main_first(lambda: make_loaders(config))
    loaders["train"] = distributed.shard_loader(loaders["train"], train=True, seed=config.seed)
    loaders["valid"] = distributed.shard_loader(loaders["valid"], train=False)
    classes = loaders["train"].dataset.classes
    model = distributed.wrap(build_model(recipe, len(classes)))
    optimizer = get_optimizer(model, "adamw", recipe.learning_rate, weight_decay=recipe.weight_decay)
    if recipe.time_budget_minutes:
        budget = distributed.SharedClockTimeBudgetCosine if distributed.active() else TimeBudgetCosine
        scheduler = budget(optimizer, recipe.time_budget_minutes * 60)
        n_epochs = 10_000  # the budget ends training
    else:
        scheduler = get_scheduler(optimizer, recipe.epochs, len(loaders["train"]))
        n_epochs = recipe.epochs
    history = optimize(
        loaders, model, optimizer, get_loss(recipe.label_smoothing), n_epochs, recipe.checkpoint,
        interactive_tracking=interactive_tracking, scheduler=scheduler,
        config={"recipe": asdict(recipe), "class_names": classes}, resume=recipe.resume,
    )
    load_checkpoint(recipe.checkpoint, model)  # the best epoch, not the last
    return distributed.unwrap(model), history, loaders


def choose_eval_size(model: torch.nn.Module, loaders, sizes: list[tuple[int, int]]) -> tuple[Preprocessing, dict]:
    """Pick the (resize, crop) with the best validation accuracy (never the test split)."""
    base: Preprocessing = loaders["valid"].dataset.preprocessing
    scores = {}
    for resize, crop in sizes:
        prep = Preprocessing(resize=resize, crop=crop, mean=base.mean, std=base.std, interpolation=base.interpolation)
        predictor = Predictor(model, loaders["train"].dataset.classes, preprocessing=prep)
        result = predict_dataset(loaders["valid"].dataset, predictor, progress=False)
        scores[f"{resize}/{crop}"] = result.accuracy
    best = max(scores, key=scores.get)
    resize, crop = map(int, best.split("/"))
    return Preprocessing(resize=resize, crop=crop, mean=base.mean, std=base.std, interpolation=base.interpolation), scores


def export_scratch(model: torch.nn.Module, loaders, recipe: ScratchRecipe, history: History) -> tuple[Path, dict]:
    """Export with the validation-chosen resolution; returns the path and the training report (the test
    split is not read: the exported file is evaluated afterwards)."""
    prep, valid_scores = choose_eval_size(model, loaders, recipe.eval_sizes)
    predictor = Predictor(model, loaders["train"].dataset.classes, preprocessing=prep)
    valid = loaders["valid"].dataset
    check = [valid.raw(i) for i in range(min(32, len(valid)))]
    report = {
        "eval_size": [prep.resize, prep.crop],
        "valid_accuracy_by_size": valid_scores,
        "epochs": len(history.train_loss),
        "best_epoch": history.best_epoch + 1,
        "train_seconds": sum(history.epoch_seconds),
        "seconds_per_epoch": sum(history.epoch_seconds) / max(1, len(history.epoch_seconds)),
        "data_wait_fraction": sum(history.data_seconds) / max(1e-9, sum(history.epoch_seconds)),
    }
    path = export(
        predictor, recipe.export_path, [image for image, _ in check], [label for _, label in check],
        min_accuracy=2.0 / len(predictor.class_names),
        metadata={"model": "MyModel", "recipe": asdict(recipe), "valid_accuracy_by_size": valid_scores, "report": report},
    )
    export_openvino_beside(path, network=model)  # the faster serving copy (src.serving.recognizer.runtime)
    return path, report
