"""Figures of evaluation reports and training histories.

Each returns a `matplotlib.figure.Figure` built without pyplot, so they work on headless machines and
never pile up in pyplot's global state; a notebook displays the returned figure, a script calls
`figure.savefig(...)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from src.data.landmarks import display_name
from src.evaluation.calibration import ECE_BINS, ece_from_bins, reliability_bins
from src.evaluation.metrics import EvaluationReport, as_numpy, format_percent

_MAX_LABEL = 28  # longest class label shown on a plot axis


def _short(name: str, limit: int = _MAX_LABEL) -> str:
    name = display_name(name)
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _tick_fontsize(n_classes: int) -> float:
    return 10.0 if n_classes <= 12 else 8.0 if n_classes <= 30 else 6.5


def plot_confusion_matrix(report: EvaluationReport, normalize: bool = True) -> Figure:
    """The confusion matrix (rows: true class, columns: predicted) with readable class names.

    normalize: each row divided by its class's photo count (the diagonal is then per-class recall).
    The figure grows with the number of classes; cell values are written when there are <= 20.
    """
    matrix = np.asarray(report.confusion, dtype=np.float64)
    n_classes = matrix.shape[0]
    if normalize:
        rows = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    names = [_short(name) for name in (report.class_names or [str(i) for i in range(n_classes)])]
    side = max(5.0, 0.3 * n_classes + 3.0)
    figure = Figure(figsize=(side + 1.0, side))
    ax = figure.add_subplot()
    image = ax.imshow(matrix, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None, interpolation="nearest")
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class" if normalize else "photos")
    fontsize = _tick_fontsize(n_classes)
    ticks = np.arange(n_classes)
    ax.set_xticks(ticks, labels=names, rotation=90, fontsize=fontsize)
    ax.set_yticks(ticks, labels=names, fontsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n_classes <= 20:
        threshold = matrix.max() / 2 if matrix.max() > 0 else 0.5
        for i in range(n_classes):
            for j in range(n_classes):
                value = matrix[i, j]
                if value == 0:
                    continue
                text = f"{value:.2f}" if normalize else f"{int(value)}"
                ax.text(j, i, text, ha="center", va="center", fontsize=fontsize - 1, color="white" if value > threshold else "black")
    title = f"{report.model_name} — " if report.model_name else ""
    ax.set_title(f"{title}confusion matrix{' (row-normalised)' if normalize else ''}, accuracy {format_percent(report.accuracy)}")
    figure.tight_layout()
    return figure


def plot_reliability_diagram(
    report_or_probs: EvaluationReport | torch.Tensor | np.ndarray,
    truth: Optional[Sequence[int]] = None,
    n_bins: int = ECE_BINS,
    title: str = "",
) -> Figure:
    """Accuracy per confidence bin against the diagonal of perfect calibration; ECE in the title.

    Pass a report (its stored bins are used) or class probabilities [n, classes] with `truth`.
    """
    if isinstance(report_or_probs, EvaluationReport):
        bins = report_or_probs.reliability
        title = title or report_or_probs.model_name
    else:
        if truth is None:
            raise ValueError("give truth= with probabilities")
        bins = reliability_bins(truth, as_numpy(report_or_probs), n_bins)
    ece = ece_from_bins(bins)
    lower = np.array([b["lower"] for b in bins])
    width = np.array([b["upper"] - b["lower"] for b in bins])
    accuracy = np.array([b["accuracy"] for b in bins])
    confidence = np.array([b["confidence"] for b in bins])
    filled = np.array([b["count"] > 0 for b in bins])

    figure = Figure(figsize=(5.5, 5.5))
    ax = figure.add_subplot()
    ax.bar(lower[filled], accuracy[filled], width=width[filled], align="edge", color="tab:blue", edgecolor="black", linewidth=0.6, label="accuracy")
    gap_bottom = np.minimum(accuracy, confidence)[filled]
    gap = np.abs(confidence - accuracy)[filled]
    ax.bar(lower[filled], gap, bottom=gap_bottom, width=width[filled], align="edge", fill=False, hatch="//", edgecolor="tab:red", linewidth=0.6, label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left", fontsize=9)
    ax.set_title(f"{title + ' — ' if title else ''}reliability, ECE {format_percent(ece)}")
    figure.tight_layout()
    return figure


def plot_per_class_f1(report: EvaluationReport) -> Figure:
    """Horizontal F1 bars, one per class present in the test set, worst at the top; macro-F1 line."""
    rows = sorted((row for row in report.per_class if row["support"] > 0), key=lambda row: (row["f1"], row["class_name"]))
    n_rows = len(rows)
    figure = Figure(figsize=(7.0, max(3.0, 0.25 * n_rows + 1.5)))
    ax = figure.add_subplot()
    positions = np.arange(n_rows)
    ax.barh(positions, [row["f1"] for row in rows], color="tab:blue")
    ax.set_yticks(positions, labels=[_short(row["class_name"]) for row in rows], fontsize=_tick_fontsize(n_rows))
    ax.invert_yaxis()  # worst class at the top
    ax.axvline(report.macro_f1, color="tab:red", linestyle="--", label=f"macro-F1 {report.macro_f1:.3f}")
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    ax.legend(loc="lower right", fontsize=9)
    ax.set_title(f"{report.model_name + ' — ' if report.model_name else ''}F1 per class")
    figure.tight_layout()
    return figure


def plot_comparison(reports: Sequence[EvaluationReport]) -> Figure:
    """Grouped bars per model: accuracy (with its 95% CI), top-5, macro-F1 and ECE."""
    metrics = ("accuracy", "top-5", "macro-F1", "ECE")
    figure = Figure(figsize=(max(6.0, 1.6 * len(metrics) * max(1, len(reports)) / 2 + 3), 4.5))
    ax = figure.add_subplot()
    width = 0.8 / max(1, len(reports))
    positions = np.arange(len(metrics))
    for i, r in enumerate(reports):
        values = [r.accuracy, r.top5, r.macro_f1, r.ece]
        low, high = r.accuracy_ci95
        x = positions + (i - (len(reports) - 1) / 2) * width
        ax.bar(x, values, width=width, label=r.model_name or f"model {i + 1}")
        ax.errorbar(x[0], r.accuracy, yerr=[[r.accuracy - low], [high - r.accuracy]], color="black", capsize=3)  # 95% CI
    ax.set_xticks(positions, labels=metrics)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score (ECE: lower is better)")
    ax.legend(fontsize=9)
    ax.set_title("model comparison")
    figure.tight_layout()
    return figure


def plot_finetune_history(history: Sequence[dict[str, float]], probe_valid_accuracy: Optional[float] = None) -> Figure:
    """Validation accuracy per fine-tuning epoch (`src.finetune.FinetuneResult.history`), the kept
    epoch marked, against the linear probe's validation accuracy when given."""
    figure = Figure(figsize=(6.0, 3.5))
    ax = figure.add_subplot()
    epochs = [int(h["epoch"]) + 1 for h in history]
    scores = [h["valid_score"] for h in history]
    ax.plot(epochs, scores, marker="o", label="fine-tuned tail")
    best = int(np.argmax(scores))
    ax.scatter([epochs[best]], [scores[best]], s=120, facecolors="none", edgecolors="tab:red", zorder=3, label=f"kept: epoch {epochs[best]} ({scores[best]:.1%})")
    if probe_valid_accuracy is not None:
        ax.axhline(probe_valid_accuracy, color="tab:gray", linestyle="--", label=f"linear probe ({probe_valid_accuracy:.1%})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_xticks(epochs)
    ax.legend(loc="lower right", fontsize=9)
    ax.set_title("Fine-tuning the last block on cached activations")
    figure.tight_layout()
    return figure


def save_figures(report: EvaluationReport, folder: str | Path, stem: str) -> list[Path]:
    """The report's confusion matrix, reliability diagram and per-class F1 as `<folder>/<stem>_*.png`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures = {"confusion": plot_confusion_matrix(report), "reliability": plot_reliability_diagram(report), "f1": plot_per_class_f1(report)}
    paths = []
    for kind, figure in figures.items():
        paths.append(folder / f"{stem}_{kind}.png")
        figure.savefig(paths[-1], dpi=100)
    return paths


