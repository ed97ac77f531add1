"""Readers for text-line track logs: NMEA ($--RMC), IGC flight logs, CSV logs with a time column
(GPSLogger and the like) and OwnTracks .rec files."""

from __future__ import annotations

import csv
import json
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from src.serving.locate.track_formats import FixList, ParseResult, parse_float, parse_iso_utc

__all__ = ["read_nmea", "read_igc", "read_csv", "read_owntracks"]

_RMC = re.compile(r"\$(?:GP|GN|GL|GA|BD)RMC,([^*]*)(?:\*([0-9A-Fa-f]{2}))?")


def read_nmea(path: Path) -> ParseResult:
    """$--RMC sentences: the only common sentence that carries the date. Garbage and sentences with a
    wrong checksum are skipped; GGA-only logs have no date and give a problem instead of a guess."""
    result = ParseResult()
    fixes = FixList(f"{path.name} NMEA")
    other_fixes = 0
    for line in _lines(path):
        match = _RMC.search(line)
        if match is None:
            other_fixes += line.lstrip().startswith(("$GPGGA", "$GNGGA", "$PMGNTRK"))
            continue
        body, checksum = match.group(1), match.group(2)
        if checksum is not None and _nmea_checksum(match.group(0).split("*")[0][1:]) != int(checksum, 16):
            continue
        fields = body.split(",")
        if len(fields) < 9 or fields[1] != "A":  # 'V': the receiver says this fix is void
            continue
        t = _nmea_time(fields[8], fields[0])
        fixes.add(t, _nmea_degrees(fields[2], fields[3]), _nmea_degrees(fields[4], fields[5]))
    if not fixes and other_fixes:
        result.problems.append(
            f"NMEA log without $GPRMC sentences ({other_fixes} fixes without a date): cannot be used to place photos")
    result.fix_lists.append(fixes)
    return result


def _nmea_checksum(body: str) -> int:
    value = 0
    for char in body:
        value ^= ord(char)
    return value


def _nmea_time(ddmmyy: str, hhmmss: str) -> float | None:
    if len(ddmmyy) != 6 or len(hhmmss) < 6 or not ddmmyy.isdigit():
        return None
    year = int(ddmmyy[4:6])
    year += 2000 if year < 80 else 1900  # NMEA's two-digit year: receivers from 1980 on
    try:
        day = datetime(year, int(ddmmyy[2:4]), int(ddmmyy[0:2]), tzinfo=timezone.utc)
        seconds = int(hhmmss[0:2]) * 3600 + int(hhmmss[2:4]) * 60 + float(hhmmss[4:])
    except ValueError:
        return None
    return day.timestamp() + seconds


def _nmea_degrees(value: str, hemisphere: str) -> float | None:
    """ddmm.mmmm / dddmm.mmmm with N/S/E/W."""
    try:
        number = float(value)
    except ValueError:
        return None
    degrees = int(number // 100) + (number % 100) / 60.0
    return -degrees if hemisphere in ("S", "W") else degrees if hemisphere in ("N", "E") else None


_IGC_DATE = re.compile(r"^HFDTE(?:DATE:)?\s*(\d{6})")
_IGC_FIX = re.compile(r"^B(\d{6})(\d{7})([NS])(\d{8})([EW])([AV])")


def read_igc(path: Path) -> ParseResult:
    """IGC flight logs: the HFDTE date and B records (time, DDMMmmm, DDDMMmmm); a flight past
    midnight UTC goes on into the next day."""
    result = ParseResult()
    fixes = FixList(f"{path.name} IGC")
    day: float | None = None
    previous = -1.0
    b_records = 0
    for line in _lines(path):
        date = _IGC_DATE.match(line)
        if date:
            day = _nmea_time(date.group(1), "000000")
            continue
        fix = _IGC_FIX.match(line)
        if fix is None:
            continue
        b_records += 1
        if day is None:
            continue
        hhmmss = fix.group(1)
        seconds = int(hhmmss[0:2]) * 3600 + int(hhmmss[2:4]) * 60 + int(hhmmss[4:6])
        if seconds < previous:
            day += 86400.0
        previous = seconds
        lat = int(fix.group(2)[:2]) + int(fix.group(2)[2:]) / 60000.0
        lon = int(fix.group(4)[:3]) + int(fix.group(4)[3:]) / 60000.0
        fixes.add(day + seconds, -lat if fix.group(3) == "S" else lat, -lon if fix.group(5) == "W" else lon)
    if day is None and b_records:
        result.problems.append(f"IGC log without an HFDTE date ({b_records} fixes): cannot be used to place photos")
    result.fix_lists.append(fixes)
    return result


_TIME_COLUMNS = ("time", "timestamp", "datetime", "date_time", "date time", "utc", "time_utc", "gps_time")
_LAT_COLUMNS = ("lat", "latitude")
_LON_COLUMNS = ("lon", "lng", "long", "longitude")
_ACCURACY_COLUMNS = ("accuracy", "acc", "hacc", "horizontal_accuracy", "accuracy_m")


def read_csv(path: Path) -> ParseResult:
    """A CSV log with a header naming a date-time column (ISO 8601 or Unix seconds / milliseconds) and
    latitude / longitude columns, as GPSLogger and many phone apps write. Times relative to a start
    (a drone log's 'Time(seconds)') have no date: a problem, not a guess."""
    result = ParseResult()
    fixes = FixList(f"{path.name} CSV")
    rows = csv.reader(_lines(path))
    unreadable = 0
    try:
        header = [name.strip().lower() for name in next(rows, [])]
        columns = [_column(header, names) for names in (_TIME_COLUMNS, _LAT_COLUMNS, _LON_COLUMNS, _ACCURACY_COLUMNS)]
        time_at, lat_at, lon_at, accuracy_at = columns
        if lat_at is None or lon_at is None or time_at is None:
            missing = "a latitude/longitude" if lat_at is None or lon_at is None else "a date and time"
            result.problems.append(f"CSV without {missing} column (columns: {', '.join(header)[:120]}): "
                                   "cannot be used to place photos")
            return result
        for row in rows:
            if len(row) <= max(c for c in columns if c is not None):
                continue
            t = _csv_time(row[time_at])
            unreadable += t is None
            accuracy = parse_float(row[accuracy_at]) if accuracy_at is not None else None
            fixes.add(t, parse_float(row[lat_at]), parse_float(row[lon_at]), accuracy if accuracy else math.nan)
    except csv.Error as error:
        result.problems.append(f"broken CSV ({error}): the rest of the file is ignored")
    if unreadable and not fixes:
        result.problems.append(f"CSV times in column '{header[time_at]}' are not dates: cannot be used to place photos")
    result.fix_lists.append(fixes)
    return result


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    return next((header.index(name) for name in names if name in header), None)


def _csv_time(text: str) -> float | None:
    t = parse_iso_utc(text)
    if t is not None:
        return t
    number = parse_float(text)
    if number is None or number < 1e8:  # a count of seconds since a start, not a date
        return None
    return number / 1000.0 if number > 1e11 else number


def read_owntracks(path: Path) -> ParseResult:
    """OwnTracks recorder .rec files: 'time<TAB>topic<TAB>{json}' per line; 'location' messages carry
    lat, lon, tst (Unix seconds) and acc (metres)."""
    result = ParseResult()
    fixes = FixList(f"{path.name} OwnTracks")
    for line in _lines(path):
        payload = line.split("\t")[-1].strip()
        try:
            message = json.loads(payload) if payload.startswith("{") else None
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("_type") == "location":
            accuracy = parse_float(message.get("acc"))
            fixes.add(parse_float(message.get("tst")), parse_float(message.get("lat")), parse_float(message.get("lon")),
                      accuracy if accuracy else math.nan)
    result.fix_lists.append(fixes)
    return result


def _lines(path: Path) -> Iterator[str]:
    """Text lines, streamed; bytes that are not UTF-8 (binary garbage in a log) become U+FFFD."""
    with open(path, encoding="utf-8-sig", errors="replace") as stream:
        yield from stream


