"""The from-scratch recipe: train MyModel, pick the test resolution on validation, export.

    python -m src.training.scratch --data ../shared/indian_monuments --epochs 40

The notebook calls the same functions with a smaller ScratchRecipe.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import torch

from src.data.loaders import DataConfig, make_loaders
from src.data.transforms import Preprocessing
from src.export import Predictor, export, predict_dataset
from src.models.scratch import MyModel
from src.training.loop import History, load_checkpoint, optimize
from src.training.optimization import (
    TimeBudgetCosine,
    get_loss,
    get_optimizer,
    get_scheduler,
)


@dataclass
class ScratchRecipe:
    data_dir: Optional[str] = None
    epochs: int = 40
    batch_size: int = 32
    train_crop: int = 128  # train below the test resolution: ~3x cheaper than 224
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    dropout: float = 0.3
    widths: tuple[int, ...] = (64, 128, 256, 384)
    num_workers: int = 1
    limit: int = -1
    checkpoint: str = "checkpoints/scratch_best.pt"
    export_path: str = "checkpoints/scratch_exported.pt"
    # candidate evaluation sizes (resize, crop); the best on the validation split is exported
    eval_sizes: list[tuple[int, int]] = field(default_factory=lambda: [(146, 128), (164, 144), (183, 160), (256, 224)])
    resume: bool = True
    # when set, train for this many minutes (learning rate on a wall-clock cosine) instead of `epochs`
    time_budget_minutes: Optional[float] = None


def build_model(recipe: ScratchRecipe, num_classes: int) -> MyModel:
    return MyModel(num_classes=num_classes, dropout=recipe.dropout, widths=tuple(recipe.widths))


def train_scratch(recipe: ScratchRecipe, interactive_tracking: bool = False):
    """Train MyModel; returns (model, history, loaders). Resumes an interrupted run."""
    torch.manual_seed(0)
    config = DataConfig(
        data_dir=recipe.data_dir, batch_size=recipe.batch_size, num_workers=recipe.num_workers,
        limit=recipe.limit, train_crop=recipe.train_crop,
    )
    loaders = make_loaders(config)
    classes = loaders["train"].dataset.classes
    model = build_model(recipe, len(classes))
    optimizer = get_optimizer(model, "adamw", recipe.learning_rate, weight_decay=recipe.weight_decay)
    if recipe.time_budget_minutes:
        scheduler = TimeBudgetCosine(optimizer, recipe.time_budget_minutes * 60)
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
    return model, history, loaders


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
    """Export with the validation-chosen resolution; returns the path and a report (test accuracy...)."""
    prep, valid_scores = choose_eval_size(model, loaders, recipe.eval_sizes)
    predictor = Predictor(model, loaders["train"].dataset.classes, preprocessing=prep)
    valid = loaders["valid"].dataset
    check = [valid.raw(i) for i in range(min(32, len(valid)))]
    path = export(
        predictor, recipe.export_path, [image for image, _ in check], [label for _, label in check],
        min_accuracy=2.0 / len(predictor.class_names),
        metadata={"model": "MyModel", "recipe": asdict(recipe), "valid_accuracy_by_size": valid_scores},
    )
    test = predict_dataset(loaders["test"].dataset, predictor)
    report = {
        "test_accuracy": test.accuracy,
        "test_images": len(test.truth),
        "eval_size": [prep.resize, prep.crop],
        "valid_accuracy_by_size": valid_scores,
        "epochs": len(history.train_loss),
        "best_epoch": history.best_epoch + 1,
        "train_seconds": sum(history.epoch_seconds),
        "seconds_per_epoch": sum(history.epoch_seconds) / max(1, len(history.epoch_seconds)),
        "data_wait_fraction": sum(history.data_seconds) / max(1e-9, sum(history.epoch_seconds)),
    }
    return path, report


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Train MyModel from scratch and export it.")
    parser.add_argument("--data", default=None, help="folder with train/ and test/ (default: LANDMARK_DATA or ./landmark_images)")
    parser.add_argument("--epochs", type=int, default=ScratchRecipe.epochs)
    parser.add_argument("--minutes", type=float, default=None, help="train for this wall-clock budget instead of --epochs")
    parser.add_argument("--batch-size", type=int, default=ScratchRecipe.batch_size)
    parser.add_argument("--train-crop", type=int, default=ScratchRecipe.train_crop)
    parser.add_argument("--lr", type=float, default=ScratchRecipe.learning_rate)
    parser.add_argument("--workers", type=int, default=ScratchRecipe.num_workers)
    parser.add_argument("--limit", type=int, default=-1)
    parser.add_argument("--checkpoint", default=ScratchRecipe.checkpoint)
    parser.add_argument("--export", default=ScratchRecipe.export_path)
    parser.add_argument("--report", default="results/scratch.json")
    parser.add_argument("--no-resume", action="store_true")
    args = parser.parse_args(argv)
    recipe = ScratchRecipe(
        data_dir=args.data, epochs=args.epochs, batch_size=args.batch_size, train_crop=args.train_crop,
        learning_rate=args.lr, num_workers=args.workers, limit=args.limit, checkpoint=args.checkpoint,
        export_path=args.export, resume=not args.no_resume, time_budget_minutes=args.minutes,
    )
    start = time.perf_counter()
    model, history, loaders = train_scratch(recipe)
    path, report = export_scratch(model, loaders, recipe, history)
    report["wall_seconds_total"] = time.perf_counter() - start
    report["command"] = "python -m src.training.scratch " + " ".join(argv if argv is not None else __import__("sys").argv[1:])
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"exported {path}")


if __name__ == "__main__":
    main()
