"""TorchScript vs OpenVINO on one exported model, in one run on one machine (issue 20's figures).

    python -m scripts.runtime_bench --model checkpoints/transfer_exported.pt --data ../shared/indian_monuments

Prints the machine, then: the bare model's batch-1 latency (median) and batch-32 throughput for
TorchScript (frozen), OpenVINO f32 and OpenVINO bf16 (a hint: on CPUs without native bfloat16 OpenVINO
runs f32); their answers' differences from TorchScript on real test photos; the model inside the
Recognizer at batch 1 vs the bare OpenVINO model; the Recognizer end to end (JPEG bytes to an answer);
and the batch tagger's photos/s (`src.serving.tagger.tag.tag_paths` with the command line's decoding threads, no
writing). The IR is converted into a temporary folder when the model has none beside it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _median_ms(call, runs: int) -> float:
    call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def _per_second(call, items: int, runs: int) -> float:
    call()
    start = time.perf_counter()
    for _ in range(runs):
        call()
    return items * runs / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("checkpoints/transfer_exported.pt"))
    parser.add_argument("--data", type=Path, default=Path("../shared/indian_monuments"))
    parser.add_argument("--photos", type=int, default=96, help="test photos for the answers, end-to-end and tagger measures")
    parser.add_argument("--runs", type=int, default=30, help="timed batch-1 runs per measure (median)")
    parser.add_argument("--batch-runs", type=int, default=3, help="timed batch-32 runs per measure")
    parser.add_argument("--threads", type=int, default=2, help="threads for torch and OpenVINO")
    args = parser.parse_args(argv)

    import torch

    from src.data.images import centre_square
    from src.export_openvino import export_openvino, ir_paths
    from src.machine import machine_info
    from src.serving.recognizer.recognize import Recognizer
    from src.serving.recognizer.runtime import OpenVINORuntime, TorchScriptRuntime
    from src.serving.tagger.tag import DEFAULT_WORKERS, tag_paths

    torch.set_num_threads(args.threads)
    print(json.dumps({k: v for k, v in machine_info().items() if k in ("cpu_model", "cpu_bf16_native", "usable_cores", "torch", "load_average")}))
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if not ir_paths(model)[0].exists():
            model = Path(tmp) / args.model.name
            shutil.copy(args.model, model)
            started = time.perf_counter()
            export_openvino(model)
            print(f"converted to OpenVINO in {time.perf_counter() - started:.1f} s")
        files = sorted(p for p in (args.data / "test").rglob("*.jpg"))
        files = files[:: max(1, len(files) // args.photos)][: args.photos]
        ts = Recognizer(model, runtime="torchscript", use_gallery=False)
        squares = np.stack([centre_square(ts.decode(p), ts.resize) for p in files])
        engines = {"torchscript": ts.model, "openvino f32": OpenVINORuntime(model, "f32", args.threads),
                   "openvino bf16": OpenVINORuntime(model, "bf16", args.threads)}
        reference = np.concatenate([ts.model.probabilities(squares[i : i + 32]) for i in range(0, len(squares), 32)])
        bare = {}
        for name, engine in engines.items():
            one, batch = squares[:1], squares[:32]
            bare[name] = _median_ms(lambda e=engine, x=one: e.probabilities(x), args.runs)
            rate = _per_second(lambda e=engine, x=batch: e.probabilities(x), len(batch), args.batch_runs)
            probs = np.concatenate([engine.probabilities(squares[i : i + 32]) for i in range(0, len(squares), 32)])
            print(f"{name:14s} batch 1 {bare[name]:6.1f} ms   batch 32 {rate:6.1f} img/s   vs torchscript on {len(files)} test photos: "
                  f"max |dprob| {np.abs(probs - reference).max():.1e}, top-1 differs on {int((probs.argmax(1) != reference.argmax(1)).sum())}")
        assert isinstance(ts.model, TorchScriptRuntime)
        for runtime in ("torchscript", "openvino"):
            recognizer = Recognizer(model, runtime=runtime, use_gallery=False, precision="f32")
            inside = _median_ms(lambda r=recognizer: r.probabilities([r.decode(files[0])]), args.runs)
            image = recognizer.decode(files[0])
            model_only = _median_ms(lambda r=recognizer, x=image: r.probabilities([x]), args.runs)
            payloads = [p.read_bytes() for p in files]
            times = []
            for data in payloads[:5] + payloads:
                start = time.perf_counter()
                recognizer.recognize(data)
                times.append(1000 * (time.perf_counter() - start))
            p50 = statistics.median(times[5:])
            start = time.perf_counter()
            rows = tag_paths([str(p) for p in files], recognizer, progress=False, workers=DEFAULT_WORKERS)  # as `python -m src tag`
            rate = len(rows) / (time.perf_counter() - start)
            ratio = f" ({model_only / bare['openvino f32']:.2f}x the bare OpenVINO model)" if runtime == "openvino" else ""
            print(f"Recognizer {runtime:11s}: model at batch 1 {model_only:5.1f} ms{ratio}; decode+model {inside:5.1f} ms; "
                  f"recognize(bytes) p50 {p50:5.1f} ms; tagger {rate:6.1f} photos/s ({len(rows)} photos)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
