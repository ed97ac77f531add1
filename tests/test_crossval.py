"""k-fold cross-validation of the transfer recipe (src.training.crossval)."""


import pytest
import torch

from src.cli import main
from src.runs import load_runs, portable_path
from src.training.crossval import fold_plans


def test_fold_plans_validate_every_photo_once_on_its_centre_crop():
    labels = [0] * 10 + [1] * 10 + [2] * 5
    n, views, n_background = len(labels), 3, 4
    plans = fold_plans(labels, views, n_background, folds=5, seed=0)
    validated = torch.cat([plan.valid_rows for plan in plans])
    assert sorted(validated.tolist()) == list(range(n))  # every photo once, centre crop (block 0)
    background = set(range(views * n, views * n + n_background))
    for plan in plans:
        train = set(plan.train_rows.tolist())
        valid_photos = set(plan.valid_rows.tolist())
        assert background <= train  # background photos train in every fold
        photos_in_train = {row % n for row in train - background}
        assert not photos_in_train & valid_photos  # no view of a validated photo is trained on
        assert len(train - background) == views * (n - len(valid_photos))
        assert {labels[i] for i in valid_photos} == {0, 1, 2}  # stratified


def test_fold_plans_with_a_train_fraction_train_on_part_of_the_photos():
    labels = [0] * 20 + [1] * 20
    n, views = len(labels), 2
    full = fold_plans(labels, views, 0, folds=4, seed=0)
    part = fold_plans(labels, views, 0, folds=4, seed=0, train_fraction=0.5)
    for whole, half in zip(full, part):
        assert torch.equal(whole.valid_rows, half.valid_rows)  # the same photos validate
        photos = {row % n for row in half.train_rows.tolist()}
        assert photos < {row % n for row in whole.train_rows.tolist()} and len(photos) == 15
        assert len(half.train_rows) == views * len(photos)  # every view of the chosen photos
        assert sorted(labels[i] for i in photos).count(0) in (7, 8)  # stratified


@pytest.mark.slow
def test_crossval_cli_reports_accuracy_by_epoch(tmp_path, tiny_data):
    runs = tmp_path / "runs"
    assert main(["crossval", "--recipe", "accurate", "--data", str(tiny_data), "--train-views", "1", "--finetune-epochs", "2", "--folds", "3", "--eval-inputs", "256", "192", "--runs", str(runs)]) == 0
    (record,) = load_runs(runs, kind="crossval")
    report = record["metrics"]
    assert record["recipe"]["folds"] == 3 and record["recipe"]["train_views"] == 1 and record["data"]["roots"] == [portable_path(tiny_data)]
    assert report["folds"] == 3 and report["photos"] == 50  # 3 x 16 + a grey and an RGBA photo; test/ unused
    assert report["eval_crop"] == "full" and (report["train_crop"], report["eval_input"]) == (224, 256)
    assert len(report["accuracy_by_epoch"]) == 2 and len(report["fold_accuracy_final_epoch"]) == 3
    assert report["accuracy_best_epoch"] == max(report["accuracy_by_epoch"])
    assert report["accuracy_final_epoch"] == report["accuracy_by_epoch"][-1]
    # the same fold models on other whole-frame inputs; 256 is the recipe's own, scored the same way
    other = report["accuracy_final_epoch_by_eval_input"]
    assert set(other) == {"256", "192"} and 0 <= other["192"] <= 1
    assert other["256"] == pytest.approx(report["accuracy_final_epoch"])
    assert all(0 <= a <= 1 for a in report["accuracy_by_epoch"])
    assert 0.05 <= report["temperature_out_of_fold"] <= 20  # for a refit, as the threshold below
    assert set(report["ece_out_of_fold"]) == {"raw", "calibrated"}
    threshold = report["threshold_out_of_fold"]  # for a refit: out-of-fold scores of every photo, calibrated
    assert 0.05 <= threshold["threshold"] <= 0.95 and threshold["named"] == 0.0  # no background photos here
    assert threshold["rejected"] <= 0.02 or threshold["threshold"] == 0.05  # 0.05: the fallback when none qualifies


@pytest.mark.slow
def test_crossval_validates_on_the_evaluation_crop(tmp_path, tiny_data):
    runs = tmp_path / "runs"  # "full" is the default (the test above); here the other choice
    main(["crossval", "--recipe", "accurate", "--data", str(tiny_data), "--train-views", "1", "--finetune-epochs", "1", "--folds", "2", "--eval-crop", "centre", "--runs", str(runs)])
    (record,) = load_runs(runs, kind="crossval")
    report = record["metrics"]
    assert report["eval_crop"] == "centre" and report["photos"] == 50
    assert 0 <= report["accuracy_final_epoch"] <= 1


def test_load_reports_and_plot_them(tmp_path):
    from src.runs import save_run
    from src.training.crossval import load_reports, plot_crossval

    for name, scores in (("lite0", [0.90, 0.95, 0.94]), ("lite2", [0.91, 0.93, 0.96])):
        recipe = {"backbone": f"tf_efficientnet_{name}", "train_views": 3, "folds": 5}
        save_run("crossval", name, recipe, {"roots": ["photos"]}, {"accuracy_by_epoch": scores}, folder=tmp_path)
    save_run("train", "default", {}, {}, {}, folder=tmp_path)  # not a cross-validation run
    reports = load_reports(tmp_path)
    assert [r["backbone"] for r in reports] == ["tf_efficientnet_lite0", "tf_efficientnet_lite2"]
    ax = plot_crossval(reports).axes[0]
    assert [list(line.get_ydata()) for line in ax.lines] == [[0.90, 0.95, 0.94], [0.91, 0.93, 0.96]]
    assert ax.get_legend_handles_labels()[1] == ["lite0, 3 views: 95.0%", "lite2, 3 views: 96.0%"]
    assert ax.get_title() == "5-fold cross-validation on the training photos"


def test_crossval_label_names_what_a_setting_changed():
    from src.training.crossval import crossval_label

    base = {"backbone": "tf_efficientnet_lite0", "train_views": 4, "finetune": {"epochs": 6, "mixup_alpha": 0.0, "ema_decay": 0.0}}
    assert crossval_label(base) == "lite0, 4 views"
    changed = {**base, "eval_crop": "full", "train_fraction": 0.8, "finetune": {"epochs": 4, "mixup_alpha": 0.2, "ema_decay": 0.998}}
    assert crossval_label(changed) == "lite0, 4 views, 4 epochs, full-frame eval, mixup 0.2, EMA 0.998, 80% of photos"
    assert crossval_label({**base, "train_crop": 224}) == "lite0, 4 views"  # the backbone's own crop
    assert crossval_label({**base, "train_crop": 192}) == "lite0, 4 views, 192-px views"


def test_accuracy_by_root_scores_each_roots_landmarks(tmp_path):
    from src.training.crossval import accuracy_by_root

    for root, name in [("a", "00.Alpha"), ("a", "01.Beta"), ("b", "00.Gamma")]:
        (tmp_path / root / "train" / name).mkdir(parents=True)
    classes = ["00.Alpha", "01.Beta", "00.Gamma", "no_landmark"]
    labels = torch.tensor([0, 1, 2, 2])
    logits = torch.tensor([[5.0, 0, 0, 0], [5.0, 0, 0, 9], [0, 0, 5.0, 0], [0, 5.0, 0, 0]])  # the background is not a guess
    by_root = accuracy_by_root(logits, labels, classes, [3], [tmp_path / "a", tmp_path / "b"])
    assert by_root == {str(tmp_path / "a"): 0.5, str(tmp_path / "b"): 0.5}
