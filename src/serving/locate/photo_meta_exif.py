"""The few EXIF tags the library context needs, read straight from the TIFF-structured EXIF block.

Why not Pillow's `Image.Exif.get_ifd` (which `src.serving.metadata.exif.load_exif` returns): it
decodes every entry of the Exif IFD, maker notes included, in Python: 1.3-2.1 ms per JPEG on this
machine, over the 1 ms a photo may cost in a 10,000-photo library. Here only the wanted entries of
IFD0, the Exif IFD and the GPS IFD are decoded (values as Pillow gives them: text, ints, rationals
as floats with NaN for a zero denominator). Formats whose EXIF block is not at hand (HEIC, AVIF)
still go through `load_exif` and `tags_of_pillow`.

`gps_position` applies `src.serving.metadata.exif.read_gps`'s rules (a N/S/E/W reference, finite
non-negative parts, in range) and says which one failed; tests/test_photo_meta.py checks that both
agree on every real photo.
"""

from __future__ import annotations

import math
import struct
import warnings
from dataclasses import dataclass

from PIL import Image

from src.serving.locate.photo_meta_values import checked_position, exif_degrees, text_of

TAG_MAKE, TAG_MODEL, TAG_XMP, TAG_CAMERA_SERIAL = 0x010F, 0x0110, 700, 0xC62F  # IFD0 (CameraSerialNumber: DNG)
TAG_EXIF_IFD, TAG_GPS_IFD = 0x8769, 0x8825
TAG_DATETIME_ORIGINAL, TAG_SUBSEC_ORIGINAL = 0x9003, 0x9291
TAG_OFFSET_TIME, TAG_OFFSET_TIME_ORIGINAL, TAG_BODY_SERIAL = 0x9010, 0x9011, 0xA431
GPS_LATITUDE_REF, GPS_LATITUDE, GPS_LONGITUDE_REF, GPS_LONGITUDE = 1, 2, 3, 4
GPS_TIME_STAMP, GPS_DATE_STAMP = 7, 29

IFD0_TAGS = frozenset((TAG_MAKE, TAG_MODEL, TAG_XMP, TAG_CAMERA_SERIAL, TAG_EXIF_IFD, TAG_GPS_IFD))
EXIF_TAGS = frozenset((TAG_DATETIME_ORIGINAL, TAG_SUBSEC_ORIGINAL, TAG_OFFSET_TIME, TAG_OFFSET_TIME_ORIGINAL, TAG_BODY_SERIAL))
GPS_TAGS = frozenset((GPS_LATITUDE_REF, GPS_LATITUDE, GPS_LONGITUDE_REF, GPS_LONGITUDE, GPS_TIME_STAMP, GPS_DATE_STAMP))
MAX_ENTRIES = 1000  # real IFDs hold tens; more means the count is garbage
# TIFF types: byte size, and struct code (None: kept as bytes).
_TYPES = {1: (1, None), 2: (1, None), 3: (2, "H"), 4: (4, "L"), 5: (8, "L"), 7: (1, None), 8: (2, "h"), 9: (4, "l"), 10: (8, "l"), 13: (4, "L")}


@dataclass(frozen=True)
class ExifTags:
    """The wanted entries of each IFD, by tag number."""

    ifd0: dict[int, object]
    exif: dict[int, object]
    gps: dict[int, object]


def read_tags(tiff: bytes) -> ExifTags | None:
    """The wanted tags of a TIFF-structured block (an EXIF block or a whole TIFF/DNG file); None if it is not one."""
    endian = {b"II": "<", b"MM": ">"}.get(bytes(tiff[:2]))
    if endian is None or len(tiff) < 8 or struct.unpack(endian + "H", tiff[2:4])[0] != 42:
        return None
    ifd0 = _read_ifd(tiff, struct.unpack(endian + "L", tiff[4:8])[0], endian, IFD0_TAGS)
    return ExifTags(
        ifd0,
        _read_ifd(tiff, ifd0.get(TAG_EXIF_IFD), endian, EXIF_TAGS),
        _read_ifd(tiff, ifd0.get(TAG_GPS_IFD), endian, GPS_TAGS),
    )


def _read_ifd(tiff: bytes, offset: object, endian: str, wanted: frozenset[int]) -> dict[int, object]:
    if not isinstance(offset, int) or offset < 8 or offset + 2 > len(tiff):
        return {}  # no IFD, or a pointer outside the block: nothing to read
    count = struct.unpack(endian + "H", tiff[offset : offset + 2])[0]
    values: dict[int, object] = {}
    for position in range(offset + 2, min(offset + 2 + 12 * min(count, MAX_ENTRIES), len(tiff) - 11), 12):
        tag, kind, n = struct.unpack(endian + "HHL", tiff[position : position + 8])
        if tag in wanted and kind in _TYPES:
            value = _value(tiff, position + 8, kind, n, endian)
            if value is not None:
                values[tag] = value
    return values


def _value(tiff: bytes, field: int, kind: int, count: int, endian: str) -> object:
    size, code = _TYPES[kind]
    length = size * count
    start = field if length <= 4 else struct.unpack(endian + "L", tiff[field : field + 4])[0]
    if count == 0 or start + length > len(tiff):
        return None  # a value running past the block is garbage, not a value
    raw = tiff[start : start + length]
    if kind == 2:
        return raw.decode("latin-1")  # as Pillow decodes ASCII; text_of cuts it at the NUL
    if code is None:
        return bytes(raw)
    numbers = struct.unpack(f"{endian}{count * (2 if kind in (5, 10) else 1)}{code}", raw)
    if kind in (5, 10):
        numbers = tuple(top / bottom if bottom else math.nan for top, bottom in zip(numbers[::2], numbers[1::2]))
    return numbers[0] if count == 1 else tuple(numbers)


def tags_of_pillow(exif: Image.Exif) -> ExifTags:
    """The same tags from an `Image.Exif` (HEIC, AVIF: containers read through Pillow)."""
    return ExifTags(dict(exif), _pillow_ifd(exif, TAG_EXIF_IFD), _pillow_ifd(exif, TAG_GPS_IFD))


def _pillow_ifd(exif: Image.Exif, tag: int) -> dict[int, object]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns on corrupt IFDs; an empty IFD says enough
            return dict(exif.get_ifd(tag))
    except Exception:  # a sub-IFD pointer into garbage
        return {}


def gps_position(gps: dict[int, object]) -> tuple[tuple[float, float] | None, str | None]:
    """The GPS IFD's position (``read_gps``'s rules, and 0,0 is no fix), or None with the reason."""
    if GPS_LATITUDE not in gps and GPS_LONGITUDE not in gps:
        return None, None
    signed = []
    for axis, value_tag, ref_tag, refs, limit in (
        ("latitude", GPS_LATITUDE, GPS_LATITUDE_REF, ("N", "S"), 90.0),
        ("longitude", GPS_LONGITUDE, GPS_LONGITUDE_REF, ("E", "W"), 180.0),
    ):
        value, ref = gps.get(value_tag), text_of(gps.get(ref_tag)).upper()
        degrees = exif_degrees(value) if value is not None else None
        parts = value if isinstance(value, tuple) else (value,)
        if value is None:
            return None, f"GPS {axis} is missing: no position"
        if not ref and (degrees is None or math.isnan(degrees)):
            return None, "GPS tags are present but empty: no position"
        if ref not in refs:
            return None, f"GPS {axis} reference {ref!r} is not {refs[0]} or {refs[1]}: position ignored"
        if degrees is None:
            return None, f"GPS {axis} {value!r} is not degrees, minutes, seconds: position ignored"
        if not math.isfinite(degrees):
            return None, f"GPS {axis} is not a number (a zero denominator): position ignored"
        if any(float(part) < 0 for part in parts):
            return None, f"GPS {axis} has a negative part: position ignored"
        if degrees > limit:
            return None, f"GPS {axis} {degrees:.6g} is out of range: position ignored"
        signed.append(-degrees if ref == refs[1] else degrees)
    return checked_position(signed[0], signed[1], "GPS")
