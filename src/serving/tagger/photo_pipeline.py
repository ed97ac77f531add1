"""The steps of tagging one photo that every engine shares: the local tagger (`src.serving.tagger.tag`)
and the Ray one (`src.serving.tagger.ray_tag`) both call these, so a photo gets the same row and the
same write whichever engine runs it.

* `Limits`: what one photo may cost (bytes read, pixels decoded, memory for the decodes at once);
* `check_and_decode`: the bounded read, the photo's own GPS (which wins), the decode; never raises;
* `row_from`: the report row of a recognised photo (name and place only where it is placed);
* `write_place`: the landmark's place written into a copy, the photo or a sidecar; updates the row;
* `write_position`: the same for a position the library context decided (time neighbours, a track).

Nothing here loads a model: `check_and_decode` needs only the decoder's ``resize``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from src.data.images import (
    MAX_FILE_BYTES,
    MAX_PIXELS,
    BadImageError,
    decodes_within,
    load_rgb,
    read_photo_file,
)
from src.data.landmarks import LandmarkInfo
from src.serving.metadata.exif import ExistingGPSError, UnsupportedFormatError, read_gps
from src.serving.tagger.photo_files import Found
from src.serving.tagger import tag_writer
from src.serving.tagger.tag_report import TagRow
from src.serving.tagger.tag_writer import write_landmark

if TYPE_CHECKING:  # annotations only: the Ray decoding tasks import this module without the model's code
    from src.serving.recognizer.recognize import Recognition, Recognizer

__all__ = ["DEFAULT_MEMORY_BYTES", "DEFAULT_WORKERS", "Limits", "check_and_decode", "row_from", "write_place", "write_position"]

DEFAULT_MEMORY_BYTES = 1024 * 2**20
DEFAULT_WORKERS = min(4, os.cpu_count() or 1)  # decoding threads of the command line


@dataclass(frozen=True)
class Limits:
    """What one photo may cost: bytes read, pixels decoded, and memory for all decodes at once."""

    max_file_bytes: int = MAX_FILE_BYTES
    max_pixels: int = MAX_PIXELS
    memory_bytes: int = DEFAULT_MEMORY_BYTES  # caps the decoding threads (see decodes_within)

    def workers(self, requested: int) -> int:
        return max(1, min(requested, decodes_within(self.memory_bytes, self.max_pixels)))


def row_from(file: str, result: Recognition) -> TagRow:
    """A report row in the doors' vocabulary (`Recognition.verdict`): the best landmark always in `guess`;
    `landmark`, `name` and the place only where the photo is placed, so filtering on them never returns a guess."""
    if result.status == "error":
        return TagRow(file=file, status="error", message=result.message)
    best = result.top[0]
    row = TagRow(file=file, status=result.verdict, probability=round(best.probability, 6), message=result.message, rule=result.rule,
                 placed="yes" if result.placed else "no", guess=best.class_name)
    if result.placed:
        row.landmark, row.name = best.class_name, best.info.name
    if result.position is not None:
        row.latitude, row.longitude = result.position
        row.tags = " ".join(best.info.hashtags)
    return row


def check_and_decode(recognizer: Recognizer, item: Found, limits: Limits, on_data: Callable[[bytes], None] | None = None):
    """("has_gps", (lat, lon)) | ("image", PIL image) | ("error", reason). Never raises.

    on_data: called with the file's bytes once read (the library context reads the photo's time from them)."""
    photo = item.photo
    if item.problem:
        return "error", f"Cannot read this file: {item.problem}."
    try:
        data = read_photo_file(photo, limits.max_file_bytes)  # one bounded, non-blocking read
        if on_data is not None:
            on_data(data)
        location = read_gps(data)  # a sidecar's own GPS is checked when writing it (ExistingGPSError)
        if location is not None:
            return "has_gps", location
        # The model's own decode size (Recognizer.decode), with this run's pixel limit.
        return "image", load_rgb(data, short_side=recognizer.resize, max_pixels=limits.max_pixels)
    except BadImageError as error:
        reason = str(error).removeprefix(f"{photo}: ")  # the row already names the file
        return "error", f"Cannot read this file: {reason}."
    except OSError as error:  # missing, a directory, no permission, ...
        return "error", f"Cannot read this file: {error.strerror or error}."
    except Exception as error:  # one odd file must not end a run over thousands
        return "error", f"Cannot read this file: unexpected {type(error).__name__}: {error}."


def write_place(row: TagRow, photo: Path, destination: Path | None, info: LandmarkInfo, sidecar: bool) -> None:
    """Write the landmark's place (into destination, in place, or a sidecar); updates the row. Never raises."""
    if not info.has_coordinates:
        row.message += f"; not written: no coordinates are known for {info.name}"
        return
    _write_guarded(row, lambda: write_landmark(photo, info, destination=destination, sidecar=sidecar,
                                               radius_m=row.radius_m, source=row.source or None))


def write_position(row: TagRow, photo: Path, destination: Path | None, sidecar: bool) -> None:
    """Write a position the library context decided (the row's latitude, longitude, radius and source) into
    destination, in place or a sidecar; the place's name comes from an offline reverse geocoder. Never raises."""
    _write_guarded(row, lambda: tag_writer.write_position(photo, row.latitude, row.longitude, row.radius_m, row.source,
                                                                destination=destination, sidecar=sidecar))


def _write_guarded(row: TagRow, write: Callable[[], Path]) -> None:
    try:
        written = write()
    except ExistingGPSError as error:  # it got a position since we looked (another run?): its metadata wins
        row.status, (row.latitude, row.longitude) = "has_gps", error.location
        row.source, row.radius_m = "gps", None
        row.message = "already tagged: it got a GPS position since it was read (another run?); left unchanged"
    except UnsupportedFormatError as error:
        row.message += f"; not written: {error}"
    except (BadImageError, OSError, ValueError, RuntimeError) as error:
        row.status = "error"
        row.message += f"; writing the GPS failed: {error}"
    else:
        row.written = str(written)
