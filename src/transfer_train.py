"""The transfer recipe: frozen ImageNet trunk -> cached activations -> fine-tuned tail + head -> export.

    python -m src.transfer_train --data ../shared/indian_monuments --no-landmark ../shared/no_landmark
    python -m src.transfer_train --recipe fast ...    # half the compute (`RECIPES`)

1. The backbone's trunk (all but its last block) runs once per photo and view; its activations are
   cached on disk (`src.features`).
2. Linear probe: the frozen tail gives pooled features, a logistic regression fits the head (its
   strength chosen on validation).
3. Fine-tune: the tail and a new head train on the cached activations for a few epochs
   (`src.finetune`); the better of probe and fine-tune on validation is kept.

With `refit` (the default) steps 2-3 give way to one fine-tune on EVERY training photo (validation
split included), for the number of epochs and with the "no landmark" threshold that cross-validation
chose (`src.crossval`): 25 % more photos, where no held-out photo is left to choose anything on.

Optionally a "no landmark" background class is learned from photos that show no landmark; the
decision threshold is chosen on validation photos. Only half of the no-landmark object categories
are used for training and validation: the other half is kept apart to measure, honestly, how often
the model names a landmark in a photo of something it has never seen.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal, Optional, get_args

import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from .calibration import fit_temperature, scale_head
from .data import DataConfig, build_datasets
from .dataset import DecodedImageDataset, FolderScan, decode_folder, stratified_split
from .features import bf16_is_fast, cached_activations, inference_graph, run_in_batches
from .finetune import TailFinetuneConfig, finetune_tail
from .images import is_image_file
from .openset import choose_threshold, is_landmark
from .predictor import Predictor, export, load_exported, predict_dataset
from .transfer import TransferModel, create_backbone, get_backbone_spec, split_trunk_and_tail
from .transforms import Preprocessing

BACKGROUND_CLASS = "no_landmark"


BACKBONE_STRIDE = 32  # every registry backbone's last feature map is 1/32 of its input
EvalCrop = Literal["centre", "full"]  # see TransferRecipe.eval_crop
EVAL_CROPS: tuple[str, ...] = get_args(EvalCrop)


@dataclass
class TransferRecipe:
    data_dir: Optional[str] = None
    backbone: str = "tf_efficientnet_lite0"
    # Augmented views per training photo, on top of the centre crop. 5-fold CV (`src.crossval`, last
    # epoch): 3 views 97.4 %, 4 views 97.6 %, 5 views 97.7 % (results/crossval_lite0_views{3,4,5}.json).
    # 4, because the refit below on 25 % more photos is worth more (+0.6 points when a fold's training
    # photos grow by 25 %) and 5 views with it do not fit 5 minutes of training.
    train_views: int = 4
    # Training views' size in pixels; None: the backbone's crop (Lite0: 224). Smaller views cost less
    # in the trunk and in every fine-tuning epoch (192: 0.7x), and the evaluation input shrinks with
    # them (`evaluation_preprocessing`), keeping the train/test object-size ratio ("FixRes").
    train_crop: Optional[int] = None
    tail_stages: int = 1  # backbone stages after the cached trunk: frozen for the probe, trained when fine-tuning
    no_landmark_dir: Optional[str] = None  # photos with no landmark: learned as a background class
    c_grid: tuple[float, ...] = (0.1, 0.3, 1.0)  # linear probe: inverse L2 strength, chosen on validation
    finetune: Optional[TailFinetuneConfig] = field(default_factory=TailFinetuneConfig)  # None: probe only
    # Refit: fine-tune on EVERY training photo for finetune.epochs (the last epoch kept), instead of on
    # the train split with the epoch, probe-vs-fine-tune and threshold chosen on the validation split.
    refit: bool = True
    # Evaluation and serving input, at the training scale (Lite0: short side resized to 256):
    # "centre" takes its centre crop (224 x 224), "full" the whole short side (256 x 256), more of the
    # photo for 1.3x the compute. Training views keep the centre crop's size. 5-fold CV, 4 views:
    # centre 97.61 %, full 97.82 % (results/crossval_lite0_views4_full_float32_zen3.json).
    eval_crop: EvalCrop = "full"
    # Temperature and "no landmark" threshold of a refit model: chosen by `src.crossval` on
    # out-of-fold logits (results/crossval_lite0_views4_full_float32_zen3.json,
    # `temperature_out_of_fold` 0.447, rounded; ECE out of fold 25.6 % raw, 0.7 % calibrated), and
    # `threshold_out_of_fold`, on the calibrated probabilities. Both depend on the views, epochs and
    # eval_crop: with other settings, cross-validate them.
    temperature: float = 0.45
    threshold: float = 0.56
    valid_size: float = 0.2
    seed: int = 42
    limit: int = -1
    export_path: str = "checkpoints/transfer_exported.pt"


# Named recipes (`--recipe`): the default is the most accurate by 5-fold cross-validation (97.82 %);
# "fast" the most accurate we found that trains in 5 minutes on 2 CPU cores without native bfloat16,
# where the default takes 9 (4.5 with bfloat16): 97.57 %, temperature 0.44 and threshold 0.59 out of
# fold, 4.1-4.4 minutes (results/crossval_lite0_views3_epochs4_crop192_full_float32_zen3.json,
# transfer_lite0_fast.json). Fields not named here are the defaults'.
RECIPES: dict[str, TransferRecipe] = {
    "default": TransferRecipe(),
    "fast": TransferRecipe(train_views=3, train_crop=192, finetune=TailFinetuneConfig(epochs=4), temperature=0.44, threshold=0.59),
}


def object_category(path: Path) -> str:
    """Caltech-style names: 'Faces_image_0079.jpg' -> 'Faces'."""
    return path.name.rsplit("_image_", 1)[0]


def split_no_landmark(folder: Path, seed: int = 42) -> dict[str, list[Path]]:
    """Split no-landmark photos BY OBJECT CATEGORY: even-numbered categories train/valid the
    background class, odd-numbered ones are held out for measurement only."""
    photos = sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_image_file(p))
    if not photos:
        raise FileNotFoundError(f"no photos found under {folder} (expected images of things that are not landmarks)")
    categories = sorted({object_category(p) for p in photos})
    used = {c for i, c in enumerate(categories) if i % 2 == 0}
    train_pool = [p for p in photos if object_category(p) in used]
    held_out = [p for p in photos if object_category(p) not in used]
    labels = [categories.index(object_category(p)) for p in train_pool]
    train_idx, valid_idx = stratified_split(labels, 0.25, seed)
    return {"train": [train_pool[i] for i in train_idx], "valid": [train_pool[i] for i in valid_idx], "held_out": held_out}


def _decode_paths(paths: list[Path], root: Path, name: str) -> list[torch.Tensor]:
    scan = FolderScan(root=root, classes=[name], samples=[(p, 0) for p in paths])
    return decode_folder(scan).images


@dataclass
class ActivationSplits:
    """Cached trunk activations per split ("train" holds all its views), with labels."""

    x: dict[str, torch.Tensor]
    y: dict[str, torch.Tensor]


def training_preprocessing(recipe: TransferRecipe) -> Preprocessing:
    """The backbone's preprocessing at the recipe's training size (`TransferRecipe.train_crop`):
    what training views are cut at, and the scale evaluation starts from."""
    own = get_backbone_spec(recipe.backbone).preprocessing
    if recipe.train_crop is None or recipe.train_crop == own.crop:
        return own
    if recipe.train_crop < BACKBONE_STRIDE:
        raise ValueError(f"train_crop must be at least {BACKBONE_STRIDE} pixels (the backbone's stride), got {recipe.train_crop}")
    return replace(own, resize=round(own.resize * recipe.train_crop / own.crop), crop=recipe.train_crop)


def evaluation_preprocessing(recipe: TransferRecipe) -> Preprocessing:
    """How photos are prepared for validation, test and the exported model (`TransferRecipe.eval_crop`).

    "full" resizes the short side to the training scale rounded to a multiple of the backbone's stride
    (Lite0: 256 for 224 training views, 224 for 192 ones) and keeps the whole square: then the last
    feature map tiles the photo exactly. The same 5-fold CV models (the "fast" recipe: 192-pixel views)
    scored 97.57 % on the 224 square, 97.18-97.39 % on 212, 219, 228 and 232 (README, Results).
    """
    if recipe.eval_crop not in EVAL_CROPS:
        raise ValueError(f"eval_crop must be one of {EVAL_CROPS}, got {recipe.eval_crop!r}")
    train = training_preprocessing(recipe)
    if recipe.eval_crop == "centre":
        return train
    side = BACKBONE_STRIDE * max(1, round(train.resize / BACKBONE_STRIDE))
    return replace(train, resize=side, crop=side)


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
    train/valid; with background_valid_trains, all of them join train). Returns them with the class
    names and the background photo counts. eval_prep: another input for the non-training rows than
    the recipe's (`evaluation_preprocessing`)."""
    classes = list(datasets["train"].classes)
    trunk_name = f"{recipe.backbone}-trunk-{recipe.tail_stages}"
    # Training rows use the training crop; validation, test and held-out rows the evaluation input.
    train_prep, eval_prep = training_preprocessing(recipe), eval_prep or evaluation_preprocessing(recipe)
    # Trace and freeze the trunk once per input size, for every split and view: building the graph
    # costs 1-2 s, and `extract_features` would otherwise rebuild it for each of them.
    graphs: dict[int, torch.jit.ScriptModule] = {}

    def activations(images, identity, view, prep, seed=0):
        if prep.crop not in graphs:
            graphs[prep.crop] = inference_graph(trunk, torch.zeros(1, 3, prep.crop, prep.crop).contiguous(memory_format=torch.channels_last))
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

    background_info = {}
    if recipe.no_landmark_dir:
        folder = Path(recipe.no_landmark_dir)
        background = len(classes)
        for part, paths in split_no_landmark(folder, recipe.seed).items():
            key = {"train": "train", "valid": "train" if background_valid_trains else "valid", "held_out": "no_landmark_held_out"}[part]
            background_info[part] = len(paths)
            if key not in splits:
                continue
            images = _decode_paths(paths, folder, BACKGROUND_CLASS)
            acts = activations(images, "|".join(map(str, paths)), "eval", train_prep if key == "train" else eval_prep)
            labels = torch.full((len(acts),), background)
            x[key], y[key] = (torch.cat([x[key], acts]), torch.cat([y[key], labels])) if key in x else (acts, labels)
        classes = classes + [BACKGROUND_CLASS]
    return ActivationSplits(x=x, y=y), classes, background_info


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


def closed_set_scores(scores: torch.Tensor, background: list[int]) -> torch.Tensor:
    """Probabilities or logits with the background classes taken out of the race (for "which
    landmark?" metrics). -inf, not -1: a logit can be below -1 and must still lose to a landmark."""
    scores = scores.clone()
    scores[:, background] = -torch.inf
    return scores


def background_indices(classes: list[str]) -> list[int]:
    """Indices of the background classes ("no_landmark") among `classes`; empty without one."""
    return [classes.index(BACKGROUND_CLASS)] if BACKGROUND_CLASS in classes else []


def is_landmark_label(y: torch.Tensor, background: list[int]) -> torch.Tensor:
    """True where the label is a landmark class (not one of the background classes)."""
    return ~torch.isin(y, torch.tensor(background, dtype=torch.long))


def closed_set_accuracy(logits: torch.Tensor, y: torch.Tensor, background: list[int]) -> float:
    """Accuracy on the landmark photos only, answering with the best landmark class."""
    keep = is_landmark_label(y, background)
    return (closed_set_scores(logits[keep], background).argmax(dim=1) == y[keep]).float().mean().item()


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
    fold by `src.crossval`."""
    head = zero_head(extractor.feature_dim, len(classes))
    result = finetune_tail(tail, head, x["train"], y["train"], None, None, recipe.finetune)
    scale_head(head, recipe.temperature).eval()
    report = {
        "finetune": {"epochs": recipe.finetune.epochs, "history": result.history},
        "temperature": recipe.temperature,
        "threshold_source": "recipe: out of fold, src.crossval",
    }
    return FittedHead(head, "fine-tuned tail, refit on every training photo", recipe.threshold, report)


def every_training_photo(datasets: dict) -> DecodedImageDataset:
    """train + valid as one dataset, in the training folder's order (as `src.crossval` reads it, so
    the two share cached activations)."""
    train, valid = datasets["train"], datasets["valid"]
    return DecodedImageDataset(train.decoded, sorted(train.indices + valid.indices))


def train_transfer(recipe: TransferRecipe) -> dict:
    """Activations; then a refit on every training photo (cross-validated epochs and threshold) or,
    without `refit`, probe and fine-tune chosen on validation; test metrics, export, and an end-to-end
    check of the export."""
    if recipe.refit and recipe.finetune is None:
        raise ValueError("refit fine-tunes the tail for a cross-validated number of epochs: give recipe.finetune, or refit=False for a linear probe")
    start = time.perf_counter()
    extractor, spec = create_backbone(recipe.backbone)
    trunk, tail = split_trunk_and_tail(extractor, recipe.tail_stages)
    datasets = load_datasets(recipe)
    fit_sets = {"train": every_training_photo(datasets)} if recipe.refit else datasets
    splits, classes, background_info = compute_activations(
        recipe, trunk, fit_sets, ("train",) if recipe.refit else ("train", "valid"), background_valid_trains=recipe.refit
    )
    feature_seconds = time.perf_counter() - start
    background = background_indices(classes)
    x, y = splits.x, splits.y
    fit = (refit_on_every_photo if recipe.refit else choose_on_validation)(recipe, extractor, tail, x, y, classes)
    head = fit.head
    train_seconds = time.perf_counter() - start

    def probabilities(split: str) -> torch.Tensor:
        with torch.no_grad():
            return torch.softmax(head(run_in_batches(tail, x[split])), dim=1)

    # Evaluation: test photos (landmarks only) and held-out no-landmark photos.
    evaluation, *_ = compute_activations(recipe, trunk, datasets, ("test", "no_landmark_held_out"))
    x.update(evaluation.x)
    y.update(evaluation.y)
    test_probs = probabilities("test")
    landmark_scores = closed_set_scores(test_probs, background)
    k = min(5, len(classes) - len(background))
    top5 = (landmark_scores.topk(k, dim=1).indices == y["test"][:, None]).any(dim=1).float().mean().item()
    report = {
        "backbone": recipe.backbone,
        "method": fit.method,
        "train_views": recipe.train_views,
        "train_crop": training_preprocessing(recipe).crop,
        "eval_input": evaluation_preprocessing(recipe).crop,
        "train_photos": len(fit_sets["train"]),
        "bf16_autocast": bf16_is_fast(),
        **fit.report,
        "test_accuracy": closed_set_accuracy(test_probs, y["test"], background),
        "test_top5": top5,
        "test_images": len(y["test"]),
        "threshold": fit.threshold,
        # the test split holds landmark photos only
        "test_landmarks_rejected": 1 - is_landmark(test_probs, background, fit.threshold).float().mean().item(),
        "feature_seconds": feature_seconds,  # trunk activations of everything the model is fitted on
        "train_seconds_total": train_seconds,  # everything the model needs: activations, fitting, threshold
        "background_photos": background_info,
    }
    if fit.probe is not None:
        frozen_tail, probe_head = fit.probe
        report["test_accuracy_probe"] = closed_set_accuracy(probe_head(run_in_batches(frozen_tail, x["test"])), y["test"], background)
    if "no_landmark_held_out" in x:
        held_out = probabilities("no_landmark_held_out")
        report["held_out_no_landmark_named"] = is_landmark(held_out, background, fit.threshold).float().mean().item()

    model = TransferModel(extractor, n_classes=len(classes), frozen=True, spec=spec)
    model.head.load_state_dict(head.state_dict())
    predictor = Predictor(model, classes, preprocessing=evaluation_preprocessing(recipe))
    valid = datasets["valid"]  # a few validation photos to verify the export with (trained on, when refitting)
    check = [valid.raw(i) for i in range(0, len(valid), max(1, len(valid) // 24))][:24]
    export(
        predictor, recipe.export_path, [image for image, _ in check], [label for _, label in check],
        min_accuracy=0.5, metadata={
            "model": f"{recipe.backbone} + {fit.method}", "threshold": fit.threshold,
            "background_classes": [BACKGROUND_CLASS] if background else [], "recipe": asdict(recipe), "report": report,
        },
    )
    report["export_path"] = recipe.export_path
    report["export_megabytes"] = Path(recipe.export_path).stat().st_size / 1e6
    # What the app gets: decode -> the exported file's own preprocessing -> probabilities. Plain argmax
    # over every class, as src.evaluate counts: a landmark photo answered "no_landmark" is wrong here,
    # while test_accuracy above ranks the landmark classes only (the app's top-1 when it names one).
    exported, _ = load_exported(recipe.export_path)
    report["test_accuracy_exported"] = predict_dataset(datasets["test"], exported, progress=False).accuracy
    return report


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options that describe a recipe, shared by this CLI and `src.crossval`'s:
    a named recipe (`RECIPES`) and any of its settings to change."""
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="default", help="named recipe the other options change (default: %(default)s)")
    parser.add_argument("--data", default=None, help="folder with train/ and test/")
    parser.add_argument("--no-landmark", default=None, help="folder of photos with no landmark (background class)")
    # None: the named recipe's value
    parser.add_argument("--backbone", default=None)
    parser.add_argument("--views", type=int, default=None, help="augmented views per training photo")
    parser.add_argument("--train-crop", type=int, default=None, help="training views' size in pixels; evaluation scales with it")
    parser.add_argument("--epochs", type=int, default=None, help="tail fine-tuning epochs")
    parser.add_argument("--tail-stages", type=int, default=None, help="backbone stages to fine-tune (the trunk before them is cached)")
    parser.add_argument("--mixup", type=float, default=None, help="fine-tuning: mixup alpha on the cached activations (0: off)")
    parser.add_argument("--ema", type=float, default=None, help="fine-tuning: decay of a moving average of the weights (0: off)")
    parser.add_argument("--eval-crop", choices=EVAL_CROPS, default=None, help="evaluate and serve on the training scale's centre crop or its whole short side (full)")


def _given(**values) -> dict:
    return {name: value for name, value in values.items() if value is not None}


def finetune_from_arguments(args: argparse.Namespace) -> TailFinetuneConfig:
    """The named recipe's fine-tuning settings with the options given on the command line."""
    base = RECIPES[args.recipe].finetune or TailFinetuneConfig()
    return replace(base, **_given(epochs=args.epochs, mixup_alpha=args.mixup, ema_decay=args.ema))


def recipe_from_arguments(args: argparse.Namespace, **fields) -> TransferRecipe:
    """The named recipe changed by the options `add_recipe_arguments` gave; `fields` sets others."""
    fields.setdefault("finetune", finetune_from_arguments(args))
    given = _given(backbone=args.backbone, train_views=args.views, tail_stages=args.tail_stages, train_crop=args.train_crop, eval_crop=args.eval_crop)
    return replace(RECIPES[args.recipe], data_dir=args.data, no_landmark_dir=args.no_landmark, **given, **fields)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Transfer learning on cached ImageNet-backbone activations: linear probe, tail fine-tuning, export.")
    add_recipe_arguments(parser)
    parser.add_argument("--no-finetune", action="store_true", help="linear probe only (frozen backbone; implies --no-refit)")
    parser.add_argument("--no-refit", action="store_true", help="fit on the train split and choose the epoch and threshold on the validation split")
    parser.add_argument("--threshold", type=float, default=None, help="'no landmark' threshold when refitting (default: the recipe's, out of fold by `src.crossval`)")
    parser.add_argument("--temperature", type=float, default=None, help="logits are divided by it when refitting (default: the recipe's, out of fold by `src.crossval`)")
    parser.add_argument("--limit", type=int, default=-1)
    parser.add_argument("--export", default=TransferRecipe.export_path)
    parser.add_argument("--report", default="results/transfer.json")
    args = parser.parse_args(argv)
    finetune = None if args.no_finetune else finetune_from_arguments(args)
    recipe = recipe_from_arguments(
        args, limit=args.limit, export_path=args.export, finetune=finetune, refit=not (args.no_refit or args.no_finetune), **_given(threshold=args.threshold, temperature=args.temperature)
    )
    start = time.perf_counter()
    report = train_transfer(recipe)
    report["wall_seconds_total"] = time.perf_counter() - start
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
