"""How fast the tail fine-tunes here: rows per second, achieved GFLOP/s, seconds per recipe epoch.

    .venv/bin/python -m scripts.tail_speed [--backbone tf_efficientnet_lite0] [--train-crop 224 192] [--rows 2048]

Fine-tuning (`src.finetune.finetune_tail`) runs the backbone's tail forward and backward over every
cached activation map, every epoch: with the trunk's activations cached, it is the other half of a
recipe's training time. This times one epoch of the real `finetune_tail` on random activation maps
of the size a training view of `--train-crop` pixels gives, and prints what an epoch of each named
recipe (`src.transfer_train.RECIPES`) costs at that rate on indian_monuments' 2,800 training photos
plus its 480 no-landmark ones. To tell whether a faster implementation could exist, it also prints
the arithmetic rate reached (forward FLOPs counted by `torch.utils.flop_counter`, times 3 for
forward + backward, the usual estimate: its count of grouped convolutions' backward is far too high)
beside what a large float32 matrix product reaches on this CPU.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from src.machine import bf16_is_fast
from src.models.backbones import create_backbone, split_trunk_and_tail
from src.training.finetune import TailFinetuneConfig, finetune_tail
from src.training.recipes import RECIPES, training_preprocessing
from src.training.transfer import zero_head

INDIAN_MONUMENTS_ROWS_PER_VIEW, BACKGROUND_ROWS = 2800, 480  # training photos; no-landmark photos (train + valid)


def forward_flops_per_row(tail: torch.nn.Module, head: torch.nn.Linear, maps: torch.Tensor) -> float:
    """Forward floating-point operations per activation map (a multiply-add counts 2)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        head(tail(maps.float()))
    return counter.get_total_flops() / len(maps)


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """What this CPU reaches on a large float32 matrix product: near the best it can do."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="tf_efficientnet_lite0")
    parser.add_argument("--train-crop", type=int, nargs="+", default=[224, 192], help="training views' sizes to time")
    parser.add_argument("--rows", type=int, default=2048, help="activation maps in the timed epoch")
    parser.add_argument("--classes", type=int, default=25, help="head outputs (indian_monuments: 24 landmarks + no landmark)")
    args = parser.parse_args()
    extractor, _ = create_backbone(args.backbone)
    trunk, tail = split_trunk_and_tail(extractor)
    generator = torch.Generator().manual_seed(0)
    precision = "bfloat16 autocast" if bf16_is_fast() else "float32"
    print(f"float32 matrix product (2048 x 2048): {matmul_gflops():.0f} GFLOP/s on {torch.get_num_threads()} threads")
    for crop in args.train_crop:
        with torch.no_grad():
            channels, height, width = trunk(torch.zeros(1, 3, crop, crop)).shape[1:]
        maps = torch.randn(args.rows, channels, height, width, generator=generator).half()  # cached maps are float16
        labels = torch.randint(0, args.classes, (args.rows,), generator=generator)
        config = TailFinetuneConfig(epochs=1)
        head = zero_head(extractor.feature_dim, args.classes)
        flops = 3 * forward_flops_per_row(tail, head, maps[: config.batch_size])
        finetune_tail(copy.deepcopy(tail), copy.deepcopy(head), maps[: 4 * config.batch_size], labels[: 4 * config.batch_size], None, None, config, progress=False)  # warm-up
        result = finetune_tail(copy.deepcopy(tail), head, maps, labels, None, None, config, progress=False)
        rate = args.rows / result.history[0]["seconds"]
        print(f"{args.backbone} tail on {channels}x{height}x{width} maps ({crop}-px views), batch {config.batch_size}, {precision}, {torch.get_num_threads()} threads")
        print(f"  {rate:.0f} rows/s, ~{flops / 1e9:.2f} GFLOP per row (forward + backward): ~{rate * flops / 1e9:.0f} GFLOP/s")
        for name, recipe in RECIPES.items():
            recipe_crop = training_preprocessing(recipe).crop
            if recipe_crop != crop:
                continue
            rows = (1 + recipe.train_views) * INDIAN_MONUMENTS_ROWS_PER_VIEW + BACKGROUND_ROWS
            epochs = recipe.finetune.epochs
            print(f"  recipe {name!r}: {rows:,} rows x {epochs} epochs -> {rows / rate:.0f} s per epoch, {epochs * rows / rate:.0f} s in all")


if __name__ == "__main__":
    main()
