"""Write one photo's place (GPS, caption, keywords, city/region/country) given its path and a LandmarkInfo.

The one safe writer the batch tagger (and any other engine that tags photos) calls:

* into a copy (``destination``) or in place (``destination`` = the photo): EXIF + XMP, atomically,
  via `src.serving.metadata.exif.write_location`;
* ``sidecar=True``: ``photo.jpg.xmp`` next to the photo (or next to ``destination``), the
  darktable/digiKam convention; the photo itself is never opened for writing. An existing sidecar
  is updated: its other properties are kept.

`write_position` writes a position that came from no landmark (time neighbours, a track): its place is
named by an offline reverse geocoder (`reverse_geocode`, GeoNames cities of 1000+ people). Both writers
record a position's radius (GPSHPositioningError) and what placed it (the caption and a keyword such as
``geotag:time``) when given.

The photo's own GPS wins in both modes: ExistingGPSError unless ``overwrite=True``. Writers of one
photo take turns (`src.serving.metadata.safe_write.file_lock`) and each checks under the lock, so two taggers
running at once never both write the same photo.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from src.data.images import BadImageError
from src.data.landmarks import LandmarkInfo
from src.serving.metadata.exif import ExistingGPSError, read_gps, write_location
from src.serving.metadata.safe_write import file_lock, write_atomically
from src.serving.locate.geo import distance_m
from src.serving.metadata.xmp import Place, build_packet, read_xmp, xmp_coordinate

__all__ = ["SOURCE_DESCRIPTIONS", "describe_source", "nearest_place", "place_at", "place_of", "sidecar_path", "with_provenance",
           "write_landmark", "write_position", "write_sidecar"]

# What the report's `source` codes (src.serving.tagger.tag_report.SOURCES) mean, in a caption.
SOURCE_DESCRIPTIONS = {
    "gps": "the camera's GPS",
    "track": "a GPS track",
    "time": "time neighbours (GPS photos taken shortly before and after)",
    "landmark": "the landmark in the photo",
    "visual": "a nearly identical photo with GPS",
}
# A reverse-geocoded town further than this is not where the photo was taken (open sea, desert, ice).
MAX_PLACE_NAME_KM = 50.0


def place_of(info: LandmarkInfo) -> Place:
    """What is written for a landmark: its position, "Name, City, Region, Country", and its hashtags."""
    if not info.has_coordinates:
        raise ValueError(f"no coordinates are known for {info.name}")
    description = ", ".join(part for part in (info.name, info.location) if part)
    keywords = [tag.lstrip("#") for tag in info.hashtags]
    return Place(info.latitude, info.longitude, description, keywords, info.city, info.region, info.country)


def describe_source(source: str) -> str:
    """"placed by: ..." for a source code ("time") or a free text ("time neighbours (phone photos 4 min before)")."""
    return "placed by: " + SOURCE_DESCRIPTIONS.get(source, source).removeprefix("placed by: ")


def source_keyword(source: str) -> str:
    """A keyword a photo manager can search: "geotag:time" (the code, or a free text's first word)."""
    words = "".join(c if c.isalnum() else " " for c in source.lower().removeprefix("placed by:")).split()
    return "geotag:" + (words[0] if words else "unknown")


def with_provenance(place: Place, radius_m: float | None, source: str | None) -> Place:
    """`place` with the radius and, in its caption and keywords, what placed it."""
    if not source:
        return replace(place, radius_m=radius_m)
    caption = "; ".join(part for part in (place.description, describe_source(source)) if part)
    keywords = [*(place.keywords or []), source_keyword(source)]
    return replace(place, description=caption, keywords=keywords, radius_m=radius_m)


def nearest_place(latitude: float, longitude: float) -> tuple[str, str, str]:
    """(city, region, country) of the nearest town of the offline GeoNames list; empty where the nearest
    is over MAX_PLACE_NAME_KM away (the reverse geocoder always answers, even from mid-ocean)."""
    import reverse_geocode  # its k-d tree loads in ~1 s: only when a position is written

    found = reverse_geocode.get((latitude, longitude))
    if float(distance_m(latitude, longitude, float(found["latitude"]), float(found["longitude"]))) > MAX_PLACE_NAME_KM * 1000:
        return "", "", ""
    return found.get("city") or "", found.get("state") or "", found.get("country") or ""


def place_at(latitude: float, longitude: float, radius_m: float | None = None, source: str | None = None) -> Place:
    """What is written for a position that came from no landmark: the town, region and country around it."""
    city, region, country = nearest_place(latitude, longitude)
    description = ", ".join(part for part in (city, region, country) if part) or None
    keywords = [word for word in (city, country) if word]
    return with_provenance(Place(latitude, longitude, description, keywords, city, region, country), radius_m, source)


def sidecar_path(photo: Path) -> Path:
    """``photo.jpg`` -> ``photo.jpg.xmp`` (the name darktable, digiKam and exiftool look for)."""
    return photo.with_name(photo.name + ".xmp")


def write_landmark(
    photo: str | Path,
    info: LandmarkInfo,
    *,
    destination: str | Path | None = None,
    sidecar: bool = False,
    overwrite: bool = False,
    radius_m: float | None = None,
    source: str | None = None,
) -> Path:
    """Tag one photo with the landmark's place; returns the file written (the photo, its copy or the sidecar).
    radius_m, source: the position's radius and what placed it (`with_provenance`); None: not written.

    destination: None tags in place (or puts the sidecar next to the photo); else a copy is written
    there (with ``sidecar=True``: the sidecar goes next to ``destination``, no copy of the photo).
    Raises what `write_location` / `write_sidecar` raise (ValueError family, OSError).
    """
    return _write_place(Path(photo), with_provenance(place_of(info), radius_m, source), destination, sidecar, overwrite)


def write_position(
    photo: str | Path,
    latitude: float,
    longitude: float,
    radius_m: float | None = None,
    source: str | None = None,
    *,
    destination: str | Path | None = None,
    sidecar: bool = False,
    overwrite: bool = False,
) -> Path:
    """Tag one photo with a position that came from no landmark (a track, the photos taken around it): GPS,
    radius, the town/region/country an offline reverse geocoder finds there, and what placed it
    (source: a code of the report's `source` column, e.g. "time", or a sentence). As `write_landmark` otherwise."""
    return _write_place(Path(photo), place_at(latitude, longitude, radius_m, source), destination, sidecar, overwrite)


def _write_place(photo: Path, place: Place, destination: str | Path | None, sidecar: bool, overwrite: bool) -> Path:
    target = Path(destination) if destination is not None else photo
    # One writer per photo at a time; each re-reads the photo under the lock, so of two concurrent runs
    # one writes and the other finds the position (ExistingGPSError: "already tagged").
    with file_lock(photo):
        if sidecar:
            return write_sidecar(photo, sidecar_path(target), place, overwrite=overwrite)
        return write_location(
            photo, target, place.latitude, place.longitude, place.description, place.keywords,
            overwrite=overwrite, city=place.city, region=place.region, country=place.country, radius_m=place.radius_m,
        )


def write_sidecar(photo: Path, sidecar: Path, place: Place, *, overwrite: bool = False) -> Path:
    """Write (or update) the XMP sidecar of ``photo`` atomically; the photo is only read."""
    location = read_gps(photo)  # also: it must be a readable photo, or no sidecar is written
    if location is None and sidecar.exists():
        location = _sidecar_gps(sidecar)
    if location is not None and not overwrite:
        raise ExistingGPSError(photo, location)
    existing = sidecar.read_text(encoding="utf-8") if sidecar.is_file() else None
    packet = build_packet(place, existing)
    written = read_xmp(packet.encode("utf-8"))
    if written.get("Xmp.exif.GPSLatitude") != xmp_coordinate(place.latitude, "N", "S"):
        raise RuntimeError("internal error: the sidecar's GPS did not read back")
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(sidecar, packet.encode("utf-8"), mode_source=photo)


def _sidecar_gps(sidecar: Path) -> tuple[float, float] | None:
    """The position an existing sidecar already holds (it counts as the photo's own metadata)."""
    try:
        values = read_xmp(sidecar)
    except BadImageError:
        return None
    latitude, longitude = values.get("Xmp.exif.GPSLatitude"), values.get("Xmp.exif.GPSLongitude")
    if not isinstance(latitude, str) or not isinstance(longitude, str):
        return None
    try:
        return _from_xmp(latitude), _from_xmp(longitude)
    except ValueError:
        return None


def _from_xmp(text: str) -> float:
    """``"DDD,MM.mmmK"`` or ``"DDD,MM,SSK"`` -> signed degrees (ValueError when garbled)."""
    text = text.strip()
    sign = {"N": 1, "E": 1, "S": -1, "W": -1}.get(text[-1:].upper())
    if sign is None:
        raise ValueError(text)
    parts = [float(part) for part in text[:-1].split(",")]
    return sign * sum(part / 60.0**i for i, part in enumerate(parts))
