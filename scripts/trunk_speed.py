"""How fast a backbone's frozen trunk runs here: eager float32, eager bfloat16, traced + frozen.

    .venv/bin/python -m scripts.trunk_speed --backbone tf_efficientnet_lite0 [--batch 4 64] [--repeats 3]

The trunk is what `src.training.transfer` runs once per photo and view (`src.training.features`). Random
pixels at the backbone's crop size, each batch size of `--batch`, channels_last; prints images/s
per way and the relative difference of each output to float32. bfloat16 rows only where the CPU
has it natively (`src.features.bf16_is_fast`).
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import torch

from src.machine import bf16_is_fast
from src.models.backbones import create_backbone, split_trunk_and_tail
from src.training.features import fast_autocast, inference_graph


def images_per_second(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, repeats: int, bf16: bool) -> tuple[float, torch.Tensor]:
    with torch.no_grad(), fast_autocast(bf16):
        out = run(x)  # warm-up (and the first call of a frozen graph optimises it)
        start = time.perf_counter()
        for _ in range(repeats):
            out = run(x)
    return repeats * len(x) / (time.perf_counter() - start), out.float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="tf_efficientnet_lite0")
    parser.add_argument("--batch", type=int, nargs="+", default=[4, 64], help="batch sizes to time")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per way, at least enough for 64 images")
    args = parser.parse_args()
    extractor, spec = create_backbone(args.backbone)
    trunk, _ = split_trunk_and_tail(extractor)
    trunk = trunk.eval().requires_grad_(False).to(memory_format=torch.channels_last)
    crop = spec.preprocessing.crop
    for batch in args.batch:
        x = torch.randn(batch, 3, crop, crop, generator=torch.Generator().manual_seed(0)).contiguous(memory_format=torch.channels_last)
        ways = [("eager float32", trunk, False), ("traced + frozen float32", inference_graph(trunk, x, bf16=False), False)]
        if bf16_is_fast():
            ways += [("eager bfloat16", trunk, True), ("traced + frozen bfloat16", inference_graph(trunk, x, bf16=True), True)]
        print(f"{args.backbone} trunk, {crop} px, batch {batch}, {torch.get_num_threads()} threads")
        reference = None
        for name, run, bf16 in ways:
            speed, out = images_per_second(run, x, max(args.repeats, 64 // batch), bf16)
            reference = out if reference is None else reference
            difference = ((out - reference).norm() / reference.norm()).item()
            print(f"  {name:26s} {speed:7.1f} img/s   relative difference to float32 {difference:.4f}")


if __name__ == "__main__":
    main()
