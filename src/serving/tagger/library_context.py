"""The tagger's second pass: the photos of one run as one library (`src.serving.locate`), applied to the report.

The first pass (`src.serving.tagger.tag`) reads every photo once: its metadata (`read_photo_meta`, from the bytes
`check_and_decode` read) and, for photos without GPS, the recognizer's answer. This module turns them into
`LibraryPhoto`s, asks `locate_library` for one decision per photo, and writes the decision into the rows:
``source``, ``radius_m``, ``device``, ``time_utc``, ``clock_offset``, and the position where one was given.
A landmark placement that the library contradicts is withdrawn ("conflict"): the photo becomes a guess.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from src.data.images import MAX_FILE_BYTES, BadImageError, read_photo_file
from src.data.landmarks import LandmarkInfo
from src.serving.locate.clocks import format_offset
from src.serving.locate.library import ContextConfig, LibraryPhoto, Located, library_photo, locate_library
from src.serving.locate.photo_meta import PhotoMeta, read_photo_meta
from src.serving.locate.photo_meta_takeout import find_takeout_sidecar, json_files_in, read_takeout_sidecar, with_sidecar
from src.serving.tagger.tag_report import TagRow

__all__ = ["JsonFiles", "PhotoFacts", "apply_library_context", "read_facts", "read_meta"]


@dataclass
class PhotoFacts:
    """What the first pass learnt of one photo for the second: its metadata and where its landmark placed it."""

    meta: PhotoMeta | None = None
    landmark: LandmarkInfo | None = None  # the placed landmark (with coordinates), if the recognizer placed it


def apply_library_context(rows: Sequence[TagRow], facts: Mapping[str, PhotoFacts], config: ContextConfig) -> list[Located]:
    """Decide every row's position from the whole library; rows are updated in place (same order)."""
    photos = [_library_photo(row, facts.get(row.file)) for row in rows]
    located = locate_library(photos, config)
    for row, photo, answer in zip(rows, photos, located):
        _apply(row, photo, answer)
    return located


def read_meta(photo: Path, data: bytes, json_names: Collection[str] | None = None) -> PhotoMeta:
    """The photo's time, device and own GPS, with what it lacks from a Google Takeout sidecar beside it.
    json_names: the .json files of its folder (`JsonFiles`), so that a folder is listed once, not per photo."""
    meta = read_photo_meta(data, photo.name)
    sidecar = find_takeout_sidecar(photo, json_names)
    return with_sidecar(meta, read_takeout_sidecar(sidecar)) if sidecar is not None else meta


class JsonFiles:
    """Each folder's .json file names, listed on first use (the decoding threads share one)."""

    def __init__(self) -> None:
        self._folders: dict[Path, frozenset[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, folder: Path) -> frozenset[str]:
        with self._lock:
            if folder not in self._folders:
                self._folders[folder] = json_files_in(folder)
            return self._folders[folder]


def read_facts(files: Sequence[str], max_bytes: int = MAX_FILE_BYTES) -> dict[str, PhotoFacts]:
    """Each photo's metadata, read again (engines that did not keep it: Ray); an unreadable file has none."""
    facts = {}
    json_files = JsonFiles()
    for file in files:
        try:
            facts[file] = PhotoFacts(meta=read_meta(Path(file), read_photo_file(file, max_bytes), json_files(Path(file).parent)))
        except (BadImageError, OSError):
            facts[file] = PhotoFacts()
    return facts


def _library_photo(row: TagRow, fact: PhotoFacts | None) -> LibraryPhoto:
    meta = fact.meta if fact is not None else None
    if row.status == "error" or meta is None:
        return LibraryPhoto(row.file, None)
    # The recognizer's placement, as the first pass reported it (whichever engine ran it).
    placed = row.placed == "yes" and row.source == "landmark" and row.latitude is not None
    position = (row.latitude, row.longitude) if placed else None
    return library_photo(row.file, meta, position, row.name if placed else "")


def _apply(row: TagRow, photo: LibraryPhoto, answer: Located) -> None:
    if photo.meta is None:
        return
    row.device = answer.device
    row.time_utc = _iso(answer.time_utc)
    row.clock_offset = format_offset(answer.clock.offset_s) if answer.clock is not None and answer.clock.tied else ""
    decision = answer.decision
    if photo.meta.problems:
        row.message = _join(row.message, "metadata: " + "; ".join(photo.meta.problems))
    if row.status == "has_gps":
        row.source = "gps"
        return
    if decision.source == "gps":  # a position only its Takeout sidecar holds: its own, never inferred
        _withdraw(row)
        row.status, row.source = "has_gps", "gps"
        row.latitude, row.longitude = decision.latitude, decision.longitude
        row.message = _join(row.message, "its Google Takeout sidecar gives its position: left unchanged")
        return
    if decision.source == "conflict":
        _withdraw(row)
        row.source = "conflict"
        row.message = _join(row.message, decision.message)
    elif decision.placed:
        row.latitude, row.longitude = round(decision.latitude, 7), round(decision.longitude, 7)
        row.radius_m = round(decision.radius_m, 1)
        row.source = decision.source
        row.placed = "yes"
        row.status = "placed"
        if decision.source != "landmark" and not row.name:
            row.tags = ""  # the landmark's hashtags belong to landmark placements only
        row.message = _join(row.message, decision.message)
    elif decision.message:
        row.message = _join(row.message, decision.message)


def _withdraw(row: TagRow) -> None:
    """A landmark placement the library contradicts: no position, and the name goes back to being a guess."""
    if row.placed == "yes" and row.landmark:
        row.guess, row.landmark, row.name = row.landmark, "", ""
        row.status = "guess"
    row.latitude = row.longitude = None
    row.tags = ""
    row.placed = "no"


def _iso(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _join(first: str, second: str) -> str:
    return f"{first}; {second}" if first and second else first or second
