"""An exported model as saved vs frozen for inference (`src.predictor.load_exported`).

    .venv/bin/python -m scripts.export_speed [--model checkpoints/transfer_exported.pt] [--rounds 5]

One photo at a time, cycling through 8 photo sizes (as uploads come), and batches of 32: prints
milliseconds per photo (p50 / p95) and images/s for each way, and the largest output difference.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from src.export import freeze_for_inference, load_exported

PHOTO_SIZES = [(256, 341), (256, 384), (341, 256), (256, 256), (256, 455), (288, 256), (256, 320), (384, 256)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="checkpoints/transfer_exported.pt")
    parser.add_argument("--rounds", type=int, default=5, help="passes over the 8 photo sizes")
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    photos = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=generator) for h, w in PHOTO_SIZES]
    batch = torch.randint(0, 256, (32, 3, 256, 341), dtype=torch.uint8, generator=generator)
    saved, _ = load_exported(args.model, optimize=False)
    outputs = {}
    for name, module in (("as saved", saved), ("frozen", freeze_for_inference(saved))):
        with torch.no_grad():
            for photo in photos[:2]:
                module(photo)  # warm-up
            times = []
            for _ in range(args.rounds):
                for photo in photos:
                    start = time.perf_counter()
                    module(photo)
                    times.append(1000 * (time.perf_counter() - start))
            module(batch)
            start = time.perf_counter()
            outputs[name] = module(batch)
            batch_speed = len(batch) / (time.perf_counter() - start)
        p95 = statistics.quantiles(times, n=20)[-1]
        print(f"{name:8s}: one photo p50 {statistics.median(times):.1f} ms, p95 {p95:.1f} ms; batch 32: {batch_speed:.1f} img/s")
    print(f"largest probability difference: {(outputs['frozen'] - outputs['as saved']).abs().max().item():.1e}")


if __name__ == "__main__":
    main()
