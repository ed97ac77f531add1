"""A plain training loop (after torchvision's references/classification), with the course's names."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from src.training import distributed


def get_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _prepare(model: nn.Module) -> tuple[nn.Module, torch.device]:
    # channels_last lets oneDNN pick its fastest convolution kernels on CPU (measured: ~15 % faster here).
    device = get_device()
    if distributed.unwrap(model) is not model:  # DDP: placed before wrapping (`distributed.wrap`)
        return model, next(model.parameters()).device
    return model.to(device=device, memory_format=torch.channels_last), device


def _to_device(images: torch.Tensor, labels: torch.Tensor, device: torch.device):
    return images.to(device, memory_format=torch.channels_last, non_blocking=True), labels.to(device, non_blocking=True)


@dataclass
class EpochStats:
    loss: float
    accuracy: float
    seconds: float
    data_seconds: float  # time spent waiting for the loader: the part the decode cache is there to shrink
    images: int


def _run_epoch(
    loader: DataLoader,
    model: nn.Module,
    loss_fn: nn.Module,
    optimizer: Optional[torch.optim.Optimizer] = None,
    scheduler: Optional[torch.optim.lr_scheduler.LRScheduler] = None,
    desc: str = "",
) -> EpochStats:
    training = optimizer is not None
    if not training:  # evaluation shards are uneven across ranks: no DDP collectives in its forward
        model = distributed.unwrap(model)
    model, device = _prepare(model)
    model.train(training)
    total_loss, correct, seen, data_seconds = 0.0, 0, 0, 0.0
    start = tick = time.perf_counter()
    with torch.set_grad_enabled(training):
        for images, labels in tqdm(loader, desc=desc, leave=False, ncols=90, disable=not distributed.is_main()):
            data_seconds += time.perf_counter() - tick
            images, labels = _to_device(images, labels, device)
            logits = model(images)
            loss = loss_fn(logits, labels)
            if training:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
            total_loss += loss.item() * len(labels)
            correct += (logits.argmax(dim=1) == labels).sum().item()
            seen += len(labels)
            tick = time.perf_counter()
    total_loss, correct, seen = distributed.all_sum([total_loss, correct, seen])  # every rank's photos
    if seen == 0:
        raise ValueError("the data loader yielded no batches")
    return EpochStats(total_loss / seen, correct / seen, time.perf_counter() - start, data_seconds, int(seen))


def train_one_epoch(train_dataloader: DataLoader, model: nn.Module, optimizer: torch.optim.Optimizer, loss: nn.Module, scheduler=None) -> float:
    """One pass over the training data; returns the mean training loss."""
    return _run_epoch(train_dataloader, model, loss, optimizer, scheduler, desc="train").loss


def valid_one_epoch(valid_dataloader: DataLoader, model: nn.Module, loss: nn.Module) -> float:
    """Mean validation loss (no gradient, eval mode)."""
    return _run_epoch(valid_dataloader, model, loss, desc="valid").loss


def one_epoch_test(test_dataloader: DataLoader, model: nn.Module, loss: nn.Module) -> tuple[float, float]:
    """Mean test loss and accuracy; prints both like the course did."""
    stats = _run_epoch(test_dataloader, model, loss, desc="test")
    print(f"Test loss: {stats.loss:.4f}   Test accuracy: {100 * stats.accuracy:.1f}% ({round(stats.accuracy * stats.images)}/{stats.images})")
    return stats.loss, stats.accuracy


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    valid_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    valid_accuracy: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    data_seconds: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    best_epoch: int = -1

    @property
    def best_valid_loss(self) -> float:
        return self.valid_loss[self.best_epoch] if self.best_epoch >= 0 else math.inf

    def to_dict(self) -> dict:
        return asdict(self)


def save_checkpoint(path: Path, model: nn.Module, config: Optional[dict] = None) -> None:
    """Weights only: the state dict and a JSON-like config (loadable with weights_only=True)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"state_dict": distributed.unwrap(model).state_dict(), "config": config or {}}, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path, model: Optional[nn.Module] = None) -> dict:
    """Load a checkpoint written by save_checkpoint (or a bare state dict) into `model`; returns it."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" not in checkpoint:
        checkpoint = {"state_dict": checkpoint, "config": {}}
    if model is not None:
        distributed.unwrap(model).load_state_dict(checkpoint["state_dict"])
    return checkpoint


class LivePlot:
    """Loss and accuracy curves redrawn in place after each epoch (notebooks only)."""

    def __init__(self):
        import matplotlib.pyplot as plt
        from IPython.display import display

        self.figure, self.axes = plt.subplots(1, 2, figsize=(10, 3.5))
        plt.close(self.figure)  # shown through the display handle only, not twice
        self.handle = display(self.figure, display_id=True)

    def update(self, history: History) -> None:
        for axis, key in zip(self.axes, ("loss", "accuracy")):
            axis.clear()
            axis.plot(getattr(history, f"train_{key}"), label="train")
            axis.plot(getattr(history, f"valid_{key}"), label="valid")
            axis.set_xlabel("epoch")
            axis.set_title(key)
            axis.legend()
        self.handle.update(self.figure)


def optimize(
    data_loaders: dict[str, DataLoader],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss: nn.Module,
    n_epochs: int,
    save_path: str | Path,
    interactive_tracking: bool = False,
    scheduler: Optional[torch.optim.lr_scheduler.LRScheduler] = None,
    early_stopping: Optional[int] = None,
    config: Optional[dict] = None,
    resume: bool = False,
) -> History:
    """Train for n_epochs, keeping the weights with the best validation loss at save_path.

    scheduler: stepped after every batch (see optimization.get_scheduler).
    early_stopping: stop after this many epochs without a better validation loss.
    resume: continue from `<save_path>.resume.pt` (model, optimizer, scheduler, history) if present;
            that file is rewritten after every epoch so a killed run loses at most one epoch.
    Under torchrun (`src.training.distributed`) the model is DDP-wrapped and the train loader sharded by
    the caller; rank 0 alone prints and writes files, and every rank stops at the same epoch.
    """
    main = distributed.is_main()
    save_path = Path(save_path)
    resume_path = save_path.with_suffix(".resume.pt")
    history = History()
    if resume and resume_path.exists():
        state = torch.load(resume_path, map_location="cpu", weights_only=True)
        distributed.unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        history = History(**state["history"])
        if main:
            print(f"resuming after epoch {len(history.train_loss)} (best valid loss {history.best_valid_loss:.4f})")
    live = LivePlot() if interactive_tracking and main else None
    for epoch in range(len(history.train_loss), n_epochs):
        sampler = getattr(data_loaders["train"], "sampler", None)
        if hasattr(sampler, "set_epoch"):  # DistributedSampler: a new shuffle each epoch, the same on every rank
            sampler.set_epoch(epoch)
        train = _run_epoch(data_loaders["train"], model, loss, optimizer, scheduler, desc=f"epoch {epoch + 1}/{n_epochs} train")
        valid = _run_epoch(data_loaders["valid"], model, loss, desc="valid")
        history.train_loss.append(train.loss)
        history.valid_loss.append(valid.loss)
        history.train_accuracy.append(train.accuracy)
        history.valid_accuracy.append(valid.accuracy)
        history.epoch_seconds.append(train.seconds + valid.seconds)
        history.data_seconds.append(train.data_seconds + valid.data_seconds)
        history.learning_rate.append(optimizer.param_groups[0]["lr"])
        improved = valid.loss < history.best_valid_loss
        if improved:
            history.best_epoch = epoch
            if main:
                save_checkpoint(save_path, model, config)
        if main:
            print(
                f"epoch {epoch + 1:3d}  train loss {train.loss:.4f} acc {100 * train.accuracy:5.1f}%  "
                f"valid loss {valid.loss:.4f} acc {100 * valid.accuracy:5.1f}%  "
                f"{train.seconds + valid.seconds:5.1f}s (data {100 * history.data_seconds[-1] / history.epoch_seconds[-1]:.0f}%)"
                + ("  saved" if improved else ""),
                flush=True,
            )
            torch.save(
                {
                    "model": distributed.unwrap(model).state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "history": history.to_dict(),
                },
                resume_path,
            )
        if live is not None:
            live.update(history)
        if distributed.any_rank(getattr(scheduler, "finished", False)):
            if main:
                print(f"time budget used up after {epoch + 1} epochs")
            break
        if early_stopping is not None and epoch - history.best_epoch >= early_stopping:
            if main:
                print(f"early stopping: no better validation loss for {early_stopping} epochs")
            break
    distributed.barrier()  # the best checkpoint is on disk before any rank reads it
    return history
