"""The values written about a place, checked before any file is touched: coordinates, the radius of a
position, captions and keywords (what EXIF's ASCII and UTF-16 tags and XMP can hold without loss)."""

from __future__ import annotations

import math
import numbers


def check_coordinate(value: float, name: str, limit: float) -> float:
    """A latitude (limit 90) or longitude (limit 180) as a float; TypeError/ValueError otherwise."""
    # bool is an int subclass; True as a latitude is a caller bug, not 1 degree.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or not -limit <= value <= limit:
        raise ValueError(f"{name} must be within [-{limit:g}, {limit:g}], got {value!r}")
    return value


def check_radius(radius_m: float | None) -> float | None:
    """A position's radius in metres (EXIF GPSHPositioningError): None, or a finite number >= 0."""
    if radius_m is None:
        return None
    if isinstance(radius_m, bool) or not isinstance(radius_m, numbers.Real):
        raise TypeError(f"radius_m must be a real number, got {type(radius_m).__name__}")
    radius_m = float(radius_m)
    if not math.isfinite(radius_m) or radius_m < 0 or radius_m > 20_040_000:  # half the Earth's circumference
        raise ValueError(f"radius_m must be a distance in metres between 0 and 20040000, got {radius_m!r}")
    return radius_m


def radius_rational(radius_m: float) -> tuple[int, int]:
    """Metres as an EXIF rational to the centimetre (numerator, denominator)."""
    return round(radius_m * 100), 100


def check_text(text: str | None, name: str) -> None:
    if text is not None and "\x00" in text:
        # ASCII and XP tags are NUL-terminated: a NUL would silently truncate the text.
        raise ValueError(f"{name} must not contain NUL characters")


def clean_keywords(keywords: list[str] | None) -> list[str] | None:
    """Keywords stripped, de-duplicated in order; None stays None (leave the photo's keywords alone)."""
    if keywords is None:
        return None
    if isinstance(keywords, str):  # a bare string would be split into characters
        raise TypeError("keywords must be a list of strings, not a single string")
    cleaned: list[str] = []
    for word in keywords:
        check_text(word, "keyword")
        word = word.strip()
        if ";" in word:
            raise ValueError(f"keyword {word!r} contains ';', the XPKeywords separator")
        if word and word not in cleaned:
            cleaned.append(word)
    return cleaned


def dms_text(value: float) -> str:
    """|value| degrees as exiv2's rational text "D/1 M/1 S/1000000"."""
    seconds = round(abs(value) * 3600 * 1_000_000)
    degrees, rest = divmod(seconds, 3600 * 1_000_000)
    minutes, micro = divmod(rest, 60 * 1_000_000)
    return f"{degrees}/1 {minutes}/1 {micro}/1000000"
