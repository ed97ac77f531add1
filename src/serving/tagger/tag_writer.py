"""Write one photo's place (GPS, caption, keywords, city/region/country) given its path and a LandmarkInfo.

The one safe writer the batch tagger (and any other engine that tags photos) calls:

* into a copy (``destination``) or in place (``destination`` = the photo): EXIF + XMP, atomically,
  via `src.serving.metadata.exif.write_location`;
* ``sidecar=True``: ``photo.jpg.xmp`` next to the photo (or next to ``destination``), the
  darktable/digiKam convention; the photo itself is never opened for writing. An existing sidecar
  is updated: its other properties are kept.

The photo's own GPS wins in both modes: ExistingGPSError unless ``overwrite=True``. Writers of one
photo take turns (`src.serving.metadata.safe_write.file_lock`) and each checks under the lock, so two taggers
running at once never both write the same photo.
"""

from __future__ import annotations

from pathlib import Path

from src.data.images import BadImageError
from src.data.landmarks import LandmarkInfo
from src.serving.metadata.exif import ExistingGPSError, read_gps, write_location
from src.serving.metadata.safe_write import file_lock, write_atomically
from src.serving.metadata.xmp import Place, build_packet, read_xmp, xmp_coordinate

__all__ = ["place_of", "sidecar_path", "write_landmark", "write_sidecar"]


def place_of(info: LandmarkInfo) -> Place:
    """What is written for a landmark: its position, "Name, City, Region, Country", and its hashtags."""
    if not info.has_coordinates:
        raise ValueError(f"no coordinates are known for {info.name}")
    description = ", ".join(part for part in (info.name, info.location) if part)
    keywords = [tag.lstrip("#") for tag in info.hashtags]
    return Place(info.latitude, info.longitude, description, keywords, info.city, info.region, info.country)


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
) -> Path:
    """Tag one photo with the landmark's place; returns the file written (the photo, its copy or the sidecar).

    destination: None tags in place (or puts the sidecar next to the photo); else a copy is written
    there (with ``sidecar=True``: the sidecar goes next to ``destination``, no copy of the photo).
    Raises what `write_location` / `write_sidecar` raise (ValueError family, OSError).
    """
    photo = Path(photo)
    target = Path(destination) if destination is not None else photo
    place = place_of(info)
    # One writer per photo at a time; each re-reads the photo under the lock, so of two concurrent runs
    # one writes and the other finds the position (ExistingGPSError: "already tagged").
    with file_lock(photo):
        if sidecar:
            return write_sidecar(photo, sidecar_path(target), place, overwrite=overwrite)
        return write_location(
            photo, target, place.latitude, place.longitude, place.description, place.keywords,
            overwrite=overwrite, city=place.city, region=place.region, country=place.country,
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
