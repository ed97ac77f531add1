"""The training layer, after the Udacity starter's checks (model, loss, optimizer, train/valid/test,
optimize, predictor), on the generated data set: every test runs in seconds on a CPU."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from src.data.folders import DecodedImageDataset, stratified_subset
from src.data.loaders import DataConfig, build_datasets, get_data_loaders
from src.data.transforms import Preprocessing, eval_transform
from src.export import (
    ExportMismatchError,
    Predictor,
    export,
    load_exported,
    predictor_test,
)
from src.models.scratch import MyModel
from src.training import optimization
from src.training.loop import (
    History,
    one_epoch_test,
    optimize,
    train_one_epoch,
    valid_one_epoch,
)
from src.training.optimization import (
    TimeBudgetCosine,
    get_loss,
    get_optimizer,
    get_scheduler,
)

SMALL = (16, 32, 32, 64)
PREP = Preprocessing(resize=73, crop=64)


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: one thread is as fast, and far faster when the CPU is shared (with two
    threads, a busy core stalls every parallel region: measured 0.2 s vs 2-40 s per epoch here)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def small_model(num_classes: int = 3, dropout: float = 0.0, seed: int = 0) -> MyModel:
    torch.manual_seed(seed)
    return MyModel(num_classes=num_classes, dropout=dropout, widths=SMALL)


@pytest.fixture
def loaders(tiny_data):
    # Function-scoped on purpose: the decode cache must go to the per-test LANDMARK_CACHE; it is
    # decoded once and then reused, so this costs milliseconds after the first test.
    return get_data_loaders(batch_size=4, num_workers=0, data_dir=tiny_data, train_crop=64, preprocessing=PREP)


@pytest.fixture
def class_names(loaders):
    return loaders["train"].dataset.classes


def _finite(value: float) -> bool:
    return isinstance(value, float) and math.isfinite(value)


# --- model -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_model_output_shape(mode):
    torch.manual_seed(0)
    model = MyModel(num_classes=23, dropout=0.3)
    model.train(mode == "train")
    out = model(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 23)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("size", [(32, 32), (64, 64), (96, 128), (160, 100)])
def test_model_works_at_other_input_sizes(size):
    model = small_model(num_classes=5).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 5)


def test_model_dropout_is_configurable():
    dropouts = [m for m in MyModel(num_classes=4, dropout=0.42, widths=SMALL).modules() if isinstance(m, nn.Dropout)]
    assert dropouts and all(m.p == pytest.approx(0.42) for m in dropouts)


# --- loss and optimizer ------------------------------------------------------------------------


def test_get_loss():
    loss = get_loss()
    assert isinstance(loss, nn.CrossEntropyLoss)
    assert loss.label_smoothing == 0.0
    smoothed = get_loss(label_smoothing=0.1)
    assert isinstance(smoothed, nn.CrossEntropyLoss) and smoothed.label_smoothing == pytest.approx(0.1)
    # Smoothing really changes the value: a confident correct prediction is no longer ~free.
    logits, target = torch.tensor([[20.0, 0.0, 0.0]]), torch.tensor([0])
    assert loss(logits, target).item() < 1e-6 < smoothed(logits, target).item()


def _param_ids(optimizer: torch.optim.Optimizer) -> set[int]:
    return {id(p) for group in optimizer.param_groups for p in group["params"]}


def test_get_optimizer_default_is_sgd_bound_to_the_model():
    model = small_model()
    optimizer = get_optimizer(model)
    assert isinstance(optimizer, torch.optim.SGD)
    assert _param_ids(optimizer) == {id(p) for p in model.parameters()}  # the same objects, not copies


def test_get_optimizer_skips_frozen_parameters():
    model = small_model()
    for p in model.stem.parameters():
        p.requires_grad = False
    ids = _param_ids(get_optimizer(model, "adamw"))
    assert ids == {id(p) for p in model.parameters() if p.requires_grad}
    assert not ids & {id(p) for p in model.stem.parameters()}


@pytest.mark.parametrize("name,cls", [("adam", torch.optim.Adam), ("ADAM", torch.optim.Adam), ("Adam", torch.optim.Adam),
                                      ("adamw", torch.optim.AdamW), ("AdamW", torch.optim.AdamW), ("sgd", torch.optim.SGD)])
def test_get_optimizer_names(name, cls):
    assert type(get_optimizer(small_model(), name)) is cls


def test_get_optimizer_honours_hyperparameters():
    sgd = get_optimizer(small_model(), "SGD", learning_rate=0.123, momentum=0.456, weight_decay=0.789)
    group = sgd.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == pytest.approx((0.123, 0.456, 0.789))
    for name in ("adam", "adamw"):
        adam = get_optimizer(small_model(), name, learning_rate=0.321, momentum=0.9, weight_decay=0.05)
        group = adam.param_groups[0]
        assert (group["lr"], group["weight_decay"]) == pytest.approx((0.321, 0.05))
        assert "momentum" not in group and "momentum" not in adam.defaults  # Adam never receives momentum


def test_get_optimizer_unknown_name():
    with pytest.raises(ValueError, match=r"rmsprop.*sgd.*adam.*adamw"):
        get_optimizer(small_model(), "rmsprop")


# --- schedule ----------------------------------------------------------------------------------


def _lrs(epochs: int, steps: int, warmup_epochs: float) -> tuple[list[float], float]:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = get_scheduler(optimizer, epochs, steps, warmup_epochs=warmup_epochs)
    used = []
    for _ in range(epochs * steps):  # what each batch trains with
        used.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return used, optimizer.param_groups[0]["lr"]


def test_scheduler_warms_up_then_decays_to_zero():
    used, final = _lrs(epochs=4, steps=10, warmup_epochs=1)
    peak = max(used)
    assert peak == pytest.approx(0.1)
    assert used[0] < 0.5 * peak  # warm-up starts low
    assert used[:10] == sorted(used[:10])  # ... and rises during the first epoch
    top = used.index(peak)
    assert 8 <= top <= 11
    assert all(a >= b - 1e-12 for a, b in zip(used[top:], used[top + 1:]))  # then only falls
    assert used[-1] < 0.01 * peak and final < 1e-6  # ~0 by the last step


def test_scheduler_without_warmup_and_degenerate_sizes():
    used, final = _lrs(epochs=2, steps=5, warmup_epochs=0)
    assert used[0] == pytest.approx(0.1) and final < 1e-6
    used, final = _lrs(epochs=1, steps=1, warmup_epochs=1)  # a single step must not crash
    assert len(used) == 1 and math.isfinite(final)


def test_time_budget_schedule_follows_the_clock_and_resumes(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(optimization.time, "perf_counter", lambda: now[0])
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = TimeBudgetCosine(optimizer, budget_seconds=100, warmup_fraction=0.1)
    lr = lambda: optimizer.param_groups[0]["lr"]  # noqa: E731
    assert lr() == pytest.approx(0.01)  # starts low
    lrs = {}
    for t in range(0, 101):
        now[0] = 5000.0 + t  # the clock's origin does not matter, only the time since the first step
        scheduler.step()
        lrs[t] = lr()
        if t == 50:
            state = scheduler.state_dict()
    assert lrs[0] == pytest.approx(0.01) and lrs[10] == pytest.approx(0.1)
    assert all(lrs[t] <= lrs[t + 1] for t in range(10)) and all(lrs[t] >= lrs[t + 1] for t in range(10, 100))
    assert lrs[100] < 1e-9 and scheduler.finished
    # A resumed run (new process, new clock) continues from the elapsed time in the state dict.
    optimizer2 = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    resumed = TimeBudgetCosine(optimizer2, budget_seconds=100, warmup_fraction=0.1)
    resumed.load_state_dict(state)
    now[0] = 123.0
    resumed.step()
    assert optimizer2.param_groups[0]["lr"] == pytest.approx(lrs[50]) and not resumed.finished


# --- one epoch of train / valid / test ---------------------------------------------------------


@pytest.fixture
def shared_model(class_names):
    return small_model(num_classes=len(class_names))


def test_train_one_epoch(loaders, shared_model):
    optimizer = get_optimizer(shared_model, "adam", 1e-3)
    for _ in range(2):
        assert _finite(train_one_epoch(loaders["train"], shared_model, optimizer, get_loss()))


def test_valid_one_epoch(loaders, shared_model):
    for _ in range(2):
        assert _finite(valid_one_epoch(loaders["valid"], shared_model, get_loss()))
    assert not shared_model.training


def test_one_epoch_test(loaders, shared_model, capsys):
    for _ in range(2):
        result = one_epoch_test(loaders["test"], shared_model, get_loss())
        assert isinstance(result, tuple) and len(result) == 2
        loss, accuracy = result
        assert _finite(loss) and 0.0 <= accuracy <= 1.0
    assert "Test accuracy" in capsys.readouterr().out


def test_train_valid_test_in_sequence_on_one_model(loaders, shared_model):
    optimizer = get_optimizer(shared_model, "sgd", 0.01, momentum=0.9)
    for _ in range(2):
        assert _finite(train_one_epoch(loaders["train"], shared_model, optimizer, get_loss()))
        assert _finite(valid_one_epoch(loaders["valid"], shared_model, get_loss()))
        assert all(_finite(float(v)) for v in one_epoch_test(loaders["test"], shared_model, get_loss()))


# --- optimize ----------------------------------------------------------------------------------


def test_optimize_two_epochs_writes_a_safe_checkpoint(loaders, class_names, tmp_path):
    model = small_model(num_classes=len(class_names))
    optimizer = get_optimizer(model, "adamw", 3e-3)
    save = tmp_path / "best.pt"
    history = optimize(loaders, model, optimizer, get_loss(), 2, save, config={"class_names": class_names})
    assert isinstance(history, History)
    for values in (history.train_loss, history.valid_loss, history.train_accuracy, history.valid_accuracy, history.learning_rate):
        assert len(values) == 2 and all(math.isfinite(v) for v in values)
    assert 0 <= history.best_epoch < 2
    assert history.best_valid_loss == min(history.valid_loss)
    checkpoint = torch.load(save, map_location="cpu", weights_only=True)  # no pickled code inside
    assert checkpoint["config"]["class_names"] == class_names
    fresh = small_model(num_classes=len(class_names), seed=1)
    fresh.load_state_dict(checkpoint["state_dict"])
    assert save.with_suffix(".resume.pt").exists()
    torch.load(save.with_suffix(".resume.pt"), map_location="cpu", weights_only=True)


def _train_job(loaders, n_classes: int, epochs_planned: int):
    model = small_model(num_classes=n_classes)
    optimizer = get_optimizer(model, "adamw", 3e-3)
    scheduler = get_scheduler(optimizer, epochs_planned, len(loaders["train"]))
    return model, optimizer, scheduler


def test_optimize_resumes_where_it_stopped(loaders, class_names, tmp_path, capsys):
    save = tmp_path / "best.pt"
    # A 2-epoch job killed after its first epoch ...
    model, optimizer, scheduler = _train_job(loaders, len(class_names), 2)
    first = optimize(loaders, model, optimizer, get_loss(), 1, save, scheduler=scheduler)
    assert len(first.train_loss) == 1
    capsys.readouterr()
    # ... then restarted from scratch objects with resume=True: only the second epoch runs.
    model, optimizer, scheduler = _train_job(loaders, len(class_names), 2)
    resumed = optimize(loaders, model, optimizer, get_loss(), 2, save, scheduler=scheduler, resume=True)
    out = capsys.readouterr().out
    assert "resuming after epoch 1" in out
    assert "epoch   2" in out and "epoch   1 " not in out
    assert len(resumed.train_loss) == 2
    assert resumed.train_loss[0] == first.train_loss[0]  # the first epoch came from the resume file
    # The schedule continued too: restarted at step 0 the lr would be at its peak after one epoch.
    assert resumed.learning_rate[-1] < 1e-3 * 3e-3
    # Resuming a finished job trains nothing more.
    model, optimizer, scheduler = _train_job(loaders, len(class_names), 2)
    again = optimize(loaders, model, optimizer, get_loss(), 2, save, scheduler=scheduler, resume=True)
    assert again.train_loss == resumed.train_loss


def test_optimize_without_resume_starts_over(loaders, class_names, tmp_path):
    save = tmp_path / "best.pt"
    model, optimizer, _ = _train_job(loaders, len(class_names), 1)
    optimize(loaders, model, optimizer, get_loss(), 1, save)
    model, optimizer, _ = _train_job(loaders, len(class_names), 1)
    assert len(optimize(loaders, model, optimizer, get_loss(), 1, save, resume=False).train_loss) == 1


def test_optimize_early_stopping(loaders, class_names, tmp_path, capsys):
    # A model without batch norm and a zero learning rate: the validation loss never improves after
    # the first epoch, so with early_stopping=2 the run must end after epoch 3 of 10.
    model = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, len(class_names)))
    optimizer = get_optimizer(model, "sgd", learning_rate=0.0)
    history = optimize(loaders, model, optimizer, get_loss(), 10, tmp_path / "best.pt", early_stopping=2)
    assert len(history.train_loss) == 3
    assert history.best_epoch == 0
    assert "early stopping" in capsys.readouterr().out


def test_optimize_stops_when_the_time_budget_is_spent(loaders, class_names, tmp_path, capsys):
    model = small_model(num_classes=len(class_names))
    optimizer = get_optimizer(model, "adamw", 3e-3)
    scheduler = TimeBudgetCosine(optimizer, budget_seconds=1e-6)
    history = optimize(loaders, model, optimizer, get_loss(), 10, tmp_path / "best.pt", scheduler=scheduler)
    assert len(history.train_loss) == 1
    assert "time budget used up" in capsys.readouterr().out


# --- learning works ----------------------------------------------------------------------------


def test_tiny_model_overfits_a_tiny_set(tiny_data):
    """24 generated photos, no augmentation: a small MyModel must fit them (proves the gradient
    path, the optimizer and the loss are wired correctly)."""
    datasets = build_datasets(DataConfig(data_dir=str(tiny_data), preprocessing=PREP))
    decoded = datasets["train"].decoded
    train = DecodedImageDataset(decoded, stratified_subset(decoded.labels, 24, seed=0), eval_transform(PREP))
    assert len(train) == 24 and len(set(train.targets)) == 3
    model = small_model(num_classes=3)
    optimizer = get_optimizer(model, "adam", 3e-3)
    loader = DataLoader(train, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
    losses = [train_one_epoch(loader, model, optimizer, get_loss()) for _ in range(12)]
    loss, accuracy = one_epoch_test(DataLoader(train, batch_size=24), model, get_loss())  # eval mode
    assert accuracy >= 0.95
    assert losses[-1] < 0.5 * losses[0] and loss < 0.3


# --- predictor ---------------------------------------------------------------------------------


def _predictor(class_names, seed: int = 0) -> Predictor:
    return Predictor(small_model(num_classes=len(class_names), seed=seed), class_names, preprocessing=PREP)


def _photos(loaders, n: int = 6) -> tuple[list[torch.Tensor], list[int]]:
    dataset = loaders["valid"].dataset
    pairs = [dataset.raw(i) for i in range(min(n, len(dataset)))]
    return [image for image, _ in pairs], [label for _, label in pairs]


def test_predictor_probabilities_and_input_kinds(loaders, class_names):
    predictor = _predictor(class_names)
    images, _ = _photos(loaders, 2)
    image = images[0]
    assert image.dtype == torch.uint8 and image.dim() == 3
    single = predictor(image)  # uint8 [3,H,W]
    assert single.shape == (1, len(class_names))
    assert torch.allclose(single.sum(dim=1), torch.ones(1), atol=1e-5)
    assert (single >= 0).all()
    batch = torch.stack([image, image.flip(-1)])
    out = predictor(batch)  # uint8 [B,3,H,W]
    assert out.shape == (2, len(class_names))
    assert torch.allclose(out.sum(dim=1), torch.ones(2), atol=1e-5)
    assert torch.allclose(out[0], single[0], atol=1e-5)
    as_float = predictor(image.float() / 255)  # float in [0, 1]: resized without rounding to integers
    assert torch.allclose(as_float, single, atol=1e-2)
    assert not predictor.model.training


def test_predictor_preprocesses_exactly_like_evaluation(loaders, class_names):
    """Training and serving can't disagree: uint8 photos go through the same steps as eval_transform."""
    predictor = _predictor(class_names)
    photo = torch.randint(0, 256, (3, 150, 211), dtype=torch.uint8)  # needs a real resize
    served = predictor.input(photo.unsqueeze(0))[0]
    evaluated = eval_transform(PREP)(photo)
    assert served.shape == evaluated.shape
    # the same steps; torchvision's v1 (scriptable) and v2 resize kernels may round a pixel differently
    assert (served - evaluated).abs().max() * min(PREP.std) * 255 <= 1.001  # at most one intensity level
    with torch.no_grad():
        expected = torch.softmax(predictor.model(evaluated[None]), dim=1)
    torch.testing.assert_close(predictor(photo), expected, atol=1e-3, rtol=1e-2)


def test_predictor_class_names_survive_scripting(class_names):
    scripted = torch.jit.script(_predictor(class_names))
    assert list(scripted.class_names) == list(class_names)
    out = scripted(torch.randint(0, 256, (3, 90, 120), dtype=torch.uint8))
    assert out.shape == (1, len(class_names))


def test_export_round_trip(loaders, class_names, tmp_path):
    predictor = _predictor(class_names)
    images, _ = _photos(loaders)
    path = export(predictor, tmp_path / "exported.pt", images, metadata={"note": "test"})
    assert path.exists() and not path.with_suffix(".pt.tmp").exists()
    reloaded, metadata = load_exported(path)
    assert metadata["class_names"] == list(class_names) and metadata["note"] == "test"
    assert Preprocessing.from_dict(metadata["preprocessing"]) == PREP
    assert list(reloaded.class_names) == list(class_names)
    for image in images + [torch.stack(images[:2])]:
        assert torch.allclose(reloaded(image), predictor(image), atol=1e-5)


def test_export_refuses_an_untrained_model(loaders, class_names, tmp_path):
    # Zeroed head: every photo gets the same (uniform) probabilities, i.e. chance-level accuracy.
    predictor = _predictor(class_names)
    head = predictor.model.head[-1]
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    images, labels = _photos(loaders, 9)
    assert len(set(labels)) > 1
    target = tmp_path / "untrained.pt"
    with pytest.raises(ExportMismatchError, match="refusing to export"):
        export(predictor, target, images, labels, min_accuracy=0.9)
    assert not target.exists() and not target.with_suffix(".pt.tmp").exists()
    assert export(predictor, target, images, labels, min_accuracy=0.0).exists()  # no threshold, no refusal


def test_export_needs_check_images(class_names, tmp_path):
    with pytest.raises(ValueError):
        export(_predictor(class_names), tmp_path / "x.pt", [])


def test_predictor_test_returns_truth_then_prediction(loaders, class_names, capsys):
    # A model that always answers the last class: pred is constant, truth must be the real labels.
    predictor = _predictor(class_names)
    head = predictor.model.head[-1]
    nn.init.zeros_(head.weight)
    with torch.no_grad():
        head.bias.copy_(torch.arange(len(class_names), dtype=torch.float32) * 10)
    scripted = torch.jit.script(predictor)
    truth, pred = predictor_test(loaders["test"], scripted)
    assert truth == list(loaders["test"].dataset.targets)
    assert len(set(truth)) == len(class_names)
    assert pred == [len(class_names) - 1] * len(truth)
    assert "Accuracy" in capsys.readouterr().out


def test_predictor_test_with_the_trained_exported_model(tiny_model, loaders):
    reloaded, metadata = load_exported(tiny_model)
    assert metadata["class_names"] == loaders["test"].dataset.classes
    truth, pred = predictor_test(loaders["test"], reloaded)
    assert truth == list(loaders["test"].dataset.targets)
    assert len(pred) == len(truth)
    assert sum(t == p for t, p in zip(truth, pred)) / len(truth) > 1 / len(metadata["class_names"])  # better than chance


def test_load_exported_freezes_for_inference_with_the_same_outputs(tiny_model):
    frozen, metadata = load_exported(tiny_model)
    plain, _ = load_exported(tiny_model, optimize=False)
    photos = torch.randint(0, 256, (2, 3, 150, 190), dtype=torch.uint8)
    assert torch.allclose(frozen(photos), plain(photos), atol=1e-5)
    assert list(frozen.class_names) == metadata["class_names"]  # kept for callers that read it
    assert hasattr(plain, "model") and not hasattr(frozen, "model")  # submodules only when not optimized


def test_exported_model_gives_probabilities_and_embedding_in_one_pass(tiny_model):
    """The gallery's embedding comes from the same forward pass as the probabilities, frozen or not."""
    for frozen in (True, False):
        module, _ = load_exported(tiny_model, optimize=frozen)
        photos = torch.randint(0, 256, (3, 3, 90, 120), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
        probs, embedding = module.probabilities_and_embedding(photos)
        torch.testing.assert_close(probs, module(photos))
        assert embedding.shape == (3, 64)  # the tiny model's last width
        torch.testing.assert_close(embedding.norm(dim=1), torch.ones(3))
        assert not torch.allclose(embedding[0], embedding[1])
