"""The course's helpers: where the data is, and its normalisation statistics."""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from src.data.download import (
    DATA_URL,
    DataUnavailableError,
    download_and_extract,
    find_data_root,
)
from src.data.folders import (
    decode_folder,
    default_cache_dir,
    scan_split,
)

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path("landmark_images")


def get_data_location(data_dir: Optional[str | Path] = None, download: bool = True) -> Path:
    """The folder holding `train/` and `test/`.

    Looked up in order: the `data_dir` argument, the LANDMARK_DATA environment variable, then
    ./landmark_images. If none exists, the course data set is downloaded into ./landmark_images
    (unless download=False).
    """
    candidates = [("argument data_dir", data_dir), ("LANDMARK_DATA", os.environ.get("LANDMARK_DATA"))]
    for source, value in candidates:
        if value:
            root = find_data_root(Path(value))
            if root is None:
                raise FileNotFoundError(f"{source}={value} does not contain train/ and test/ folders")
            return root
    root = find_data_root(DEFAULT_DATA_DIR) if DEFAULT_DATA_DIR.exists() else None
    if root is not None:
        return root
    if not download:
        raise DataUnavailableError(
            "no data set found: pass data_dir=..., set LANDMARK_DATA to a folder with train/ and test/, "
            f"or place it at ./{DEFAULT_DATA_DIR}"
        )
    return download_and_extract(DATA_URL, DEFAULT_DATA_DIR)


def data_roots(data_dir: Optional[str | Path | Sequence[str | Path]] = None, download: bool = True) -> list[Path]:
    """Every data root of a run: one folder or several (`--data A B`), each holding `train/` and `test/`.
    None: `get_data_location`'s default (LANDMARK_DATA, ./landmark_images, or the course download)."""
    if data_dir is None or isinstance(data_dir, (str, Path)):
        return [get_data_location(data_dir, download=download)]
    if not data_dir:
        raise ValueError("no data root given")
    roots = [get_data_location(root, download=False) for root in data_dir]
    if len({root.resolve() for root in roots}) != len(roots):
        raise ValueError(f"the same data root is given twice: {', '.join(map(str, data_dir))}")
    return roots


def setup_env(data_dir: Optional[str | Path] = None, seed: int = 42) -> Path:
    """Seed the random generators, make sure the data is there, and return its location."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    root = get_data_location(data_dir)
    log.info("data set: %s", root)
    return root


def compute_mean_and_std(
    data_dir: Optional[str | Path | Sequence[str | Path]] = None, cache_dir: Optional[Path] = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of the TRAINING photos (never the test split), in [0, 1] units, over
    one data root or several.

    Cached as JSON keyed by the data set's identity, so a different or changed data set is recomputed.
    """
    scan = scan_split(data_roots(data_dir), "train")
    cache_file = (cache_dir or default_cache_dir()) / f"mean_std-{scan.identity('mean_std')}.json"
    if cache_file.exists():
        stats = json.loads(cache_file.read_text())
        return torch.tensor(stats["mean"]), torch.tensor(stats["std"])
    decoded = decode_folder(scan, cache_dir=cache_dir)
    total = torch.zeros(3, dtype=torch.float64)
    total_sq = torch.zeros(3, dtype=torch.float64)
    count = 0
    for image in decoded.images:
        pixels = image.reshape(3, -1).double() / 255
        total += pixels.sum(dim=1)
        total_sq += (pixels**2).sum(dim=1)
        count += pixels.shape[1]
    mean = total / count
    std = (total_sq / count - mean**2).sqrt()
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache_file.write_text(json.dumps({"mean": mean.tolist(), "std": std.tolist(), "data": str(scan.root)}))
    return mean.float(), std.float()
