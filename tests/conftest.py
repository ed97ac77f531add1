"""Shared fixtures: a generated ImageFolder data set and an isolated cache folder."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from src.data.synthetic import make_synthetic_dataset

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never let timm/huggingface reach for the network
# Session fixtures run before function-scoped ones: point the cache at a temporary folder right away,
# so nothing the tests do lands in the user's ~/.cache.
os.environ["LANDMARK_CACHE"] = tempfile.mkdtemp(prefix="landmark_test_cache_")
atexit.register(shutil.rmtree, os.environ["LANDMARK_CACHE"], ignore_errors=True)  # up to tens of MB per run otherwise stay in /tmp
# The test models are tiny: one thread is as fast, and far faster when the CPU is shared.
torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
NEEDS_SHARED = pytest.mark.skipif(
    not (SHARED / "indian_monuments").is_dir(),
    reason="../shared/indian_monuments is not present (it exists on the dev machines and in CI, not in a user's clone)",
)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets caches under a temporary folder, never the user's ~/.cache, and an empty
    $LANDMARK_HOME (taught landmarks), never the user's."""
    monkeypatch.setenv("LANDMARK_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("LANDMARK_HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """3 classes x 16 train / 6 test generated JPEGs, plus a corrupt file, a text file and an empty class."""
    return make_synthetic_dataset(tmp_path_factory.mktemp("tiny"), n_classes=3, n_train=16, n_test=6)


@pytest.fixture(scope="session")
def tiny_model(tiny_data, tmp_path_factory) -> Path:
    """A small MyModel trained for a few epochs on tiny_data and exported (TorchScript)."""
    from src.training.recipes import ScratchRecipe
    from src.training.scratch import export_scratch, train_scratch

    folder = tmp_path_factory.mktemp("model")
    recipe = ScratchRecipe(
        data_dir=str(tiny_data), epochs=6, batch_size=8, train_crop=64, widths=(16, 32, 32, 64), dropout=0.0,
        learning_rate=3e-3, num_workers=0, checkpoint=str(folder / "best.pt"), export_path=str(folder / "tiny.pt"),
        eval_sizes=[(73, 64)], resume=False,
    )
    model, history, loaders = train_scratch(recipe)
    path, _ = export_scratch(model, loaders, recipe, history)
    return path
