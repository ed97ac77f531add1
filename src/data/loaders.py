"""Data loaders for any ImageFolder-style data set (`<root>/{train,test}/<class>/<photo>`)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional

import matplotlib

if not os.environ.get("DISPLAY") and "inline" not in matplotlib.get_backend():
    matplotlib.use("Agg")  # headless machines and CI: never try to open a window
import matplotlib.pyplot as plt
import torch
from torch.utils.data import DataLoader

from src.data.folders import (
    DecodedImageDataset,
    JpegFolderDataset,
    decode_folder,
    scan_split,
    stratified_split,
    stratified_subset,
)
from src.data.landmarks import display_name
from src.data.location import compute_mean_and_std, data_roots
from src.data.transforms import Preprocessing, eval_transform, train_transform


@dataclass(frozen=True)
class DataConfig:
    """Everything that decides what the loaders yield."""

    data_dir: Optional[str | tuple[str, ...]] = None  # one data root, or several whose classes are combined
    batch_size: int = 32
    valid_size: float = 0.2
    num_workers: int = -1  # -1: one per CPU core
    limit: int = -1  # > 0: use at most this many photos per split (quick runs)
    seed: int = 42
    preprocessing: Optional[Preprocessing] = None  # None: ImageNet-style sizes, the data set's own mean/std
    train_crop: Optional[int] = None  # training resolution; None: preprocessing.crop
    randaugment: bool = True
    decode_cache: bool = True  # False: decode the JPEG every epoch (the course starter's way)
    cache_short_side: int = 256


def resolve_preprocessing(config: DataConfig) -> Preprocessing:
    if config.preprocessing is not None:
        return config.preprocessing
    mean, std = compute_mean_and_std(config.data_dir)
    return Preprocessing(mean=tuple(mean.tolist()), std=tuple(std.tolist()))


def _worker_count(requested: int) -> int:
    return (os.cpu_count() or 1) if requested == -1 else requested


def build_datasets(config: DataConfig) -> dict[str, torch.utils.data.Dataset]:
    """train/valid/test datasets; valid is a seeded, stratified part of train/."""
    roots = data_roots(config.data_dir)
    prep = resolve_preprocessing(config)
    train_scan = scan_split(roots, "train")
    test_scan = scan_split(roots, "test", classes=train_scan.classes)
    transforms = {
        "train": train_transform(prep, crop=config.train_crop, randaugment=config.randaugment),
        "valid": eval_transform(prep),
        "test": eval_transform(prep),
    }
    if config.decode_cache:
        train_source = decode_folder(train_scan, short_side=config.cache_short_side)
        test_source = decode_folder(test_scan, short_side=config.cache_short_side)
        make = lambda source, indices, transform: DecodedImageDataset(source, indices, transform)  # noqa: E731
        train_labels, test_labels = train_source.labels, test_source.labels
    else:
        train_source, test_source = train_scan, test_scan
        make = lambda source, indices, transform: JpegFolderDataset(source, indices, transform)  # noqa: E731
        train_labels, test_labels = train_scan.targets, test_scan.targets
    train_idx, valid_idx = stratified_split(train_labels, config.valid_size, config.seed)
    test_idx = list(range(len(test_labels)))
    if config.limit > 0:
        train_idx = [train_idx[i] for i in stratified_subset([train_labels[i] for i in train_idx], config.limit, config.seed)]
        valid_idx = [valid_idx[i] for i in stratified_subset([train_labels[i] for i in valid_idx], config.limit, config.seed)]
        test_idx = stratified_subset(test_labels, config.limit, config.seed)
    datasets = {
        "train": make(train_source, train_idx, transforms["train"]),
        "valid": make(train_source, valid_idx, transforms["valid"]),
        "test": make(test_source, test_idx, transforms["test"]),
    }
    for dataset in datasets.values():
        dataset.preprocessing = prep
    return datasets


def get_data_loaders(
    batch_size: int = 32, valid_size: float = 0.2, num_workers: int = -1, limit: int = -1, **options
) -> dict[str, DataLoader]:
    """The course's entry point: a dict with `train`, `valid` and `test` DataLoaders.

    Extra keyword arguments are DataConfig fields (data_dir, preprocessing, train_crop, ...).
    The class names are `loaders["train"].dataset.classes`.
    """
    config = DataConfig(batch_size=batch_size, valid_size=valid_size, num_workers=num_workers, limit=limit, **options)
    return make_loaders(config)


def make_loaders(config: DataConfig) -> dict[str, DataLoader]:
    datasets = build_datasets(config)
    workers = _worker_count(config.num_workers)
    loaders = {}
    for split, dataset in datasets.items():
        loaders[split] = DataLoader(
            dataset,
            batch_size=config.batch_size,
            shuffle=split == "train",
            drop_last=split == "train" and len(dataset) > config.batch_size,
            num_workers=workers,
            persistent_workers=workers > 0 and split == "train",
            generator=torch.Generator().manual_seed(config.seed) if split == "train" else None,
        )
    return loaders


def denormalize(batch: torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    mean = torch.tensor(prep.mean).view(1, 3, 1, 1)
    std = torch.tensor(prep.std).view(1, 3, 1, 1)
    return (batch * std + mean).clamp(0, 1)


def visualize_one_batch(data_loaders: dict[str, DataLoader], max_n: int = 5, split: str = "train"):
    """Show up to max_n de-normalised photos of one batch with readable class names; returns the figure."""
    loader = data_loaders[split]
    images, labels = next(iter(loader))
    images = denormalize(images[:max_n], loader.dataset.preprocessing)
    classes = loader.dataset.classes
    columns = min(max_n, len(images))
    rows = math.ceil(len(images) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.2 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, image, label in zip(axes.flat, images, labels):
        axis.imshow(image.permute(1, 2, 0).numpy())
        axis.set_title(display_name(classes[int(label)]), fontsize=10)
    figure.tight_layout()
    return figure
