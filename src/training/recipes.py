"""Training recipes: what a training run does, as dataclasses (`TransferRecipe`, named in `RECIPES`),
and the preprocessing a recipe trains and evaluates with.

The command line's options are the recipe's fields (`add_recipe_arguments`), so a recipe and the
command that runs it never disagree.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, replace
from typing import Literal, Optional, get_args

from src.data.transforms import Preprocessing
from src.models.backbones import get_backbone_spec
from src.training.finetune import TailFinetuneConfig

BACKBONE_STRIDE = 32  # every registry backbone's last feature map is 1/32 of its input
EvalCrop = Literal["centre", "full"]  # see TransferRecipe.eval_crop
EVAL_CROPS: tuple[str, ...] = get_args(EvalCrop)


@dataclass
class TransferRecipe:
    data_dir: Optional[str] = None
    backbone: str = "tf_efficientnet_lite0"
    # Augmented views per training photo, on top of the centre crop. 5-fold CV (`src.training.crossval`, last
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
    # Temperature and "no landmark" threshold of a refit model: chosen by `src.training.crossval` on
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



def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options that describe a recipe, shared by this CLI and `src.training.crossval`'s:
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


