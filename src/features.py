"""Frozen-backbone features, computed once and cached.

A frozen backbone gives the same features every epoch, so we run it once per photo (one centre crop
for evaluation, a few augmented views for training), store the [N, D] matrix on disk keyed by the
photos' identity, the backbone and the view, and train only the head on it: seconds instead of hours.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from torch import nn
from torchvision.transforms import v2
from tqdm.auto import tqdm

from .dataset import default_cache_dir
from .transforms import Preprocessing, eval_transform


def augmented_view_transform(prep: Preprocessing) -> v2.Compose:
    """A mild training view: random crop covering 35-100 % of the photo, random flip."""
    return v2.Compose(
        [
            v2.RandomResizedCrop(prep.crop, scale=(0.35, 1.0), interpolation=prep.interpolation_mode, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(prep.mean, prep.std),
        ]
    )


@torch.no_grad()  # not inference_mode: the features are later used where autograd is on
def extract_features(
    backbone: nn.Module,
    images: Sequence[torch.Tensor],
    transform: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 64,
    desc: str = "features",
    with_imagenet_logits: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Run `backbone` over uint8 images (each transformed first); returns [N, D] features
    (and [N, 1000] ImageNet logits when asked and the backbone has that head)."""
    backbone = backbone.eval().to(memory_format=torch.channels_last)
    features, logits = [], []
    for start in tqdm(range(0, len(images), batch_size), desc=desc, ncols=90):
        batch = torch.stack([transform(image) for image in images[start : start + batch_size]])
        batch = batch.contiguous(memory_format=torch.channels_last)
        if with_imagenet_logits:
            f, l = backbone.features_and_imagenet_logits(batch)
            features.append(f)
            logits.append(l)
        else:
            features.append(backbone(batch))
    if with_imagenet_logits:
        return torch.cat(features), torch.cat(logits)
    return torch.cat(features)


def cached_features(
    backbone_name: str,
    backbone_factory: Callable[[], nn.Module],
    images: Sequence[torch.Tensor],
    identity: str,
    view: str,
    prep: Preprocessing,
    seed: int = 0,
    cache_dir: Optional[Path] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and ImageNet logits of `images` for one view ("eval" or "aug<k>"), cached on disk.

    identity: names the exact list of photos (e.g. a FolderScan identity plus the split's indices).
    """
    key = hashlib.sha1(f"{backbone_name}|{identity}|{view}|{prep}|{seed}|{len(images)}".encode()).hexdigest()[:16]
    path = (cache_dir or default_cache_dir()) / f"features-{backbone_name}-{view}-{key}.pt"
    if path.exists():
        stored = torch.load(path, weights_only=True)
        return stored["features"], stored["imagenet_logits"]
    if view == "eval":
        transform = eval_transform(prep)
    else:
        torch.manual_seed(seed)
        transform = augmented_view_transform(prep)
    features, logits = extract_features(backbone_factory(), images, transform, desc=f"{backbone_name} {view}", with_imagenet_logits=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"features": features, "imagenet_logits": logits}, tmp)
    os.replace(tmp, path)
    return features, logits
