"""GPS tracks (src.serving.locate.tracks): speed of the lookup and of reading big files, and whether
the stated radius holds on the project's simulated trips.

    .venv/bin/python -m scripts.tracks_check [--photos 10000] [--fixes 100000] [--big-points 300000] [--no-simulator]

Prints: positions_at for N photo times against one M-point track (CPU milliseconds, median of 5; the
numpy part alone), reading a generated GPX and a generated Records.json of --big-points points
(seconds, peak memory of a child process), and, where ../shared is present, the src.trips simulator's
GPX logs read back and asked at every photo time of their person: share placed, radius held against
the person's trajectory (where the logger was) and against the photo's own spot.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from src.serving.locate.geo import distance_m
from src.serving.locate.tracks import Track, TrackLimits, _answers_for, positions_at, read_tracks


def lookup_speed(photos: int, fixes: int) -> str:
    rng = np.random.default_rng(0)
    times = 1.7e9 + np.cumsum(rng.uniform(1, 20, fixes))
    track = Track("bench", times, 48 + np.cumsum(rng.normal(0, 1e-5, fixes)), 2 + np.cumsum(rng.normal(0, 1e-5, fixes)), None)
    asked = rng.uniform(times[0] - 600, times[-1] + 600, photos)
    positions_at([track], asked)  # warm-up
    whole, core = [], []
    for _ in range(5):
        start = time.process_time()
        answers = positions_at([track], asked)
        whole.append(time.process_time() - start)
        start = time.process_time()
        _answers_for(track, asked, TrackLimits())
        core.append(time.process_time() - start)
    placed = sum(a is not None for a in answers)
    return (f"positions_at: {photos:,} times x {fixes:,}-point track: {1000 * statistics.median(whole):.1f} ms CPU "
            f"({1000 * statistics.median(core):.1f} ms of it the numpy lookup, the rest building the answers); {placed:,} placed")


def _write_big_gpx(path: Path, points: int) -> None:
    with open(path, "w") as handle:
        handle.write('<?xml version="1.0"?>\n<gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>\n')
        for i in range(points):
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1.6e9 + i))
            handle.write(f'<trkpt lat="{45 + i * 1e-6:.6f}" lon="{7 + i * 1e-6:.6f}"><ele>100</ele><time>{stamp}</time></trkpt>\n')
        handle.write("</trkseg></trk></gpx>\n")


def _write_big_records(path: Path, points: int) -> None:
    with open(path, "w") as handle:
        handle.write('{"locations": [\n')
        for i in range(points):
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(1.6e9 + i))
            entry = {"latitudeE7": 480000000 + i, "longitudeE7": 20000000 + i, "accuracy": 15, "deviceTag": 1, "timestamp": stamp}
            handle.write(json.dumps(entry) + (",\n" if i < points - 1 else "\n"))
        handle.write("]}\n")


_CHILD = """
import resource, sys, time
from src.serving.locate.tracks import read_track
start = time.perf_counter(); read = read_track(sys.argv[1]); seconds = time.perf_counter() - start
print(sum(len(t) for t in read.tracks), seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, read.problems)
"""


def reading_speed(points: int) -> list[str]:
    lines = []
    with tempfile.TemporaryDirectory() as folder:
        for name, writer in (("big.gpx", _write_big_gpx), ("Records.json", _write_big_records)):
            path = Path(folder) / name
            writer(path, points)
            out = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, check=True,
                                 cwd=Path(__file__).resolve().parents[1]).stdout.split(maxsplit=3)
            lines.append(f"read_track {name}: {path.stat().st_size / 2**20:.0f} MB, {int(out[0]):,} fixes in "
                         f"{float(out[1]):.1f} s, peak memory {float(out[2]):.0f} MB (the whole process), problems {out[3].strip()}")
    return lines


def simulator_radius() -> str:
    from src.trips.itinerary import simulate
    from src.trips.library import _write_gpx
    from src.trips.pools import load_pools
    from src.trips.templates import TRIPS

    pools = load_pools("a")
    asked = placed = held_trajectory = held_photo = 0
    with tempfile.TemporaryDirectory() as folder:
        for number, trip in enumerate(TRIPS):
            for seed in (1, 2, 3):
                simulation = simulate(trip, pools, seed)
                for person in sorted({t.person for t in simulation.tracks}):
                    files = []
                    for track in simulation.tracks:
                        if track.person == person:
                            files.append(Path(folder) / f"{number}_{seed}_{track.name}")
                            _write_gpx(track, files[-1])
                    photos = [p for p in simulation.photos if p.person == person]
                    answers = positions_at(read_tracks(files).tracks, np.array([p.utc for p in photos]))
                    for photo, fix in zip(photos, answers):
                        asked += 1
                        if fix is None:
                            continue
                        placed += 1
                        lat, lon = simulation.trajectories[person].at(photo.utc)
                        held_trajectory += float(distance_m(fix.latitude, fix.longitude, lat, lon)) <= fix.radius_m
                        held_photo += float(distance_m(fix.latitude, fix.longitude, photo.lat, photo.lon)) <= fix.radius_m
    return (f"simulator (src.trips, 5 trips x 3 seeds): {asked} photos of people with a GPX log, {placed} placed by the tracks; "
            f"radius holds {100 * held_trajectory / max(placed, 1):.1f} % against the trajectory, "
            f"{100 * held_photo / max(placed, 1):.1f} % against the photo's own spot")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=10_000)
    parser.add_argument("--fixes", type=int, default=100_000)
    parser.add_argument("--big-points", type=int, default=300_000)
    parser.add_argument("--no-simulator", action="store_true")
    args = parser.parse_args()
    print(lookup_speed(args.photos, args.fixes))
    for line in reading_speed(args.big_points):
        print(line)
    shared = Path(__file__).resolve().parents[2] / "shared"
    if not args.no_simulator and (shared / "indian_monuments").is_dir():
        print(simulator_radius())


if __name__ == "__main__":
    main()
