"""Where the tagger's time goes and which lever closes its gap to the limit (issue 39 item 2).

    python scripts/tagger_levers.py [--model checkpoints/transfer_exported.pt] [--photos ../shared/indian_monuments/test]
                                    [--repeats 5] [--seconds 2] [--max-photos 256]

Interleaved rounds (a load change on a shared machine hits every variant alike), medians printed, one JSON
line at the end. Measured at f32, and at bf16 where the CPU computes it natively:

* the engine on a batch of 32: the runtime's LATENCY compile, one request (what the tagger runs), against the
  THROUGHPUT compile with the batch split over its requests (`OpenVINORuntime(..., hint="THROUGHPUT")`) and
  OpenVINO's own async loop over whole batches (the bench's "model alone");
* the tagger's model step beyond the engine: the reference similarities and the per-photo decisions
  (`Recognizer.recognize_squares` minus the engine), and `centre_square` per photo;
* the decoder with and without JPEG draft mode (`load_rgb(short_side=...)` against a full decode);
* the whole tagger (`tag_paths`) with each engine compile.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from src.bench.tagger import _until, decode_rate, openvino_queue_rate, precisions_to_measure, random_batches, tag_photo_files  # noqa: E402
from src.data.images import centre_square, load_rgb, read_photo_file  # noqa: E402
from src.serving.recognizer.recognize import Recognizer  # noqa: E402
from src.serving.recognizer.runtime import OpenVINORuntime  # noqa: E402
from src.serving.tagger.tag import DEFAULT_WORKERS, tag_paths  # noqa: E402

BATCH = 32


def engine(recognizer: Recognizer, batch, seconds: float) -> float:
    model = recognizer.model
    model.probabilities_and_embedding(batch)
    return _until(lambda: len(model.probabilities_and_embedding(batch)[0]), seconds, 2)


def step(recognizer: Recognizer, batch, seconds: float) -> float:
    recognizer.recognize_squares(batch)
    return _until(lambda: len(recognizer.recognize_squares(batch)), seconds, 2)


def squares_rate(recognizer: Recognizer, images, seconds: float) -> float:
    return _until(lambda: len([centre_square(image, recognizer.resize) for image in images]), seconds, 2)


def full_decode_rate(files, side: int) -> float:
    """A full-size decode, then the same resize: what draft mode saves."""
    start = time.perf_counter()
    for file in files:
        load_rgb(read_photo_file(file)).resize((side, side))
    return len(files) / (time.perf_counter() - start)


def tagger(recognizer: Recognizer, files) -> float:
    start = time.perf_counter()
    rows = tag_paths(files, recognizer, batch_size=BATCH, workers=DEFAULT_WORKERS, progress=False)
    return len(rows) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(REPO / "checkpoints" / "transfer_exported.pt"))
    parser.add_argument("--photos", default=str(REPO.parent / "shared" / "indian_monuments" / "test"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--max-photos", type=int, default=256)
    parser.add_argument("--skip-tagger", action="store_true")
    args = parser.parse_args()
    files = tag_photo_files(Path(args.photos), args.max_photos)
    if not files:
        sys.exit(f"no photos under {args.photos}")
    results = {"load_average_before": os.getloadavg(), "photos": len(files), "precisions": {}}
    for precision in precisions_to_measure():
        latency = Recognizer(args.model, use_gallery=False, runtime="openvino", precision=precision)
        latency.model = OpenVINORuntime(Path(args.model), precision, hint="LATENCY")  # one request on every core
        throughput = Recognizer(args.model, use_gallery=False, runtime="openvino", precision=precision)
        throughput.model = OpenVINORuntime(Path(args.model), precision, hint="THROUGHPUT")  # the same model, split over streams
        (batch,) = random_batches(1, BATCH, latency.resize)
        images = [latency.decode(file) for file in files[:BATCH]]
        rounds = []
        for _ in range(args.repeats):
            row = {
                "engine_latency_1_request": engine(latency, batch, args.seconds),
                "engine_throughput_split": engine(throughput, batch, args.seconds),
                "openvino_async_loop": openvino_queue_rate(latency.model.xml, precision, BATCH, args.seconds)["images_per_second"],
                "openvino_async_loop_shared": openvino_queue_rate(latency.model.xml, precision, BATCH, args.seconds, split=True)["images_per_second"],
                "step_latency": step(latency, batch, args.seconds),
                "step_throughput_split": step(throughput, batch, args.seconds),
                "centre_square_per_photo": squares_rate(latency, images, args.seconds),
                "decode_draft_1_core": decode_rate(latency, files, 1),
                "decode_full_1_core": full_decode_rate(files, latency.resize),
            }
            if not args.skip_tagger:
                row["tagger_latency"] = tagger(latency, files)
                row["tagger_throughput_split"] = tagger(throughput, files)
            rounds.append(row)
            print(precision, {k: round(v, 1) for k, v in row.items()}, file=sys.stderr, flush=True)
        medians = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        ratios = {
            "throughput_split_over_latency_engine": statistics.median(r["engine_throughput_split"] / r["engine_latency_1_request"] for r in rounds),
            "throughput_split_over_latency_step": statistics.median(r["step_throughput_split"] / r["step_latency"] for r in rounds),
            "step_over_engine": statistics.median(r["step_latency"] / r["engine_latency_1_request"] for r in rounds),
            "draft_over_full_decode": statistics.median(r["decode_draft_1_core"] / r["decode_full_1_core"] for r in rounds),
        }
        if not args.skip_tagger:
            ratios["tagger_throughput_split_over_latency"] = statistics.median(r["tagger_throughput_split"] / r["tagger_latency"] for r in rounds)
        results["precisions"][precision] = {"medians": medians, "ratios": ratios, "rounds": rounds}
        for key, value in {**medians, **ratios}.items():
            print(f"{precision} {key}: {value:.2f}")
    results["load_average_after"] = os.getloadavg()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
