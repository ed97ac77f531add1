"""The benchmark in --quick mode on the generated tiny set: the report's shape, not its numbers.

The full benchmark (`make bench`) is a measurement, never part of the test run.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from src.bench import main
from src.bench.measure import embedded_training
from src.bench.context_cost import write_library
from src.bench.report import MODELS_TABLE_HEADER, TAGGER_TABLE_HEADER, TRAINING_TABLE_HEADER, models_table
from src.bench.tagger import pipeline_limit
from src.bench.settings import BenchSettings
from src.bench.training import measure_feature_cache
from src.data.transforms import Preprocessing
from src.export import Predictor, load_exported
from src.runs import load_runs, portable_path


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_quick_benchmark_writes_json_and_markdown(tiny_data, tiny_model, tmp_path, capsys):
    out, runs = tmp_path / "out", tmp_path / "runs"
    threads = torch.get_num_threads()
    result = main([
        "--data", str(tiny_data), "--models", str(tiny_model), "--out", str(out), "--runs", str(runs), "--quick",
        "--threads", "1",  # one thread: far faster on a shared CI CPU
        "--sections", "models", "training",  # the tagger section has its own test
    ])
    assert torch.get_num_threads() == threads  # the caller's thread setting is restored

    (record,) = load_runs(runs)  # one run record, in src.runs' format
    assert record["path"] == result["record_path"] and record["path"].endswith(".json")
    assert {"kind", "recipe_name", "recipe", "data", "machine", "command", "date", "metrics"} <= set(record)
    assert record["kind"] == "bench" and record["recipe_name"] == "quick"
    assert record["recipe"]["settings"]["quick"] is True and record["data"]["roots"] == [portable_path(tiny_data)]  # no machine path in a record
    assert record["command"].startswith("python -m src bench ") and "--quick" in record["command"]
    report = record["metrics"]
    machine = record["machine"]
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
    # A scratch export embeds its training report: the time the run recorded, never estimated.
    embedded = load_exported(tiny_model)[1]["report"]
    assert row["train_wall_seconds"] == embedded["train_seconds"] and row["seconds_per_epoch"] == embedded["seconds_per_epoch"]
    assert row["training_source"] == "the report embedded in the exported file"

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
    assert machine["cpu_model"] in markdown and record["command"] in markdown
    assert "n/a" in markdown  # the unknown training time
    assert MODELS_TABLE_HEADER in capsys.readouterr().out  # the table is printed too
    assert result["models"][0]["model"] == row["model"]


def test_training_time_comes_from_the_report_embedded_in_the_export():
    # As a transfer export embeds it (src.export.load_exported(path)[1]["report"]): cumulative epoch seconds.
    history = [{"epoch": i, "loss": 1.0, "valid_score": None, "seconds": 60.0 * (i + 1)} for i in range(6)]
    metadata = {"preprocessing": {}, "report": {
        "train_seconds_total": 525.5, "feature_seconds": 174.2, "wall_seconds_total": 561.8,
        "finetune": {"epochs": 6, "history": history},
    }}
    record = embedded_training(metadata)
    assert record["train_wall_seconds"] == 525.5 and record["feature_seconds"] == 174.2
    assert record["epochs"] == 6 and record["seconds_per_epoch"] == 60.0  # 360 s over 6 epochs
    assert record["run_wall_seconds_total"] == 561.8
    assert record["training_source"] == "the report embedded in the exported file"
    table = models_table([{"model": "transfer", **record}])
    assert table.startswith(MODELS_TABLE_HEADER)
    assert "| transfer | n/a | n/a | 8.8 min | 60.0 |" in table


def test_a_scratch_style_report_and_no_report():
    scratch = embedded_training({"report": {"train_seconds": 120.0, "seconds_per_epoch": 20.0, "epochs": 6}})
    assert scratch["train_wall_seconds"] == 120.0 and scratch["seconds_per_epoch"] == 20.0 and scratch["epochs"] == 6
    nothing = embedded_training({"model": "MyModel", "train_seconds": 999.0})  # only the embedded report counts
    assert nothing["train_wall_seconds"] is None and nothing["seconds_per_epoch"] is None and nothing["epochs"] is None
    assert nothing["training_source"] is None
    assert "| m | n/a | n/a | n/a | n/a |" in models_table([{"model": "m", **nothing}])
    assert embedded_training({"report": {"train_seconds_total": True}})["train_wall_seconds"] is None  # not a number


def test_the_default_checkpoint_embeds_its_training_report():
    """The shipped transfer export carries its training report: the bench reads its time from there."""
    transfer = Path(__file__).resolve().parents[1] / "checkpoints" / "transfer_exported.pt"
    if not transfer.exists():
        pytest.skip("checkpoints/transfer_exported.pt is not in this checkout")
    metadata = load_exported(transfer, optimize=False)[1]
    record = embedded_training(metadata)
    assert record["train_wall_seconds"] is not None and record["train_wall_seconds"] > record["feature_seconds"] > 0
    assert record["epochs"] == metadata["recipe"]["finetune"]["epochs"] and record["seconds_per_epoch"] > 0


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


def test_quick_tagger_section_records_the_rates_and_the_ratio(tiny_data, tiny_model, tmp_path):
    """`--sections tagger --quick`: the model alone, the decoder alone and the tagger on the same photos, the limit
    and the ratio, the library context's cost and locate_library by size, in the run record and bench.md."""
    out = tmp_path / "out"
    result = main(["--data", str(tiny_data), "--models", str(tiny_model), "--out", str(out), "--quick", "--sections", "tagger",
                   "--library-photos", "40"])
    assert result["errors"] == {} and result["models"] == [] and result["training_throughput"] is None  # only the section asked for
    (record,) = load_runs(out / "runs")
    tagger = record["metrics"]["tagger"]
    assert tagger["model"] == tiny_model.stem and tagger["photos"] == 12 and tagger["cores"] >= 1
    assert tagger["photos_folder"] == portable_path(tiny_data / "test")
    (row,) = tagger["precisions"]  # f32 only on this CPU, or its TorchScript engine
    for key in ("model_images_per_second", "model_step_images_per_second", "decode_photos_per_second_one_core",
                "decode_photos_per_second_workers", "tagger_photos_per_second", "limit_photos_per_second", "ratio"):
        assert _positive(row[key]), key
    model, decode = row["rounds"][0]["model"], row["rounds"][0]["decode_one_core"]
    assert row["rounds"][0]["limit"] == pytest.approx(pipeline_limit(model, decode, tagger["cores"]))
    assert row["rounds"][0]["limit"] < min(model, tagger["cores"] * decode)  # both costs are paid
    assert row["ratio"] == pytest.approx(row["tagger_photos_per_second"] / row["limit_photos_per_second"])  # one round: its own ratio

    context = tagger["context"]
    assert context["library"]["photos"] == 40 and 0 < context["library"]["with_gps"] < 40
    for kind in ("with", "without"):
        assert context[kind]["photos"] == 40 and _positive(context[kind]["seconds"]) and _positive(context[kind]["peak_mb"])
        assert context[kind]["sources"].get("gps") == context["library"]["with_gps"]  # a photo's own GPS always wins
    assert math.isfinite(context["cost_percent"]) and math.isfinite(context["extra_bytes_per_photo"])
    assert [row["photos"] for row in tagger["locate_library"]] == [100, 400]
    assert all(_positive(row["us_per_photo"]) for row in tagger["locate_library"])

    markdown = (out / "bench.md").read_text()
    assert TAGGER_TABLE_HEADER in markdown and f"**{row['ratio']:.2f}**" in markdown and "Context cost:" in markdown


def test_pipeline_limit_sums_the_core_seconds():
    # The numbers: a 448 img/s model and a 1,370 photos/s-per-core decoder on 2 cores allow ~385 photos/s.
    assert pipeline_limit(448.0, 1370.0, 2) == pytest.approx(385.0, abs=1.0)
    assert pipeline_limit(100.0, 1e12, 2) == pytest.approx(100.0)  # a free decoder: the model alone


def test_the_generated_library_has_phone_and_camera_metadata(tmp_path):
    from src.serving.locate.photo_meta import read_photo_meta

    library = write_library(tmp_path / "library", 30, None)
    assert library["photos"] == 30 and not library["from_real_photos"]
    metas = [read_photo_meta(path.read_bytes(), path.name) for path in sorted((tmp_path / "library").iterdir())]
    phones = [m for m in metas if m.model == "Pixel 7"]
    cameras = [m for m in metas if m.model == "Canon EOS 80D"]
    assert len(phones) + len(cameras) == 30 and phones and cameras
    assert all(m.offset is not None and m.taken_local is not None for m in phones)
    assert sum(m.position is not None and m.gps_utc is not None for m in phones) == library["with_gps"]
    assert all(m.offset is None and m.position is None and m.taken_local is not None for m in cameras)
    assert all(not m.problems for m in metas)


@pytest.mark.slow
def test_app_section_serves_the_app_and_reports_both_times(tiny_data, tmp_path):
    """`--sections app`: `make app` until its first usable page, then two visitors one after the other, in
    headless Chromium; the times in the run record and bench.md beside their budgets (not checked: a CI
    runner shares its cores)."""
    from src.bench.app_pages import CHROMIUM, FRESH_PAGE_BUDGET_S

    pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("needs Debian chromium (`apt-get install -y chromium`; .ci/run does it)")
    out = tmp_path / "out"
    result = main(["--data", str(tiny_data), "--out", str(out), "--sections", "app", "--app-visits", "2"])
    assert result["errors"] == {} and result["models"] == [] and result["tagger"] is None
    (record,) = load_runs(out / "runs")
    app = record["metrics"]["app"]
    assert app["starts"] == 1 and len(app["first_usable_s"]) == 1 and len(app["first_visit_s"]) == 1 and len(app["fresh_page_s"]) == 1
    assert all(_positive(seconds) for seconds in app["first_usable_s"] + app["first_visit_s"] + app["fresh_page_s"])
    assert app["first_usable_s"][0] > app["fresh_page_s"][0]  # the first page waited for the server and its kernels
    assert app["budgets_s"]["fresh_page"] == FRESH_PAGE_BUDGET_S
    markdown = (out / "bench.md").read_text()
    assert "## The app" in markdown and "`make app` until the first usable page" in markdown
