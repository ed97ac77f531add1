"""Leave-landmarks-out cross-validation (src.training.openset_cv) and generated non-photos (src.data.synthetic)."""

from pathlib import Path

import pytest
import torch

from src.cli import main
from src.data.synthetic import (
    DEGENERATE_KINDS,
    degenerate_tensors,
    make_degenerate_images,
    make_synthetic_dataset,
)
from src.runs import load_runs
from src.training.openset_cv import (
    GROUPS,
    RULES,
    choose_min_confidence,
    landmark_groups,
    negative_landmarks,
    rates_at,
)


def test_degenerate_images_cover_every_kind_and_are_seeded():
    images = make_degenerate_images(16, seed=3)
    assert [kind for kind, _ in images] == list(DEGENERATE_KINDS) * 2
    assert all(image.mode == "RGB" for _, image in images)
    assert all(min(image.size) < 32 for kind, image in images if kind == "tiny")
    again = make_degenerate_images(16, seed=3)
    assert all(a.tobytes() == b.tobytes() for (_, a), (_, b) in zip(images, again))
    tensors = degenerate_tensors(16, seed=3, short_side=64)
    assert all(t.dtype == torch.uint8 and t.shape[0] == 3 and min(t.shape[1:]) <= 64 for t in tensors)


def test_landmark_groups_partition_the_classes():
    parts = landmark_groups(10, 3, seed=0)
    assert sorted(c for part in parts for c in part) == list(range(10)) and sorted(map(len, parts)) == [3, 3, 4]


def test_rates_and_min_confidence():
    scores = {"known": torch.tensor([0.9, 0.8, 0.2]), "unknown": torch.tensor([0.95, 0.1]), "objects": torch.tensor([0.1]), "generated": torch.tensor([0.0])}
    correct = torch.tensor([True, False, True])
    rates = rates_at(scores, correct, 0.5)
    assert rates == pytest.approx({"known_rejected": 1 / 3, "known_named_wrong": 1 / 3, "unknown_named": 0.5, "objects_named": 0.0, "generated_named": 0.0})
    curve = [{"min_confidence": 0.5, "worst_group_wrong": 0.5}, {"min_confidence": 0.96, "worst_group_wrong": 0.0}]
    assert choose_min_confidence(curve)["min_confidence"] == 0.96 and choose_min_confidence(curve[:1]) is None


@pytest.mark.slow
def test_leave_landmarks_out_cli_measures_every_rule(tmp_path):
    data = make_synthetic_dataset(tmp_path / "data", n_classes=4, n_train=8, n_test=2, with_bad_files=False)
    runs = tmp_path / "runs"
    assert main([
        "crossval", "--data", str(data), "--generated-background", "16", "--train-views", "1", "--finetune-epochs", "1",
        "--leave-landmarks-out", "2", "--generated-eval", "16", "--runs", str(runs),
    ]) == 0
    (record,) = load_runs(runs, kind="crossval")
    report = record["metrics"]
    assert record["recipe_name"] == "openset-default" and record["recipe"]["leave_landmarks_out"] == 2
    assert report["photos"]["unknown"] == 32 and report["photos"]["generated"] == 2 * 16  # every landmark left out once; every fold scores the generated set
    assert sorted(sum(report["landmarks_left_out"], [])) == sorted(p.name for p in (data / "train").iterdir())
    assert set(report["rules"]) == set(RULES)
    for rates in report["rules"].values():
        assert set(rates) == {"threshold", "known_rejected", "known_named_wrong", *(f"{g}_named" for g in GROUPS[1:])}
        assert rates["objects_named"] is None  # no object photos were given
        assert all(0 <= v <= 1 for k, v in rates.items() if k not in ("threshold", "objects_named"))
    assert report["rules"]["max_probability"]["known_rejected"] <= 0.5  # 3 % of 8 photos rounds to none or one
    assert 0.05 <= report["temperature_out_of_fold"] <= 20
    assert [point["min_confidence"] for point in report["min_confidence_curve"]][:2] == [0.3, 0.31]
    taught = report["taught"]  # each left-out landmark taught from 5 photos, its other 3 scored
    assert taught["shots"] == 5 and taught["taught_photos_scored"] == 4 * 3
    assert taught["objects_named_after"] is None and 0 <= taught["generated_named_after"] <= 1
    assert all(0 <= taught[key] <= 1 for key in ("taught_top1", "taught_named_correctly", "known_named_correctly_before", "known_named_correctly_after"))
    assert taught["taught_named_correctly"] <= taught["taught_top1"]
    placement = report["placement"]  # the placement curve from the saved per-photo outputs
    assert set(placement["scores"]) == {"probability", "mirror", "reference", "probability*reference"}  # no other landmarks given: no distractor scores
    assert placement["photos"]["unknown"] == 32
    curve = placement["scores"]["probability"]["curve"]
    assert all(0 <= p["unknown_placed"] <= 1 for p in curve) and curve[-1]["threshold"] == 1.0


@pytest.mark.slow
def test_negative_groups_train_other_landmarks_as_background(tmp_path):
    assert negative_landmarks([[0, 1], [2], [3, 4], [5]], 3, 2) == [0, 1, 2]  # the groups after the left-out one, wrapping
    assert negative_landmarks([[0, 1], [2]], 0, 0) == []
    data = make_synthetic_dataset(tmp_path / "data", n_classes=4, n_train=8, n_test=2, with_bad_files=False)
    runs = tmp_path / "runs"
    argv = ["crossval", "--data", str(data), "--generated-background", "16", "--train-views", "1", "--finetune-epochs", "1",
            "--leave-landmarks-out", "4", "--generated-eval", "8", "--runs", str(runs)]
    with pytest.raises(ValueError, match="negative_groups must be between 0 and groups - 2"):
        main(argv + ["--negative-groups", "3"])
    assert main(argv + ["--negative-groups", "1", "--figure", str(tmp_path / "curve.png")]) == 0
    assert (tmp_path / "curve.png").stat().st_size > 10_000
    (record,) = load_runs(runs, kind="crossval")
    report = record["metrics"]
    assert record["recipe"]["negative_groups"] == report["negative_groups"] == 1
    left_out, negatives = report["landmarks_left_out"], report["negative_landmarks_by_fold"]
    assert all(neg == left_out[(k + 1) % 4] for k, neg in enumerate(negatives))  # trained as background, never scored in that fold
    assert report["photos"]["unknown"] == 32  # each landmark is still scored as unknown once


@pytest.mark.slow
@pytest.mark.parametrize("role", ["references", "background"])
def test_other_landmarks_are_distractors_and_scored_or_trained_as_background(tmp_path, role):
    data = make_synthetic_dataset(tmp_path / "data", n_classes=4, n_train=6, n_test=2, with_bad_files=False)
    others = make_synthetic_dataset(tmp_path / "others", n_classes=2, n_train=4, n_test=1, with_bad_files=False, seed=7)
    runs = tmp_path / "runs"
    assert main(["crossval", "--data", str(data), "--generated-background", "8", "--train-views", "1", "--finetune-epochs", "1",
                 "--leave-landmarks-out", "2", "--generated-eval", "8", "--runs", str(runs), "--other-landmarks", str(others),
                 "--other-role", role, "--outputs", str(tmp_path / "outputs.npz")]) == 0
    (record,) = load_runs(runs, kind="crossval")
    placement = record["metrics"]["placement"]
    assert record["metrics"]["other_photos"] == 8 and record["metrics"]["other_role"] == role
    if role == "references":  # never trained: scored as photos of landmarks the model never saw, and used as distractors
        assert placement["photos"]["others"] == 2 * 8 and "distractors" in placement["scores"]
        assert all("others_placed" in point for point in placement["scores"]["probability"]["curve"])
    else:  # trained as "no landmark": neither scored nor distractors
        assert placement["photos"]["others"] == 0 and "distractors" not in placement["scores"]
