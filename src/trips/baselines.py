"""The two rules photo managers ship, run on the same library files as the tagger.

* PhotoPrism's same-day rule: a photo without GPS gets the position of the GPS photo of the same
  written (local) calendar day that is nearest in written time, whatever the device.
* The +-1 h rule: the nearest GPS photo within 1 hour of written time, whatever the device.

Both read time and GPS as those tools do: DateTimeOriginal as written, no offsets, no clock
estimates (through `src.serving.locate.photo_meta.read_photo_meta`, the project's reader).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from src.data.images import BadImageError, is_image_file, read_photo_file
from src.serving.locate.photo_meta import read_photo_meta

__all__ = ["BASELINES", "Answer", "LibraryPhoto", "nearest_within_hour", "read_library", "same_day"]

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class LibraryPhoto:
    """What a baseline sees of a photo: its name, DateTimeOriginal as written, its own GPS."""

    file: str
    taken_local: datetime | None
    position: tuple[float, float] | None


@dataclass(frozen=True)
class Answer:
    """A method's answer for one photo; the tagger report's columns that scoring needs."""

    file: str
    placed: bool
    latitude: float | None = None
    longitude: float | None = None
    radius_m: float | None = None  # None: the method states no radius
    source: str = ""


def _own_or_none(photo: LibraryPhoto) -> Answer | None:
    """A GPS photo keeps its own position; None for a photo the rule must place."""
    if photo.position is not None:
        return Answer(photo.file, True, photo.position[0], photo.position[1], source="gps")
    return None


def _nearest(photo: LibraryPhoto, gps_photos: Sequence[LibraryPhoto], times: Sequence[datetime],
             accept: Callable[[LibraryPhoto, LibraryPhoto], bool]) -> Answer:
    """The GPS photo nearest in written time that `accept`s the pair (ties: the earlier one)."""
    if photo.taken_local is None or not gps_photos:
        return Answer(photo.file, False)
    index = bisect.bisect_left(times, photo.taken_local)
    # the first accepted GPS photo on each side is that side's nearest (the list is in written-time order)
    left = [g for g in reversed(gps_photos[:index]) if accept(photo, g)][:1]
    right = [g for g in gps_photos[index:] if accept(photo, g)][:1]
    candidates = left + right
    if not candidates:
        return Answer(photo.file, False)
    best = min(candidates, key=lambda g: abs((g.taken_local - photo.taken_local).total_seconds()))
    return Answer(photo.file, True, best.position[0], best.position[1], source="time")


def _run_rule(photos: Sequence[LibraryPhoto], accept: Callable[[LibraryPhoto, LibraryPhoto], bool]) -> list[Answer]:
    gps_photos = sorted((p for p in photos if p.position is not None and p.taken_local is not None), key=lambda p: p.taken_local)
    times = [p.taken_local for p in gps_photos]
    return [_own_or_none(p) or _nearest(p, gps_photos, times, accept) for p in photos]


def same_day(photos: Sequence[LibraryPhoto]) -> list[Answer]:
    """PhotoPrism's rule: the nearest GPS photo (written time) of the same written calendar day."""
    return _run_rule(photos, lambda photo, gps: gps.taken_local.date() == photo.taken_local.date())


def nearest_within_hour(photos: Sequence[LibraryPhoto]) -> list[Answer]:
    """The nearest GPS photo (written time) at most 1 hour away."""
    return _run_rule(photos, lambda photo, gps: abs(gps.taken_local - photo.taken_local) <= HOUR)


BASELINES: dict[str, Callable[[Sequence[LibraryPhoto]], list[Answer]]] = {
    "same-day rule (PhotoPrism)": same_day,
    "+-1 h rule": nearest_within_hour,
}


def read_library(folder: Path) -> list[LibraryPhoto]:
    """Every photo of a library folder as the baselines see it; an unreadable file has neither time nor GPS."""
    photos = []
    for path in sorted(p for p in Path(folder).iterdir() if p.is_file() and is_image_file(p)):
        try:
            meta = read_photo_meta(read_photo_file(path), path.name)
        except (OSError, BadImageError):
            photos.append(LibraryPhoto(path.name, None, None))
            continue
        photos.append(LibraryPhoto(path.name, meta.taken_local, meta.position))
    return photos
