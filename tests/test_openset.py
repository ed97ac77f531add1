"""The shared "is it one of our landmarks?" rule and the validation-chosen threshold."""

import torch

from src.evaluation.openset import choose_threshold, is_landmark, landmark_confidence


def test_background_class_beats_a_confident_looking_landmark():
    probs = torch.tensor([[0.45, 0.05, 0.50], [0.80, 0.10, 0.10]])  # class 2 = "no landmark"
    assert is_landmark(probs, [2], 0.3).tolist() == [False, True]
    best, background = landmark_confidence(probs, [2])
    assert torch.allclose(best, torch.tensor([0.45, 0.80])) and torch.allclose(background, torch.tensor([0.5, 0.1]))


def test_without_background_classes_only_the_threshold_decides():
    probs = torch.tensor([[0.6, 0.4], [0.3, 0.7], [0.5, 0.5]])
    assert is_landmark(probs, [], 0.55).tolist() == [True, True, False]


def test_threshold_is_the_strictest_within_the_rejection_budget():
    # 100 landmark photos with best-landmark confidence 0.01 .. 1.00, no background mass
    confidence = torch.linspace(0.01, 1.0, 100)
    landmarks = torch.stack([confidence, 1 - confidence], dim=1)
    others = torch.tensor([[0.3, 0.7]])  # never a confident landmark: only the budget decides
    chosen = choose_threshold(landmarks, others, background=[], max_rejected=0.10)
    assert chosen["rejected"] <= 0.10
    # confidences are in [0.5, 1] on one of the two columns: at most 10 % below the threshold
    assert 0.5 <= chosen["threshold"] <= 0.6
    stricter = choose_threshold(landmarks, others, background=[], max_rejected=0.30)
    assert stricter["threshold"] > chosen["threshold"]


def test_threshold_falls_back_to_the_lowest_when_the_budget_cannot_be_met():
    landmarks = torch.tensor([[0.02, 0.01, 0.97]])  # background wins: rejected at any threshold
    chosen = choose_threshold(landmarks, torch.empty(0, 3), background=[2], max_rejected=0.0)
    assert chosen["threshold"] == 0.05 and chosen["rejected"] == 1.0
