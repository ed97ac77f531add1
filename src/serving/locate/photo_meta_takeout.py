"""Google Photos Takeout sidecars (``photo.jpg.json``): the capture time and position Google kept.

A Takeout export often strips or rewrites a photo's own metadata and keeps it beside the photo in
JSON instead. `read_takeout_sidecar` reads one such file into a `PhotoMeta` (never raising: problems
instead) and `with_sidecar` fills what the photo itself lacks; the photo's own values always win.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from src.data.images import BadImageError, open_regular_file
from src.serving.locate.photo_meta import PhotoMeta
from src.serving.locate.photo_meta_values import TimeLimits, checked_position

MAX_SIDECAR_BYTES = 1024 * 1024  # a real sidecar is about 1 kB
_DUPLICATE = re.compile(r"(.+)(\(\d+\))")  # "photo(1)": the second photo of that name in an album


def find_takeout_sidecar(photo: Path, json_names: Collection[str] | None = None) -> Path | None:
    """The Takeout JSON beside a photo: ``photo.jpg.json``, ``photo.jpg.supplemental-metadata.json``
    (also cut short, as Takeout does to long names), ``photo.json``, and for a duplicate
    ``photo(1).jpg`` Takeout's ``photo.jpg(1).json``; None when there is none.

    json_names: the names of the .json files in the photo's folder, listed once by the caller (`json_files_in`):
    for a library of thousands of photos in one folder, looking per photo would list the folder per photo."""
    photo = Path(photo)
    if json_names is None:
        json_names = json_files_in(photo.parent)
    names = [photo.name + ".json", photo.name + ".supplemental-metadata.json"]
    duplicate = _DUPLICATE.fullmatch(photo.stem)
    if duplicate:
        names.append(f"{duplicate.group(1)}{photo.suffix}{duplicate.group(2)}.json")
    for name in names:
        if name in json_names:
            return photo.with_name(name)
    cut_short = sorted(name for name in json_names if name.startswith(photo.name + ".supp"))
    if cut_short:
        return photo.with_name(cut_short[0])
    plain = photo.with_suffix(".json")
    return plain if plain.name in json_names and plain != photo else None


def json_files_in(folder: Path) -> frozenset[str]:
    """The names of the .json files in a folder (none if it cannot be listed)."""
    try:
        with os.scandir(folder) as entries:
            return frozenset(entry.name for entry in entries if entry.name.lower().endswith(".json") and entry.is_file())
    except OSError:
        return frozenset()


def read_takeout_sidecar(path: Path, now: datetime | None = None) -> PhotoMeta:
    """A Takeout sidecar's capture time (``photoTakenTime``, UTC seconds) and position; never raises.

    The time is UTC, so it is given as ``taken_local`` with an offset of 0 (``time_utc`` is known).
    The position is ``geoDataExif`` (the photo's own GPS as Google read it), else ``geoData``;
    0,0 is how Takeout writes "no position" and is not reported.
    """
    path = Path(path)
    try:
        with open_regular_file(path, MAX_SIDECAR_BYTES, what="Takeout sidecar") as file:
            document = json.loads(file.read().decode("utf-8-sig"))
    except (OSError, BadImageError) as error:
        return PhotoMeta(problems=(f"{path.name}: cannot be read ({error})",))
    except (ValueError, RecursionError) as error:  # bad UTF-8, bad JSON, or nesting deeper than Python's stack
        return PhotoMeta(problems=(f"{path.name}: not JSON ({type(error).__name__}: {str(error)[:200]})",))
    taken = document.get("photoTakenTime") if isinstance(document, dict) else None
    if not isinstance(taken, dict):
        return PhotoMeta(problems=(f"{path.name}: not a Google Photos Takeout sidecar (no photoTakenTime)",))
    problems: list[str] = []
    taken_local = _takeout_time(taken.get("timestamp"), TimeLimits(now or datetime.now(timezone.utc)), problems)
    position = _takeout_position(document, problems)
    return PhotoMeta(
        taken_local=taken_local, offset=timedelta(0) if taken_local else None, position=position,
        problems=tuple(f"{path.name}: {problem}" for problem in problems),
    )


def _takeout_time(timestamp: object, limits: TimeLimits, problems: list[str]) -> datetime | None:
    try:
        if isinstance(timestamp, bool) or not isinstance(timestamp, (str, int, float)):
            raise TypeError(timestamp)
        moment = datetime.fromtimestamp(float(timestamp), tz=timezone.utc)  # Takeout writes "1449418710"
    except (TypeError, ValueError, OverflowError, OSError):
        problems.append(f"photoTakenTime {timestamp!r} is not a time in seconds: ignored")
        return None
    problem = limits.problem(moment, f"photoTakenTime {moment:%Y-%m-%d %H:%M:%S} UTC")
    if problem:
        problems.append(problem)
        return None
    return moment.replace(tzinfo=None)


def _takeout_position(document: dict, problems: list[str]) -> tuple[float, float] | None:
    for key in ("geoDataExif", "geoData"):
        geo = document.get(key)
        if not isinstance(geo, dict):
            continue
        try:
            latitude, longitude = float(geo["latitude"]), float(geo["longitude"])
        except (KeyError, TypeError, ValueError):
            problems.append(f"{key} has no numeric latitude/longitude: ignored")
            continue
        if latitude == 0 and longitude == 0:
            continue  # Takeout's "no position"
        position, problem = checked_position(latitude, longitude, key)
        if position is not None:
            return position
        problems.append(problem)
    return None


def with_sidecar(meta: PhotoMeta, sidecar: PhotoMeta) -> PhotoMeta:
    """The photo's metadata, with what it lacks taken from its Takeout sidecar (the photo's own values win).

    The sidecar's UTC time is used only when the photo has no capture time: its offset is never
    combined with the photo's own wall time, because Google's zone for a camera photo is itself a guess.
    """
    taken_local, offset = (meta.taken_local, meta.offset) if meta.taken_local else (sidecar.taken_local, sidecar.offset)
    return replace(
        meta, taken_local=taken_local, offset=offset, position=meta.position or sidecar.position,
        problems=meta.problems + sidecar.problems,
    )
