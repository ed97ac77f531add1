"""Landmark metadata shared by the app, the HTTP service and the batch tagger.

`landmarks.json` (next to this module) holds one entry per class folder name (`NN.Name`) of the
50-landmark set and of the 24-class Indian monuments set: a display name, where it is, its
coordinates and hashtag-ready tags. `lookup()` never fails: a class that the file does not know
(a custom data set, a renumbered folder) still gets a readable name and tags made from its name.

This is a leaf module: it imports nothing from the rest of the package.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

__all__ = [
    "DEFAULT_PATH",
    "LandmarkInfo",
    "display_name",
    "is_no_position",
    "load_landmarks",
    "lookup",
]

log = logging.getLogger(__name__)

DEFAULT_PATH = Path(__file__).with_name("landmarks.json")

MAP_ZOOM = 15

_PREFIX = re.compile(r"^\s*\d+\s*\.\s*")
_NOT_WORD = re.compile(r"[^\w]+", re.UNICODE)


def display_name(class_name: str) -> str:
    """A class folder name made readable: ``"16.Eiffel_Tower"`` -> ``"Eiffel Tower"``.

    A leading ``NN.`` number prefix is dropped, underscores become spaces and runs of spaces are
    collapsed. Names without a prefix are only cleaned up.
    """
    name = _PREFIX.sub("", str(class_name or ""), count=1)
    return " ".join(name.replace("_", " ").split())


def _camel(text: str) -> str:
    """``"Humayun's tomb"`` -> ``"HumayunsTomb"``: hashtag-ready (letters, digits, underscores)."""
    text = text.replace("'", "").replace("\u2019", "")
    words = [w for w in _NOT_WORD.split(text.replace("_", " ")) if w]
    return "".join(w[0].upper() + w[1:] for w in words)


def _fmt_coord(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")


def is_no_position(latitude: Optional[float], longitude: Optional[float]) -> bool:
    """A missing coordinate, or exactly (0, 0): the point in the Gulf of Guinea that a form or a store
    left at its default gives; no landmark stands there, so it means "no position", never a place."""
    return latitude is None or longitude is None or (latitude == 0 and longitude == 0)


@dataclass(frozen=True)
class LandmarkInfo:
    """What is known about one landmark class. A landmark without a position (`is_no_position`: none given,
    or exactly 0, 0) holds None for both coordinates, so no door can show, place or write one."""

    class_name: str
    name: str
    city: str = ""
    region: str = ""
    country: str = ""
    latitude: Optional[float] = None
    longitude: Optional[float] = None
    tags: tuple[str, ...] = field(default_factory=tuple)
    wikipedia: str = ""  # the landmark's Wikipedia article, when known

    def __post_init__(self) -> None:
        if is_no_position(self.latitude, self.longitude):
            object.__setattr__(self, "latitude", None)
            object.__setattr__(self, "longitude", None)

    @property
    def has_coordinates(self) -> bool:
        return not is_no_position(self.latitude, self.longitude)

    @property
    def location(self) -> str:
        """``"Agra, Uttar Pradesh, India"``; empty parts (and repeats) are left out."""
        parts: list[str] = []
        for part in (self.city, self.region, self.country):
            part = (part or "").strip()
            if part and part not in parts:
                parts.append(part)
        return ", ".join(parts)

    @property
    def map_url(self) -> Optional[str]:
        """An OpenStreetMap link with a marker on the landmark, or None without coordinates."""
        if not self.has_coordinates:
            return None
        lat, lon = _fmt_coord(self.latitude), _fmt_coord(self.longitude)
        return f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map={MAP_ZOOM}/{lat}/{lon}"

    @property
    def hashtags(self) -> list[str]:
        """The tags as hashtags (``"#TajMahal"``), without spaces or punctuation, no duplicates."""
        out: list[str] = []
        seen: set[str] = set()
        for tag in self.tags:
            word = _camel(str(tag).lstrip("#"))
            if word and word.lower() not in seen:
                seen.add(word.lower())
                out.append("#" + word)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the fields plus `location`, `map_url` and `hashtags`."""
        return {
            "class_name": self.class_name,
            "name": self.name,
            "city": self.city,
            "region": self.region,
            "country": self.country,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "tags": list(self.tags),
            "location": self.location,
            "map_url": self.map_url,
            "hashtags": self.hashtags,
            "wikipedia": self.wikipedia or None,
        }


def _coord(value: Any, limit: float) -> Optional[float]:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number != number or abs(number) > limit:  # NaN or out of range
        return None
    return number


def _entry(class_name: str, raw: Mapping[str, Any]) -> LandmarkInfo:
    if not isinstance(raw, Mapping):
        raise ValueError(f"landmark entry {class_name!r} is not an object")
    lat = _coord(raw.get("latitude"), 90.0)
    lon = _coord(raw.get("longitude"), 180.0)
    if lat is None or lon is None:
        lat = lon = None
    tags = raw.get("tags") or ()
    if isinstance(tags, str):
        tags = tags.split()
    return LandmarkInfo(
        class_name=class_name,
        name=str(raw.get("name") or display_name(class_name)),
        city=str(raw.get("city") or ""),
        region=str(raw.get("region") or ""),
        country=str(raw.get("country") or ""),
        latitude=lat,
        longitude=lon,
        tags=tuple(str(t).lstrip("#") for t in tags if str(t).strip("# ")),
        wikipedia=str(raw.get("wikipedia") or ""),
    )


def _parse(path: Path) -> dict[str, LandmarkInfo]:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a JSON object keyed by class folder name")
    return {str(key): _entry(str(key), value) for key, value in data.items()}


@lru_cache(maxsize=1)
def _default_landmarks() -> dict[str, LandmarkInfo]:
    return _parse(DEFAULT_PATH)


def load_landmarks(path: Optional[Path] = None) -> dict[str, LandmarkInfo]:
    """Class folder name -> LandmarkInfo, from `path` or the shipped `landmarks.json` (cached)."""
    if path is None:
        return dict(_default_landmarks())
    return _parse(Path(path))


def _key(class_name: str) -> str:
    """Name without its number prefix, for matching across renumbered folders."""
    return display_name(class_name).replace(" ", "_").casefold()


@lru_cache(maxsize=1)
def _default_tables() -> tuple[dict[str, LandmarkInfo], dict[str, LandmarkInfo]]:
    """The shipped table and its prefix-free index; empty (with one warning) if the file is broken."""
    try:
        table = _default_landmarks()
    except (OSError, ValueError) as exc:
        log.warning("landmark metadata unavailable (%s): %s", DEFAULT_PATH, exc)
        table = {}
    return table, _index(table)


def _index(landmarks: Mapping[str, LandmarkInfo]) -> dict[str, LandmarkInfo]:
    index: dict[str, LandmarkInfo] = {}
    for class_name, info in landmarks.items():
        index.setdefault(_key(class_name), info)
    return index


def lookup(class_name: str, landmarks: Optional[Mapping[str, LandmarkInfo]] = None) -> LandmarkInfo:
    """What is known about `class_name`; never raises.

    Exact folder name first, then the name without its number prefix (``"22.Taj_Mahal"`` finds
    ``"21.Taj_Mahal"``; case and spaces vs underscores do not matter). An unknown class gets
    ``name=display_name(class_name)``, no location and tags made from its name.
    `landmarks` defaults to the shipped file.
    """
    class_name = "" if class_name is None else str(class_name)
    if landmarks is None:
        table, index = _default_tables()
    else:
        table, index = landmarks, _index(landmarks)
    info = table.get(class_name)
    if info is not None:
        return info
    info = index.get(_key(class_name))
    if info is not None:
        return replace(info, class_name=class_name)
    name = display_name(class_name)
    tag = _camel(name)
    return LandmarkInfo(class_name=class_name, name=name, tags=(tag,) if tag else ())


SITE_RADIUS_KM = 1.0  # landmarks closer than this are one place: a photo of one often shows the other


def distance_km(a: LandmarkInfo, b: LandmarkInfo) -> float:
    """Great-circle distance between two landmarks with coordinates (haversine, mean Earth radius)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a.latitude, a.longitude, b.latitude, b.longitude))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def sites(class_names: Sequence[str], radius_km: float = SITE_RADIUS_KM) -> list[list[int]]:
    """The classes grouped into places: landmarks within `radius_km` of each other, directly or
    through others (the Qutub Minar, the Iron Pillar beside it and Alai Darwaza are one site).
    A class without coordinates is a site of its own. Sorted by first class index."""
    infos = [lookup(name) for name in class_names]
    site_of = list(range(len(infos)))

    def root(i: int) -> int:
        while site_of[i] != i:
            i = site_of[i]
        return i

    for i, j in itertools.combinations(range(len(infos)), 2):
        a, b = infos[i], infos[j]
        if a.has_coordinates and b.has_coordinates and distance_km(a, b) <= radius_km:
            site_of[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(infos)):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values())
