"""Transform presets, in the spirit of torchvision's references/classification/presets.py.

`Preprocessing` is the single description of how a model wants its pixels: the data loaders, the
feature cache and the exported Predictor all build their transforms from it, so training and
serving can never disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """Evaluation-time preprocessing: resize the short side, centre-crop, normalise."""

    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"  # "bilinear" or "bicubic"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Preprocessing":
        values = dict(values)
        values["mean"] = tuple(values["mean"])
        values["std"] = tuple(values["std"])
        return cls(**values)

    @property
    def interpolation_mode(self) -> v2.InterpolationMode:
        return v2.InterpolationMode(self.interpolation)


def eval_transform(prep: Preprocessing) -> v2.Compose:
    """uint8 CHW tensor -> normalised float tensor, resize + centre crop."""
    return v2.Compose(
        [
            v2.Resize(prep.resize, interpolation=prep.interpolation_mode, antialias=True),
            v2.CenterCrop(prep.crop),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(prep.mean, prep.std),
        ]
    )


def train_transform(prep: Preprocessing, crop: int | None = None, randaugment: bool = True) -> v2.Compose:
    """Augmenting transform for training on uint8 CHW tensors.

    crop: training resolution; defaults to prep.crop. Training a little below the test resolution is
    both faster and, with global average pooling, usually more accurate (Touvron et al., "FixRes").
    """
    size = crop or prep.crop
    steps: list = [
        v2.RandomResizedCrop(size, scale=(0.25, 1.0), interpolation=prep.interpolation_mode, antialias=True),
        v2.RandomHorizontalFlip(),
    ]
    if randaugment:
        steps.append(v2.RandAugment(num_ops=2, magnitude=9))
    else:
        steps.append(v2.ColorJitter(0.3, 0.3, 0.3))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(prep.mean, prep.std)]
    return v2.Compose(steps)
