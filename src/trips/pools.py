"""The photo pools a simulated library draws from, and their two halves.

Only photos the shipped model never trained on are used: the known landmarks' test photos, both
splits of `other_landmarks` (landmarks the model does not know) and the held-out object categories
of `no_landmark` (the model's background class trained on the other half, `split_no_landmark`).

Every pool is split into halves `a` and `b` by a stable hash of the photo's path relative to the
shared folder, so a photo is in the same half on every machine and in every run: `a` libraries are
for choosing thresholds, `b` libraries for reporting.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from src.data.folders import split_no_landmark
from src.data.images import is_image_file

__all__ = ["HALVES", "Pools", "half_of", "load_pools", "SHARED_DEFAULT"]

HALVES = ("a", "b")
SHARED_DEFAULT = Path(__file__).resolve().parents[2].parent / "shared"
KNOWN_SETS = ("indian_monuments/test", "world_landmarks/test")
UNKNOWN_SETS = ("other_landmarks/train", "other_landmarks/test")


def half_of(relative_path: str) -> str:
    """'a' or 'b' from the SHA-1 of the path (stable across machines, Python versions and runs)."""
    return HALVES[hashlib.sha1(relative_path.encode("utf-8")).digest()[0] % 2]


@dataclass
class Pools:
    """One half's photos: per landmark class (known and unknown) and the landmark-free ones."""

    half: str
    known: dict[str, list[Path]] = field(default_factory=dict)  # class folder name -> photos
    unknown: dict[str, list[Path]] = field(default_factory=dict)
    anything: list[Path] = field(default_factory=list)  # photos of objects, people, animals: no landmark

    def size(self) -> int:
        return sum(map(len, self.known.values())) + sum(map(len, self.unknown.values())) + len(self.anything)


def _class_photos(shared: Path, sets: tuple[str, ...], half: str) -> dict[str, list[Path]]:
    photos: dict[str, list[Path]] = {}
    for name in sets:
        root = shared / name
        if not root.is_dir():
            raise FileNotFoundError(f"{root} is missing: the simulator needs the shared photo sets (see ../shared/README.md)")
        for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            chosen = [p for p in sorted(class_dir.iterdir()) if is_image_file(p) and half_of(str(p.relative_to(shared))) == half]
            photos.setdefault(class_dir.name, []).extend(chosen)
    return photos


def load_pools(half: str, shared: Path = SHARED_DEFAULT) -> Pools:
    """The photos of one half (`a` or `b`) of every pool under `shared`."""
    if half not in HALVES:
        raise ValueError(f"--half must be one of {HALVES}, got {half!r}")
    shared = Path(shared)
    held_out = split_no_landmark(shared / "no_landmark")["held_out"]  # categories the background class never saw
    anything = [p for p in held_out if half_of(str(p.relative_to(shared))) == half]
    return Pools(half, _class_photos(shared, KNOWN_SETS, half), _class_photos(shared, UNKNOWN_SETS, half), anything)
