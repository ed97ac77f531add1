"""Trunk/tail split, tail fine-tuning on cached activations, and the whole transfer recipe."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # timm must never reach the network

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from src.cli import main as cli_main
from src.cli import _recipe_name, recipe_from_options, recipe_parser
from src.data.synthetic import make_synthetic_dataset
from src.data.transforms import Preprocessing, eval_transform
from src.evaluation.evaluate import evaluate_export
from src.evaluation.openset import BACKGROUND_CLASS, closed_set_accuracy
from src.export import load_exported
from src.models.backbones import (
    create_backbone,
    get_backbone_spec,
    split_trunk_and_tail,
)
from src.runs import load_runs, portable_path
from src.serving.gallery.references import references_path
from src.training.features import (
    OpenVinoGraph,
    cached_activations,
    extract_features,
    frozen_graph,
    graph_label,
    inference_graph,
    run_in_batches,
)
from src.training.finetune import TailFinetuneConfig, finetune_tail, normalized_tail
from src.training.recipes import (
    RECIPES,
    TransferRecipe,
    evaluation_preprocessing,
    training_preprocessing,
)
from src.training.transfer import train_transfer, zero_head


@pytest.fixture(scope="module")
def lite0():
    return create_backbone("tf_efficientnet_lite0")[0]


def test_trunk_then_tail_is_the_backbone(lite0):
    trunk, tail = split_trunk_and_tail(lite0)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(tail(trunk(x)), lite0(x))
        assert trunk(x).shape == (2, 192, 7, 7)  # what gets cached: the input of the last MBConv block
    # The tail shares its modules with the backbone: fine-tuning it changes the exported model.
    assert tail[0] is lite0.body.blocks[-1] and tail[1] is lite0.body.conv_head


def test_split_with_two_tail_stages(lite0):
    trunk, tail = split_trunk_and_tail(lite0, tail_stages=2)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert trunk(x).shape == (1, 112, 14, 14)
        torch.testing.assert_close(tail(trunk(x)), lite0(x))
    with pytest.raises(ValueError, match="tail_stages"):
        split_trunk_and_tail(lite0, tail_stages=0)


def test_split_refuses_an_unknown_architecture():
    class Odd(nn.Module):
        body = nn.Linear(2, 2)

    with pytest.raises(TypeError, match="trunk and tail"):
        split_trunk_and_tail(Odd())


def test_cached_activations_are_float16_and_reused(lite0, tmp_path):
    trunk, _ = split_trunk_and_tail(lite0)
    images = [torch.randint(0, 256, (3, 240, 260), dtype=torch.uint8) for _ in range(3)]
    prep = Preprocessing(resize=64, crop=64, mean=(0.5,) * 3, std=(0.5,) * 3, interpolation="bicubic")
    calls = []
    hook = trunk.register_forward_hook(lambda module, inputs, output: calls.append(1))
    try:
        first = cached_activations("t", trunk, images, "three", "eval", prep, cache_dir=tmp_path)
        ran = len(calls)  # tracing or converting the trunk calls it too
        again = cached_activations("t", trunk, images, "three", "eval", prep, cache_dir=tmp_path)
    finally:
        hook.remove()
    assert first.dtype == torch.float16 and first.shape == (3, 192, 2, 2)
    assert ran >= 1 and len(calls) == ran and torch.equal(first, again)  # the second time: the cache only
    direct = extract_features(trunk, images, eval_transform(prep), bf16=False)
    relative_error = (first.float() - direct).norm() / direct.norm()
    # bf16 compute with BatchNorm folded (where native) and fp16 storage: close, not equal. On random
    # pixels at 64 px the error is ~8 %; on real photos the validation accuracy of a probe is unchanged.
    assert relative_error < 0.12


def test_inference_graph_matches_the_network_and_takes_a_smaller_last_batch(lite0):
    trunk, _ = split_trunk_and_tail(lite0)
    x = torch.randn(4, 3, 64, 64)
    graph = inference_graph(trunk, x, bf16=False)
    with torch.no_grad():
        assert torch.allclose(graph(x), trunk(x), atol=1e-4, rtol=1e-4)
        assert torch.allclose(graph(x[:1]), trunk(x[:1]), atol=1e-4, rtol=1e-4)


def test_openvino_graph_matches_the_torch_graph_at_any_batch_size(lite0):
    pytest.importorskip("openvino", reason="OpenVINO is not installed: the frozen pass stays on torch")
    trunk, _ = split_trunk_and_tail(lite0)
    x = torch.randn(5, 3, 64, 64)
    graph = OpenVinoGraph(trunk, x[:1], bf16=False)
    with torch.no_grad():
        expected = trunk.eval()(x)
    outputs = graph.run([x[:4], x[4:]])  # in order, whatever request finishes first
    assert [o.shape[0] for o in outputs] == [4, 1]
    assert torch.allclose(torch.cat(outputs), expected, atol=1e-4, rtol=1e-4)
    assert graph_label(graph) == "fp32-openvino" and graph_label(trunk, bf16=False) == "fp32-frozen"


def test_landmark_runtime_torchscript_keeps_the_frozen_pass_on_torch(lite0, monkeypatch):
    trunk, _ = split_trunk_and_tail(lite0)
    monkeypatch.setenv("LANDMARK_RUNTIME", "torchscript")
    assert isinstance(frozen_graph(trunk, torch.zeros(1, 3, 64, 64), bf16=False), torch.jit.ScriptModule)


def _separable_activations(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class k lights up channel k of an [N, 4, 3, 3] map; noise elsewhere."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 4, 3, 3, generator=g) * 0.5
    x[torch.arange(n), y] += 3.0
    return x.half(), y


def test_finetune_tail_learns_and_keeps_the_best_epoch():
    torch.manual_seed(0)
    tail = nn.Sequential(nn.Conv2d(4, 8, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    bn_before = tail[1].running_mean.clone()
    head = nn.Linear(8, 3)
    train_x, train_y = _separable_activations(512, 0)
    valid_x, valid_y = _separable_activations(96, 1)
    accuracy = lambda logits: (logits.argmax(1) == valid_y).float().mean().item()
    config = TailFinetuneConfig(epochs=5, batch_size=32, tail_lr=1e-2, head_lr=3e-2, bf16=False)
    result = finetune_tail(tail, head, train_x, train_y, valid_x, accuracy, config, progress=False)

    assert len(result.history) == 5
    assert result.best_valid_score == max(h["valid_score"] for h in result.history) > 0.9
    with torch.no_grad():  # the modules now hold the best epoch's weights
        assert accuracy(head(run_in_batches(tail, valid_x))) == pytest.approx(result.best_valid_score)
    assert torch.equal(tail[1].running_mean, bn_before)  # BatchNorm statistics stay ImageNet's


def test_finetune_tail_without_validation_keeps_the_last_epoch():
    torch.manual_seed(0)
    tail, head = nn.Sequential(nn.Conv2d(4, 8, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()), nn.Linear(8, 3)
    train_x, train_y = _separable_activations(512, 0)
    config = TailFinetuneConfig(epochs=5, batch_size=32, tail_lr=1e-2, head_lr=3e-2, bf16=False)
    result = finetune_tail(tail, head, train_x, train_y, None, None, config, progress=False)
    assert result.best_epoch == 4 and [h["valid_score"] for h in result.history] == [None] * 5
    valid_x, valid_y = _separable_activations(96, 1)
    with torch.no_grad():
        assert (head(run_in_batches(tail, valid_x)).argmax(1) == valid_y).float().mean() > 0.9


@pytest.mark.parametrize("options", [{"mixup_alpha": 0.2}, {"ema_decay": 0.9}])
def test_finetune_tail_options_still_learn(options):
    torch.manual_seed(0)
    tail, head = nn.Sequential(nn.Conv2d(4, 8, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()), nn.Linear(8, 3)
    train_x, train_y = _separable_activations(512, 0)
    valid_x, valid_y = _separable_activations(96, 1)
    accuracy = lambda logits: (logits.argmax(1) == valid_y).float().mean().item()
    config = TailFinetuneConfig(epochs=4, batch_size=32, tail_lr=1e-2, head_lr=3e-2, bf16=False, **options)
    result = finetune_tail(tail, head, train_x, train_y, valid_x, accuracy, config, progress=False)
    with torch.no_grad():  # the kept (for EMA: averaged) weights are in the modules
        assert accuracy(head(run_in_batches(tail, valid_x))) == pytest.approx(result.best_valid_score)
    assert result.best_valid_score > 0.9


def test_cosine_classifier_folds_into_a_plain_head_on_unit_features():
    torch.manual_seed(0)
    config = TailFinetuneConfig(epochs=4, batch_size=32, tail_lr=1e-2, head_lr=3e-2, bf16=False, cosine_scale=16.0)
    plain_tail = nn.Sequential(nn.Conv2d(4, 8, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    head = zero_head(8, 3)
    with pytest.raises(ValueError, match="normalized_tail"):
        finetune_tail(plain_tail, head, *_separable_activations(64, 0), None, None, config, progress=False)
    tail = normalized_tail(plain_tail, config)
    train_x, train_y = _separable_activations(512, 0)
    valid_x, valid_y = _separable_activations(96, 1)
    accuracy = lambda logits: (logits.argmax(1) == valid_y).float().mean().item()
    result = finetune_tail(tail, head, train_x, train_y, valid_x, accuracy, config, progress=False)
    with torch.no_grad():
        features = run_in_batches(tail, valid_x)
        assert torch.allclose(features.norm(dim=1), torch.ones(len(features)), atol=1e-5)
        assert torch.allclose(head.weight.norm(dim=1), torch.full((3,), 16.0)) and not head.bias.any()
        assert accuracy(head(features)) == pytest.approx(result.best_valid_score) and result.best_valid_score > 0.9
    assert normalized_tail(plain_tail, TailFinetuneConfig()) is plain_tail


def test_cosface_margin_makes_the_true_class_win_by_it():
    torch.manual_seed(0)
    train_x, train_y = _separable_activations(512, 0)

    def true_class_gap(margin: float) -> float:
        config = TailFinetuneConfig(epochs=4, batch_size=32, tail_lr=1e-2, head_lr=3e-2, bf16=False, dropout=0.0, cosine_scale=16.0, cosine_margin=margin)
        tail = normalized_tail(nn.Sequential(nn.Conv2d(4, 8, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()), config)
        head = zero_head(8, 3)
        finetune_tail(tail, head, train_x, train_y, None, None, config, progress=False)
        with torch.no_grad():
            cosines = head(run_in_batches(tail, train_x)) / 16.0  # folded: logits are scale x cosine
        true = cosines.gather(1, train_y[:, None]).squeeze(1)
        rival = cosines.scatter(1, train_y[:, None], -2.0).max(dim=1).values
        return float((true - rival).median())

    assert true_class_gap(0.3) > true_class_gap(0.0)  # the margin pushes the classes apart on the unit sphere
    with pytest.raises(ValueError, match="cosine_scale"):
        finetune_tail(nn.Flatten(), zero_head(4, 3), train_x, train_y, None, None, TailFinetuneConfig(cosine_margin=0.2), progress=False)


def test_train_refuses_the_cosine_classifier_it_cannot_export(tmp_path, tiny_data):
    recipe = TransferRecipe(data_dir=str(tiny_data), finetune=TailFinetuneConfig(cosine_scale=16.0), export_path=str(tmp_path / "m.pt"))
    with pytest.raises(ValueError, match="cosine"):
        train_transfer(recipe)


def test_finetune_tail_rejects_bad_input():
    tail, head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), nn.Linear(4, 3)
    x, y = _separable_activations(10, 0)
    with pytest.raises(ValueError, match="labels"):
        finetune_tail(tail, head, x, y[:5], x, lambda logits: 0.0, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        finetune_tail(tail, head, x, y, x, lambda logits: 0.0, TailFinetuneConfig(epochs=0), progress=False)


def test_closed_set_accuracy_ignores_background():
    logits = torch.tensor([[0.1, 0.2, 5.0], [2.0, 0.1, 0.3], [0.0, 0.0, 9.0]])
    y = torch.tensor([1, 0, 2])  # class 2 is the background
    # row 0: background wins overall, but among landmarks class 1 does -> correct; row 2 is skipped
    assert closed_set_accuracy(logits, y, [2]) == 1.0
    # logits all below -1: the best landmark must still win over the masked background
    assert closed_set_accuracy(logits - 10, y, [2]) == 1.0


@pytest.fixture(scope="module")
def recipe_data(tmp_path_factory) -> tuple[Path, Path]:
    """A generated landmark set and a Caltech-style no-landmark folder (4 object categories)."""
    root = tmp_path_factory.mktemp("transfer")
    data = make_synthetic_dataset(root / "data", n_classes=3, n_train=12, n_test=4, with_bad_files=False)
    no_landmark = root / "no_landmark"
    no_landmark.mkdir()
    photos = sorted((data / "train").rglob("*.jpg"))
    for i, category in enumerate(["accordion", "bonsai", "camera", "dolphin"]):
        for j in range(3):
            shutil.copy(photos[(3 * i + j) % len(photos)], no_landmark / f"{category}_image_{j:04d}.jpg")
    return data, no_landmark


def _run_cli(recipe_data, folder: Path, *options: str) -> tuple[dict, Path]:
    data, no_landmark = recipe_data
    runs, export_path = folder / "runs", folder / "model.pt"
    assert cli_main([
        "train", "--recipe", "accurate", "--data", str(data), "--no-landmark", str(no_landmark), "--train-views", "1", "--finetune-epochs", "2",
        "--export", str(export_path), "--runs", str(runs), "--generated-eval", "8", "--generated-background", "8", *options,
    ]) == 0
    (record,) = load_runs(runs, kind="train")
    assert record["recipe"]["export_path"] == portable_path(export_path) and record["data"]["no_landmark"] == portable_path(no_landmark)
    # the training report, then what the exported file scores on the test split (training never reads it)
    return {**record["metrics"]["training"], **record["metrics"]["evaluation"]}, export_path


@pytest.fixture(scope="module")
def recipe_run(recipe_data, tmp_path_factory):
    """The whole recipe, choosing on a validation split, via the CLI."""
    return _run_cli(recipe_data, tmp_path_factory.mktemp("chosen"), "--no-refit")


@pytest.fixture(scope="module")
def refit_run(recipe_data, tmp_path_factory):
    """The whole recipe refit on every training photo (the default), via the CLI."""
    return _run_cli(recipe_data, tmp_path_factory.mktemp("refit"), "--threshold", "0.3", "--temperature", "1")


@pytest.mark.slow
def test_refit_trains_on_every_photo_with_the_given_epochs_and_threshold(refit_run):
    report, export_path = refit_run
    assert "refit" in report["method"] and report["train_photos"] == 36  # 3 classes x 12: no validation split
    assert [epoch["valid_score"] for epoch in report["finetune"]["history"]] == [None, None]
    assert report["threshold"] == 0.3 and "valid_accuracy_probe" not in report
    assert report["background_photos"] == {"train": 4, "valid": 2, "held_out": 6, "generated": 8}  # train + valid both train
    assert 0 <= report["test_accuracy"] <= 1 and report["test_images"] == 12
    _, metadata = load_exported(export_path)
    assert metadata["threshold"] == 0.3 and metadata["recipe"]["refit"] is True
    with np.load(references_path(export_path)) as references:  # taught landmarks compete with these
        assert sorted(set(references["labels"])) == sorted(metadata["class_names"])
    # the default eval crop: trained on Lite0's 224 centre crops of the 256-pixel short side, the export
    # answers on the whole 256 x 256
    assert metadata["recipe"]["eval_crop"] == "full"
    assert metadata["preprocessing"]["resize"] == metadata["preprocessing"]["crop"] == 256
    assert (report["train_crop"], report["eval_input"]) == (224, 256)


@pytest.mark.slow
def test_refit_folds_the_recipes_temperature_into_the_head(refit_run, recipe_data, tmp_path):
    report, export_path = refit_run  # temperature 1: the raw fine-tuned logits
    sharper_report, sharper_path = _run_cli(recipe_data, tmp_path, "--threshold", "0.3", "--temperature", "0.5")
    assert (report["temperature"], sharper_report["temperature"]) == (1.0, 0.5)
    assert load_exported(sharper_path)[1]["recipe"]["temperature"] == 0.5
    photo = torch.randint(0, 256, (3, 300, 200), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    raw, sharper = load_exported(export_path)[0](photo), load_exported(sharper_path)[0](photo)
    # the same training (seeded), logits divided by 0.5: softmax(log p / 0.5)
    assert torch.allclose(sharper, torch.softmax(torch.log(raw) / 0.5, dim=1), atol=1e-4)
    assert sharper_report["test_accuracy"] == report["test_accuracy"]  # the ranking does not change


@pytest.mark.slow
def test_centre_eval_crop_exports_the_backbones_own_crop(recipe_data, tmp_path):
    report, export_path = _run_cli(recipe_data, tmp_path, "--threshold", "0.3", "--eval-crop", "centre")
    module, metadata = load_exported(export_path)
    assert (metadata["preprocessing"]["resize"], metadata["preprocessing"]["crop"]) == (256, 224)
    assert metadata["recipe"]["eval_crop"] == "centre"
    assert 0 <= report["test_accuracy"] <= 1 and report["test_images"] == 12
    assert module(torch.randint(0, 256, (3, 300, 200), dtype=torch.uint8)).shape == (1, 4)


def test_evaluation_preprocessing_is_the_centre_crop_or_the_whole_short_side():
    own = get_backbone_spec("tf_efficientnet_lite0").preprocessing
    assert evaluation_preprocessing(TransferRecipe(eval_crop="centre")) == own
    full = evaluation_preprocessing(TransferRecipe(eval_crop="full"))
    assert (full.resize, full.crop) == (own.resize, own.resize) and (full.mean, full.interpolation) == (own.mean, own.interpolation)
    with pytest.raises(ValueError, match="eval_crop"):
        evaluation_preprocessing(TransferRecipe(eval_crop="corner"))


def test_training_preprocessing_scales_the_backbones_sizes_with_train_crop():
    own = get_backbone_spec("tf_efficientnet_lite0").preprocessing
    assert training_preprocessing(TransferRecipe()) == own == training_preprocessing(TransferRecipe(train_crop=own.crop))
    small = training_preprocessing(TransferRecipe(train_crop=192))
    assert (small.resize, small.crop) == (219, 192) and (small.mean, small.interpolation) == (own.mean, own.interpolation)
    # evaluation follows at the same scale: the short side whole, at 219 rounded to the stride (32), or
    # the 192 centre crop of the 219-pixel short side
    full = evaluation_preprocessing(TransferRecipe(train_crop=192))
    assert (full.resize, full.crop) == (224, 224)
    assert evaluation_preprocessing(TransferRecipe(train_crop=192, eval_crop="centre")) == small
    with pytest.raises(ValueError, match="train_crop"):
        training_preprocessing(TransferRecipe(train_crop=16))


@pytest.mark.slow
def test_smaller_training_views_export_a_model_that_answers_at_their_scale(recipe_data, tmp_path):
    report, export_path = _run_cli(recipe_data, tmp_path, "--threshold", "0.3", "--train-crop", "160")
    module, metadata = load_exported(export_path)
    assert (report["train_crop"], report["eval_input"]) == (160, 192)  # 256 * 160 / 224 = 182.9 -> 6 x 32
    assert metadata["preprocessing"]["resize"] == metadata["preprocessing"]["crop"] == 192
    assert metadata["recipe"]["train_crop"] == 160
    assert 0 <= report["test_accuracy"] <= 1 and report["test_images"] == 12
    assert module(torch.randint(0, 256, (3, 300, 200), dtype=torch.uint8)).shape == (1, 4)


def test_named_recipes_and_the_options_that_change_them():
    def recipe(*argv):
        name = _recipe_name(list(argv), list(RECIPES))  # an unknown name exits here, as on the command line
        return recipe_from_options(recipe_parser("train", name, list(RECIPES), "").parse_args(list(argv)))

    assert recipe() == RECIPES["default"] and recipe("--recipe", "accurate") == replace(TransferRecipe(), export_path=RECIPES["accurate"].export_path)
    default = recipe("--recipe", "default", "--data", "photos")
    assert default == replace(RECIPES["default"], data_dir="photos")
    assert (default.train_crop, default.train_views) == (192, 3) and default.finetune.epochs < TailFinetuneConfig.epochs
    changed = recipe("--recipe", "default", "--train-views", "1", "--finetune-epochs", "2", "--finetune-mixup-alpha", "0.2", "--eval-crop", "centre")
    assert (changed.train_views, changed.finetune.epochs, changed.finetune.mixup_alpha, changed.eval_crop) == (1, 2, 0.2, "centre")
    assert (changed.train_crop, changed.threshold, changed.finetune.weight_decay) == (192, default.threshold, default.finetune.weight_decay)  # the rest: the recipe's
    assert recipe("--data", "a", "b", "--no-refit", "--c-grid", "0.5", "2").data_dir == ("a", "b")
    assert recipe("--no-refit", "--c-grid", "0.5", "2").c_grid == (0.5, 2.0)
    assert recipe("--recipe", "scratch", "--widths", "8", "16").widths == (8, 16)
    with pytest.raises(SystemExit):
        recipe("--recipe", "slowest")


def test_refit_needs_finetuning(tmp_path, tiny_data):
    with pytest.raises(ValueError, match="refit"):
        train_transfer(TransferRecipe(data_dir=str(tiny_data), finetune=None, export_path=str(tmp_path / "m.pt")))


@pytest.mark.slow
def test_recipe_reports_probe_and_finetune(recipe_run):
    report, _ = recipe_run
    assert report["method"] in {"linear probe", "fine-tuned tail"}
    assert len(report["finetune"]["history"]) == 2
    chosen = report["finetune"]["valid_accuracy"] if report["method"] == "fine-tuned tail" else report["valid_accuracy_probe"]
    assert chosen == max(report["finetune"]["valid_accuracy"], report["valid_accuracy_probe"])
    assert report["test_images"] == 12 and 0 <= report["test_accuracy"] <= 1
    assert 0 <= report["test_landmarks_rejected"] <= 1 and 0 <= report["generated_named"] <= 1 and report["generated_images"] == 8
    assert report["background_photos"] == {"train": 4, "valid": 2, "held_out": 6, "generated": 8}  # 2 of 4 categories held out
    assert 0 <= report["held_out_no_landmark_named"] <= 1
    assert report["feature_seconds"] <= report["train_seconds_total"] <= report["wall_seconds_total"]
    assert 0.05 <= report["temperature"] <= 20  # fitted on the validation photos


@pytest.mark.slow
def test_recipe_export_carries_its_decision_rule(recipe_run):
    report, export_path = recipe_run
    module, metadata = load_exported(export_path)
    assert metadata["class_names"][-1] == BACKGROUND_CLASS and len(metadata["class_names"]) == 4
    assert metadata["threshold"] == report["threshold"] and metadata["background_classes"] == [BACKGROUND_CLASS]
    assert metadata["recipe"]["finetune"]["epochs"] == 2
    probs = module(torch.randint(0, 256, (3, 300, 200), dtype=torch.uint8))
    assert probs.shape == (1, 4) and torch.isclose(probs.sum(), torch.tensor(1.0))


@pytest.mark.slow
def test_probe_only_recipe(tmp_path, tiny_data):
    recipe = TransferRecipe(data_dir=str(tiny_data), train_views=0, c_grid=(1.0,), finetune=None, refit=False, export_path=str(tmp_path / "m.pt"))
    report = train_transfer(recipe)
    assert report["method"] == "linear probe" and report["finetune"] is None
    assert "test_accuracy" not in report  # training never reads the test split
    assert 0 <= evaluate_export(report["export_path"], [tiny_data / "test"])["test_accuracy"] <= 1


def test_plot_finetune_history_marks_the_kept_epoch():
    from src.evaluation.plots import plot_finetune_history

    history = [{"epoch": 0, "valid_score": 0.90}, {"epoch": 1, "valid_score": 0.97}, {"epoch": 2, "valid_score": 0.95}]
    ax = plot_finetune_history(history, probe_valid_accuracy=0.955).axes[0]
    assert list(ax.lines[0].get_ydata()) == [0.90, 0.97, 0.95]
    labels = ax.get_legend_handles_labels()[1]
    assert "kept: epoch 2 (97.0%)" in labels and "linear probe (95.5%)" in labels


def test_run_in_batches_fast_is_close_to_float32(lite0):
    _, tail = split_trunk_and_tail(lite0)
    activations = torch.randn(5, 192, 2, 2, generator=torch.Generator().manual_seed(0)).half()
    exact = run_in_batches(tail, activations, batch_size=2)
    fast = run_in_batches(tail, activations, batch_size=2, fast=True)
    assert exact.dtype == fast.dtype == torch.float32 and fast.shape == exact.shape == (5, lite0.feature_dim)
    # bfloat16 where native (else float32 exactly): ~10 % relative on random activations, 1 % on real
    # Lite2 activations of indian_monuments photos
    assert (fast - exact).norm() / exact.norm() < 0.2


def test_class_weights_favour_small_classes_and_keep_the_average_row_at_one():
    from src.training.finetune import class_weights

    labels = torch.tensor([0] * 90 + [1] * 10)
    assert class_weights(labels, 0.0, 3) is None
    weights = class_weights(labels, 0.5, 3)
    assert weights[2] == 0 and weights[1] / weights[0] == pytest.approx(3.0)  # sqrt(90 / 10)
    assert (weights[labels]).mean().item() == pytest.approx(1.0)
