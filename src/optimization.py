"""The course's `get_loss` and `get_optimizer`; they live in `src.training.optimization`."""

from src.training.optimization import get_loss, get_optimizer

__all__ = ["get_loss", "get_optimizer"]
