"""Metrics of a model's answers on a test split, pure (no I/O): accuracy with its Wilson 95 % interval,
top-k, per-class precision/recall/F1, macro-F1, the confusion matrix, the expected calibration error and
the hardest classes, gathered in an `EvaluationReport`; `compare_reports` puts several side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from scipy.stats import binomtest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from src.data.landmarks import display_name
from src.evaluation.calibration import ECE_BINS, ece_from_bins, reliability_bins

HARDEST_K = 5
_MAX_LABEL = 28  # longest class label shown on a plot axis


# --------------------------------------------------------------------------- metrics


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion (no continuity correction); (0, 1) when n == 0."""
    if n <= 0:
        return 0.0, 1.0
    interval = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def top_k_accuracy(truth: Sequence[int], probabilities: np.ndarray, k: int) -> float:
    """Share of samples whose true class is among the k most probable (1.0 when k >= classes)."""
    probabilities = np.asarray(probabilities)
    n_classes = probabilities.shape[1]
    if k >= n_classes:
        return 1.0
    return float(top_k_accuracy_score(truth, probabilities, k=k, labels=np.arange(n_classes)))


# --------------------------------------------------------------------------- the report


@dataclass
class EvaluationReport:
    """Everything measured about one model on one test set (see `evaluate_probabilities`)."""

    model_name: str
    n: int
    accuracy: float
    accuracy_ci95: tuple[float, float]
    top3: float
    top5: float
    per_class: list[dict[str, Any]]  # class_name, display_name, precision, recall, f1, support
    macro_f1: float
    confusion: np.ndarray  # [true, predicted] counts, int64, in class_names order
    ece: float
    hardest: list[dict[str, Any]]  # lowest-F1 classes with their most common wrong prediction
    class_names: list[str] = field(default_factory=list)
    reliability: list[dict[str, float]] = field(default_factory=list)  # the ECE bins
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) not evaluated

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (plain Python types only)."""
        return {
            "model_name": self.model_name,
            "n": int(self.n),
            "accuracy": float(self.accuracy),
            "accuracy_ci95": [float(self.accuracy_ci95[0]), float(self.accuracy_ci95[1])],
            "top3": float(self.top3),
            "top5": float(self.top5),
            "macro_f1": float(self.macro_f1),
            "ece": float(self.ece),
            "class_names": list(self.class_names),
            "per_class": [dict(row) for row in self.per_class],
            "confusion": np.asarray(self.confusion).astype(int).tolist(),
            "hardest": [dict(row) for row in self.hardest],
            "reliability": [dict(b) for b in self.reliability],
            "skipped": [{"path": str(path), "reason": str(reason)} for path, reason in self.skipped],
        }

    def to_markdown(self) -> str:
        """A summary table and the hardest classes, as Markdown."""
        low, high = self.accuracy_ci95
        lines = [
            f"### {self.model_name or 'model'}",
            "",
            "| photos | accuracy (95% CI) | top-3 | top-5 | macro-F1 | ECE |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {self.n} | {format_percent(self.accuracy)} ({format_percent(low)}–{format_percent(high)}) | {format_percent(self.top3)} | {format_percent(self.top5)} "
            f"| {self.macro_f1:.3f} | {format_percent(self.ece)} |",
        ]
        if self.skipped:
            lines += ["", f"{len(self.skipped)} file(s) skipped (unknown class, not an image or unreadable)."]
        if self.hardest:
            lines += ["", "**Hardest classes**", "", "| class | F1 | recall | photos | most often taken for |", "|---|---:|---:|---:|---|"]
            for row in self.hardest:
                confused = row["confused_with_display"]
                confused = f"{confused} ({row['confused_count']}×)" if confused else "—"
                lines.append(f"| {row['display_name']} | {row['f1']:.3f} | {format_percent(row['recall'])} | {row['support']} | {confused} |")
        return "\n".join(lines)


def format_percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def as_numpy(probabilities: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(probabilities, torch.Tensor):
        probabilities = probabilities.detach().cpu().double().numpy()
    return np.asarray(probabilities, dtype=np.float64)


def _hardest(per_class: list[dict[str, Any]], confusion: np.ndarray, class_names: list[str], k: int) -> list[dict[str, Any]]:
    present = [i for i, row in enumerate(per_class) if row["support"] > 0]
    present.sort(key=lambda i: (per_class[i]["f1"], -per_class[i]["support"], i))
    hardest = []
    for i in present[:k]:
        wrong = confusion[i].copy()
        wrong[i] = 0
        j = int(wrong.argmax())
        has_confusion = wrong[j] > 0
        hardest.append({
            "class_name": class_names[i],
            "display_name": display_name(class_names[i]),
            "f1": per_class[i]["f1"],
            "recall": per_class[i]["recall"],
            "support": per_class[i]["support"],
            "confused_with": class_names[j] if has_confusion else None,
            "confused_with_display": display_name(class_names[j]) if has_confusion else None,
            "confused_count": int(wrong[j]) if has_confusion else 0,
        })
    return hardest


def evaluate_probabilities(
    truth: Sequence[int],
    probabilities: torch.Tensor | np.ndarray,
    class_names: list[str],
    model_name: str = "",
    hardest_k: int = HARDEST_K,
    n_bins: int = ECE_BINS,
) -> EvaluationReport:
    """Evaluate class probabilities [n, classes] against true class indices; pure, no I/O.

    The prediction is the most probable class. macro_f1 averages the F1 of the classes that occur in
    `truth` (a class absent from the test set neither helps nor hurts it); precision of a class that
    is never predicted is 0.
    """
    probs = as_numpy(probabilities)
    truth_array = np.asarray(list(truth), dtype=np.int64)
    n_classes = len(class_names)
    if probs.ndim != 2 or probs.shape[1] != n_classes:
        raise ValueError(f"probabilities must have shape [n, {n_classes}] (one column per class), got {tuple(probs.shape)}")
    if len(truth_array) != probs.shape[0]:
        raise ValueError(f"{len(truth_array)} labels for {probs.shape[0]} rows of probabilities")
    if len(truth_array) == 0:
        raise ValueError("nothing to evaluate: no samples")
    if truth_array.min() < 0 or truth_array.max() >= n_classes:
        raise ValueError(f"labels must be class indices in [0, {n_classes})")
    if not np.isfinite(probs).all():
        raise ValueError("probabilities contain NaN or infinity")

    labels = np.arange(n_classes)
    pred = probs.argmax(axis=1)
    n = len(truth_array)
    accuracy = float(accuracy_score(truth_array, pred))
    correct = int((pred == truth_array).sum())
    precision, recall, f1, support = precision_recall_fscore_support(truth_array, pred, labels=labels, zero_division=0)
    per_class = [
        {
            "class_name": name,
            "display_name": display_name(name),
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    ]
    present = support > 0
    macro_f1 = float(f1[present].mean())
    confusion = confusion_matrix(truth_array, pred, labels=labels).astype(np.int64)
    bins = reliability_bins(truth_array, probs, n_bins)
    return EvaluationReport(
        model_name=model_name,
        n=n,
        accuracy=accuracy,
        accuracy_ci95=wilson_interval(correct, n),
        top3=top_k_accuracy(truth_array, probs, 3),
        top5=top_k_accuracy(truth_array, probs, 5),
        per_class=per_class,
        macro_f1=macro_f1,
        confusion=confusion,
        ece=ece_from_bins(bins),
        hardest=_hardest(per_class, confusion, list(class_names), hardest_k),
        class_names=list(class_names),
        reliability=bins,
    )



def compare_reports(reports: Sequence[EvaluationReport]) -> str:
    """A Markdown table, one row per model: accuracy (95% CI), top-5, macro-F1, ECE; best in bold."""
    if not reports:
        return ""

    def cell(values: list[float], i: int, text: str, higher_is_better: bool = True) -> str:
        best = max(values) if higher_is_better else min(values)
        return f"**{text}**" if len(values) > 1 and values[i] == best else text

    accuracy = [r.accuracy for r in reports]
    top5 = [r.top5 for r in reports]
    macro = [r.macro_f1 for r in reports]
    ece = [r.ece for r in reports]
    lines = ["| model | photos | accuracy (95% CI) | top-5 | macro-F1 | ECE |", "|---|---:|---:|---:|---:|---:|"]
    for i, r in enumerate(reports):
        low, high = r.accuracy_ci95
        lines.append(
            f"| {r.model_name or f'model {i + 1}'} | {r.n} "
            f"| {cell(accuracy, i, format_percent(r.accuracy))} ({format_percent(low)}–{format_percent(high)}) "
            f"| {cell(top5, i, format_percent(r.top5))} | {cell(macro, i, f'{r.macro_f1:.3f}')} "
            f"| {cell(ece, i, format_percent(r.ece), higher_is_better=False)} |"
        )
    return "\n".join(lines)


