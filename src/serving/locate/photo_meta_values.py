"""The text and number values of photo metadata, checked: dates, time-zone offsets, GPS times and positions.

Each parser returns ``(value, problem)``: the value, or None with a sentence saying why it was not
used. A blank or placeholder value (``"    :  :     :  :  "``, NULs, ``"   :  "``) is simply absent:
the photo says nothing, which is not a problem. Dates and positions that are clearly wrong are
refused rather than repaired, because a guessed day or place would move a photo on the map.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

# Digital photos and GPS fixes before 1990 are almost surely a reset clock (1970, 1980 GPS epoch).
EARLIEST_YEAR = 1990
# A device clock may run ahead of UTC by up to 14 h (Kiribati): only a day past `now` is "future".
FUTURE_MARGIN = timedelta(days=1)
MIN_OFFSET, MAX_OFFSET = timedelta(hours=-12), timedelta(hours=14)

_DATETIME = re.compile(
    r"(\d{4})[:/-](\d\d)[:/-](\d\d)(?:[ T](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d+))?)?)?\s*(Z|[+-]\d\d:?\d\d)?"
)
_OFFSET = re.compile(r"([+-])(\d\d):(\d\d)")
_XMP_COORDINATE = re.compile(r"(\d+(?:\.\d+)?),(\d+(?:\.\d+)?)(?:,(\d+(?:\.\d+)?))?([NSEW])")


@dataclass(frozen=True)
class TimeLimits:
    """The window a capture time must fall in; `now` is a parameter so that results are reproducible."""

    now: datetime  # aware (a naive one is taken as UTC)

    def problem(self, moment: datetime, label: str) -> str | None:
        """Why ``moment`` (naive wall time or aware) cannot be a capture time, or None when it can."""
        if moment.year < EARLIEST_YEAR:
            return f"{label} is before {EARLIEST_YEAR}: ignored"
        now = self.now if self.now.tzinfo is not None else self.now.replace(tzinfo=timezone.utc)  # naive: UTC
        limit = now + FUTURE_MARGIN
        if moment.tzinfo is None:
            limit = limit.astimezone(timezone.utc).replace(tzinfo=None)
        if moment > limit:
            return f"{label} is in the future: ignored"
        return None


def text_of(value: object) -> str:
    """A tag's text: bytes decoded, cut at the NUL that ends an EXIF ASCII value, spaces stripped.

    Pillow keeps the whole stored count, and some cameras leave memory garbage after the NUL
    (a GoPro HD2's Model reads "HD2\\x00\\x04..."): what follows the NUL is not part of the value.
    """
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return str(value).lstrip("\x00").split("\x00", 1)[0].strip()


def is_blank(text: str) -> bool:
    """Placeholders the EXIF standard allows for "unknown": spaces, colons, dashes only."""
    return not text.strip(" :-T")


def parse_datetime(text: str, label: str, limits: TimeLimits) -> tuple[datetime | None, timedelta | None, str | None]:
    """``YYYY:MM:DD HH:MM:SS[.fff][+HH:MM]`` (EXIF; some cameras write ``/``) or ISO 8601 (XMP) ->
    (naive wall time, offset, problem).

    The offset is the suffix when there is one (XMP), else None. A date without a time of day is
    refused: a capture time a whole day wide would tie nothing to anything.
    """
    if is_blank(text):
        return None, None, None
    match = _DATETIME.fullmatch(text.strip())
    if match is None:
        return None, None, f"{label} {text!r} is not a date and time"
    year, month, day, hour, minute, second, fraction, suffix = match.groups()
    if hour is None:
        return None, None, f"{label} {text} has no time of day: ignored"
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
    except ValueError:
        return None, None, f"{label} {text} is not a date"
    if fraction:
        moment += timedelta(microseconds=round(int(fraction[:6].ljust(6, "0"))))
    problem = limits.problem(moment, f"{label} {text}")
    if problem:
        return None, None, problem
    offset, offset_problem = (None, None) if suffix is None else parse_offset(_colon_offset(suffix), f"{label}'s time zone")
    return moment, offset, offset_problem


def _colon_offset(suffix: str) -> str:
    if suffix == "Z":
        return "+00:00"
    return suffix if ":" in suffix else f"{suffix[:3]}:{suffix[3:]}"


def parse_offset(text: str, label: str) -> tuple[timedelta | None, str | None]:
    """``+HH:MM`` within -12:00..+14:00 -> the offset of the device clock from UTC."""
    if is_blank(text):
        return None, None
    match = _OFFSET.fullmatch(text.strip())
    if match is None:
        return None, f"{label} {text!r} is not an offset like +05:30: ignored"
    sign, hours, minutes = match.groups()
    if int(minutes) >= 60:
        return None, f"{label} {text} is not an offset (minutes over 59): ignored"
    offset = (-1 if sign == "-" else 1) * timedelta(hours=int(hours), minutes=int(minutes))
    if not MIN_OFFSET <= offset <= MAX_OFFSET:
        return None, f"{label} {text} is outside -12:00..+14:00: ignored"
    return offset, None


def parse_subseconds(text: str, label: str) -> tuple[timedelta, str | None]:
    """SubSecTime digits are the decimal fraction of the second ("5" = 0.5 s, "050" = 0.05 s)."""
    digits = text.strip()
    if not digits:
        return timedelta(0), None
    if not digits.isdigit():
        return timedelta(0), f"{label} {text!r} is not a number: ignored"
    return timedelta(microseconds=round(int(digits[:6].ljust(6, "0")))), None


def parse_gps_date(text: str, limits: TimeLimits) -> tuple[date | None, str | None]:
    """GPSDateStamp ``YYYY:MM:DD`` (some phones write ``YYYY-MM-DD``)."""
    if is_blank(text):
        return None, None
    match = re.fullmatch(r"(\d{4})[:-](\d\d)[:-](\d\d)", text.strip())
    try:
        day = date(*(int(part) for part in match.groups())) if match else None
    except ValueError:
        day = None
    if day is None:
        return None, f"GPSDateStamp {text!r} is not a date: GPS time ignored"
    problem = limits.problem(datetime(day.year, day.month, day.day, tzinfo=timezone.utc), f"GPSDateStamp {text}")
    return (None, problem) if problem else (day, None)


def gps_seconds_of_day(value: object) -> tuple[float | None, str | None]:
    """GPSTimeStamp (hour, minute, second rationals, UTC) -> seconds since midnight."""
    if value is None:
        return None, None
    parts = value if isinstance(value, tuple) else (value,)
    try:
        hour, minute, second = (float(part) for part in parts)
    except (TypeError, ValueError):
        return None, f"GPSTimeStamp {value!r} is not hours, minutes, seconds: ignored"
    if not all(math.isfinite(part) for part in (hour, minute, second)):
        return None, "GPSTimeStamp is not a number (a zero denominator): ignored"
    if not (0 <= hour < 24 and 0 <= minute < 60 and 0 <= second < 61):
        return None, f"GPSTimeStamp {hour:g}:{minute:g}:{second:g} is not a time of day: ignored"
    return hour * 3600 + minute * 60 + second, None


def gps_moment(day: date, seconds: float) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(seconds=seconds)


def checked_position(latitude: float, longitude: float, label: str) -> tuple[tuple[float, float] | None, str | None]:
    """A position a map can show, or None with why: NaN, out of range, or exactly 0,0."""
    if not (math.isfinite(latitude) and math.isfinite(longitude)):
        return None, f"{label} is not a number: ignored"
    if abs(latitude) > 90:
        return None, f"{label} latitude {latitude:.6g} is out of range: ignored"
    if abs(longitude) > 180:
        return None, f"{label} longitude {longitude:.6g} is out of range: ignored"
    if latitude == 0 and longitude == 0:
        # Exactly 0,0 is what receivers without a fix (and some apps) write, never a real photo spot.
        return None, f"{label} position 0,0 means no fix: ignored"
    return (latitude, longitude), None


def parse_xmp_coordinate(text: str) -> float | None:
    """XMP GPSCoordinate ``"DDD,MM.mmmK"`` or ``"DDD,MM,SSK"`` -> signed degrees (unchecked), or None."""
    match = _XMP_COORDINATE.fullmatch(text.strip().upper())
    if match is None:
        return None
    degrees, minutes, seconds, ref = match.groups()
    value = float(degrees) + float(minutes) / 60 + float(seconds or 0) / 3600
    return -value if ref in "SW" else value


def exif_degrees(value: object) -> float | None:
    """Degrees, minutes, seconds rationals -> unsigned degrees (NaN for a zero denominator), None if garbled."""
    parts = value if isinstance(value, tuple) else (value,)
    if not 1 <= len(parts) <= 3:
        return None
    try:
        numbers = [float(part) for part in parts]
    except (TypeError, ValueError):
        return None
    return sum(number / 60.0**index for index, number in enumerate(numbers))
