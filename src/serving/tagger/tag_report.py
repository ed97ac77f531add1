"""The batch tagger's report: one row per photo as CSV (or JSON by the extension), written atomically."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from src.serving.metadata.safe_write import remove_stale_temp_files, write_atomically

# A row's status: `Recognition.verdict` (placed, guess, unknown, error) or has_gps (the photo's own position wins).
STATUSES = ("placed", "guess", "unknown", "has_gps", "error")
COLUMNS = ("file", "status", "landmark", "name", "probability", "latitude", "longitude", "tags", "message", "written", "rule", "placed", "guess",
           "source", "radius_m", "device", "time_utc", "clock_offset")
SOURCES = ("gps", "track", "time", "landmark", "visual", "conflict")  # what decided a position (the `source` column)


@dataclass
class TagRow:
    """One line of the report."""

    file: str
    status: str  # one of STATUSES
    landmark: str = ""  # class name of the placed landmark ("" unless status is "placed")
    name: str = ""  # its display name ("" unless status is "placed")
    probability: float | None = None  # of the best landmark (the one in `guess`)
    latitude: float | None = None  # inferred (placed landmark) or the photo's own (has_gps)
    longitude: float | None = None
    tags: str = ""  # space-separated hashtags (placed landmarks)
    message: str = ""
    written: str = ""  # where the GPS was written ("" when nothing was written)
    rule: str = ""  # what decided the status and the placement
    placed: str = ""  # "yes": the landmark's position was placed (and written with --write-gps); "no"; "" for has_gps/error
    guess: str = ""  # the best landmark (class name) of every recognised photo, placed or not; a guess alone is never a place
    # The library context (src.serving.locate): which evidence decided, how sure, and the photo's time as estimated.
    source: str = ""  # one of SOURCES, or "" (no position)
    radius_m: float | None = None  # the true position lies within this of latitude/longitude (>= 95 % of placed photos)
    device: str = ""  # the camera or phone, as grouped (make, model, serial; else a file-name pattern)
    time_utc: str = ""  # when it was taken, UTC (ISO 8601), where the device's clock is known or tied
    clock_offset: str = ""  # the device's clock minus UTC, e.g. "+01:02:10" (a camera left on home time)


@dataclass
class TagStats:
    """Where the time went (seconds, wall clock) and how many photos were processed."""

    files: int = 0
    decode_s: float = 0.0  # waiting for photos to be read, checked and decoded (the next batch decodes during the model)
    model_s: float = 0.0  # probabilities + decision
    write_s: float = 0.0  # writing GPS into photos
    total_s: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    stale_temp_removed: int = 0  # temp files a killed earlier run had left behind, deleted first

    @property
    def photos_per_second(self) -> float:
        return self.files / self.total_s if self.total_s > 0 else 0.0

    def count(self, rows: Sequence[TagRow], seconds: float) -> None:
        """Add a finished run's rows (per status, and those written) and its wall-clock time."""
        self.files += len(rows)
        self.total_s += seconds
        self._tally(rows)

    def recount(self, rows: Sequence[TagRow]) -> None:
        """The counts again, for rows a later step changed (the library context after the Ray engine)."""
        self.counts = {}
        self._tally(rows)

    def _tally(self, rows: Sequence[TagRow]) -> None:
        for row in rows:
            self.counts[row.status] = self.counts.get(row.status, 0) + 1
            if row.written:
                self.counts["written"] = self.counts.get("written", 0) + 1

    def summary(self) -> str:
        counts = ", ".join(f"{status} {self.counts.get(status, 0)}" for status in STATUSES)
        written = self.counts.get("written", 0)
        return (
            f"{self.files} files in {self.total_s:.1f} s ({self.photos_per_second:.1f} photos/s): {counts}"
            + (f"; GPS written into {written}" if written else "")
            + (f"; removed {self.stale_temp_removed} leftover temp files" if self.stale_temp_removed else "")
            + f"\ntime: decode {self.decode_s:.1f} s, model {self.model_s:.1f} s, write {self.write_s:.1f} s"
        )



# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------


def csv_text(rows: Sequence[TagRow]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if value is None else value for key, value in asdict(row).items()})
    return buffer.getvalue()


def write_report(rows: Sequence[TagRow], path: str | Path, *, stats: TagStats | None = None, model: str = "") -> Path:
    """CSV (``.csv``) or JSON (``.json``: {model, summary, files: [...]}) report, written atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        text = csv_text(rows)
    elif suffix == ".json":
        summary = None
        if stats is not None:
            summary = {
                "files": stats.files,
                "counts": {status: stats.counts.get(status, 0) for status in STATUSES} | {"written": stats.counts.get("written", 0)},
                "seconds": {"total": stats.total_s, "decode": stats.decode_s, "model": stats.model_s, "write": stats.write_s},
                "photos_per_second": stats.photos_per_second,
                "stale_temp_removed": stats.stale_temp_removed,
            }
        text = json.dumps({"model": model, "summary": summary, "files": [asdict(row) for row in rows]}, indent=2, ensure_ascii=False) + "\n"
    else:
        raise ValueError(f"report must end in .csv or .json, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path.parent)
    return write_atomically(path, text.encode("utf-8"))


