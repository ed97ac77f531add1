"""The tagger against the machine's limit (issue 39): on the same photos, in one run,

* the model alone: OpenVINO's own loop (an AsyncInferQueue over pre-made batches, the THROUGHPUT hint, as
  many requests as the plugin asks for) at the tagger's batch size and precision, images/s; TorchScript:
  its plain loop. Beside it "model step": the tagger's own model call (`Recognizer.recognize_squares`:
  the engine as the runtime compiled it, plus the decisions), to show where a gap sits;
* the decoder alone: the tagger's per-photo step (`check_and_decode`: bounded read, own-GPS check,
  `load_rgb` at the model's size), photos/s on one core and in a pool of the tagger's worker count;
* the whole tagger (`tag_paths`, ``context=None``), photos/s.

The limit: a photo costs the model C/M core-seconds (M images/s on all C cores) and the decoder 1/D
(D photos/s on one core), so C cores tag at most C / (C/M + 1/D) = 1 / (1/M + 1/(C*D)) photos/s.
Measurements are interleaved (model, decoder, tagger; repeated) so that a load change on a shared
machine hits all of them; the ratio tagger/limit is taken per repeat, and medians are reported.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from src.machine import bf16_is_fast, usable_cores
from src.serving.recognizer.recognize import Recognizer
from src.serving.recognizer.runtime import compile_ir
from src.serving.tagger.photo_files import find_images
from src.serving.tagger.photo_pipeline import Limits, check_and_decode
from src.serving.tagger.tag import DEFAULT_WORKERS, tag_paths
from src.serving.tagger.tag_report import TagStats

TAGGER_BATCH = 32  # the tagger's default --batch-size


def precisions_to_measure() -> list[str]:
    """f32 always; bf16 only where the CPU computes it natively (elsewhere OpenVINO emulates it, slower)."""
    return ["f32", "bf16"] if bf16_is_fast() else ["f32"]


def pipeline_limit(model_rate: float, decode_rate_per_core: float, cores: int) -> float:
    """Photos/s that `cores` cores allow when each photo needs the model (``model_rate`` images/s on all
    cores) and one decode (``decode_rate_per_core`` photos/s on one core): core-seconds per photo summed."""
    return 1.0 / (1.0 / model_rate + 1.0 / (cores * decode_rate_per_core))


def _until(step: Callable[[], int], min_seconds: float, min_steps: int) -> float:
    """Units per second of repeated ``step()`` calls (each returns how many units it did)."""
    done, steps, start = 0, 0, time.perf_counter()
    while True:
        done += step()
        steps += 1
        elapsed = time.perf_counter() - start
        if steps >= min_steps and elapsed >= min_seconds:
            return done / elapsed


def random_batches(count: int, batch_size: int, side: int, seed: int = 0) -> list[np.ndarray]:
    """uint8 NHWC batches [batch_size, side, side, 3], as the runtime receives them."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (batch_size, side, side, 3), dtype=np.uint8) for _ in range(count)]


def openvino_queue_rate(xml: Path, precision: str, batch_size: int, min_seconds: float, split: bool = False) -> dict[str, Any]:
    """Images/s of OpenVINO's own async loop (what `benchmark_app -hint throughput` does): the THROUGHPUT
    compile, as many requests as its OPTIMAL_NUMBER_OF_INFER_REQUESTS, each on a pre-made batch of
    ``batch_size`` (``split``: of batch_size / requests, one batch shared out), kept busy."""
    import openvino as ov

    compiled = compile_ir(xml, precision, "THROUGHPUT")
    requests = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    side = int(compiled.inputs[0].get_partial_shape()[1].get_length())
    per_request = max(1, batch_size // requests) if split else batch_size
    batches = random_batches(requests, per_request, side)
    queue = ov.AsyncInferQueue(compiled, requests)

    def round_of_requests() -> int:
        for batch in batches:
            queue.start_async({0: batch})
        queue.wait_all()
        return per_request * requests

    round_of_requests()  # warm-up: the first inference allocates
    rate = _until(round_of_requests, min_seconds, 2)
    return {"images_per_second": rate, "requests": requests, "per_request": per_request, "precision": precision}


def engine_rate(recognizer: Recognizer, batch_size: int, min_seconds: float) -> float:
    """Images/s of the model alone on an engine without its own async loop (TorchScript)."""
    (batch,) = random_batches(1, batch_size, recognizer.resize)
    recognizer.model.probabilities(batch)
    return _until(lambda: len(recognizer.model.probabilities(batch)), min_seconds, 2)


def model_step_rate(recognizer: Recognizer, batch_size: int, min_seconds: float) -> float:
    """Images/s of the tagger's own model call on squares (the engine as compiled for serving + the decisions)."""
    (batch,) = random_batches(1, batch_size, recognizer.resize, seed=1)
    recognizer.recognize_squares(batch)
    return _until(lambda: len(recognizer.recognize_squares(batch)), min_seconds, 2)


def decode_rate(recognizer: Recognizer, files: Sequence[Path], workers: int) -> float:
    """Photos/s of the tagger's decode step over ``files`` (one thread, or a pool of ``workers``)."""
    items = find_images(files)
    limits = Limits()
    decode_one = lambda item: check_and_decode(recognizer, item, limits)[0]
    start = time.perf_counter()
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            kinds = list(pool.map(decode_one, items))
    else:
        kinds = [decode_one(item) for item in items]
    elapsed = time.perf_counter() - start
    return len(kinds) / elapsed


def tagger_rate(recognizer: Recognizer, files: Sequence[Path], workers: int, batch_size: int) -> dict[str, float]:
    """Photos/s of the whole local tagger (``context=None``, nothing written), with its own time split."""
    stats = TagStats()
    start = time.perf_counter()
    rows = tag_paths(files, recognizer, batch_size=batch_size, workers=workers, progress=False, stats=stats)
    elapsed = time.perf_counter() - start
    return {"photos_per_second": len(rows) / elapsed, "waiting_for_decode_s": stats.decode_s, "model_and_decide_s": stats.model_s,
            "seconds": elapsed}


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def tag_photo_files(folder: Path, max_photos: int | None) -> list[Path]:
    """The readable photos under ``folder`` in the tagger's order (at most ``max_photos``)."""
    files = [item.photo for item in find_images([folder]) if not item.problem]
    return files[:max_photos] if max_photos else files


def measure_precision(model_path: Path, files: Sequence[Path], precision: str, repeats: int, min_seconds: float,
                      runtime: str | None, workers: int) -> dict[str, Any]:
    """Every rate at one precision, ``repeats`` interleaved rounds; medians and the per-round ratio's median."""
    recognizer = Recognizer(model_path, use_gallery=False, runtime=runtime, precision=precision)
    cores = usable_cores()
    openvino = recognizer.runtime == "openvino"
    rounds: list[dict[str, float]] = []
    for _ in range(max(1, repeats)):
        row: dict[str, float] = {}
        if openvino:  # the better of whole batches per request and one batch shared out: the limit is not flattered
            whole = openvino_queue_rate(recognizer.model.xml, recognizer.model.precision, TAGGER_BATCH, min_seconds)
            shared = openvino_queue_rate(recognizer.model.xml, recognizer.model.precision, TAGGER_BATCH, min_seconds, split=True)
            row["model_whole_batches"], row["model_shared_batches"] = whole["images_per_second"], shared["images_per_second"]
            row["model"], requests = max(whole["images_per_second"], shared["images_per_second"]), whole["requests"]
        else:
            row["model"], requests = engine_rate(recognizer, TAGGER_BATCH, min_seconds), 1
        row["model_step"] = model_step_rate(recognizer, TAGGER_BATCH, min_seconds)
        row["decode_one_core"] = decode_rate(recognizer, files, 1)
        row["decode_workers"] = decode_rate(recognizer, files, workers)
        tagged = tagger_rate(recognizer, files, workers, TAGGER_BATCH)
        row["tagger"] = tagged["photos_per_second"]
        row["tagger_waiting_for_decode_s"], row["tagger_model_s"] = tagged["waiting_for_decode_s"], tagged["model_and_decide_s"]
        row["limit"] = pipeline_limit(row["model"], row["decode_one_core"], cores)
        row["ratio"] = row["tagger"] / row["limit"]
        rounds.append(row)
    medians = {key: _median([r[key] for r in rounds]) for key in rounds[0]}
    return {
        "precision": getattr(recognizer.model, "precision", "f32"), "runtime": recognizer.runtime, "requests": requests,
        "engine_hint": getattr(recognizer.model, "hint", None),
        "model_images_per_second": medians["model"], "model_step_images_per_second": medians["model_step"],
        "decode_photos_per_second_one_core": medians["decode_one_core"], "decode_photos_per_second_workers": medians["decode_workers"],
        "tagger_photos_per_second": medians["tagger"], "limit_photos_per_second": medians["limit"], "ratio": medians["ratio"],
        "tagger_waiting_for_decode_s": medians["tagger_waiting_for_decode_s"], "tagger_model_s": medians["tagger_model_s"],
        "rounds": rounds,
    }


def measure_tagger(model_path: Path, photos: Path, repeats: int, min_seconds: float, runtime: str | None = None,
                   max_photos: int | None = None, workers: int = DEFAULT_WORKERS) -> dict[str, Any]:
    """The tagger section of the bench: every precision the CPU computes natively, on the photos under ``photos``."""
    files = tag_photo_files(photos, max_photos)
    if not files:
        raise ValueError(f"no readable photos under {photos}")
    workers = Limits().workers(workers)
    result: dict[str, Any] = {
        "model": model_path.stem, "photos": len(files), "batch_size": TAGGER_BATCH, "workers": workers, "cores": usable_cores(),
        "repeats": max(1, repeats), "bf16_native": bf16_is_fast(), "precisions": [],
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    for precision in precisions_to_measure():
        result["precisions"].append(measure_precision(model_path, files, precision, repeats, min_seconds, runtime, workers))
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


__all__ = ["measure_tagger", "pipeline_limit", "precisions_to_measure", "openvino_queue_rate"]


def measure_tagger_section(model_path: Path, photos: Path, settings: Any, runtime: str | None = None) -> dict[str, Any]:
    """The bench's tagger section (`BenchSettings`' tagger_* fields): the rates and the limit, the library
    context's cost on a generated library of ``settings.library_photos``, and `locate_library` alone by size."""
    import tempfile

    from src.bench.context_cost import context_cost, locate_scaling, write_library

    section = measure_tagger(model_path, photos, settings.tagger_repeats, settings.min_seconds, runtime, settings.tagger_max_photos)
    with tempfile.TemporaryDirectory(prefix="bench-library-") as folder:
        started = time.perf_counter()
        library = write_library(Path(folder), settings.library_photos, photos)
        library["written_seconds"] = time.perf_counter() - started
        section["context"] = {"library": library, **context_cost(model_path, Path(folder), settings.context_repeats, runtime)}
    section["locate_library"] = locate_scaling(tuple(settings.locate_sizes))
    return section
