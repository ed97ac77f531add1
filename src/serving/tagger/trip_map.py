"""`python -m src tag ... --map trip.png`: the run on one picture, because people would rather look than read.

Positions coloured by what placed them (the photo's own GPS, a track, the photos around it, a landmark), the
tracks as lines, each placed photo's radius as a circle. A trip spans continents while a day spans a few
kilometres, so beside the whole run the busiest areas (50 km across) get a panel of their own. A conflict
has no position (that is the point): the title counts the conflicts and the photos left without a position.
Offline: plain longitude/latitude axes, no tiles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from src.serving.locate.geo import distance_m
from src.serving.locate.tracks import Track
from src.serving.tagger.tag_report import TagRow

__all__ = ["draw_trip"]

STYLE = {  # source -> (colour, marker, label)
    "gps": ("#9e9e9e", ".", "own GPS (unchanged)"),
    "track": ("#1f77b4", "o", "placed by a track"),
    "time": ("#2ca02c", "o", "placed by the photos around it"),
    "landmark": ("#d62728", "*", "placed by its landmark"),
    "visual": ("#9467bd", "D", "placed by a look-alike GPS photo"),
}
AREA_M = 25_000.0  # photos within this of an area's first photo are drawn in its panel
AREAS = 3


def draw_trip(rows: Sequence[TagRow], tracks: Sequence[Track], path: str | Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    placed = [r for r in rows if r.latitude is not None and r.source in STYLE]
    areas = _areas(placed)[:AREAS]
    figure, axes = plt.subplots(1, 1 + len(areas), figsize=(6 + 4.5 * len(areas), 6), squeeze=False)
    _panel(axes[0][0], placed, tracks, "the whole run", legend=True)
    for index, (area, members) in enumerate(areas, start=1):
        _panel(axes[0][index], members, tracks, f"area {index}: {len(members)} photos", circles=True, bounds=_bounds(members))
    conflicts = sum(r.source == "conflict" for r in rows)
    unplaced = sum(r.latitude is None and r.status != "error" for r in rows)
    figure.suptitle(title or f"{len(rows)} photos: where each was placed, and by what ({conflicts} conflicts and "
                              f"{unplaced} photos without a position are not drawn)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path


def _panel(axes, rows: Sequence[TagRow], tracks: Sequence[Track], title: str, *, legend: bool = False, circles: bool = False,
           bounds: tuple[float, float, float, float] | None = None) -> None:
    for track in tracks:
        axes.plot(track.longitudes, track.latitudes, color="#aec7e8", linewidth=1, zorder=1)
    if tracks and legend:
        axes.plot([], [], color="#aec7e8", label=f"tracks ({len(tracks)})")
    for source, (colour, marker, label) in STYLE.items():
        chosen = [r for r in rows if r.source == source]
        if not chosen:
            continue
        axes.scatter([r.longitude for r in chosen], [r.latitude for r in chosen], c=colour, marker=marker,
                     s=70 if marker == "*" else 16, label=f"{label} ({len(chosen)})", zorder=3, edgecolors="none")
        if circles:
            for row in chosen:
                if row.radius_m:
                    _circle(axes, row.latitude, row.longitude, row.radius_m, colour)
    if bounds is not None:
        west, east, south, north = bounds
        axes.set_xlim(west, east)
        axes.set_ylim(south, north)
    axes.set_aspect(1 / max(math.cos(math.radians(np.mean(axes.get_ylim()))), 0.05))
    axes.set_title(title, fontsize=10)
    axes.set_xlabel("longitude")
    axes.set_ylabel("latitude")
    axes.grid(True, alpha=0.3)
    if legend:
        axes.legend(loc="best", fontsize=8)


def _areas(rows: Sequence[TagRow]) -> list[tuple[int, list[TagRow]]]:
    """Groups of placed photos, each within AREA_M of its first photo, busiest first."""
    groups: list[list[TagRow]] = []
    for row in rows:
        for group in groups:
            if float(distance_m(group[0].latitude, group[0].longitude, row.latitude, row.longitude)) <= AREA_M:
                group.append(row)
                break
        else:
            groups.append([row])
    groups.sort(key=len, reverse=True)
    return [(index, group) for index, group in enumerate(groups) if len(group) > 1] if len(groups) > 1 else []


def _bounds(rows: Sequence[TagRow]) -> tuple[float, float, float, float]:
    lats = [r.latitude for r in rows]
    lons = [r.longitude for r in rows]
    pad_lat = max(0.005, (max(lats) - min(lats)) * 0.15)
    pad_lon = max(0.005, (max(lons) - min(lons)) * 0.15)
    return min(lons) - pad_lon, max(lons) + pad_lon, min(lats) - pad_lat, max(lats) + pad_lat


def _circle(axes, latitude: float, longitude: float, radius_m: float, colour: str) -> None:
    """The radius as an ellipse in degrees (longitude degrees shrink with the latitude's cosine)."""
    from matplotlib.patches import Ellipse

    height = 2 * radius_m / 111_195
    width = height / max(math.cos(math.radians(latitude)), 0.01)
    axes.add_patch(Ellipse((longitude, latitude), width, height, fill=False, edgecolor=colour, alpha=0.25, linewidth=0.6, zorder=2))
