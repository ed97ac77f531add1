"""The evaluation's markdown tables and its JSON run record (the conventions of `src.runs`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from src.runs import command_line, portable, run_id, write_json_atomically
from src.machine import machine_info
from src.trips.score import FAR_KM, NEAR_KM, POOLED, Score
from src.trips.truth import NEIGHBOUR_S, STAY_M, TIE_MOMENTS, TRACK_GAP_S

__all__ = ["markdown", "run_record", "library_builds"]

HEADER = ("photos without GPS", "placeable", "within 1 km", "1–25 km", "over 25 km", "over 25 km, of all without GPS",
          "traps placed", "radius holds", "GPS photos untouched")


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _cells(score: Score) -> list[str]:
    shares = score.shares()
    radius = f"{_percent(shares['radius_holds'])} of {score.with_radius}" if score.with_radius else "no radius"
    return [str(score.without_gps), str(score.placeable), _percent(shares["within_1km"]), _percent(shares["within_25km"]),
            _percent(shares["over_25km"]), _percent(shares["over_25km_of_all"]), f"{score.traps_placed} of {score.traps}", radius,
            _percent(shares["gps_untouched"])]


def _table(first: str, rows: Sequence[tuple[str, Score]]) -> list[str]:
    lines = [f"| {first} | " + " | ".join(HEADER) + " |", "|---" * (len(HEADER) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(_cells(score)) + " |" for label, score in rows]
    return lines


def markdown(scores: Mapping[str, Mapping[str, Score]], title: str = "") -> str:
    """The methods side by side (pooled), then one block per method with a row per situation."""
    lines = [f"**{title}**", ""] if title else []
    lines += _table("method (pooled)", [(method, by_situation[POOLED]) for method, by_situation in scores.items()])
    for method, by_situation in scores.items():
        lines += ["", f"*{method}*, per situation:", ""]
        lines += _table("situation", [(name, s) for name, s in by_situation.items() if name != POOLED] + [("**pooled**", by_situation[POOLED])])
    return "\n".join(lines) + "\n"


def library_builds(libraries: Sequence[Path]) -> list[dict]:
    """What `build` wrote about each library (its build.json), for the record."""
    builds = []
    for library in map(Path, libraries):
        path = library / "build.json"
        builds.append(json.loads(path.read_text()) if path.is_file() else {"library": library.name})
    return builds


def run_record(scores: Mapping[str, Mapping[str, Score]], details: Mapping, libraries: Sequence[Path]) -> dict:
    """A run record as `src.runs.save_run` writes them: kind, recipe, data, machine, command, date, metrics."""
    import datetime as dt

    builds = library_builds(libraries)
    halves = sorted({b.get("half", "?") for b in builds})
    return portable({
        "kind": "trips",  # its own kind: not one of the tables docs/experiments.md generates
        "recipe_name": "trips-" + "".join(halves),
        "recipe": {"methods": list(scores), "modes": details.get("modes", {}),
                   "placeable": {"track_gap_s": TRACK_GAP_S, "neighbour_s": NEIGHBOUR_S, "stay_m": STAY_M, "tie_moments": TIE_MOMENTS},
                   "buckets_km": [NEAR_KM, FAR_KM]},
        "data": {"libraries": [str(Path(p).resolve()) for p in libraries], "halves": halves,
                 "seeds": [b.get("seed") for b in builds], "builds": builds},
        "machine": machine_info(),
        "command": command_line(),
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "metrics": {"seconds": details.get("seconds", {}),
                    "scores": {method: {name: s.to_dict() for name, s in by.items()} for method, by in scores.items()}},
    })


def write_record(record: dict, path: Path) -> Path:
    """Write the record to `path`, or into the folder `path` as `<recipe_name>-<hash>.json` (`src.runs.run_id`)."""
    path = Path(path)
    if path.is_dir():
        path = path / f"{run_id(record['recipe_name'], record['recipe'], record['data'], record['machine'])}.json"
    return write_json_atomically(path, record)
