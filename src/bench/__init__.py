"""Benchmarks and a reproducible results report: `python -m src bench` (or `make bench`).

For every exported model (default: each `checkpoints/*_exported.pt`):

- test top-1 with its Wilson 95 % interval and top-5 (`src.evaluation.evaluate.evaluate_model` on `<data>/test`);
- training wall time and seconds per epoch, as the training run recorded them in the exported file
  (`metadata["report"]`), "n/a" when it recorded none: never estimated;
- inference images/s at batch 1 and batch 32 (uint8 tensors at the model's resize, after warm-up);
- end-to-end milliseconds per photo, p50 and p95, through `src.serving.recognizer.recognize.Recognizer`;
- peak memory of a fresh process that loads the model and recognises one photo (`src.bench.memory_worker`);
- the size of the exported file.

Then MyModel's training throughput the course starter's way and ours, with the share of time spent
waiting for data, and for a transfer model the feature-cache effect.

The results go into a run record, `bench-full-<hash>.json` (`src.runs`' format), and a Markdown report,
`bench.md`, under $LANDMARK_HOME/bench (`--quick`: .../bench/quick) unless `--out`/`--runs` are given:
`make bench` passes `--out results --runs results/runs`, the repository's copies. The tables are also printed.

Modules: `settings` (paths, BenchSettings), `measure` (one model), `training` (throughput, feature
cache), `report` (Markdown), `run` (the command line), `memory_worker` (the fresh process).
Names are loaded on first use, so that `python -m src.bench.memory_worker` measures the memory of
serving a model, not of this package.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "REPO": "settings", "DEFAULT_DATA": "settings", "CHECKPOINTS": "settings", "RESULTS": "settings",
    "RUNS": "settings", "STARTER_CROP": "settings", "BenchSettings": "settings",
    "embedded_training": "measure", "measure_inference": "measure", "measure_end_to_end": "measure",
    "measure_peak_memory": "measure", "benchmark_model": "measure",
    "measure_training_throughput": "training", "measure_feature_cache": "training",
    "MODELS_TABLE_HEADER": "report", "TRAINING_TABLE_HEADER": "report", "NOTES": "report",
    "models_table": "report", "training_table": "report", "to_markdown": "report",
    "run_benchmark": "run", "run_record": "run", "main": "run",
    "machine_info": None,  # src.machine's, kept here for older imports
}

__all__ = [
    "CHECKPOINTS",
    "DEFAULT_DATA",
    "MODELS_TABLE_HEADER",
    "NOTES",
    "REPO",
    "RESULTS",
    "RUNS",
    "STARTER_CROP",
    "TRAINING_TABLE_HEADER",
    "BenchSettings",
    "benchmark_model",
    "embedded_training",
    "machine_info",
    "main",
    "measure_end_to_end",
    "measure_feature_cache",
    "measure_inference",
    "measure_peak_memory",
    "measure_training_throughput",
    "models_table",
    "run_benchmark",
    "run_record",
    "to_markdown",
    "training_table",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'src.bench' has no attribute {name!r}")
    module = importlib.import_module("src.machine" if _WHERE[name] is None else f"src.bench.{_WHERE[name]}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
