"""The benchmark in --quick mode on the generated tiny set: the report's shape, not its numbers.

The full benchmark (`make bench`) is a measurement, never part of the test run.
"""

from __future__ import annotations

import json
import math

import torch
from torch import nn

from src.bench import (
    MODELS_TABLE_HEADER,
    TRAINING_TABLE_HEADER,
    BenchSettings,
    main,
    measure_feature_cache,
    models_table,
    training_record,
)
from src.data.transforms import Preprocessing
from src.export import Predictor, load_exported


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_quick_benchmark_writes_json_and_markdown(tiny_data, tiny_model, tmp_path, capsys):
    out = tmp_path / "out"
    threads = torch.get_num_threads()
    result = main([
        "--data", str(tiny_data), "--models", str(tiny_model), "--out", str(out), "--quick",
        "--results", str(tmp_path / "no_results"), "--threads", "1",  # one thread: far faster on a shared CI CPU
    ])
    assert torch.get_num_threads() == threads  # the caller's thread setting is restored

    report = json.loads((out / "bench.json").read_text())
    assert report["command"].startswith("python -m src.bench ") and "--quick" in report["command"]
    machine = report["machine"]
    for key in ("cpu_model", "os_cpu_count", "torch_threads", "ram_gb", "torch", "torchvision", "date"):
        assert machine[key], key
    assert machine["os_cpu_count"] >= 1 and machine["torch_threads"] == 1
    assert isinstance(machine["cpu_bf16_native"], bool)  # read with the timings: it decides the trunk's precision

    assert len(report["models"]) == 1  # one row per model
    row = report["models"][0]
    assert row["errors"] == {}
    assert row["model"] == tiny_model.stem
    assert 0.0 <= row["top1"] <= 1.0 and 0.0 <= row["top5"] <= 1.0
    low, high = row["top1_ci95"]
    assert 0.0 <= low <= row["top1"] <= high <= 1.0
    assert row["test_images"] == 18  # 3 classes x 6 test photos
    for key in ("images_per_second_batch1", "images_per_second_batch32", "e2e_ms_p50", "e2e_ms_p95", "peak_rss_mb", "file_mb"):
        assert _positive(row[key]), key
    assert row["e2e_ms_p50"] <= row["e2e_ms_p95"]
    assert row["peak_rss_mb"] > row["import_rss_mb"] > 0
    assert abs(row["file_mb"] - tiny_model.stat().st_size / 1e6) < 1e-9
    # Nothing recorded this model's training time: reported as unknown, never estimated.
    assert row["train_wall_seconds"] is None and row["seconds_per_epoch"] is None

    training = report["training_throughput"]
    assert set(training["ways"]) == {"starter", "ours"}
    starter, ours = training["ways"]["starter"], training["ways"]["ours"]
    assert starter["dataset"] == "JpegFolderDataset" and starter["memory_layout"] == "contiguous" and starter["crop"] == 224
    assert ours["dataset"] == "DecodedImageDataset" and ours["memory_layout"] == "channels_last" and ours["crop"] == 128
    for way in (starter, ours):
        assert way["images"] == 3 * 4  # 3 batches of 4
        assert _positive(way["images_per_second"])
        assert 0.0 <= way["data_wait_fraction"] <= 1.0
    assert _positive(training["speedup"])

    markdown = (out / "bench.md").read_text()
    assert MODELS_TABLE_HEADER in markdown and TRAINING_TABLE_HEADER in markdown
    assert machine["cpu_model"] in markdown and report["command"] in markdown
    assert "n/a" in markdown  # the unknown training time
    assert MODELS_TABLE_HEADER in capsys.readouterr().out  # the table is printed too
    assert result["models"][0]["model"] == row["model"]


def test_training_time_comes_from_the_runs_own_report(tiny_model, tmp_path):
    _, metadata = load_exported(tiny_model)
    results = tmp_path / "results"
    results.mkdir()
    prep = metadata["preprocessing"]
    (results / "scratch.json").write_text(json.dumps({
        "valid_accuracy_by_size": metadata["valid_accuracy_by_size"], "eval_size": [prep["resize"], prep["crop"]],
        "train_seconds": 120.0, "seconds_per_epoch": 20.0, "epochs": 6, "wall_seconds_total": 130.0,
    }))
    (results / "transfer_other.json").write_text(json.dumps({"feature_seconds": 1.0, "train_seconds_total": 999.0}))
    record = training_record(metadata, tiny_model, results)
    assert record["train_wall_seconds"] == 120.0 and record["seconds_per_epoch"] == 20.0 and record["epochs"] == 6
    assert "scratch.json" in record["training_source"]

    (results / "scratch.json").write_text(json.dumps({"valid_accuracy_by_size": {"1/1": 0.5}, "train_seconds": 120.0}))
    assert training_record(metadata, tiny_model, results)["train_wall_seconds"] is None  # another run's report

    transfer = {"preprocessing": prep, "report": {"feature_seconds": 3.5, "train_seconds_total": 4.0}}
    record = training_record(transfer, tiny_model, results)
    assert record["train_wall_seconds"] == 4.0 and record["feature_seconds"] == 3.5 and record["seconds_per_epoch"] is None
    table = models_table([{"model": "m", **record}])
    assert table.startswith(MODELS_TABLE_HEADER) and "n/a" in table


class _TinyTransfer(nn.Module):
    """Shaped like src.transfer.TransferModel: a frozen `backbone` and a linear `head`."""

    def __init__(self, n_classes: int = 3):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(8, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def test_feature_cache_measurement(tiny_data):
    prep = Preprocessing(resize=73, crop=64)
    module = torch.jit.script(Predictor(_TinyTransfer(), ["a", "b", "c"], preprocessing=prep))
    cache = measure_feature_cache(module, {"preprocessing": prep.to_dict()}, tiny_data, BenchSettings.quick_settings())
    assert cache["photos_timed"] == 8 and cache["feature_dim"] == 8
    assert cache["train_photos"] > cache["photos_timed"]
    for key in ("backbone_ms_per_photo", "feature_pass_seconds_extrapolated", "head_epoch_seconds", "ratio"):
        assert _positive(cache[key]), key
