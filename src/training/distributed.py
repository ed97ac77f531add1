"""Data-parallel training over several processes (DistributedDataParallel), started by torchrun.

    torchrun --nproc_per_node=2 -m src train --recipe scratch --data ROOT --epochs 30 --time-budget-minutes 0

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; `setup` joins the process group (gloo on CPU, nccl when
CUDA is present, one GPU per local rank). Every rank trains a replica on its shard of each epoch
(`shard_train_loader`: a DistributedSampler, the recipe's batch split across ranks so the global batch,
and hence the loss curve, is the single process's); gradients are averaged by DDP. Losses and
accuracies are summed over ranks, so every rank logs and decides on the same numbers; rank 0 alone
prints, writes checkpoints and exports. Without torchrun (WORLD_SIZE unset or 1) nothing here is active
and training runs exactly as before.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from src.training.optimization import TimeBudgetCosine

T = TypeVar("T")


@dataclass(frozen=True)
class DistributedEnv:
    """This process's place in the job, as torchrun describes it."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_from_torchrun() -> DistributedEnv:
    """RANK / WORLD_SIZE / LOCAL_RANK from the environment (one process when they are absent)."""
    try:
        return DistributedEnv(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("LOCAL_RANK", "0")))
    except ValueError as error:
        raise ValueError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers (torchrun sets them): {error}") from error


def active() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """The process that prints, writes checkpoints and exports (the only one without torchrun)."""
    return rank() == 0


def setup(backend: str | None = None) -> DistributedEnv:
    """Join torchrun's process group (once); a no-op for a single process."""
    env = env_from_torchrun()
    if not env.enabled or dist.is_initialized():
        return env
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(env.local_rank)  # "cuda" then means this rank's own GPU
    dist.init_process_group(backend=backend)
    return env


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module) -> nn.Module:
    """The model in DDP when distributed (moved to its device in channels_last first), else unchanged."""
    if not active():
        return model
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    model = model.to(device=device, memory_format=torch.channels_last)
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap(model: nn.Module) -> nn.Module:
    """The model itself (what checkpoints and exports hold), DDP or not."""
    return model.module if isinstance(model, DistributedDataParallel) else model


class ShardSampler(Sampler[int]):
    """Every rank-th index from this rank's, in order, without the padding a DistributedSampler adds:
    evaluation sees each photo exactly once over all ranks."""

    def __init__(self, length: int, rank_: int, world: int):
        self.indices = list(range(rank_, length, world))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _per_rank_batch(batch_size: int) -> int:
    world = world_size()
    if batch_size % world:
        raise ValueError(f"the batch size ({batch_size}) must be a multiple of the number of processes ({world}): it is split across them")
    return batch_size // world


def shard_loader(loader: DataLoader, train: bool, seed: int = 42) -> DataLoader:
    """This rank's part of a loader: training draws a DistributedSampler shard with the global batch
    split across ranks; evaluation a `ShardSampler` at the same batch size. Unchanged for one process."""
    if not active():
        return loader
    dataset = loader.dataset
    if train:
        sampler: Sampler[int] = DistributedSampler(dataset, num_replicas=world_size(), rank=rank(), shuffle=True, seed=seed, drop_last=True)
        batch_size = _per_rank_batch(loader.batch_size)
    else:
        sampler, batch_size = ShardSampler(len(dataset), rank(), world_size()), loader.batch_size
    workers = loader.num_workers
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, drop_last=loader.drop_last, num_workers=workers,
        persistent_workers=workers > 0 and train,
    )


def all_sum(values: Sequence[float]) -> list[float]:
    """Each value summed over all ranks (float64); the values themselves for one process."""
    if not active():
        return list(values)
    tensor = torch.tensor(list(values), dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


def any_rank(flag: bool) -> bool:
    """True on every rank when it is true on any: ranks stop together or not at all."""
    return bool(all_sum([float(flag)])[0] > 0)


def barrier() -> None:
    if active():
        dist.barrier()


def main_first(make: Callable[[], T]) -> T:
    """`make()` on rank 0, then on the others: what rank 0 caches on disk (decoded photos) the others
    read instead of writing the same file at the same time."""
    result = make() if is_main() else None
    barrier()
    return result if is_main() else make()


def shard_indices(total: int) -> list[int]:
    """This rank's items of a list of `total`: every world_size-th from its rank (all of them alone)."""
    return list(range(rank(), total, world_size()))


def gather_shards(part: torch.Tensor, total: int) -> torch.Tensor:
    """The inverse of `shard_indices`: every rank's rows gathered back into list order, on every rank."""
    if not active():
        return part
    world = world_size()
    longest = -(-total // world)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    # float16 travels as float32 (exact both ways): gloo's all_gather has no 16-bit integer type
    wire = torch.float32 if part.dtype == torch.float16 else part.dtype
    padded = torch.zeros((longest, *part.shape[1:]), dtype=wire, device=device)
    padded[: len(part)] = part
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    out = torch.empty((total, *part.shape[1:]), dtype=part.dtype)
    for r, chunk in enumerate(gathered):
        out[r::world] = chunk[: len(range(r, total, world))].cpu().to(part.dtype)
    return out


class SharedClockTimeBudgetCosine(TimeBudgetCosine):
    """`TimeBudgetCosine` on rank 0's clock: every rank sets the same learning rate at every step
    (replicas that stepped with different rates would drift apart) and sees the budget end together."""

    def __init__(self, optimizer: torch.optim.Optimizer, budget_seconds: float, warmup_fraction: float = 0.03):
        super().__init__(optimizer, budget_seconds, warmup_fraction)
        self._shared_elapsed = 0.0

    def step(self) -> None:
        if self._start is None:
            self._start = time.perf_counter()
        elapsed = torch.tensor([super().elapsed], dtype=torch.float64)
        if active():
            dist.broadcast(elapsed, src=0)
        self._shared_elapsed = float(elapsed)
        self._set(self._shared_elapsed / self.budget)

    @property
    def finished(self) -> bool:
        return self._shared_elapsed >= self.budget
