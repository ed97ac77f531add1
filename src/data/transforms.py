"""Transform presets, in the spirit of torchvision's references/classification/presets.py.

`Preprocessing` is the single description of how a model wants its pixels, and this module is the
one place that turns it into transforms; every stage takes its transform from here:

    train_transform      augmented training crops (the data loaders)
    view_transform       mild augmented views whose activations are cached (transfer training)
    eval_transform       resize + centre crop + normalise (validation, test, cached evaluation rows)
    model_input          the same steps as a scriptable module inside the exported model
    batchable_square     a decoded photo's centre square at the model's resize size (serving), so
                         photos of any shape stack into one batch before `model_input`

so training and serving can never disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torchvision.transforms as v1
from PIL import Image
from torch import nn
from torchvision.transforms import v2

from src.data.images import centre_square

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


def view_transform(prep: Preprocessing) -> v2.Compose:
    """A mild training view: random crop covering 35-100 % of the photo, random flip."""
    return v2.Compose(
        [
            v2.RandomResizedCrop(prep.crop, scale=(0.35, 1.0), interpolation=prep.interpolation_mode, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(prep.mean, prep.std),
        ]
    )


class ModelInput(nn.Module):
    """`eval_transform` as a TorchScript-able module: uint8 (or [0, 1] float) [B, 3, H, W] -> the
    normalised, channels-last input of the network. uint8 photos are resized as uint8 (rounded back to
    integers), exactly as `eval_transform` does, then scaled to [0, 1]. torchvision's v1 tensor
    transforms are used because TorchScript can compile them."""

    def __init__(self, prep: Preprocessing):
        super().__init__()
        self.resize_crop = nn.Sequential(
            v1.Resize([prep.resize], interpolation=v1.InterpolationMode(prep.interpolation), antialias=True),
            v1.CenterCrop(prep.crop),
        )
        self.normalize = v1.Normalize(list(prep.mean), list(prep.std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resize_crop(x)
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        # channels_last: faster for the EfficientNet-Lite convolutions on CPU at batch 32, same at batch 1
        return self.normalize(x).contiguous(memory_format=torch.channels_last)


def model_input(prep: Preprocessing) -> ModelInput:
    return ModelInput(prep)


def batchable_square(image: Image.Image, side: int) -> torch.Tensor:
    """uint8 [3, side, side]: `src.data.images.centre_square` as a CHW tensor (what `model_input` takes)."""
    return torch.from_numpy(centre_square(image, side).copy()).permute(2, 0, 1)
