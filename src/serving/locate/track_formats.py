"""Readers for the XML track files people keep: GPX (gpxpy, with a streaming fallback) and KML gx:Track;
the fix lists every reader fills (text logs: track_logs; Takeout JSON: track_takeout).

Each reader turns a file into raw fix lists plus clear problem messages; cleaning (coordinates, dates,
order, duplicates) and the numpy tracks are src.serving.locate.tracks' job, one place for every format.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from array import array
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import gpxpy
import gpxpy.gpx
from gpxpy.gpxfield import parse_time as gpx_parse_time

__all__ = ["FixList", "ParseResult", "STAY_STEP_S", "parse_iso_utc", "parse_float", "read_gpx", "read_kml"]

# A stay (a Takeout visit, a KML TimeSpan point) says "here from begin to end": fixes this far apart
# represent it, so the interpolation's gap limit does not throw away a long stay.
STAY_STEP_S = 600.0
MAX_STAY_FIXES = 1000  # a stay of weeks gets sparser fixes instead of unbounded memory
HDOP_TO_METRES = 5.0  # a typical GPS receiver's error per unit of HDOP (user equivalent range error)
GPX_GPXPY_MAX_BYTES = 8 * 2**20  # gpxpy builds Python objects per point: bigger files are streamed


@dataclass
class FixList:
    """Fixes of one track, segment or stay list as read, before cleaning. accuracy nan = not stated."""
    name: str  # arrays of doubles, not lists: 8 bytes a value for a track of millions of fixes
    times: array = field(default_factory=lambda: array("d"))
    latitudes: array = field(default_factory=lambda: array("d"))
    longitudes: array = field(default_factory=lambda: array("d"))
    accuracies: array = field(default_factory=lambda: array("d"))

    def add(self, t: float | None, lat: float | None, lon: float | None, accuracy: float = math.nan) -> None:
        if t is None or lat is None or lon is None:
            return
        self.times.append(float(t))
        self.latitudes.append(float(lat))
        self.longitudes.append(float(lon))
        self.accuracies.append(float(accuracy))

    def add_stay(self, begin: float | None, end: float | None, lat: float | None, lon: float | None,
                 accuracy: float = math.nan) -> None:
        """The person stayed at (lat, lon) from begin to end: fixes every STAY_STEP_S (both ends included)."""
        if begin is None or lat is None or lon is None:
            return
        if end is None or not end > begin:
            self.add(begin, lat, lon, accuracy)
            return
        n = min(MAX_STAY_FIXES, int(math.ceil((end - begin) / STAY_STEP_S)) + 1)
        for i in range(n):
            self.add(begin + (end - begin) * i / (n - 1), lat, lon, accuracy)

    def __len__(self) -> int:
        return len(self.times)


@dataclass
class ParseResult:
    fix_lists: list[FixList] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    untimed_points: int = 0  # points with a position but no time: why a file without times gives nothing


def parse_iso_utc(text: object) -> float | None:
    """ISO 8601 text ('Z', '+07:00', any fraction digits) as UTC seconds; a time without zone is UTC
    (what GPX, KML and Takeout mean); None for anything unreadable."""
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        try:
            moment = gpx_parse_time(text.strip())
        except Exception:  # gpxpy raises bare errors on odd text; unreadable is all we need to know
            return None
        if moment is None:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


# ---------------------------------------------------------------- GPX

def read_gpx(path: Path) -> ParseResult:
    """Tracks (one fix list per segment), routes and waypoints that carry times. gpxpy first; where it
    rejects the file (broken XML, a field we do not need) or the file is too big for its objects, a
    streaming reader that takes only positions and times."""
    if path.stat().st_size <= GPX_GPXPY_MAX_BYTES:
        try:
            return _gpx_with_gpxpy(path, gpxpy.parse(_XmlSource(path).read_all()))
        except (gpxpy.gpx.GPXException, ValueError, TypeError, AttributeError, LookupError):
            # Broken XML (a cut-off file: the streaming reader keeps the points before the break and says
            # where it broke) or a field gpxpy rejects that we do not use (<fix>something</fix>)
            pass
    return _gpx_streamed(path)


def _gpx_with_gpxpy(path: Path, gpx: gpxpy.gpx.GPX) -> ParseResult:
    result = ParseResult()
    for ti, track in enumerate(gpx.tracks):
        for si, segment in enumerate(track.segments):
            fixes = FixList(f"{path.name} track {ti + 1}{_quoted(track.name)} segment {si + 1}")
            for point in segment.points:
                _add_gpx_point(fixes, result, point)
            result.fix_lists.append(fixes)
    for ri, route in enumerate(gpx.routes):
        fixes = FixList(f"{path.name} route {ri + 1}{_quoted(route.name)}")
        for point in route.points:
            _add_gpx_point(fixes, result, point)
        result.fix_lists.append(fixes)
    waypoints = FixList(f"{path.name} waypoints")
    for point in gpx.waypoints:
        _add_gpx_point(waypoints, result, point)
    result.fix_lists.append(waypoints)
    return result


def _add_gpx_point(fixes: FixList, result: ParseResult, point) -> None:
    if point.time is None:
        result.untimed_points += 1
        return
    moment = point.time if point.time.tzinfo else point.time.replace(tzinfo=timezone.utc)
    fixes.add(moment.timestamp(), point.latitude, point.longitude, _hdop_accuracy(point.horizontal_dilution))


def _hdop_accuracy(hdop: object) -> float:
    try:
        value = float(hdop)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return max(HDOP_TO_METRES * value, 3.0) if value > 0 else math.nan


def _gpx_streamed(path: Path) -> ParseResult:
    result = ParseResult()
    current = FixList(f"{path.name} waypoints")
    waypoints = current
    counts = {"trkseg": 0, "rte": 0}
    containers: list[ET.Element] = []  # the open gpx / trkseg / rte elements, emptied as points are read
    try:
        with closing(_XmlSource(path)) as source:
            for event, element in ET.iterparse(source, events=("start", "end")):
                tag = _local(element.tag)
                if event == "start" and tag in ("gpx", "trkseg", "rte"):
                    containers.append(element)
                if event == "start" and tag in counts:
                    counts[tag] += 1
                    label = "segment" if tag == "trkseg" else "route"
                    current = FixList(f"{path.name} {label} {counts[tag]}")
                    result.fix_lists.append(current)
                elif event == "end" and tag in ("trkpt", "rtept", "wpt"):
                    when = next((c.text for c in element if _local(c.tag) == "time"), None)
                    hdop = next((c.text for c in element if _local(c.tag) == "hdop"), None)
                    t = parse_iso_utc(when) if when else None
                    lat, lon = parse_float(element.get("lat")), parse_float(element.get("lon"))
                    if t is None:
                        result.untimed_points += 1
                    else:
                        (waypoints if tag == "wpt" else current).add(t, lat, lon, _hdop_accuracy(hdop))
                    if containers:
                        containers[-1].clear()  # read points leave the tree: memory stays small for millions
                elif event == "end" and tag in ("trkseg", "rte"):
                    current = waypoints
                    containers.pop()
    except (ET.ParseError, LookupError) as error:  # LookupError: an encoding declaration no codec knows
        result.problems.append(f"broken XML, not a readable GPX: {error}")
    result.fix_lists.append(waypoints)
    return result


# ---------------------------------------------------------------- KML

def read_kml(path: Path) -> ParseResult:
    """gx:Track (<when> paired with <gx:coord> "lon lat alt"), Placemarks with a TimeStamp (a fix) or a
    TimeSpan (a stay) on a Point. A LineString has no time per point: counted as untimed."""
    result = ParseResult()
    stamped = FixList(f"{path.name} placemarks")
    track_count = 0
    try:
        with closing(_XmlSource(path)) as source:
            for _, element in ET.iterparse(source, events=("end",)):
                tag = _local(element.tag)
                if tag == "Track":
                    track_count += 1
                    result.fix_lists.append(_kml_track(element, f"{path.name} gx:Track {track_count}"))
                    element.clear()
                elif tag == "Placemark":
                    _kml_placemark(element, stamped, result)
                    element.clear()
    except (ET.ParseError, LookupError) as error:  # LookupError: an encoding declaration no codec knows
        result.problems.append(f"broken XML, not a readable KML: {error}")
    result.fix_lists.append(stamped)
    return result


def _kml_track(element: ET.Element, name: str) -> FixList:
    fixes = FixList(name)
    whens = [c.text for c in element if _local(c.tag) == "when"]
    coords = [c.text for c in element if _local(c.tag) == "coord"]
    for when, coord in zip(whens, coords):  # an empty <gx:coord/> is a time without a position: skipped
        parts = (coord or "").split()
        if len(parts) >= 2:
            fixes.add(parse_iso_utc(when), parse_float(parts[1]), parse_float(parts[0]))
    return fixes


def _kml_placemark(element: ET.Element, stamped: FixList, result: ParseResult) -> None:
    point = next((e for e in element.iter() if _local(e.tag) == "Point"), None)
    lines = [e for e in element.iter() if _local(e.tag) in ("LineString", "LinearRing")]
    for line in lines:
        text = next((c.text for c in line if _local(c.tag) == "coordinates"), "") or ""
        result.untimed_points += len(text.split())
    if point is None:
        return
    text = next((c.text for c in point if _local(c.tag) == "coordinates"), "") or ""
    parts = text.strip().split(",")
    if len(parts) < 2:
        return
    lon, lat = parse_float(parts[0]), parse_float(parts[1])
    stamp = _kml_child_text(element, "TimeStamp", "when")
    begin, end = _kml_child_text(element, "TimeSpan", "begin"), _kml_child_text(element, "TimeSpan", "end")
    if stamp is not None:
        stamped.add(parse_iso_utc(stamp), lat, lon)
    elif begin is not None or end is not None:
        start = parse_iso_utc(begin) if begin is not None else parse_iso_utc(end)
        stamped.add_stay(start, parse_iso_utc(end), lat, lon)
    else:
        result.untimed_points += 1


def _kml_child_text(element: ET.Element, parent: str, child: str) -> str | None:
    for node in element.iter():
        if _local(node.tag) == parent:
            for c in node:
                if _local(c.tag) == child and c.text:
                    return c.text
    return None


# ---------------------------------------------------------------- helpers

class _XmlSource:
    """A file streamed to the XML parser without its byte-order mark or the blank lines some apps write
    before the XML declaration (an XML error no GPS app means)."""

    def __init__(self, path: Path):
        self._path = path
        self._head: bytes | None = None
        self._stream = None

    def read(self, size: int = -1) -> bytes:
        if self._stream is None:
            self._stream = open(self._path, "rb")
            head = self._stream.read(4096)
            self._head = head[3:] if head.startswith(b"\xef\xbb\xbf") else head
            self._head = self._head.lstrip()
        if self._head:
            piece, self._head = self._head, b""
            return piece
        return self._stream.read(size if size and size > 0 else 1 << 20)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()

    def read_all(self) -> str:
        """The whole (small) file as text, for gpxpy."""
        with open(self._path, "rb") as stream:
            return stream.read().decode("utf-8-sig", errors="replace").lstrip()


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def parse_float(value: object) -> float | None:
    """A finite number from any text or value, else None."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _quoted(name: str | None) -> str:
    return f" '{name.strip()}'" if name and name.strip() else ""

