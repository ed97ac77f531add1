"""What the library context costs (issue 39 item 2): tagging one library with ``context=ContextConfig()`` and
with ``context=None``, wall time and peak memory of each (`src.bench.tagger_worker`, a fresh process per run),
and `locate_library` alone on synthetic libraries of growing size (is it linear?).

The library is generated once per bench run into a temporary folder: small JPEGs (short side 256, the
model's size, so decoding stays cheap and the context's share is not flattered) with EXIF written by
piexif, from a trip of visits to landmarks:

* a phone: DateTimeOriginal + OffsetTimeOriginal, and its GPS (with GPS time) on most photos;
* a camera: DateTimeOriginal only, its clock minutes off, no GPS; its photos show the visited landmark
  (real photos of that class where the tag photos have class folders with known coordinates), so the
  recognizer places some and the camera's clock can be tied by landmarks: the context has real work.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from src.bench.settings import REPO
from src.data.images import load_rgb
from src.data.landmarks import lookup
from src.serving.locate.library import LibraryPhoto, library_photo, locate_library
from src.serving.locate.photo_meta import PhotoMeta
from src.serving.tagger.photo_files import find_images

PHONE = ("Google", "Pixel 7")
CAMERA = ("Canon", "Canon EOS 80D")
ZONE = timedelta(hours=5, minutes=30)  # the trip's local time (India)
CAMERA_CLOCK_ERROR = timedelta(minutes=7)  # the camera's clock: local time, 7 minutes fast, no offset written
TRIP_START = datetime(2024, 3, 1, 8, 0)  # local wall time
FALLBACK_SITES = ((27.1751, 78.0421), (28.5245, 77.1855), (18.9220, 72.8347), (12.3052, 76.6552))


@dataclass(frozen=True)
class Shot:
    """One photo of the plan: when (local wall time of the trip), by which device, where, what it shows."""

    taken_local: datetime
    phone: bool
    gps: tuple[float, float] | None
    site: int
    name: str


def trip_plan(count: int, sites: int, seed: int = 0, per_visit: int = 40, phone_share: float = 0.6, gps_share: float = 0.85) -> list[Shot]:
    """``count`` photos over visits of ``per_visit`` photos (about two hours each, two visits a day), cycling
    through ``sites``; the phone has GPS on ``gps_share`` of its photos (a fix near the visited site)."""
    rng = np.random.default_rng(seed)
    shots = []
    for index in range(count):
        visit, within = divmod(index, per_visit)
        start = TRIP_START + timedelta(days=visit // 2, hours=5 * (visit % 2))
        taken = start + timedelta(seconds=float(within * 180 + rng.integers(0, 120)))
        phone = bool(rng.random() < phone_share)
        site = visit % sites
        gps = None
        if phone and rng.random() < gps_share:
            gps = (float(rng.normal(0, 0.001)), float(rng.normal(0, 0.001)))  # offset from the site (about 100 m)
        stamp = taken.strftime("%Y%m%d_%H%M%S")
        name = f"PXL_{stamp}{index % 1000:03d}.jpg" if phone else f"IMG_{index:05d}.JPG"
        shots.append(Shot(taken, phone, gps, site, name))
    return shots


def _rational(value: float, denominator: int = 10000) -> tuple[int, int]:
    return int(round(value * denominator)), denominator


def _dms(value: float) -> tuple[tuple[int, int], ...]:
    value = abs(value)
    degrees, minutes = int(value), int(value * 60) % 60
    seconds = value * 3600 - degrees * 3600 - minutes * 60
    return (degrees, 1), (minutes, 1), _rational(seconds, 100)


def exif_bytes(shot: Shot, site: tuple[float, float]) -> bytes:
    """The EXIF a phone or the camera writes for ``shot`` (piexif)."""
    import piexif

    clock = shot.taken_local if shot.phone else shot.taken_local + CAMERA_CLOCK_ERROR
    make, model = PHONE if shot.phone else CAMERA
    exif = {piexif.ExifIFD.DateTimeOriginal: clock.strftime("%Y:%m:%d %H:%M:%S").encode()}
    if shot.phone:
        exif[piexif.ExifIFD.OffsetTimeOriginal] = b"+05:30"
    zeroth = {piexif.ImageIFD.Make: make.encode(), piexif.ImageIFD.Model: model.encode()}
    gps = {}
    if shot.gps is not None:
        latitude, longitude = site[0] + shot.gps[0], site[1] + shot.gps[1]
        utc = shot.taken_local - ZONE
        gps = {
            piexif.GPSIFD.GPSLatitudeRef: b"N" if latitude >= 0 else b"S", piexif.GPSIFD.GPSLatitude: _dms(latitude),
            piexif.GPSIFD.GPSLongitudeRef: b"E" if longitude >= 0 else b"W", piexif.GPSIFD.GPSLongitude: _dms(longitude),
            piexif.GPSIFD.GPSDateStamp: utc.strftime("%Y:%m:%d").encode(),
            piexif.GPSIFD.GPSTimeStamp: ((utc.hour, 1), (utc.minute, 1), (utc.second, 1)),
        }
    return piexif.dump({"0th": zeroth, "Exif": exif, "GPS": gps, "1st": {}, "thumbnail": None})


def site_pictures(photos: Path | None, per_site: int = 6, side: int = 256) -> tuple[list[tuple[float, float]], list[list[bytes]], bool]:
    """(site coordinates, small JPEGs of each site, whether they are real photos): the class folders under ``photos`` whose landmark has
    coordinates, else generated pictures at a few fixed Indian sites."""
    by_class: dict[str, list[Path]] = {}
    for item in find_images([photos]) if photos is not None and photos.is_dir() else []:
        if not item.problem:
            by_class.setdefault(item.photo.parent.name, []).append(item.photo)
    sites, pictures = [], []
    for class_name, files in sorted(by_class.items()):
        info = lookup(class_name)
        if not info.has_coordinates:
            continue
        encoded = []
        for file in files[:per_site]:
            buffer = io.BytesIO()
            load_rgb(file, short_side=side).save(buffer, "JPEG", quality=85)
            encoded.append(buffer.getvalue())
        sites.append((info.latitude, info.longitude))
        pictures.append(encoded)
    if sites:
        return sites, pictures, True
    rng = np.random.default_rng(0)
    for index, site in enumerate(FALLBACK_SITES):
        encoded = []
        for _ in range(per_site):
            pixels = (rng.random((side, side * 4 // 3, 3)) * 64 + index * 48).astype(np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
            encoded.append(buffer.getvalue())
        sites.append(site)
        pictures.append(encoded)
    return sites, pictures, False


def write_library(folder: Path, count: int, photos: Path | None, seed: int = 0) -> dict[str, Any]:
    """Write ``count`` JPEGs with EXIF into ``folder``; returns what the library holds."""
    import piexif

    folder.mkdir(parents=True, exist_ok=True)
    sites, pictures, real = site_pictures(photos)
    shots = trip_plan(count, len(sites), seed)
    for index, shot in enumerate(shots):
        base = pictures[shot.site][index % len(pictures[shot.site])]
        out = io.BytesIO()
        piexif.insert(exif_bytes(shot, sites[shot.site]), base, out)
        (folder / shot.name).write_bytes(out.getvalue())
    return {"photos": count, "sites": len(sites), "phone": sum(s.phone for s in shots), "with_gps": sum(s.gps is not None for s in shots),
            "from_real_photos": real}


def synthetic_sites(count: int = 24, seed: int = 0) -> list[tuple[float, float]]:
    """``count`` places spread over India (as many as the Indian landmarks the default model knows)."""
    rng = np.random.default_rng(seed)
    return [(float(rng.uniform(9, 31)), float(rng.uniform(70, 88))) for _ in range(count)]


def synthetic_library(count: int, seed: int = 0, placed_share: float = 0.7) -> list[LibraryPhoto]:
    """The same trip as `LibraryPhoto`s without files (for `locate_library` alone), over `synthetic_sites`:
    camera photos carry their site as a landmark placement on ``placed_share`` of them, as the recognizer would."""
    rng = np.random.default_rng(seed + 1)
    sites = synthetic_sites()
    photos = []
    for shot in trip_plan(count, len(sites), seed):
        site = sites[shot.site]
        if shot.phone:
            position = (site[0] + shot.gps[0], site[1] + shot.gps[1]) if shot.gps is not None else None
            utc = (shot.taken_local - ZONE).replace(tzinfo=timezone.utc) if shot.gps is not None else None
            meta = PhotoMeta(taken_local=shot.taken_local, offset=ZONE, gps_utc=utc, position=position, make=PHONE[0], model=PHONE[1])
            landmark = None
        else:
            meta = PhotoMeta(taken_local=shot.taken_local + CAMERA_CLOCK_ERROR, make=CAMERA[0], model=CAMERA[1])
            landmark = site if rng.random() < placed_share else None
        photos.append(library_photo(shot.name, meta, landmark, "site" if landmark else ""))
    return photos


def locate_scaling(sizes: tuple[int, ...]) -> list[dict[str, float]]:
    """Seconds of `locate_library` alone per library size, and microseconds per photo (linear: constant)."""
    rows = []
    for size in sizes:
        photos = synthetic_library(size)
        start = time.perf_counter()
        located = locate_library(photos)
        seconds = time.perf_counter() - start
        placed = sum(1 for answer in located if answer.decision.placed and answer.decision.source != "gps")
        rows.append({"photos": size, "seconds": seconds, "us_per_photo": 1e6 * seconds / size, "placed_by_context": placed})
    return rows


def _worker(model: Path, folder: Path, context: bool, runtime: str | None) -> dict[str, Any]:
    command = [sys.executable, "-m", "src.bench.tagger_worker", str(model), str(folder)] + (["--context"] if context else [])
    if runtime:
        command += ["--runtime", runtime]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode != 0:
        raise RuntimeError(f"tagger_worker failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def context_cost(model: Path, folder: Path, repeats: int, runtime: str | None = None) -> dict[str, Any]:
    """Tag ``folder`` with and without the library context, alternating which goes first, ``repeats`` rounds;
    median seconds and peak memory of each, the cost in %, and the extra peak memory per photo."""
    runs: dict[str, list[dict[str, Any]]] = {"without": [], "with": []}
    for round_ in range(max(1, repeats)):
        order = ("without", "with") if round_ % 2 == 0 else ("with", "without")
        for kind in order:
            runs[kind].append(_worker(model, folder, kind == "with", runtime))
    summary = {kind: {"seconds": statistics.median(r["seconds"] for r in rows), "peak_mb": statistics.median(r["peak_mb"] for r in rows),
                      "peak_before_mb": statistics.median(r["peak_before_mb"] for r in rows), "sources": rows[-1]["sources"],
                      "statuses": rows[-1]["statuses"], "photos": rows[-1]["photos"]} for kind, rows in runs.items()}
    photos = summary["with"]["photos"]
    extra_mb = summary["with"]["peak_mb"] - summary["without"]["peak_mb"]
    return {
        **summary, "repeats": max(1, repeats), "runs": runs,
        "cost_percent": 100.0 * (summary["with"]["seconds"] / summary["without"]["seconds"] - 1.0),
        "extra_peak_mb": extra_mb, "extra_bytes_per_photo": extra_mb * 1e6 / photos if photos else None,
    }
