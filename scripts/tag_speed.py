"""The batch tagger against a plain TorchScript loop and the JPEG decoder alone, whole processes, one run.

    python -m scripts.tag_speed ../shared/indian_monuments/test --rounds 3

Each round runs, one after the other, as separate processes timed from start to exit:

* `python -m src tag FOLDER -o report.csv` (the README's command: `--precision auto`), then with
  `--precision f32`;
* a plain TorchScript loop: PIL decodes each photo at 256 px (JPEG draft mode) and the frozen
  exported `.pt` answers it, one photo at a time (what a newcomer would write), with torch's own
  threads and with one thread: on a loaded 2-core machine torch's spinning threads make the first
  many times slower, so the ratios are to the faster of the two;
* the decoder alone: PIL draft decoding at 256 px on every core, nothing else: the tagger's ceiling
  on this machine.

Prints the machine and the load average before each round, each round's seconds, and the medians with
the ratios to the faster plain loop. The times of a shared machine move with its load: compare within a run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DECODE_SIDE = 256  # pixels: the short side every way decodes at (JPEG draft mode picks the nearest scale)

_PHOTOS = """
import sys
from pathlib import Path
from src.data.images import is_image_file
photos = sorted(p for p in Path(sys.argv[1]).rglob("*") if p.is_file() and is_image_file(p))
"""

_DECODE = """
from PIL import Image
def decode(path):
    with Image.open(path) as image:
        image.draft("RGB", (%d, %d))
        return image.convert("RGB")
""" % (DECODE_SIDE, DECODE_SIDE)

PLAIN_TORCHSCRIPT = _PHOTOS + _DECODE + """
import numpy as np, torch
from src.export import load_exported
import torch
if sys.argv[3] != "default":
    torch.set_num_threads(int(sys.argv[3]))
module, _ = load_exported(sys.argv[2])  # frozen for inference
with torch.no_grad():
    for path in photos:
        x = torch.from_numpy(np.asarray(decode(path))).permute(2, 0, 1)
        module(x)
"""

DECODER_ONLY = _PHOTOS + _DECODE + """
import os
from concurrent.futures import ThreadPoolExecutor
with ThreadPoolExecutor(os.cpu_count()) as pool:
    for _ in pool.map(decode, photos):
        pass
"""


def seconds(command: list[str]) -> float:
    """Wall time of one process from start to exit (it must succeed)."""
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="photos (walked recursively)")
    parser.add_argument("--model", type=Path, default=ROOT / "checkpoints" / "transfer_exported.pt")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    from src.data.images import is_image_file
    from src.machine import bf16_is_fast, cpu_model, usable_cores

    folder, model = args.folder.resolve(), args.model.resolve()
    photos = sum(1 for p in folder.rglob("*") if p.is_file() and is_image_file(p))
    print(json.dumps({"cpu": cpu_model(), "cores": usable_cores(), "bf16_native": bf16_is_fast(), "photos": photos}))
    with tempfile.TemporaryDirectory() as tmp:
        report = str(Path(tmp) / "report.csv")
        ways = {
            "python -m src tag (auto)": [sys.executable, "-m", "src", "tag", str(folder), "-o", report, "-q", "--model", str(model)],
            "python -m src tag --precision f32": [sys.executable, "-m", "src", "tag", str(folder), "-o", report, "-q", "--model", str(model),
                                                  "--precision", "f32"],
            "plain TorchScript loop": [sys.executable, "-c", PLAIN_TORCHSCRIPT, str(folder), str(model), "default"],
            "plain TorchScript loop, 1 thread": [sys.executable, "-c", PLAIN_TORCHSCRIPT, str(folder), str(model), "1"],
            "decoder only (all cores)": [sys.executable, "-c", DECODER_ONLY, str(folder)],
        }
        times: dict[str, list[float]] = {name: [] for name in ways}
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}: load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            for name, command in ways.items():
                times[name].append(seconds(command))
                print(f"  {name:34s} {times[name][-1]:6.2f} s")
    plain = min(statistics.median(times[name]) for name in ("plain TorchScript loop", "plain TorchScript loop, 1 thread"))
    print(f"medians of {args.rounds} rounds ({photos} photos); load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:34s} {median:6.2f} s  {photos / median:6.1f} photos/s  {plain / median:5.2f}x the plain loop")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
