"""Calibration: do the probabilities mean what they say, and the one-number fix (temperature scaling).

A model whose photos at 80 % confidence are right 80 % of the time is calibrated. The expected
calibration error (ECE) measures the gap over confidence bins; `src.evaluation.evaluate` reports and plots it.

The fine-tuned transfer model comes out under-confident (a short schedule from a head that starts
at zero, weight decay and label smoothing all keep its logits small): out of fold its ECE is 25.6 %
(results/crossval_lite0_views4_full_float32_zen3.json, `ece_out_of_fold`). Temperature scaling
(Guo et al., "On calibration of modern neural networks", 2017) divides the logits by one number T
chosen to minimise the negative log-likelihood on photos the model did not train on (out of fold,
`src.training.crossval`; or a validation split). The ranking of the classes, hence accuracy and top-k, does
not change; T folds into the head's weights (`scale_head`), so the exported model needs nothing
new. Fitted out of fold, T = 0.45 brings that ECE to 0.7 %.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar

ECE_BINS = 15
TEMPERATURE_RANGE = (0.05, 20.0)  # searched on a log scale


def reliability_bins(truth: Sequence[int], probabilities: np.ndarray, n_bins: int = ECE_BINS) -> list[dict[str, float]]:
    """Top-label confidence split into `n_bins` equal-width bins (lower, upper]: per bin its count,
    mean confidence and accuracy (both 0.0 for an empty bin)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    truth = np.asarray(truth)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == truth
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        members = index == b
        count = int(members.sum())
        bins.append({
            "lower": float(edges[b]),
            "upper": float(edges[b + 1]),
            "count": count,
            "confidence": float(confidence[members].mean()) if count else 0.0,
            "accuracy": float(correct[members].mean()) if count else 0.0,
        })
    return bins


def ece_from_bins(bins: Sequence[dict[str, float]]) -> float:
    """The count-weighted mean |accuracy - confidence| of `reliability_bins`."""
    total = sum(b["count"] for b in bins)
    if total == 0:
        return 0.0
    return float(sum(b["count"] / total * abs(b["accuracy"] - b["confidence"]) for b in bins))


def expected_calibration_error(truth: Sequence[int], probabilities: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE: the count-weighted mean |accuracy - confidence| over the top-label confidence bins."""
    return ece_from_bins(reliability_bins(truth, probabilities, n_bins))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T > 0 that minimises the mean negative log-likelihood of softmax(logits / T) for `labels`.

    Log-probabilities work as logits too (softmax ignores a constant per row). Fit it on photos the
    model did not train on: on its own training photos any model looks under-confident."""
    if len(logits) == 0 or len(logits) != len(labels):
        raise ValueError(f"need as many labels as rows of logits, and at least one: {len(logits)} rows, {len(labels)} labels")
    logits, labels = logits.detach().double(), labels.long()

    def nll(log_t: float) -> float:
        return F.cross_entropy(logits / math.exp(log_t), labels).item()

    low, high = (math.log(t) for t in TEMPERATURE_RANGE)
    return float(math.exp(minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-4}).x))


@torch.no_grad()
def scale_head(head: torch.nn.Linear, temperature: float) -> torch.nn.Linear:
    """Fold a temperature into a linear head in place: its logits become logits / temperature."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    head.weight.div_(temperature)
    if head.bias is not None:
        head.bias.div_(temperature)
    return head
