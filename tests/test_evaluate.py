"""The evaluation layer: hand-computed metrics, calibration, plots and a real exported model end to end."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from src.data.folders import DecodedImageDataset, decode_folder, scan_image_folder
from src.evaluation.calibration import expected_calibration_error
from src.evaluation.evaluate import evaluate_model, main
from src.evaluation.metrics import (
    EvaluationReport,
    compare_reports,
    evaluate_probabilities,
    top_k_accuracy,
    wilson_interval,
)
from src.evaluation.plots import (
    plot_comparison,
    plot_confusion_matrix,
    plot_per_class_f1,
    plot_reliability_diagram,
)
from src.export import load_exported, predict_dataset
from src.runs import load_runs, portable, portable_path

CLASSES3 = ["00.Taj_Mahal", "01.Red_Fort", "02.Qutub_Minar"]
# truth 0,0,0,1,1,2 -> predictions 0,1,0,1,0,2
TRUTH3 = [0, 0, 0, 1, 1, 2]
PROBS3 = np.array([
    [0.7, 0.2, 0.1],
    [0.2, 0.5, 0.3],  # class 0 taken for 1; class 0 is only third: a top-2 miss
    [0.6, 0.3, 0.1],
    [0.1, 0.8, 0.1],
    [0.5, 0.4, 0.1],  # class 1 taken for 0; second: a top-2 hit
    [0.2, 0.3, 0.5],
])


@pytest.fixture(scope="module")
def report3() -> EvaluationReport:
    return evaluate_probabilities(TRUTH3, torch.tensor(PROBS3, dtype=torch.float32), CLASSES3, model_name="hand")


def _one_hot_like(truth: np.ndarray, confidence: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities with `confidence` on `predicted`, the rest spread evenly."""
    probs = np.repeat(((1 - confidence) / (n_classes - 1))[:, None], n_classes, axis=1)
    probs[np.arange(len(truth)), predicted] = confidence
    return probs


def test_perfect_predictions():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, 200)
    confidence = rng.uniform(0.5, 1.0, 200)
    probs = _one_hot_like(truth, confidence, truth, 4)
    report = evaluate_probabilities(truth.tolist(), probs, [f"{i:02d}.C{i}" for i in range(4)])
    assert report.accuracy == 1.0 and report.top3 == 1.0 and report.top5 == 1.0
    assert report.macro_f1 == 1.0
    assert all(row["f1"] == 1.0 and row["precision"] == 1.0 and row["recall"] == 1.0 for row in report.per_class)
    assert np.array_equal(report.confusion, np.diag(np.bincount(truth, minlength=4)))
    # always right: every bin's gap is 1 - its confidence, so ECE = 1 - mean confidence
    assert report.ece == pytest.approx(1 - confidence.mean(), abs=1e-9)
    assert report.accuracy_ci95[1] == pytest.approx(1.0) and report.accuracy_ci95[0] < 1.0


def test_hand_made_three_classes(report3):
    r = report3
    assert r.n == 6
    assert r.accuracy == pytest.approx(4 / 6)
    assert r.confusion.dtype.kind == "i"
    assert r.confusion.tolist() == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert top_k_accuracy(TRUTH3, PROBS3, 1) == pytest.approx(4 / 6)
    assert top_k_accuracy(TRUTH3, PROBS3, 2) == pytest.approx(5 / 6)
    assert r.top3 == 1.0 and r.top5 == 1.0  # k >= 3 classes
    expected = [(2 / 3, 2 / 3, 3), (1 / 2, 1 / 2, 2), (1.0, 1.0, 1)]  # precision, recall, support
    for row, (precision, recall, support) in zip(r.per_class, expected):
        assert row["precision"] == pytest.approx(precision)
        assert row["recall"] == pytest.approx(recall)
        assert row["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
        assert row["support"] == support
    assert [row["display_name"] for row in r.per_class] == ["Taj Mahal", "Red Fort", "Qutub Minar"]
    assert r.macro_f1 == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    # confidences 0.7 0.5 0.6 0.8 0.5 0.5: the 0.5 bin holds 3 photos with 1 right, the rest are alone and right
    assert r.ece == pytest.approx(3 / 6 * abs(1 / 3 - 0.5) + (0.4 + 0.3 + 0.2) / 6)
    hardest = r.hardest
    assert [h["class_name"] for h in hardest] == ["01.Red_Fort", "00.Taj_Mahal", "02.Qutub_Minar"]
    assert hardest[0]["confused_with"] == "00.Taj_Mahal" and hardest[0]["confused_count"] == 1
    assert hardest[0]["confused_with_display"] == "Taj Mahal"
    assert hardest[2]["confused_with"] is None


def test_top_k_with_more_classes():
    probs = np.array([
        [0.40, 0.30, 0.20, 0.06, 0.04],  # truth 2: third
        [0.40, 0.30, 0.20, 0.06, 0.04],  # truth 3: fourth
        [0.10, 0.50, 0.20, 0.15, 0.05],  # truth 1: first
        [0.50, 0.20, 0.15, 0.10, 0.05],  # truth 4: fifth
    ])
    report = evaluate_probabilities([2, 3, 1, 4], probs, [f"c{i}" for i in range(5)])
    assert report.accuracy == pytest.approx(1 / 4)
    assert report.top3 == pytest.approx(2 / 4)
    assert report.top5 == 1.0
    assert report.macro_f1 == pytest.approx(1 / 4)  # only classes present in truth count: F1 1,0,0,0


def test_wilson_interval_contains_accuracy_and_narrows():
    low, high = wilson_interval(70, 100)
    assert low < 0.7 < high
    z = 1.959963984540054
    n, p = 100, 0.7
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (low, high) == pytest.approx((centre - half, centre + half), abs=1e-9)
    low_big, high_big = wilson_interval(700, 1000)
    assert low_big < 0.7 < high_big
    assert high_big - low_big < high - low
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_ece_calibrated_is_small_and_overconfident_is_large():
    rng = np.random.default_rng(1)
    n, classes = 30000, 4
    truth = rng.integers(0, classes, n)
    confidence = rng.uniform(0.4, 1.0, n)
    right = rng.uniform(size=n) < confidence  # right exactly as often as it claims
    wrong_class = (truth + rng.integers(1, classes, n)) % classes
    predicted = np.where(right, truth, wrong_class)
    calibrated = _one_hot_like(truth, confidence, predicted, classes)
    assert expected_calibration_error(truth, calibrated) < 0.02

    right = rng.uniform(size=n) < 0.5
    predicted = np.where(right, truth, wrong_class)
    overconfident = _one_hot_like(truth, np.full(n, 0.99), predicted, classes)
    assert expected_calibration_error(truth, overconfident) == pytest.approx(0.49, abs=0.02)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="shape"):
        evaluate_probabilities([0, 1], np.ones((2, 4)) / 4, CLASSES3)
    with pytest.raises(ValueError, match="labels"):
        evaluate_probabilities([0], PROBS3, CLASSES3)
    with pytest.raises(ValueError, match="class indices"):
        evaluate_probabilities([0, 0, 0, 1, 1, 3], PROBS3, CLASSES3)


def test_to_dict_is_json_ready_and_markdown_has_accuracy(report3):
    data = json.loads(json.dumps(report3.to_dict()))
    assert data["confusion"] == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert data["accuracy"] == pytest.approx(4 / 6)
    assert len(data["per_class"]) == 3 and len(data["reliability"]) == 15
    markdown = report3.to_markdown()
    assert "66.7%" in markdown
    assert "Red Fort" in markdown and "Taj Mahal (1×)" in markdown


def test_confusion_matrix_plot_is_readable_for_many_classes():
    rng = np.random.default_rng(2)
    names = [f"{i:02d}.Landmark_Number_{i}" for i in range(30)]
    truth = np.repeat(np.arange(30), 3)
    probs = rng.dirichlet(np.ones(30), len(truth))
    report = evaluate_probabilities(truth.tolist(), probs, names)
    figure = plot_confusion_matrix(report)
    assert isinstance(figure, Figure)
    ax = figure.axes[0]
    assert len(figure.axes) == 2  # matrix + colour bar
    assert len(ax.get_xticklabels()) == 30 and len(ax.get_yticklabels()) == 30
    assert ax.get_yticklabels()[0].get_text() == "Landmark Number 0"
    assert figure.get_size_inches()[1] >= 10
    assert isinstance(plot_confusion_matrix(report, normalize=False), Figure)


def test_small_plots(report3):
    figure = plot_confusion_matrix(report3)
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["Taj Mahal", "Red Fort", "Qutub Minar"]
    assert len(figure.axes[0].texts) == 5  # the non-zero cells are written

    reliability = plot_reliability_diagram(report3)
    assert len(reliability.axes) == 1 and "ECE 23.3%" in reliability.axes[0].get_title()
    from_probs = plot_reliability_diagram(PROBS3, truth=TRUTH3)
    assert "ECE 23.3%" in from_probs.axes[0].get_title()
    with pytest.raises(ValueError):
        plot_reliability_diagram(PROBS3)

    bars = plot_per_class_f1(report3)
    labels = [t.get_text() for t in bars.axes[0].get_yticklabels()]
    assert labels == ["Red Fort", "Taj Mahal", "Qutub Minar"]  # sorted, worst first

    comparison = plot_comparison([report3, report3])
    assert len(comparison.axes) == 1 and len(comparison.axes[0].get_xticklabels()) == 4


def test_compare_reports_side_by_side(report3):
    other = evaluate_probabilities([0, 1, 2], np.eye(3) * 0.9 + 0.1 / 3, CLASSES3, model_name="perfect")
    table = compare_reports([report3, other])
    lines = table.splitlines()
    assert len(lines) == 4 and "accuracy" in lines[0] and "ECE" in lines[0]
    assert lines[2].startswith("| hand | 6 | 66.7% (")
    assert "**100.0%**" in lines[3]
    assert compare_reports([]) == ""


def test_evaluate_model_end_to_end(tiny_model, tiny_data):
    report = evaluate_model(tiny_model, tiny_data / "test")
    module, metadata = load_exported(tiny_model)
    assert report.class_names == metadata["class_names"]
    assert report.n == 18 and report.model_name == tiny_model.stem
    assert report.skipped == []

    scan = scan_image_folder(tiny_data / "test", classes=metadata["class_names"])
    direct = predict_dataset(DecodedImageDataset(decode_folder(scan)), module, progress=False)
    accuracy = sum(t == p for t, p in zip(direct.truth, direct.pred)) / len(direct.truth)
    assert report.accuracy == pytest.approx(accuracy)
    assert report.confusion.sum() == 18
    assert f"{100 * report.accuracy:.1f}%" in report.to_markdown()
    json.dumps(report.to_dict())


def test_evaluate_model_skips_classes_the_model_does_not_know(tiny_model, tiny_data, tmp_path):
    test_dir = tmp_path / "test"
    shutil.copytree(tiny_data / "test", test_dir)
    (test_dir / "07.Unknown_Place").mkdir()
    shutil.copy(test_dir / "00.Red_Circle_Tower" / "000.jpg", test_dir / "07.Unknown_Place" / "000.jpg")
    good = (test_dir / "01.Green_Square_Gate" / "000.jpg").read_bytes()
    (test_dir / "01.Green_Square_Gate" / "broken.jpg").write_bytes(good[: len(good) // 3])
    module, metadata = load_exported(tiny_model)
    report = evaluate_model(module, test_dir, model_name="tiny", class_names=metadata["class_names"])
    assert report.n == 18 and report.model_name == "tiny"
    skipped = [path for path, _ in report.skipped]
    assert any("07.Unknown_Place" in path for path in skipped)
    assert any(path.endswith("broken.jpg") for path in skipped)
    assert "skipped" in report.to_markdown()


def test_command_line_prints_tables_and_saves_figures_and_reports(tiny_model, tiny_data, tmp_path, capsys):
    second = tmp_path / "second.pt"
    shutil.copy(tiny_model, second)
    figures, report_path = tmp_path / "figures", tmp_path / "out" / "evaluation.json"
    main([str(tiny_model), str(second), "--data", str(tiny_data / "test"), "--figures", str(figures), "--report", str(report_path), "--runs", str(tmp_path / "runs")])

    expected = evaluate_model(tiny_model, tiny_data / "test")
    printed = capsys.readouterr().out
    assert f"### {tiny_model.stem}" in printed and "### second" in printed
    assert printed.count(f"{100 * expected.accuracy:.1f}%") >= 3  # both models' tables and the comparison
    saved = json.loads(report_path.read_text())
    assert saved["data"] == str(tiny_data / "test")
    assert [model["model_name"] for model in saved["models"]] == [tiny_model.stem, "second"]
    assert saved["models"][0]["accuracy"] == pytest.approx(expected.accuracy)
    (record,) = load_runs(tmp_path / "runs", kind="evaluate")  # the same reports, as a run record (no machine paths in it)
    assert record["metrics"] == portable(saved) and record["recipe"]["models"] == [portable_path(tiny_model), portable_path(second)]
    names = sorted(path.name for path in figures.iterdir())
    assert names == sorted(["comparison.png"] + [f"{stem}_{kind}.png" for stem in (tiny_model.stem, "second") for kind in ("confusion", "reliability", "f1")])
    assert all((figures / name).read_bytes().startswith(b"\x89PNG") for name in names)


def test_command_line_refuses_missing_files(tiny_model, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nope.pt"), "--data", str(tmp_path)])
    assert "no such model file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tiny_model), "--data", str(tmp_path / "missing")])
    assert "no such test folder" in capsys.readouterr().err
