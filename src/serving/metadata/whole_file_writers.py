"""Photos written whole rather than spliced into a JPEG/WebP container (`src.serving.metadata.exif.write_location`
calls `write_whole_file` for them): a TIFF or DNG file, which is itself a TIFF block and is patched append-only
like a JPEG's EXIF (its XMP packet in IFD0), and PNG, which exiv2 writes. Other formats (HEIC, AVIF, GIF, BMP)
cannot hold the tags without re-encoding: UnsupportedFormatError, write a sidecar."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from src.data.images import BadImageError
from src.serving.metadata.exif import ExistingGPSError, UnsupportedFormatError, _parse_tiff, _verify, gps_from_exif, read_gps
from src.serving.metadata.exif_blocks import TIFF_MAGIC, MalformedError, patch_tiff
from src.serving.metadata.place_values import dms_text, radius_rational
from src.serving.metadata.xmp import Place, build_packet, exiv2_rewrite, packet_of

# Formats exiv2 writes in full (no maker notes to lose in practice); JPEG/WebP/TIFF are patched by hand.
EXIV2_WRITTEN = {"PNG"}


def write_whole_file(source: Path, data: bytes, place: Place, overwrite: bool) -> bytes:
    """The photo's new bytes, read back before anything is written: TIFF/DNG patched, PNG through exiv2."""
    if data[:4] in TIFF_MAGIC:
        return _patched_tiff_file(source, data, place, overwrite)
    return _write_with_exiv2(source, data, place, overwrite)


def _patched_tiff_file(source: Path, data: bytes, place: Place, overwrite: bool) -> bytes:
    """A TIFF or DNG file is itself the EXIF block: patched append-only like a JPEG's, with its XMP packet in
    IFD0. exiv2 would re-serialise it, moving maker notes and IPTC (whose Photoshop digest then goes stale)."""
    parsed = _parse_tiff(data)
    existing = gps_from_exif(parsed) if parsed is not None else None
    if existing is not None and not overwrite:
        raise ExistingGPSError(source, existing)
    packet = build_packet(place, packet_of(data)).encode("utf-8")
    try:
        new_data = patch_tiff(data, place.latitude, place.longitude, place.description, place.keywords,
                              scrub_old_gps=existing is not None, radius_m=place.radius_m, container="TIFF", xmp=packet)
    except MalformedError as error:
        raise BadImageError(f"{source}: existing TIFF structure is malformed ({error}); refusing to rewrite it and lose data") from error
    _verify(new_data, place.latitude, place.longitude)
    return new_data


def _write_with_exiv2(source: Path, data: bytes, place: Place, overwrite: bool) -> bytes:
    """PNG through exiv2 (in memory), read back before anything is written to disk."""
    fmt = _format_of(source, data)
    if fmt not in EXIV2_WRITTEN:
        raise UnsupportedFormatError(
            f"{source}: {fmt} files cannot hold the tags without re-encoding; write a sidecar (--sidecar) instead"
        )
    existing = read_gps(data)
    if existing is not None and not overwrite:
        raise ExistingGPSError(source, existing)
    exif = {
        "Exif.GPSInfo.GPSVersionID": "2 2 0 0" if place.radius_m is None else "2 3 0 0",  # GPSHPositioningError is EXIF 2.3
        "Exif.GPSInfo.GPSLatitudeRef": "S" if place.latitude < 0 else "N",
        "Exif.GPSInfo.GPSLatitude": dms_text(place.latitude),
        "Exif.GPSInfo.GPSLongitudeRef": "W" if place.longitude < 0 else "E",
        "Exif.GPSInfo.GPSLongitude": dms_text(place.longitude),
        "Exif.GPSInfo.GPSMapDatum": "WGS-84",
        # how the position was found (EXIF requires it in a TIFF's GPS IFD; exiftool -validate)
        "Exif.GPSInfo.GPSProcessingMethod": "charset=Ascii MANUAL",
    }
    if place.radius_m is not None:
        exif["Exif.GPSInfo.GPSHPositioningError"] = "{}/{}".format(*radius_rational(place.radius_m))
    if place.description is not None:
        exif["Exif.Image.ImageDescription"] = place.description
    try:
        new_data = exiv2_rewrite(data, exif, build_packet(place, packet_of(data)))
    except Exception as error:  # exiv2 raises its own error type for anything it dislikes
        raise BadImageError(f"{source}: exiv2 could not write this {fmt} ({error})") from error
    location = read_gps(new_data)
    if location is None or max(abs(location[0] - place.latitude), abs(location[1] - place.longitude)) > 1e-7:
        raise RuntimeError(f"internal error: GPS read back as {location}, expected {(place.latitude, place.longitude)}")
    return new_data


def _format_of(source: Path, data: bytes) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                return image.format or "unknown"
    except (UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise BadImageError(f"{source}: not an image file (format not recognised)") from error
