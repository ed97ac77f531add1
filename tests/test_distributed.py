"""torchrun + DistributedDataParallel: two gloo processes train the scratch CNN like one process with the
same global batch, rank 0 alone writes, and nothing changes for a single process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from src.data.synthetic import make_synthetic_dataset
from src.training import distributed

ROOT = Path(__file__).resolve().parents[1]


def _train(data: Path, folder: Path, processes: int) -> dict:
    """`python -m src train --recipe scratch` (under torchrun when processes > 1); the loss history."""
    options = [
        "-m", "src", "train", "--recipe", "scratch", "--data", str(data), "--epochs", "4", "--time-budget-minutes", "0",
        "--batch-size", "8", "--train-crop", "64", "--widths", "16", "32", "32", "64", "--dropout", "0",
        "--learning-rate", "0.003", "--num-workers", "0", "--no-resume",
        "--checkpoint", str(folder / "best.pt"), "--export", str(folder / "model.pt"), "--runs", str(folder / "runs"),
        "--no-evaluate",
    ]
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] if processes > 1 else []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, *launcher, *options], cwd=ROOT, env=env, check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (folder / "model.pt").is_file() and len(list((folder / "runs").glob("*.json"))) == 1  # rank 0 only
    return torch.load(folder / "best.resume.pt", weights_only=True)["history"]


@pytest.mark.slow
def test_two_gloo_processes_follow_the_single_process_loss_curve(tmp_path):
    data = make_synthetic_dataset(tmp_path / "data", n_classes=3, n_train=24, n_test=4, size=(96, 80), with_bad_files=False)
    one = _train(data, tmp_path / "one", processes=1)
    two = _train(data, tmp_path / "two", processes=2)
    assert len(one["train_loss"]) == len(two["train_loss"]) == 4
    # The same global batch, so the same number of steps and learning rates; only the augmentation
    # draws and the BatchNorm batch statistics (per rank) differ.
    assert two["learning_rate"] == pytest.approx(one["learning_rate"], rel=1e-6)
    assert two["train_loss"] == pytest.approx(one["train_loss"], abs=0.15)
    assert two["train_loss"][-1] < two["train_loss"][0]


def test_a_single_process_is_left_exactly_as_it_was():
    assert not distributed.active() and distributed.is_main()
    loader = DataLoader(TensorDataset(torch.arange(10)), batch_size=4, shuffle=True)
    model = torch.nn.Linear(2, 2)
    assert distributed.shard_loader(loader, train=True) is loader
    assert distributed.wrap(model) is model and distributed.unwrap(model) is model
    assert distributed.all_sum([1.5, 2.0]) == [1.5, 2.0]


def test_evaluation_shards_cover_every_photo_once_and_batches_split_evenly(monkeypatch):
    shards = [list(distributed.ShardSampler(11, rank, 3)) for rank in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(11))
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        distributed._per_rank_batch(8)
    assert distributed._per_rank_batch(9) == 3


def _toy_activations(cache: Path) -> torch.Tensor:
    """Eval-view activations of a toy trunk over 7 toy photos (seeded: the same on every process)."""
    from src.data.transforms import Preprocessing
    from src.training.features import cached_activations

    torch.manual_seed(0)
    trunk = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=4), torch.nn.ReLU())
    images = [torch.randint(0, 256, (3, 40, 48), dtype=torch.uint8) for _ in range(7)]
    return cached_activations("toy", trunk, images, "toy-photos", "eval", Preprocessing(resize=32, crop=32), cache_dir=cache)


def _sharded_worker(rank: int, world: int, port: int, folder: Path) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    distributed.setup("gloo")
    try:
        torch.save(_toy_activations(folder / "cache"), folder / f"rank{rank}.pt")
    finally:
        distributed.cleanup()


@pytest.mark.slow
def test_two_ranks_share_the_trunk_pass_and_gather_the_single_process_activations(tmp_path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    torch.multiprocessing.spawn(_sharded_worker, args=(2, port, tmp_path), nprocs=2, join=True)
    alone = _toy_activations(tmp_path / "alone")
    for rank in range(2):
        assert torch.equal(torch.load(tmp_path / f"rank{rank}.pt", weights_only=True), alone)
    cached = list((tmp_path / "cache").glob("activations-*.pt"))
    assert len(cached) == 1 and torch.equal(torch.load(cached[0], weights_only=True), alone)  # written once, by rank 0
