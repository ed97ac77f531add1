"""Training recipes: what a training run does, as dataclasses, and the named recipes (`RECIPES`).

A recipe's fields are its command-line options (`src.config`): a field's trailing comment is its
`--help`. Why each default was chosen, with the cross-validation runs behind it, is in
docs/experiments.md; the run records are in results/runs/.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal, Optional, Union, get_args

from src.training.finetune_config import TailFinetuneConfig

if TYPE_CHECKING:  # torch-free at import: `python -m src train --help` reads these dataclasses
    from src.data.transforms import Preprocessing

BACKBONE_STRIDE = 32  # every registry backbone's last feature map is 1/32 of its input
EvalCrop = Literal["centre", "full"]  # see TransferRecipe.eval_crop
EVAL_CROPS: tuple[str, ...] = get_args(EvalCrop)


@dataclass
class TransferRecipe:
    """Frozen ImageNet trunk -> cached activations -> fine-tuned last block + head (`src.training.transfer`)."""

    data_dir: Optional[str | tuple[str, ...]] = None  # one data root, or several whose classes are combined
    backbone: str = "tf_efficientnet_lite0"  # a name of the registry (src.models.backbones)
    train_views: int = 4  # augmented views per training photo, on top of the centre crop
    train_crop: Optional[int] = None  # training views' size in pixels (none given: the backbone's crop); evaluation scales with it
    tail_stages: int = 1  # backbone stages after the cached trunk: frozen for the probe, trained when fine-tuning
    no_landmark_dir: Optional[str] = None  # photos with no landmark: learned as a background class
    generated_background: int = 0  # generated non-photos (blank, gradient, noise, text...) that join the background class
    c_grid: tuple[float, ...] = (0.1, 0.3, 1.0)  # linear probe: inverse L2 strengths, chosen on validation
    finetune: Optional[TailFinetuneConfig] = field(default_factory=TailFinetuneConfig)  # None: linear probe only
    refit: bool = True  # fine-tune on every training photo with the cross-validated epochs, temperature and threshold
    eval_crop: EvalCrop = "full"  # evaluate and serve on the training scale's centre crop or its whole short side
    temperature: float = 0.45  # logits are divided by it when refitting (chosen out of fold by crossval)
    threshold: float = 0.56  # "no landmark" below this probability when refitting (chosen out of fold by crossval)
    min_confidence: Optional[float] = None  # kept in the export as a fallback placement probability, used only where no <model>.placement.json rule sits beside it (the shipped rule: python -m src.evaluation.placement --write-rule)
    valid_size: float = 0.2  # part of train/ held out for validation when not refitting
    seed: int = 42  # data split and augmentation seed
    limit: int = -1  # > 0: at most this many photos per split (quick runs)
    export_path: str = "checkpoints/transfer_exported.pt"  # where the exported model goes


@dataclass
class ScratchRecipe:
    """MyModel, the CNN from scratch, trained end to end on the photos (`src.training.scratch`)."""

    data_dir: Optional[str | tuple[str, ...]] = None  # one data root, or several whose classes are combined
    epochs: int = 40  # training epochs (unless time_budget_minutes is set)
    batch_size: int = 32  # photos per step
    train_crop: int = 128  # training resolution: below the test resolution, several times cheaper
    learning_rate: float = 2e-3  # peak learning rate of the cosine schedule
    weight_decay: float = 0.05  # AdamW weight decay
    label_smoothing: float = 0.1  # cross-entropy label smoothing
    dropout: float = 0.3  # before the classifier
    widths: tuple[int, ...] = (64, 128, 256, 384)  # channels of the four stages
    num_workers: int = 1  # data loader worker processes
    limit: int = -1  # > 0: at most this many photos per split (quick runs)
    checkpoint: str = "checkpoints/scratch_best.pt"  # best weights so far (training resumes from it)
    export_path: str = "checkpoints/scratch_exported.pt"  # where the exported model goes
    # candidate evaluation sizes (resize, crop); the best on the validation split is exported
    eval_sizes: list[tuple[int, int]] = field(default_factory=lambda: [(146, 128), (164, 144), (183, 160), (256, 224)])
    resume: bool = True  # continue from the checkpoint when it exists
    time_budget_minutes: Optional[float] = None  # train for this wall-clock budget (cosine over time) instead of epochs


Recipe = Union[TransferRecipe, ScratchRecipe]

# The named recipes (`--recipe`); fields not named are the dataclass defaults. "default" is what
# ships in checkpoints/: three 192-pixel views and four epochs (trains within five minutes on two
# CPU cores with native bfloat16), generated non-photos in its background class, and the temperature,
# threshold and minimum confidence for writing positions chosen by leave-landmarks-out
# cross-validation (docs/unknown.md). "accurate": four 224-pixel views and six epochs, the most
# accurate by 5-fold cross-validation on indian_monuments, at about twice the training time.
# "scratch": the course's CNN from scratch.
RECIPES: dict[str, Recipe] = {
    "default": TransferRecipe(
        train_views=3, train_crop=192, finetune=TailFinetuneConfig(epochs=4), generated_background=400,
        temperature=0.41, threshold=0.56, min_confidence=0.95,
    ),
    "accurate": TransferRecipe(export_path="checkpoints/transfer_accurate_exported.pt"),
    "scratch": ScratchRecipe(time_budget_minutes=58.0),
}
TRANSFER_RECIPES = tuple(name for name, recipe in RECIPES.items() if isinstance(recipe, TransferRecipe))


def training_preprocessing(recipe: TransferRecipe) -> Preprocessing:
    """The backbone's preprocessing at the recipe's training size (`TransferRecipe.train_crop`):
    what training views are cut at, and the scale evaluation starts from."""
    from src.models.backbones import get_backbone_spec  # imports torch: only when training

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
    feature map tiles the photo exactly (cross-validated against sizes off the stride: docs/experiments.md).
    """
    if recipe.eval_crop not in EVAL_CROPS:
        raise ValueError(f"eval_crop must be one of {EVAL_CROPS}, got {recipe.eval_crop!r}")
    train = training_preprocessing(recipe)
    if recipe.eval_crop == "centre":
        return train
    side = BACKBONE_STRIDE * max(1, round(train.resize / BACKBONE_STRIDE))
    return replace(train, resize=side, crop=side)
