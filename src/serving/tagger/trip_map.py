"""`python -m src tag ... --map trip.png`: the run on one picture, because people would rather look than read.

Positions coloured by what placed them (the photo's own GPS, a track, the photos around it, a landmark), the
tracks as lines, each placed photo's radius as a circle. A conflict has no position (that is the point), so
the legend counts the conflicts and the photos left without a position. Offline: plain axes, no tiles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from src.serving.locate.tracks import Track
from src.serving.tagger.tag_report import TagRow

__all__ = ["draw_trip"]

STYLE = {  # source -> (colour, marker, label)
    "gps": ("#7f7f7f", ".", "own GPS (unchanged)"),
    "track": ("#1f77b4", "o", "placed by a track"),
    "time": ("#2ca02c", "o", "placed by the photos around it"),
    "landmark": ("#d62728", "*", "placed by its landmark"),
    "visual": ("#9467bd", "D", "placed by a look-alike GPS photo"),
}


def draw_trip(rows: Sequence[TagRow], tracks: Sequence[Track], path: str | Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 7))
    for track in tracks:
        axes.plot(track.longitudes, track.latitudes, color="#aec7e8", linewidth=1, zorder=1)
    if tracks:
        axes.plot([], [], color="#aec7e8", label=f"tracks ({len(tracks)})")
    for source, (colour, marker, label) in STYLE.items():
        chosen = [r for r in rows if r.source == source and r.latitude is not None]
        if not chosen:
            continue
        axes.scatter([r.longitude for r in chosen], [r.latitude for r in chosen], c=colour, marker=marker,
                     s=60 if marker == "*" else 18, label=f"{label} ({len(chosen)})", zorder=3, edgecolors="none")
        for row in chosen:
            if row.radius_m:
                _circle(axes, row.latitude, row.longitude, row.radius_m, colour)
    conflicts = sum(r.source == "conflict" for r in rows)
    unplaced = sum(r.latitude is None and r.status not in ("error",) for r in rows)
    axes.plot([], [], " ", label=f"conflicting evidence, not placed ({conflicts})")
    axes.plot([], [], " ", label=f"no position ({unplaced}, conflicts included)")
    axes.set_xlabel("longitude")
    axes.set_ylabel("latitude")
    axes.set_title(title or f"{len(rows)} photos: where each was placed, and by what")
    axes.legend(loc="best", fontsize=8)
    axes.grid(True, alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


def _circle(axes, latitude: float, longitude: float, radius_m: float, colour: str) -> None:
    """The radius as an ellipse in degrees (longitude degrees shrink with the latitude's cosine)."""
    from matplotlib.patches import Ellipse

    height = 2 * radius_m / 111_195
    width = height / max(math.cos(math.radians(latitude)), 0.01)
    axes.add_patch(Ellipse((longitude, latitude), width, height, fill=False, edgecolor=colour, alpha=0.3, linewidth=0.6, zorder=2))
