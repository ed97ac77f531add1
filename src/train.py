"""The course's training functions; they live in `src.training.loop`."""

from src.training.loop import one_epoch_test, optimize, train_one_epoch, valid_one_epoch

__all__ = ["one_epoch_test", "optimize", "train_one_epoch", "valid_one_epoch"]
