"""Stage 1, data: photos, class folders, splits, loaders, preprocessing presets, download, landmark facts.

The course's `from src.data import get_data_loaders, visualize_one_batch` keeps working; the names are
loaded on first use, so that importing a light part (e.g. `src.data.images`) does not import torch.
"""

from __future__ import annotations

_COURSE_NAMES = {"get_data_loaders", "visualize_one_batch"}


def __getattr__(name: str):
    if name in _COURSE_NAMES:
        from src.data import loaders

        return getattr(loaders, name)
    raise AttributeError(f"module 'src.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _COURSE_NAMES)
