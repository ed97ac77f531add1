"""`python -m src.trips build`: the simulated libraries of one half, each from a trip template."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from src.trips.itinerary import simulate
from src.trips.library import write_library
from src.trips.pools import SHARED_DEFAULT, load_pools
from src.trips.templates import TRIPS
from src.trips.truth import label_truth

__all__ = ["BuildConfig", "build_libraries"]


@dataclass(frozen=True)
class BuildConfig:
    out_dir: Path
    half: str
    seed: int = 0
    libraries: int = 5
    shared: Path = SHARED_DEFAULT


def build_libraries(config: BuildConfig) -> list[dict]:
    """Build `config.libraries` libraries under `out_dir` (one folder each) and return a summary per library."""
    if config.libraries < 1:
        raise ValueError("--libraries must be at least 1")
    pools = load_pools(config.half, config.shared)
    summaries = []
    for index in range(config.libraries):
        trip = TRIPS[index % len(TRIPS)]
        seed = config.seed * 1000 + index * 7 + (0 if config.half == "a" else 500)  # the halves play different days
        simulation = simulate(trip, pools, seed)
        gps_devices = {device.key for device in trip.devices if device.gps}
        label_truth(simulation.photos, simulation.tracks, simulation.trajectories, gps_devices)
        folder = Path(config.out_dir) / f"{index + 1:02d}_{trip.name}"
        write_library(simulation, folder, config.shared)
        photos = simulation.photos
        summary = {
            "library": folder.name, "trip": trip.name, "seed": seed, "half": config.half, "photos": len(photos),
            "with_gps": sum(p.has_gps for p in photos), "placeable": sum(p.placeable for p in photos),
            "traps": sum(bool(p.trap) for p in photos), "tracks": len(simulation.tracks),
            "situations": dict(Counter(p.situation for p in photos)),
        }
        (folder / "build.json").write_text(json.dumps(summary, indent=1))
        summaries.append(summary)
    return summaries
