"""One exported model: accuracy, images/s, milliseconds per photo, peak memory, file size, and the
training time its own export recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from src.bench.settings import REPO, BenchSettings
from src.runs import portable_path


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def embedded_training(metadata: dict) -> dict[str, Any]:
    """Training wall time, seconds per epoch and epochs, as the training run recorded them in the
    exported file (`metadata["report"]`, see `src.export.load_exported`). Unknown values are None:
    never estimated, never looked up elsewhere.

    A transfer export's report holds `train_seconds_total` (cold cache to fitted model),
    `feature_seconds` (the trunk activations, part of it) and `finetune.history`, whose `seconds`
    are cumulative: the last one over the number of epochs is the mean fine-tuning epoch.
    """
    report = metadata.get("report") if isinstance(metadata.get("report"), dict) else {}
    train_seconds = _number(report.get("train_seconds_total"))
    if train_seconds is None:
        train_seconds = _number(report.get("train_seconds"))
    per_epoch = _number(report.get("seconds_per_epoch"))
    epochs = _number(report.get("epochs"))
    finetune = report.get("finetune") if isinstance(report.get("finetune"), dict) else {}
    history = [step for step in finetune.get("history") or [] if isinstance(step, dict)]
    if epochs is None and history:
        epochs = float(len(history))
    if per_epoch is None and history and _number(history[-1].get("seconds")) is not None:
        per_epoch = float(history[-1]["seconds"]) / len(history)
    known = train_seconds is not None or per_epoch is not None
    return {
        "train_wall_seconds": train_seconds,
        "seconds_per_epoch": per_epoch,
        "epochs": int(epochs) if epochs is not None else None,
        "run_wall_seconds_total": _number(report.get("wall_seconds_total")),  # training, export and its test pass
        "feature_seconds": _number(report.get("feature_seconds")),
        "training_source": "the report embedded in the exported file" if known else None,
    }


# --------------------------------------------------------------------------- inference


def _timed_loop(step, min_iterations: int, min_seconds: float) -> tuple[int, float]:
    iterations, start = 0, time.perf_counter()
    while True:
        step()
        iterations += 1
        elapsed = time.perf_counter() - start
        if iterations >= min_iterations and elapsed >= min_seconds:
            return iterations, elapsed


def measure_inference(module: nn.Module, resize: int, batch_size: int, settings: BenchSettings, min_iterations: int) -> dict[str, Any]:
    """Images per second of an exported model on uint8 [batch, 3, resize, resize] tensors."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch_size, 3, resize, resize), dtype=torch.uint8, generator=generator)
    with torch.no_grad():
        for _ in range(settings.warmup):
            module(images)
        iterations, seconds = _timed_loop(lambda: module(images), min_iterations, settings.min_seconds)
    return {"images_per_second": batch_size * iterations / seconds, "iterations": iterations, "seconds": seconds}


def _test_photos(data_root: Path, count: int) -> list[Path]:
    """Up to `count` real JPEGs from <data>/test, spread over its classes (a fixed choice)."""
    from src.data.folders import scan_image_folder

    scan = scan_image_folder(data_root / "test")
    jpegs = [path for path, _ in scan.samples if path.suffix.lower() in (".jpg", ".jpeg")]
    if not jpegs:
        raise FileNotFoundError(f"no JPEG photos under {data_root / 'test'}")
    step = max(1, len(jpegs) // count)
    return jpegs[::step][:count]



def measure_end_to_end(model_path: Path, photos: Sequence[Path], settings: BenchSettings) -> dict[str, Any]:
    """Milliseconds per photo from JPEG bytes to a Recognition (decode + predict + decide)."""
    from src.serving.recognizer.recognize import Recognizer

    recognizer = Recognizer(model_path, runtime=settings.runtime)
    payloads = [Path(p).read_bytes() for p in photos]
    for data in payloads[: max(1, settings.warmup)]:
        recognizer.recognize(data)
    times, statuses = [], {}
    for i in range(settings.e2e_runs):
        data = payloads[i % len(payloads)]
        start = time.perf_counter()
        result = recognizer.recognize(data)
        times.append(1000 * (time.perf_counter() - start))
        statuses[result.status] = statuses.get(result.status, 0) + 1
    p50, p95 = np.percentile(times, [50, 95])
    return {"p50": float(p50), "p95": float(p95), "runs": len(times), "photos": len(payloads), "statuses": statuses}


def measure_peak_memory(model_path: Path, photo: Path, recognitions: int = 3, timeout: float = 600, runtime: str | None = None) -> dict[str, Any]:
    """RSS high-water mark of a fresh Python process (`python -m src.bench.memory_worker`) that imports
    src.serving.recognizer.recognize, loads the model and recognises `photo`, measured inside that process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    completed = subprocess.run(
        [sys.executable, "-m", "src.bench.memory_worker", str(Path(model_path).resolve()), str(Path(photo).resolve()), str(recognitions),
         *([runtime] if runtime else [])],
        check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"memory worker failed ({completed.returncode}): {completed.stderr.strip()[-500:]}")
    values = json.loads(completed.stdout.strip().splitlines()[-1])
    return {"peak_rss_mb": values["peak_mb"], "import_rss_mb": values["after_import_mb"], "status": values["status"]}


# --------------------------------------------------------------------------- one model


def benchmark_model(model_path: Path, data_root: Path, settings: BenchSettings) -> dict[str, Any]:
    """One row of the models table. A measurement that fails is None, with its reason in `errors`."""
    from src.bench.training import measure_feature_cache
    from src.evaluation.evaluate import evaluate_model
    from src.export import freeze_for_inference, load_exported

    model_path = Path(model_path)
    unfrozen, metadata = load_exported(model_path, optimize=False)  # keeps its submodules for the feature-cache measure
    module = freeze_for_inference(unfrozen)  # what the app and service run
    prep = metadata.get("preprocessing") or {}
    resize, crop = int(prep.get("resize", 256)), int(prep.get("crop", 224))
    row: dict[str, Any] = {
        "model": model_path.stem,
        "path": portable_path(model_path),
        "description": metadata.get("model"),
        "classes": len(metadata.get("class_names", [])),
        "file_mb": model_path.stat().st_size / 1e6,
        "resize": resize,
        "crop": crop,
        "test_images": None, "top1": None, "top1_ci95": None, "top5": None,
    }
    row.update(embedded_training(metadata))
    row.update({
        "images_per_second_batch1": None, "images_per_second_batch32": None,
        "e2e_ms_p50": None, "e2e_ms_p95": None, "e2e_runs": None,
        "peak_rss_mb": None, "import_rss_mb": None, "errors": {},
    })

    def attempt(name: str, fn) -> None:
        try:
            fn()
        except Exception as error:  # noqa: BLE001 - one failing measurement must not lose the others
            row["errors"][name] = f"{type(error).__name__}: {error}"
            print(f"  {model_path.name}: {name} failed: {error}", file=sys.stderr)

    def accuracy() -> None:
        report = evaluate_model(model_path, data_root / "test", model_name=model_path.stem)
        row.update(test_images=report.n, top1=report.accuracy, top1_ci95=list(report.accuracy_ci95), top5=report.top5, test_skipped=len(report.skipped))

    def inference() -> None:
        row["images_per_second_batch1"] = measure_inference(module, resize, 1, settings, settings.batch1_min_iterations)["images_per_second"]
        row["images_per_second_batch32"] = measure_inference(module, resize, 32, settings, settings.batch32_min_iterations)["images_per_second"]

    photos: list[Path] = []

    def end_to_end() -> None:
        photos.extend(_test_photos(data_root, 8))
        e2e = measure_end_to_end(model_path, photos, settings)
        row.update(e2e_ms_p50=e2e["p50"], e2e_ms_p95=e2e["p95"], e2e_runs=e2e["runs"], e2e_statuses=e2e["statuses"])

    def memory() -> None:
        photo = photos[0] if photos else _test_photos(data_root, 1)[0]
        result = measure_peak_memory(model_path, photo, max(1, settings.memory_recognitions), runtime=settings.runtime)
        row.update(peak_rss_mb=result["peak_rss_mb"], import_rss_mb=result["import_rss_mb"])

    print(f"benchmarking {model_path} ...", file=sys.stderr)
    attempt("accuracy", accuracy)
    attempt("inference", inference)
    attempt("end_to_end", end_to_end)
    attempt("memory", memory)
    row["feature_cache"] = None
    if hasattr(unfrozen, "model") and hasattr(unfrozen.model, "backbone") and hasattr(unfrozen.model, "head"):
        def features() -> None:
            row["feature_cache"] = measure_feature_cache(unfrozen, metadata, data_root, settings)
        attempt("feature_cache", features)
    return row
