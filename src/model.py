"""The course's `MyModel`; it lives in `src.models.scratch`."""

from src.models.scratch import MyModel

__all__ = ["MyModel"]
