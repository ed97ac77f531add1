"""Model comparison: how good is an exported model on a test folder, and where does it fail?

`evaluate_probabilities()` turns (truth, class probabilities) into an `EvaluationReport`: accuracy
with its Wilson 95% interval, top-3/top-5, per-class precision/recall/F1, macro-F1, the confusion
matrix, the expected calibration error and the hardest classes. It is pure (no I/O).
`evaluate_model()` runs any exported model file over an ImageFolder test split with the project's own
decoding (`src.dataset`) and prediction (`src.predictor.predict_dataset`) code and evaluates it.

The plots return a `matplotlib.figure.Figure` built without pyplot, so they work on headless machines
and never pile up in pyplot's global state; a notebook displays the returned figure, a script calls
`figure.savefig(...)`.

From the command line, any exported models on any test folder (tables printed, figures and JSON saved):

    python -m src.evaluate checkpoints/transfer_exported.pt checkpoints/scratch_exported.pt \
        --data ../shared/indian_monuments/test --figures static_images --report results/evaluation.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, top_k_accuracy_score

from .calibration import ECE_BINS, ece_from_bins, expected_calibration_error, reliability_bins
from .dataset import DecodedImageDataset, decode_folder, scan_image_folder
from .finetune import TailFinetuneConfig
from .metadata import display_name
from .predictor import load_exported, predict_dataset
from .transfer import get_backbone_spec

__all__ = [
    "ECE_BINS",
    "EvaluationReport",
    "compare_reports",
    "evaluate_model",
    "evaluate_probabilities",
    "expected_calibration_error",
    "plot_comparison",
    "plot_confusion_matrix",
    "plot_per_class_f1",
    "plot_reliability_diagram",
    "reliability_bins",
    "save_figures",
    "top_k_accuracy",
    "wilson_interval",
]


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
            f"| {self.n} | {_pct(self.accuracy)} ({_pct(low)}–{_pct(high)}) | {_pct(self.top3)} | {_pct(self.top5)} "
            f"| {self.macro_f1:.3f} | {_pct(self.ece)} |",
        ]
        if self.skipped:
            lines += ["", f"{len(self.skipped)} file(s) skipped (unknown class, not an image or unreadable)."]
        if self.hardest:
            lines += ["", "**Hardest classes**", "", "| class | F1 | recall | photos | most often taken for |", "|---|---:|---:|---:|---|"]
            for row in self.hardest:
                confused = row["confused_with_display"]
                confused = f"{confused} ({row['confused_count']}×)" if confused else "—"
                lines.append(f"| {row['display_name']} | {row['f1']:.3f} | {_pct(row['recall'])} | {row['support']} | {confused} |")
        return "\n".join(lines)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _as_numpy(probabilities: torch.Tensor | np.ndarray) -> np.ndarray:
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
    probs = _as_numpy(probabilities)
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


# --------------------------------------------------------------------------- a model on a folder


def _skipped(scan, decoded) -> list[tuple[str, str]]:
    """What this scan left out, plus the photos that failed to decode.

    The decode cache is keyed by the photos only, so a cached result can carry another scan's
    problems (e.g. a copy of the folder without the unknown class): take the folder problems from
    this scan, and only the trailing decode failures from the decoded result.
    """
    failed = len(scan.samples) - len(decoded.images)
    unreadable = decoded.problems[len(decoded.problems) - failed:] if failed > 0 else []
    return [(str(path), str(reason)) for path, reason in list(scan.problems) + list(unreadable)]


def evaluate_model(
    model_path_or_module: str | Path | torch.nn.Module,
    data_dir_or_dataset: str | Path | Any,
    model_name: Optional[str] = None,
    class_names: Optional[list[str]] = None,
    short_side: int = 256,
    progress: bool = False,
    hardest_k: int = HARDEST_K,
) -> EvaluationReport:
    """Run a model over a test split and evaluate it.

    model_path_or_module: an exported file (`src.predictor.export`) or a Predictor / loaded module
    (its `class_names` attribute, or `class_names=`, gives the classes).
    data_dir_or_dataset: a split folder `<root>/<class>/<photo>` (e.g. `landmark_images/test`), or a
    dataset with `raw(i)` and `classes` whose classes are the model's. A folder is scanned with the
    MODEL's class list, so label indices line up with the model's outputs; photos of classes the model
    does not know (and unreadable files) are logged and listed in `report.skipped`. Photos are decoded
    once with the training pipeline's cache (short side `short_side`), then fed raw to the model, whose
    own preprocessing does the rest.
    """
    if isinstance(model_path_or_module, (str, Path)):
        module, metadata = load_exported(model_path_or_module)
        names = list(class_names or metadata["class_names"])
        model_name = model_name or metadata.get("model_name") or Path(model_path_or_module).stem
    else:
        module = model_path_or_module.eval()
        names = list(class_names or getattr(module, "class_names", None) or [])
        if not names:
            raise ValueError("the model has no class_names attribute: pass class_names=")
        model_name = model_name or type(module).__name__

    skipped: list[tuple[str, str]] = []
    if isinstance(data_dir_or_dataset, (str, Path)):
        scan = scan_image_folder(Path(data_dir_or_dataset), classes=names)
        decoded = decode_folder(scan, short_side=short_side)
        dataset = DecodedImageDataset(decoded)  # no transform: the model preprocesses raw photos
        skipped = _skipped(scan, decoded)
    else:
        dataset = data_dir_or_dataset
        dataset_classes = list(getattr(dataset, "classes", names))
        if dataset_classes != names:
            raise ValueError("the dataset's classes are not the model's (indices would not line up): pass the test folder instead")
    if len(dataset) == 0:
        raise ValueError("nothing to evaluate: the test set is empty")

    result = predict_dataset(dataset, module, progress=progress)
    report = evaluate_probabilities(result.truth, result.probabilities, names, model_name=model_name, hardest_k=hardest_k)
    report.skipped = skipped
    return report


# --------------------------------------------------------------------------- plots


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
    ax.set_title(f"{title}confusion matrix{' (row-normalised)' if normalize else ''}, accuracy {_pct(report.accuracy)}")
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
        bins = reliability_bins(truth, _as_numpy(report_or_probs), n_bins)
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
    ax.set_title(f"{title + ' — ' if title else ''}reliability, ECE {_pct(ece)}")
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
            f"| {cell(accuracy, i, _pct(r.accuracy))} ({_pct(low)}–{_pct(high)}) "
            f"| {cell(top5, i, _pct(r.top5))} | {cell(macro, i, f'{r.macro_f1:.3f}')} "
            f"| {cell(ece, i, _pct(r.ece), higher_is_better=False)} |"
        )
    return "\n".join(lines)


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


def crossval_label(report: dict) -> str:
    """A short name for a `src.crossval` report's setting: backbone, views, and what else it changed."""
    finetune = report.get("finetune") or {}
    parts = [f"{report['backbone'].replace('tf_efficientnet_', '')}, {report['train_views']} views"]
    own_crop = get_backbone_spec(report["backbone"]).preprocessing.crop
    if report.get("train_crop", own_crop) != own_crop:
        parts.append(f"{report['train_crop']}-px views")
    if finetune.get("epochs", TailFinetuneConfig.epochs) != TailFinetuneConfig.epochs:
        parts.append(f"{finetune['epochs']} epochs")
    if report.get("eval_crop") == "full":
        parts.append("full-frame eval")
    if finetune.get("mixup_alpha", 0) > 0:
        parts.append(f"mixup {finetune['mixup_alpha']}")
    if finetune.get("ema_decay", 0) > 0:
        parts.append(f"EMA {finetune['ema_decay']}")
    if report.get("train_fraction", 1.0) < 1:
        parts.append(f"{report['train_fraction']:.0%} of photos")
    return ", ".join(parts)


def plot_crossval(reports: Sequence[dict]) -> Figure:
    """Cross-validated accuracy per fine-tuning epoch (`src.crossval` reports), one line per setting,
    the best epoch of each marked: how settings are compared without touching the test split."""
    figure = Figure(figsize=(6.5, 3.8))
    ax = figure.add_subplot()
    for report in reports:
        scores = report["accuracy_by_epoch"]
        epochs = list(range(1, len(scores) + 1))
        best = int(np.argmax(scores))
        line = ax.plot(epochs, scores, marker="o", label=f"{crossval_label(report)}: {scores[best]:.1%}")[0]
        ax.scatter([epochs[best]], [scores[best]], s=120, facecolors="none", edgecolors=line.get_color(), zorder=3)
    ax.set_xlabel("fine-tuning epoch")
    ax.set_ylabel("cross-validated accuracy")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.legend(loc="lower right", fontsize=9)
    folds = {report["folds"] for report in reports}
    ax.set_title(f"{'/'.join(map(str, sorted(folds)))}-fold cross-validation on the training photos")
    figure.tight_layout()
    return figure


# --------------------------------------------------------------------------- command line


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


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Evaluate exported models on a test folder: accuracy (95% CI), top-k, per-class F1, calibration.")
    parser.add_argument("models", nargs="+", type=Path, help="exported TorchScript files (src.predictor.export)")
    parser.add_argument("--data", required=True, type=Path, help="test folder: <data>/<class>/<photo>")
    parser.add_argument("--figures", type=Path, default=None, help="save each model's confusion matrix, reliability diagram and per-class F1 here (PNG)")
    parser.add_argument("--report", type=Path, default=None, help="save every model's full report here (JSON)")
    args = parser.parse_args(argv)
    missing = [str(path) for path in args.models if not path.is_file()]
    if missing:
        parser.error(f"no such model file: {', '.join(missing)}")
    if not args.data.is_dir():
        parser.error(f"no such test folder: {args.data}")
    reports = []
    for path in args.models:
        report = evaluate_model(path, args.data, model_name=path.stem, progress=True)
        reports.append(report)
        print(report.to_markdown(), end="\n\n", flush=True)
        if args.figures:
            print("figures: " + ", ".join(map(str, save_figures(report, args.figures, path.stem))), end="\n\n")
    if len(reports) > 1:
        print(compare_reports(reports))
        if args.figures:
            plot_comparison(reports).savefig(args.figures / "comparison.png", dpi=100)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps({"data": str(args.data), "models": [report.to_dict() for report in reports]}, indent=2))


if __name__ == "__main__":
    main()
