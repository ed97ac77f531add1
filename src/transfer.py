"""The course's `get_model_transfer_learning`; it lives in `src.models.backbones`."""

from src.models.backbones import get_model_transfer_learning

__all__ = ["get_model_transfer_learning"]
