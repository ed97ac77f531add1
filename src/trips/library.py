"""Write a simulated library: JPEG copies whose metadata exiftool writes, GPX logs, and truth.csv.

exiftool is the independent writer (the tagger reads with its own code): one `exiftool -@ ARGFILE`
process per library, every photo's metadata first cleared (`-all=`), then what its device writes.
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import gpxpy
import gpxpy.gpx

from src.trips.itinerary import Simulation
from src.trips.plan import PlannedPhoto, Track, Trip

__all__ = ["TRUTH_COLUMNS", "exiftool_arguments", "read_truth", "write_library", "utc_text"]

TRUTH_COLUMNS = ("file", "situation", "device", "make", "model", "serial", "latitude", "longitude", "time_utc", "written_local",
                 "offset", "has_gps", "placeable", "placeable_why", "trap", "trap_why", "landmark", "known_landmark", "person", "source")


def utc_text(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def exiftool_arguments(photo: PlannedPhoto, trip: Trip, path: Path) -> list[str]:
    """What the photo's device writes, as exiftool arguments for one file (ends with -execute)."""
    device = trip.device(photo.device)
    args = ["-all=", f"-Make={device.make}", f"-Model={device.model}", f"-DateTimeOriginal={photo.written_local}",
            f"-CreateDate={photo.written_local}", f"-SubSecTimeOriginal={photo.subsec}"]
    if device.serial:
        args.append(f"-SerialNumber={device.serial}")
    if photo.offset:
        args += [f"-OffsetTimeOriginal={photo.offset}", f"-OffsetTime={photo.offset}"]
    if photo.has_gps:
        stamp = dt.datetime.fromtimestamp(int(photo.utc), dt.timezone.utc)
        args += [f"-GPSLatitude={abs(photo.lat):.7f}", f"-GPSLatitudeRef={'N' if photo.lat >= 0 else 'S'}",
                 f"-GPSLongitude={abs(photo.lon):.7f}", f"-GPSLongitudeRef={'E' if photo.lon >= 0 else 'W'}",
                 f"-GPSDateStamp={stamp:%Y:%m:%d}", f"-GPSTimeStamp={stamp:%H:%M:%S}"]
    return [*args, "-overwrite_original", str(path), "-execute"]


def _run_exiftool(argfile: Path) -> None:
    done = subprocess.run(["exiftool", "-q", "-q", "-@", str(argfile)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"exiftool failed on {argfile}: {done.stderr.strip()[:500]}")


def _write_gpx(track: Track, path: Path) -> None:
    gpx = gpxpy.gpx.GPX()
    gpx.creator = "Garmin eTrex 32x (simulated)"
    gpx_track = gpxpy.gpx.GPXTrack(name=track.name)
    gpx.tracks.append(gpx_track)
    for segment in track.segments:
        gpx_segment = gpxpy.gpx.GPXTrackSegment()
        gpx_segment.points = [gpxpy.gpx.GPXTrackPoint(lat, lon, time=dt.datetime.fromtimestamp(t, dt.timezone.utc))
                              for t, lat, lon in segment]
        gpx_track.segments.append(gpx_segment)
    path.write_text(gpx.to_xml(), encoding="utf-8")


def _truth_row(photo: PlannedPhoto, trip: Trip, shared: Path) -> dict[str, str]:
    device = trip.device(photo.device)
    try:
        source = str(Path(photo.source).relative_to(shared))
    except ValueError:
        source = photo.source
    return {
        "file": photo.file, "situation": photo.situation, "device": device.key, "make": device.make, "model": device.model,
        "serial": device.serial, "latitude": f"{photo.lat:.7f}", "longitude": f"{photo.lon:.7f}", "time_utc": utc_text(photo.utc),
        "written_local": photo.written_local, "offset": photo.offset, "has_gps": "yes" if photo.has_gps else "no",
        "placeable": "yes" if photo.placeable else "no", "placeable_why": photo.why, "trap": "yes" if photo.trap else "no",
        "trap_why": photo.trap, "landmark": photo.landmark, "known_landmark": "yes" if photo.known_landmark else "no",
        "person": photo.person, "source": source,
    }


def write_library(simulation: Simulation, folder: Path, shared: Path) -> Path:
    """Write the library into `folder` (created; must not exist or be empty) and return its truth.csv."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty: give a new folder for each library")
    folder.mkdir(parents=True, exist_ok=True)
    names = [p.file for p in simulation.photos]
    if len(set(names)) != len(names):
        raise ValueError(f"{simulation.trip.name}: two photos got the same file name")
    lines: list[str] = []
    for photo in simulation.photos:
        target = folder / photo.file
        shutil.copyfile(photo.source, target)
        lines += exiftool_arguments(photo, simulation.trip, target)
    argfile = folder.parent / f".{folder.name}.exiftool_args"
    argfile.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        _run_exiftool(argfile)
    finally:
        argfile.unlink(missing_ok=True)
    for track in simulation.tracks:
        _write_gpx(track, folder / track.name)
    truth = folder / "truth.csv"
    with open(truth, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=TRUTH_COLUMNS)
        writer.writeheader()
        writer.writerows(_truth_row(photo, simulation.trip, Path(shared)) for photo in simulation.photos)
    return truth


def read_truth(folder: Path) -> list[dict[str, str]]:
    """truth.csv of a library as rows of text."""
    with open(Path(folder) / "truth.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def library_tracks(folder: Path) -> Sequence[Path]:
    """The GPX logs that belong to a library."""
    return sorted(Path(folder).glob("*.gpx"))
