"""Temperature scaling: the fitted temperature, folding it into a head, and what it does to ECE."""

from __future__ import annotations

import pytest
import torch

from src.evaluation.calibration import (
    expected_calibration_error,
    fit_temperature,
    scale_head,
)


def _labels_drawn_from(logits: torch.Tensor, temperature: float, seed: int = 0) -> torch.Tensor:
    """Labels sampled from softmax(logits / temperature): the temperature that calibrates `logits`."""
    generator = torch.Generator().manual_seed(seed)
    return torch.multinomial(torch.softmax(logits / temperature, dim=1), 1, generator=generator).squeeze(1)


@pytest.mark.parametrize("true_temperature", [0.4, 1.0, 2.5])
def test_fit_temperature_recovers_the_temperature_the_labels_were_drawn_with(true_temperature):
    logits = 3 * torch.randn(20_000, 10, generator=torch.Generator().manual_seed(1))
    labels = _labels_drawn_from(logits, true_temperature)
    assert fit_temperature(logits, labels) == pytest.approx(true_temperature, rel=0.05)


def test_an_under_confident_model_gets_a_temperature_below_one_and_a_smaller_ece():
    logits = 4 * torch.randn(5_000, 25, generator=torch.Generator().manual_seed(2))
    labels = _labels_drawn_from(logits, 0.5)
    shy = logits * 0.5  # the model's logits are half what they should be: probabilities too low
    temperature = fit_temperature(shy, labels)
    assert temperature == pytest.approx(0.25, rel=0.05)
    before = expected_calibration_error(labels, torch.softmax(shy, dim=1).numpy())
    after = expected_calibration_error(labels, torch.softmax(shy / temperature, dim=1).numpy())
    assert before > 0.1 and after < 0.03
    # log-probabilities are logits too: the same temperature
    assert fit_temperature(torch.log_softmax(shy, dim=1), labels) == pytest.approx(temperature, rel=1e-3)


def test_scale_head_divides_the_logits():
    head = torch.nn.Linear(8, 3)
    x = torch.randn(4, 8)
    before = head(x).detach()
    assert scale_head(head, 0.5) is head
    assert torch.allclose(head(x), before / 0.5, atol=1e-6)
    with pytest.raises(ValueError, match="positive"):
        scale_head(head, 0.0)


def test_fit_temperature_refuses_mismatched_or_empty_input():
    with pytest.raises(ValueError, match="labels"):
        fit_temperature(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        fit_temperature(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
