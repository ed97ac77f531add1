"""Training-side measurements: MyModel's training throughput the course starter's way and ours (with
the share of time spent waiting for data), and for a transfer model the feature-cache effect."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from src.bench.settings import STARTER_CROP, BenchSettings


def _train_batches(loader, model: nn.Module, loss_fn: nn.Module, optimizer, channels_last: bool, batches: int, epochs: int) -> dict[str, Any]:
    """`src.training.loop._run_epoch`'s loop and timing (data_seconds: time blocked on the loader), capped
    at `batches` per epoch, with a choice of memory layout. One untimed warm-up batch first (worker
    start-up, oneDNN kernel selection)."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=layout).train()

    def step(images: torch.Tensor, labels: torch.Tensor) -> float:
        images = images.to(memory_format=layout)
        logits = model(images)
        loss = loss_fn(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()  # a synchronisation point, as in src.training.loop

    warmup_start = time.perf_counter()
    images, labels = next(iter(loader))
    step(images, labels)
    warmup_seconds = time.perf_counter() - warmup_start

    seen, seconds, data_seconds = 0, 0.0, 0.0
    for _ in range(epochs):
        iterator = iter(loader)
        start = tick = time.perf_counter()
        for _ in range(batches):
            try:
                images, labels = next(iterator)
            except StopIteration:
                break
            data_seconds += time.perf_counter() - tick
            step(images, labels)
            seen += len(labels)
            tick = time.perf_counter()
        seconds += time.perf_counter() - start
        del iterator
    if seen == 0:
        raise ValueError("the training split yielded no batches")
    return {
        "images": seen, "seconds": seconds, "data_seconds": data_seconds, "images_per_second": seen / seconds,
        "data_wait_fraction": data_seconds / seconds, "warmup_batch_seconds": warmup_seconds,
    }


def measure_training_throughput(data_root: Path, settings: BenchSettings) -> dict[str, Any]:
    """MyModel training images/s and data-wait share: the course starter's recipe against ours."""
    from src.data.loaders import DataConfig, make_loaders
    from src.data.transforms import Preprocessing
    from src.models.scratch import MyModel
    from src.training.optimization import get_loss, get_optimizer
    from src.training.recipes import ScratchRecipe

    recipe = ScratchRecipe()
    widths = tuple(settings.train_widths or recipe.widths)
    workers = recipe.num_workers if settings.train_workers is None else settings.train_workers
    ways = {
        "starter": {"label": "course starter", "decode_cache": False, "channels_last": False, "crop": STARTER_CROP},
        "ours": {"label": "ours", "decode_cache": True, "channels_last": True, "crop": recipe.train_crop},
    }
    out: dict[str, Any] = {
        "model": "MyModel", "widths": list(widths), "batch_size": settings.train_batch_size,
        "batches_per_epoch": settings.train_batches, "epochs": settings.train_epochs, "workers": workers,
        "optimizer": f"AdamW lr={recipe.learning_rate} wd={recipe.weight_decay}", "ways": {},
    }
    for key, way in ways.items():
        print(f"training throughput: {way['label']} ...", file=sys.stderr)
        config = DataConfig(
            data_dir=str(data_root), batch_size=settings.train_batch_size, num_workers=workers,
            preprocessing=Preprocessing(),  # mean/std do not change the cost; skips a statistics pass
            train_crop=way["crop"], decode_cache=way["decode_cache"],
        )
        start = time.perf_counter()
        loader = make_loaders(config)["train"]
        setup_seconds = time.perf_counter() - start
        torch.manual_seed(0)
        model = MyModel(num_classes=len(loader.dataset.classes), dropout=recipe.dropout, widths=widths)
        optimizer = get_optimizer(model, "adamw", recipe.learning_rate, weight_decay=recipe.weight_decay)
        result = _train_batches(loader, model, get_loss(recipe.label_smoothing), optimizer, way["channels_last"], settings.train_batches, settings.train_epochs)
        result.update(
            label=way["label"], dataset=type(loader.dataset).__name__, memory_layout="channels_last" if way["channels_last"] else "contiguous",
            crop=way["crop"], setup_seconds=setup_seconds, train_photos=len(loader.dataset),
        )
        out["ways"][key] = result
        del loader
    out["speedup"] = out["ways"]["ours"]["images_per_second"] / out["ways"]["starter"]["images_per_second"]
    return out


# --------------------------------------------------------------------------- feature cache (transfer)


def measure_feature_cache(module: nn.Module, metadata: dict, data_root: Path, settings: BenchSettings) -> dict[str, Any]:
    """Frozen-backbone feature pass vs a head-only epoch on cached features, for an exported transfer
    model (`module.model.backbone` and `module.model.head`).

    The backbone is timed on `settings.feature_photos` training photos (transform + forward, as
    `src.training.features.extract_features` runs it) and extrapolated per photo to the whole training split;
    the head-only epoch (AdamW, batch 32, over cached [N, D] features) is measured on the full size.
    """
    from src.data.folders import scan_image_folder, stratified_split, stratified_subset
    from src.data.images import load_rgb
    from src.data.transforms import Preprocessing, eval_transform
    from src.training.features import extract_features

    prep = Preprocessing.from_dict(metadata["preprocessing"])
    scan = scan_image_folder(data_root / "train")
    train_idx, _ = stratified_split(scan.targets, 0.2, 42)  # the training split of DataConfig's defaults
    chosen = stratified_subset([scan.targets[i] for i in train_idx], settings.feature_photos, 0)
    images = []
    for i in chosen:
        image = load_rgb(scan.samples[train_idx[i]][0], short_side=prep.resize)
        images.append(torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).contiguous())
    backbone = module.model.backbone
    transform = eval_transform(prep)
    extract_features(backbone, images[:2], transform, desc="backbone warm-up")
    start = time.perf_counter()
    features = extract_features(backbone, images, transform, desc="backbone")  # its default batch, as training runs it
    backbone_seconds = time.perf_counter() - start
    per_photo = backbone_seconds / len(images)

    n_train = len(train_idx)
    cached = features.repeat((n_train + len(features) - 1) // len(features), 1)[:n_train].contiguous()
    labels = torch.randint(0, max(1, int(module.model.head.weight.shape[0])), (n_train,), generator=torch.Generator().manual_seed(0))
    head = nn.Linear(cached.shape[1], int(module.model.head.weight.shape[0]))
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    order = torch.randperm(n_train, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    for begin in range(0, n_train, 32):
        batch = order[begin : begin + 32]
        loss = loss_fn(head(cached[batch]), labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    head_epoch_seconds = time.perf_counter() - start
    pass_seconds = per_photo * n_train
    return {
        "photos_timed": len(images),
        "backbone_ms_per_photo": 1000 * per_photo,
        "train_photos": n_train,
        "feature_pass_seconds_extrapolated": pass_seconds,
        "head_epoch_seconds": head_epoch_seconds,
        "feature_dim": int(cached.shape[1]),
        "ratio": pass_seconds / head_epoch_seconds if head_epoch_seconds > 0 else None,
    }

