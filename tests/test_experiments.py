"""docs/experiments.md's tables come from run records: rendered from a few generated ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from src.evaluation import experiments
from src.runs import run_id, write_json_atomically

MACHINE = {"cpu_model": "Test CPU", "cpu_bf16_native": False}


def _record(folder: Path, kind: str, name: str, recipe: dict, metrics: dict, date: str) -> Path:
    data = {"roots": ["data"]}
    record = {"kind": kind, "recipe_name": name, "recipe": recipe, "data": data, "machine": MACHINE,
              "command": f"python -m src {kind}", "date": date, "metrics": metrics}
    rid = run_id(name if kind == "train" else f"{kind}-{name}", recipe, data, MACHINE)
    return write_json_atomically(folder / f"{rid}.json", record)


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    folder = tmp_path / "runs"
    _record(folder, "train", "default", {"backbone": "tf_efficientnet_lite0", "train_views": 4, "refit": True, "eval_crop": "full", "eval_input": 256},
            {"test_accuracy": 0.97138, "test_accuracy_exported": 0.97138, "test_images": 699, "test_top5": 0.9957,
             "train_seconds_total": 525.5, "held_out_no_landmark_named": 0.0106}, "2026-11-30T17:58:30+00:00")
    _record(folder, "train", "scratch", {"model": "MyModel"},
            {"test_accuracy": 0.917, "test_images": 699, "eval_size": [183, 160], "train_seconds": 3519.3}, "2026-11-23T12:47:51+00:00")
    _record(folder, "crossval", "lite0-views5", {"backbone": "tf_efficientnet_lite0", "train_views": 5, "finetune": {"epochs": 6, "ema_decay": 0.998}},
            {"accuracy_final_epoch": 0.977142870426178, "accuracy_best_epoch": 0.9782, "seconds_total": 666.0,
             "threshold_out_of_fold": {"threshold": 0.24}}, "2026-11-23T17:17:45+00:00")
    return folder


def _rows(markdown: str, title: str) -> list[str]:
    section = markdown.split(f"### {title}", 1)[1].split("###", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ")][1:]  # without the header


def test_tables_are_rendered_from_the_records(runs, tmp_path):
    markdown = experiments.render_tables(runs, out_dir=tmp_path / "docs")
    assert "from 3 run records" in markdown
    training = _rows(markdown, "Training runs")
    assert len(training) == 2
    assert training[0].startswith("| default | EfficientNet-lite0, 4 views, refit | full 256 |")  # named recipes first
    assert "**97.1 %** (679/699)" in training[0] and "8.8 min" in training[0] and "1.1 %" in training[0]
    assert training[1].startswith("| scratch | MyModel (scratch) | 183/160 |") and "58.7 min" in training[1]
    assert "Test CPU, float32" in training[0]
    crossval = _rows(markdown, "Cross-validation")
    assert len(crossval) == 1
    assert "**97.71 %**" in crossval[0] and "EMA 0.998" in crossval[0] and "| 0.24 |" in crossval[0] and "11.1 min" in crossval[0]
    assert "(../runs/" in crossval[0]  # a link to the record, relative to the document's folder
    assert "### Benchmark" not in markdown and "### Evaluations" not in markdown  # no records of those kinds


def test_main_replaces_only_what_lies_between_the_markers(runs, tmp_path):
    out = tmp_path / "docs" / "experiments.md"
    out.parent.mkdir()
    out.write_text(f"# Experiments\n\nProse before.\n\n{experiments.BEGIN}\nold table\n{experiments.END}\n\nProse after.\n")
    assert experiments.main(["--runs", str(runs), "--out", str(out), "--check"]) == 1  # out of date, and left alone
    assert "old table" in out.read_text()
    assert experiments.main(["--runs", str(runs), "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# Experiments\n\nProse before.\n") and text.endswith("Prose after.\n")
    assert "old table" not in text and "**97.1 %** (679/699)" in text
    assert experiments.main(["--runs", str(runs), "--out", str(out), "--check"]) == 0  # now up to date
    assert experiments.main(["--runs", str(runs), "--out", str(out)]) == 0 and out.read_text() == text  # idempotent


def test_a_document_without_markers_is_refused(runs, tmp_path):
    out = tmp_path / "notes.md"
    out.write_text("# Notes without markers\n")
    with pytest.raises(ValueError, match="markers"):
        experiments.main(["--runs", str(runs), "--out", str(out)])
    assert out.read_text() == "# Notes without markers\n"


def test_formatting_helpers():
    assert experiments.pct(0.97821, 2) == "97.82 %" and experiments.pct(None) == ""
    assert experiments.count_of(0.97138, 699) == "679/699"
    assert experiments.minutes(525.5) == "8.8 min"
    assert experiments.machine_label({"cpu_model": "X", "cpu_bf16_native": True}) == "X, bf16"
    assert experiments._negatives({}) == "" and experiments._negatives({"negative_landmarks_by_fold": [[], []]}) == ""
    assert experiments._negatives({"negative_landmarks_by_fold": [["a", "b"], ["c", "d"]]}) == "2 landmarks per fold as background"
    assert experiments._negatives({"negative_landmarks_by_fold": [["a"], ["b", "c"]]}) == "1–2 landmarks per fold as background"
    assert experiments._changes({"finetune": {"cosine_scale": 16.0, "class_balance": 0.5}}) == "class balance 0.5, cosine head x16"
    assert experiments._changes({"finetune": {"cosine_scale": 24.0, "cosine_margin": 0.15}}) == "cosine head x24, CosFace margin 0.15"
