"""Maps: where the landmarks a model knows are ("landmarks I know", a static world map drawn offline
from a coarse Natural Earth outline shipped in src/data/world_outline.json), and one recognised place
for the app: a small map drawn from the same outline, with a plain link to OpenStreetMap. Nothing here
makes the browser fetch anything: an embedded map or a probe tile would tell a map server which
landmark's area the visitor looks at, without the visitor asking, and show a broken frame offline.

    python -m src map --model checkpoints/transfer_exported.pt --out static_images/known_landmarks.png
"""

from __future__ import annotations

import argparse
import html
import io
import json
import math
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from src.data.landmarks import LandmarkInfo, display_name, lookup

if TYPE_CHECKING:  # matplotlib is imported where a figure is drawn: 40 % of an app kernel's warm-up otherwise
    from matplotlib.figure import Figure

WORLD_OUTLINE = Path(__file__).resolve().parents[2] / "data" / "world_outline.json"
SKETCH_SPAN_DEGREES = 9.0  # half the height of the offline map's box: the region around the landmark


@lru_cache(maxsize=1)
def world_polygons() -> list[list[tuple[float, float]]]:
    """Coarse land outlines as (longitude, latitude) rings."""
    return [[tuple(point) for point in ring] for ring in json.loads(WORLD_OUTLINE.read_text())["polygons"]]


def names_by_country(landmarks: Sequence[LandmarkInfo]) -> dict[str, list[str]]:
    """Landmark names grouped by country (else city, else "Elsewhere"), countries and names sorted."""
    groups: dict[str, list[str]] = {}
    for info in sorted(landmarks, key=lambda i: (i.country or i.city or "~", i.name)):
        groups.setdefault(info.country or info.city or "Elsewhere", []).append(info.name)
    return groups


def plot_known_landmarks(landmarks: Sequence[LandmarkInfo], title: Optional[str] = None, with_names: bool = True) -> Figure:
    """A world map with a dot per landmark that has coordinates, and beside it their names by
    country (names on the map itself would pile up where landmarks cluster: Delhi, Paris).
    with_names=False: the map alone (the app lists the names as text, readable at a phone's width)."""
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    placed = [info for info in landmarks if info.has_coordinates]
    figure = Figure(figsize=(13, 5.0) if with_names else (9.5, 4.2))
    grid = figure.add_gridspec(1, 2 if with_names else 1, width_ratios=(2.6, 1) if with_names else None)
    ax = figure.add_subplot(grid[0])
    ax.add_collection(PolyCollection(world_polygons(), facecolors="#e8e4d8", edgecolors="#b8b2a2", linewidths=0.4))
    ax.scatter([i.longitude for i in placed], [i.latitude for i in placed], s=30, color="#c62828", edgecolors="white", linewidths=0.6, zorder=3)
    ax.set_xlim(-180, 180)
    ax.set_ylim(-60, 85)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor("#f4f8fb")
    ax.set_title(title or f"Landmarks I know ({len(placed)})")
    if not with_names:
        figure.tight_layout()
        return figure
    lines = [line for country, names in names_by_country(placed).items() for line in [country, *(f"   {name}" for name in names)]]
    per_column = (len(lines) + 1) // 2
    text = figure.add_subplot(grid[1])
    text.axis("off")
    for column, start in enumerate((0, per_column)):
        text.text(0.55 * column, 1, "\n".join(lines[start : start + per_column]), va="top", ha="left", fontsize=6.5, linespacing=1.25, transform=text.transAxes)
    figure.tight_layout()
    return figure


def known_landmarks(class_names: Sequence[str], background: Sequence[str] = ()) -> list[LandmarkInfo]:
    """The model's landmark classes (its "no landmark" classes left out), with what is known about them."""
    return [lookup(name) for name in class_names if name not in set(background)]


def figure_png(figure: Figure, dpi: int = 110) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def offline_map_svg(info: LandmarkInfo, height: int = 200, span: float = SKETCH_SPAN_DEGREES) -> str:
    """The region around the landmark drawn without the internet (inline SVG): the coarse land outline
    and a dot on the landmark. Longitudes are shrunk by cos(latitude) so that shapes look right near
    the poles as at the equator; the box fills the width it is given. Empty without coordinates."""
    if not info.has_coordinates:
        return ""
    lat, lon = float(info.latitude), float(info.longitude)  # type: ignore[arg-type]
    shrink = max(0.2, math.cos(math.radians(lat)))
    half_width = 2.5 * span  # wide enough for a phone held either way; "slice" crops the sides that don't fit
    left, right, top, bottom = lon - half_width / shrink, lon + half_width / shrink, lat + span, lat - span

    def point(x: float, y: float) -> str:
        return f"{(x - lon) * shrink:.2f},{lat - y:.2f}"  # SVG's y grows downwards

    shapes = [
        "<polygon points=\"" + " ".join(point(x, y) for x, y in ring) + "\"/>"
        for ring in world_polygons()
        if min(x for x, _ in ring) < right and max(x for x, _ in ring) > left and min(y for _, y in ring) < top and max(y for _, y in ring) > bottom
    ]
    name = html.escape(info.name)
    box = f"{-half_width:.2f} {-span:.2f} {2 * half_width:.2f} {2 * span:.2f}"
    return (
        f'<svg class="lt-offline-map" role="img" aria-label="{name} on a map drawn offline" viewBox="{box}" width="100%" height="{height}" '
        'preserveAspectRatio="xMidYMid slice" style="display:block; box-sizing:border-box; background:#f4f8fb; border:1px solid #ccc; border-radius:4px">'
        f'<g fill="#e8e4d8" stroke="#b8b2a2" stroke-width="0.08">{"".join(shapes)}</g>'
        f'<circle cx="0" cy="0" r="{span / 22:.2f}" fill="#c62828" stroke="white" stroke-width="{span / 90:.2f}"><title>{name}</title></circle>'
        "</svg>"
    )


def answer_map_html(info: LandmarkInfo, height: int = 200) -> str:
    """The map in an answer: the region drawn here (`offline_map_svg`); the card's plain link
    (`LandmarkInfo.map_url`) opens the streets, only if the user clicks it. The page itself loads nothing
    from outside: no frame, no tile. Empty for a landmark without coordinates."""
    if not info.has_coordinates:
        return ""
    return (
        f'<div class="lt-offline">{offline_map_svg(info, height)}'
        '<div style="font-size:0.85em; color:#666">Drawn offline: open the map link for streets.</div></div>'
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src map", description="Draw the landmarks a model knows on a world map (PNG).")
    parser.add_argument("--model", type=Path, default=None, help="exported model (default: $LANDMARK_MODEL or the shipped one)")
    parser.add_argument("--out", type=Path, default=None,
                        help="PNG to write (default: $LANDMARK_HOME/known_landmarks.png; the README's picture: static_images/known_landmarks.png)")
    args = parser.parse_args(argv)
    from src.home import user_output

    args.out = args.out or user_output("known_landmarks.png")  # a user's run never overwrites the picture that ships
    from src.export import load_exported
    from src.serving.recognizer.recognize import default_model_path

    model = args.model or default_model_path()
    _, metadata = load_exported(model, optimize=False)
    infos = known_landmarks(metadata["class_names"], metadata.get("background_classes", []))
    missing = [display_name(i.class_name) for i in infos if not i.has_coordinates]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(figure_png(plot_known_landmarks(infos)))
    print(f"wrote {args.out}: {len(infos) - len(missing)} landmarks placed" + (f"; no coordinates for {', '.join(missing)}" if missing else ""))
    return 0
