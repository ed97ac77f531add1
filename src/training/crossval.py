"""Cross-validate the transfer recipe: choose a backbone on every train/ photo, not on one split.

    python -m src.training.crossval --data ../shared/indian_monuments --no-landmark ../shared/no_landmark \
        --backbone tf_efficientnet_lite2 --report results/crossval_lite2.json

One validation split of indian_monuments holds 562 photos: one photo moves its accuracy by 0.18
points and a different dropout seed by about 0.5, while the backbones differ by less than that.
Here the train/ folder is cut into k stratified folds; each fold is validated once by a tail
fine-tuned on the others (`src.training.finetune`, the same settings and cached trunk activations as
`src.training.transfer`), so every train/ photo counts. The test/ folder is never opened.

No-landmark photos (the background class) join the training part of every fold; the score is the
accuracy on the landmark photos of the held-out fold, answered with the best landmark class.

Every photo is also scored once by a model that never saw it (out of fold): the temperature that
calibrates the probabilities (`src.evaluation.calibration`) and then the "no landmark" threshold are chosen on
those scores, and a model refit on every photo uses both (`src.training.transfer` with `refit`), where
no held-out photo is left to choose them on.
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter
from sklearn.model_selection import StratifiedKFold, train_test_split

from src.evaluation.calibration import expected_calibration_error, fit_temperature
from src.evaluation.openset import (
    background_indices,
    choose_threshold,
    closed_set_accuracy,
)
from src.models.backbones import (
    get_backbone_spec,
)
from src.runs import RUNS_DIR, load_runs
from src.training.features import run_in_batches
from src.training.finetune import TailFinetuneConfig, finetune_tail, normalized_tail
from src.training.recipes import (
    TransferRecipe,
    evaluation_preprocessing,
    training_preprocessing,
)
from src.training.transfer import training_photos, zero_head


@dataclass
class FoldPlan:
    """Row indices into the cached activations (all views stacked) for one fold."""

    train_rows: torch.Tensor
    valid_rows: torch.Tensor


def fold_plans(labels: list[int], views: int, n_background: int, folds: int, seed: int, train_fraction: float = 1.0) -> list[FoldPlan]:
    """Stratified folds over the landmark photos. Activation rows are laid out as `views` blocks of
    the photos (block 0: the centre crop), then `n_background` background rows: training takes every
    view of the other folds' photos plus all background rows; validation rows index the photos
    (the caller's evaluation activations: the centre crop, or what `TransferRecipe.eval_crop` asks for).

    train_fraction < 1 trains each fold on a stratified part of its photos (a learning curve: what
    would more photos be worth?); validation stays the same."""
    n = len(labels)
    background_rows = torch.arange(views * n, views * n + n_background)
    plans = []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (train_idx, valid_idx) in enumerate(splitter.split(torch.zeros(n), labels)):
        if train_fraction < 1:
            train_idx, _ = train_test_split(train_idx, train_size=train_fraction, stratify=[labels[i] for i in train_idx], random_state=k)
        train_idx = torch.from_numpy(train_idx)
        train_rows = torch.cat([train_idx + view * n for view in range(views)] + [background_rows])
        plans.append(FoldPlan(train_rows=train_rows, valid_rows=torch.from_numpy(valid_idx)))
    return plans


def cross_validate(
    recipe: TransferRecipe, folds: int = 5, seed: int = 0, progress: bool = True, train_fraction: float = 1.0, eval_inputs: Sequence[int] = ()
) -> dict:
    """k-fold accuracy of `recipe` (its backbone, views and fine-tuning settings) on train/.

    eval_inputs: sizes in pixels of other whole-frame inputs to score the same fold models on (the
    short side resized to the size, all of it kept): which serving input suits the training views."""
    if recipe.finetune is None:
        raise ValueError("cross-validation measures the fine-tuned recipe: give recipe.finetune")
    if eval_inputs and recipe.finetune.cosine_scale > 0:
        raise ValueError("--eval-inputs scores the plain head during training; it does not measure a cosine classifier")
    start = time.perf_counter()
    cached = training_photos(recipe)
    extractor, tail, every_photo, classes = cached.extractor, cached.tail, cached.photos, cached.classes
    x, y = cached.activations.x["train"], cached.activations.y["train"]
    eval_x = cached.evaluation_rows()
    other_x = {size: cached.evaluation_rows(replace(training_preprocessing(recipe), resize=size, crop=size)) for size in eval_inputs}
    activation_seconds = time.perf_counter() - start
    background = background_indices(classes)
    labels = every_photo.targets
    views = 1 + recipe.train_views
    plans = fold_plans(labels, views, len(x) - views * len(labels), folds, seed, train_fraction)

    pristine_tail = copy.deepcopy(tail)
    histories = []
    out_of_fold = torch.zeros(len(labels), len(classes))  # final-epoch logits, each photo by the fold that held it out
    other_scores: dict[int, list[float]] = {size: [] for size in eval_inputs}  # per fold, final epoch
    for k, plan in enumerate(plans):
        fold_other: dict[int, float] = {}  # this fold on the other inputs, rewritten every epoch: the final one stays
        fold_tail = normalized_tail(copy.deepcopy(pristine_tail), recipe.finetune)
        head = zero_head(extractor.feature_dim, len(classes))
        valid_y = y[plan.valid_rows]

        def score(logits: torch.Tensor) -> float:  # called after every epoch: the last call is the final epoch's
            out_of_fold[plan.valid_rows] = logits
            for size, inputs in other_x.items():  # the model as it stands after this epoch
                with torch.no_grad():
                    other_logits = head(run_in_batches(fold_tail, inputs[plan.valid_rows]))
                fold_other[size] = closed_set_accuracy(other_logits, valid_y, background)
            return closed_set_accuracy(logits, valid_y, background)

        result = finetune_tail(fold_tail, head, x[plan.train_rows], y[plan.train_rows], eval_x[plan.valid_rows], score, recipe.finetune, progress=progress)
        histories.append([epoch["valid_score"] for epoch in result.history])
        for size, accuracy in fold_other.items():
            other_scores[size].append(accuracy)
        if progress:
            print(f"fold {k + 1}/{folds}: best {result.best_valid_score:.4f} (epoch {result.best_epoch + 1})", flush=True)
    report = summarise(histories, plans, recipe, folds, seed, activation_seconds, time.perf_counter() - start)
    report["train_fraction"] = train_fraction
    if eval_inputs:
        report["accuracy_final_epoch_by_eval_input"] = {str(size): photo_weighted_mean(scores, plans) for size, scores in other_scores.items()}
    report.update(calibrate_out_of_fold(out_of_fold, torch.tensor(labels), background))
    if not isinstance(recipe.data_dir, (str, Path)) and recipe.data_dir and len(recipe.data_dir) > 1:
        report["accuracy_final_epoch_by_root"] = accuracy_by_root(out_of_fold, torch.tensor(labels), classes, background, recipe.data_dir)
    return report


def accuracy_by_root(logits: torch.Tensor, labels: torch.Tensor, classes: list[str], background: list[int], roots: Sequence[str | Path]) -> dict[str, float]:
    """Out-of-fold accuracy of each data root's landmark photos (a class belongs to the root whose
    train/ folder holds it)."""
    out = {}
    for root in roots:
        own = torch.tensor([(Path(root) / "train" / classes[label]).is_dir() for label in labels.tolist()])
        if own.any():
            out[str(root)] = closed_set_accuracy(logits[own], labels[own], background)
    return out


def calibrate_out_of_fold(logits: torch.Tensor, labels: torch.Tensor, background: list[int]) -> dict:
    """Temperature and "no landmark" threshold from out-of-fold logits, with the ECE before and after.

    Background photos train in every fold, so only landmark photos are scored out of fold: the
    temperature minimises their negative log-likelihood, and the threshold is the strictest that
    rejects at most 2 % of them once calibrated (see src.openset.choose_threshold)."""
    temperature = fit_temperature(logits, labels)
    raw, calibrated = torch.softmax(logits, dim=1), torch.softmax(logits / temperature, dim=1)
    return {
        "temperature_out_of_fold": temperature,
        "ece_out_of_fold": {"raw": expected_calibration_error(labels, raw.numpy()), "calibrated": expected_calibration_error(labels, calibrated.numpy())},
        "threshold_out_of_fold": choose_threshold(calibrated, calibrated[:0], background),
    }


def photo_weighted_mean(fold_scores: list[float], plans: list[FoldPlan]) -> float:
    """Mean of per-fold accuracies weighted by the folds' photos: every photo counts once."""
    sizes = [len(plan.valid_rows) for plan in plans]
    return sum(score * size for score, size in zip(fold_scores, sizes)) / sum(sizes)


def summarise(histories: list[list[float]], plans: list[FoldPlan], recipe: TransferRecipe, folds: int, seed: int, activation_seconds: float, total_seconds: float) -> dict:
    """Mean accuracy over folds per epoch (photo-weighted: every photo counts once), the final epoch's
    (what a fixed-length run would give) and the best epoch's (what keeping the best epoch aims at)."""
    photos = sum(len(plan.valid_rows) for plan in plans)
    by_epoch = [photo_weighted_mean([history[e] for history in histories], plans) for e in range(len(histories[0]))]
    best_epoch = max(range(len(by_epoch)), key=by_epoch.__getitem__)
    final = [history[-1] for history in histories]
    return {
        "backbone": recipe.backbone,
        "train_views": recipe.train_views,
        "tail_stages": recipe.tail_stages,
        "train_crop": training_preprocessing(recipe).crop,
        "eval_crop": recipe.eval_crop,
        "eval_input": evaluation_preprocessing(recipe).crop,
        "finetune": asdict(recipe.finetune),
        "folds": folds,
        "fold_seed": seed,
        "photos": photos,
        "accuracy_by_epoch": by_epoch,
        "best_epoch": best_epoch,
        "accuracy_best_epoch": by_epoch[best_epoch],
        "accuracy_final_epoch": by_epoch[-1],
        "fold_accuracy_final_epoch": final,
        "fold_spread_final_epoch": statistics.stdev(final) if len(final) > 1 else 0.0,
        "activation_seconds": activation_seconds,
        "seconds_total": total_seconds,
    }


def load_reports(folder: str | Path = RUNS_DIR) -> list[dict]:
    """Every cross-validation run recorded in `folder` (`python -m src crossval` writes them), oldest
    first, each as its settings and its metrics in one dict."""
    return [{**record["recipe"], **record["metrics"]} for record in load_runs(Path(folder), kind="crossval")]


def crossval_label(report: dict) -> str:
    """A short name for a `src.training.crossval` report's setting: backbone, views, and what else it changed."""
    finetune = report.get("finetune") or {}
    parts = [f"{report['backbone'].replace('tf_efficientnet_', '')}, {report['train_views']} views"]
    own_crop = get_backbone_spec(report["backbone"]).preprocessing.crop
    if report.get("train_crop", own_crop) != own_crop:
        parts.append(f"{report['train_crop']}-px views")
    if finetune.get("epochs", TailFinetuneConfig.epochs) != TailFinetuneConfig.epochs:
        parts.append(f"{finetune['epochs']} epochs")
    if report.get("eval_crop") == "full":
        parts.append("full-frame eval")
    if finetune.get("mixup_alpha", 0) > 0:
        parts.append(f"mixup {finetune['mixup_alpha']}")
    if finetune.get("ema_decay", 0) > 0:
        parts.append(f"EMA {finetune['ema_decay']}")
    if report.get("train_fraction", 1.0) < 1:
        parts.append(f"{report['train_fraction']:.0%} of photos")
    return ", ".join(parts)


def plot_crossval(reports: Sequence[dict]) -> Figure:
    """Cross-validated accuracy per fine-tuning epoch (`src.training.crossval` reports), one line per setting,
    the best epoch of each marked: how settings are compared without touching the test split."""
    figure = Figure(figsize=(6.5, 3.8))
    ax = figure.add_subplot()
    for report in reports:
        scores = report["accuracy_by_epoch"]
        epochs = list(range(1, len(scores) + 1))
        best = int(np.argmax(scores))
        line = ax.plot(epochs, scores, marker="o", label=f"{crossval_label(report)}: {scores[best]:.1%}")[0]
        ax.scatter([epochs[best]], [scores[best]], s=120, facecolors="none", edgecolors=line.get_color(), zorder=3)
    ax.set_xlabel("fine-tuning epoch")
    ax.set_ylabel("cross-validated accuracy")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.legend(loc="lower right", fontsize=9)
    folds = {report["folds"] for report in reports}
    ax.set_title(f"{'/'.join(map(str, sorted(folds)))}-fold cross-validation on the training photos")
    figure.tight_layout()
    return figure
