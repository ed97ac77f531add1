"""How fast a backbone's frozen trunk runs here: eager, traced + frozen, OpenVINO; float32 and bfloat16.

    .venv/bin/python -m scripts.trunk_speed --backbone tf_efficientnet_lite0 [--batch 4 64] [--repeats 3]

The trunk is what `src.training.transfer` runs once per photo and view (`src.training.features`). Random
pixels at the backbone's crop size, each batch size of `--batch`, channels_last; prints images/s
per way and the relative difference of each output to float32. bfloat16 rows only where the CPU
has it natively (`src.machine.bf16_is_fast`). OpenVINO runs the batches as training does
(`src.training.features.OpenVinoGraph`: parallel infer requests), 64 images per timed pass.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import torch

from src.machine import bf16_is_fast
from src.models.backbones import create_backbone, split_trunk_and_tail
from src.training.features import OpenVinoGraph, fast_autocast, inference_graph


def images_per_second(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, repeats: int, bf16: bool) -> tuple[float, torch.Tensor]:
    with torch.no_grad(), fast_autocast(bf16):
        out = run(x)  # warm-up (and the first call of a frozen graph optimises it)
        start = time.perf_counter()
        for _ in range(repeats):
            out = run(x)
    return repeats * len(x) / (time.perf_counter() - start), out.float()


def openvino_images_per_second(graph: OpenVinoGraph, x: torch.Tensor, repeats: int) -> tuple[float, torch.Tensor]:
    batches = [x] * max(1, 64 // len(x))
    out = graph.run(batches)[0]  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        graph.run(batches)
    return repeats * len(batches) * len(x) / (time.perf_counter() - start), out.float()


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
        ways += [("OpenVINO float32", OpenVinoGraph(trunk, x, bf16=False), False)]
        if bf16_is_fast():
            ways += [("OpenVINO bfloat16", OpenVinoGraph(trunk, x, bf16=True), True)]
        print(f"{args.backbone} trunk, {crop} px, batch {batch}, {torch.get_num_threads()} threads")
        reference = None
        for name, run, bf16 in ways:
            if isinstance(run, OpenVinoGraph):
                speed, out = openvino_images_per_second(run, x, args.repeats)
            else:
                speed, out = images_per_second(run, x, max(args.repeats, 64 // batch), bf16)
            reference = out if reference is None else reference
            difference = ((out - reference).norm() / reference.norm()).item()
            print(f"  {name:26s} {speed:7.1f} img/s   relative difference to float32 {difference:.4f}")


if __name__ == "__main__":
    main()
