"""Google Takeout location history, streamed with ijson (a Records.json runs to gigabytes): the old
Records.json, Semantic Location History (timelineObjects), the newer semanticSegments export and the
on-device array export. Also GeoJSON points with a time, which some loggers write.

Takeout's 'accuracy' is a radius in metres (Google: 68 % confidence); where a layout states none, the
defaults below say how far such an entry usually is from where the person stood.
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from contextlib import contextmanager
from typing import BinaryIO, Callable, Iterator

import ijson
from ijson.common import ObjectBuilder

from src.serving.locate.track_formats import FixList, ParseResult, parse_iso_utc

__all__ = ["read_takeout_json"]

RECORD_ACCURACY_M = 50.0  # a Records.json entry without 'accuracy'
PATH_ACCURACY_M = 50.0  # a timelinePath / waypoint / raw point: Google's snapped fixes
VISIT_ACCURACY_M = 100.0  # a visit: the place's centre, not where in the place the person was
ACTIVITY_END_ACCURACY_M = 200.0  # an activity's start/end: where Google thinks the move began or ended

_LAYOUTS = {
    "locations.item": "Records.json",
    "timelineObjects.item": "Semantic Location History",
    "semanticSegments.item": "Timeline (semanticSegments)",
    "rawSignals.item": "Timeline (semanticSegments)",
    "item": "on-device Timeline",
    "features.item": "GeoJSON",
}
_NUMBER = r"[-+]?\d+(?:\.\d+)?"
_LAT_LON = re.compile(rf"^\s*(?:geo:)?\s*({_NUMBER})\s*°?\s*,\s*({_NUMBER})\s*°?\s*$")


def read_takeout_json(path: Path) -> ParseResult:
    """One fix list per layout found in the file. A JSON file of another layout, or broken JSON, is a
    problem message; fixes read before a break are kept (a cut-off download still helps)."""
    result = ParseResult()
    lists: dict[str, FixList] = {}
    handlers: dict[str, Callable[[dict, FixList], None]] = {
        "Records.json": _record, "Semantic Location History": _timeline_object,
        "Timeline (semanticSegments)": _segment, "on-device Timeline": _segment, "GeoJSON": _geojson_feature,
    }
    items = 0
    try:
        for prefix, item in _items(path):
            layout = _LAYOUTS[prefix]
            if isinstance(item, dict) and item.get("deviceTag") is not None:
                # Records.json mixes every device of the account: one track per device, never a zig-zag
                # between a phone on the trip and a tablet at home
                label = f"{layout}, device {item['deviceTag']}"
            else:
                label = layout
            fixes = lists.setdefault(label, FixList(f"{path.name} ({label})"))
            handler = handlers[layout]
            if isinstance(item, dict):
                items += 1
                handler(item, fixes)
    except (ijson.JSONError, UnicodeDecodeError, ValueError) as error:
        result.problems.append(f"broken JSON after {items} entries ({_short(error)}): the rest of the file is ignored")
    if not lists and not result.problems:
        result.problems.append(
            "JSON of an unknown layout: not Google Takeout location history (expected 'locations', "
            "'timelineObjects', 'semanticSegments' or an array of timeline entries)")
    result.fix_lists.extend(lists.values())
    return result


# The arrays each layout keeps its entries in, by the layout's first top-level key (or '[').
_ARRAYS_BY_FIRST_KEY = {
    "[": ("item",), "locations": ("locations.item",), "timelineObjects": ("timelineObjects.item",),
    "semanticSegments": ("semanticSegments.item", "rawSignals.item"),
    "rawSignals": ("semanticSegments.item", "rawSignals.item"), "features": ("features.item",),
}


def _items(path: Path) -> Iterator[tuple[str, object]]:
    """(prefix, entry) for every entry of the file's layout. Where the first key names the layout,
    ijson builds the entries in C, one pass per array (5x faster on a Records.json of millions);
    otherwise one pass over every event, taking any known array wherever it is."""
    arrays = _ARRAYS_BY_FIRST_KEY.get(_first_key(path) or "")
    if arrays is None:
        with _open_json(path) as stream:
            yield from _stream_items(stream)
        return
    for prefix in arrays:
        with _open_json(path) as stream:
            for item in ijson.items(stream, prefix, use_float=True):
                yield prefix, item


def _first_key(path: Path) -> str | None:
    """'[' for a top-level array, else the first top-level key, read from the file's head."""
    with _open_json(path) as stream:
        head = stream.read(1 << 16)
    try:
        for prefix, event, value in ijson.parse(io.BytesIO(head)):
            if prefix == "" and event == "start_array":
                return "["
            if prefix == "" and event == "map_key":
                return str(value)
    except (ijson.JSONError, UnicodeDecodeError, ValueError):
        return None  # the head alone ends mid-value: the full pass will say what is wrong, if anything
    return None


@contextmanager
def _open_json(path: Path) -> Iterator[BinaryIO]:
    """The file without a byte-order mark (ijson does not skip one)."""
    with open(path, "rb") as stream:
        if stream.read(3) != b"\xef\xbb\xbf":
            stream.seek(0)
        yield stream


def _stream_items(stream: BinaryIO) -> Iterator[tuple[str, object]]:
    """(prefix, object) for every entry under a known layout's array, one at a time, in one pass."""
    builder: ObjectBuilder | None = None
    current = ""
    for prefix, event, value in ijson.parse(stream, use_float=True):
        if builder is None:
            if prefix in _LAYOUTS and event in ("start_map", "start_array"):
                builder, current = ObjectBuilder(), prefix
                builder.event(event, value)
            continue
        builder.event(event, value)
        if prefix == current and event in ("end_map", "end_array"):
            yield current, builder.value
            builder = None


# ---------------------------------------------------------------- Records.json

def _record(entry: dict, fixes: FixList) -> None:
    t = parse_iso_utc(entry.get("timestamp"))
    if t is None:
        t = _milliseconds(entry.get("timestampMs"))
    lat, lon = _e7(entry.get("latitudeE7")), _e7(entry.get("longitudeE7"))
    fixes.add(t, lat, lon, _number(entry.get("accuracy"), RECORD_ACCURACY_M))


# ---------------------------------------------------------------- Semantic Location History

def _timeline_object(entry: dict, fixes: FixList) -> None:
    visit, activity = entry.get("placeVisit"), entry.get("activitySegment")
    if isinstance(visit, dict):
        begin, end = _duration(visit.get("duration"))
        lat, lon = _e7_pair(visit.get("location")) or _center(visit)
        fixes.add_stay(begin, end, lat, lon, VISIT_ACCURACY_M)
        _raw_path(visit.get("simplifiedRawPath"), fixes)
    if isinstance(activity, dict):
        begin, end = _duration(activity.get("duration"))
        start, stop = _e7_pair(activity.get("startLocation")), _e7_pair(activity.get("endLocation"))
        waypoints = _waypoints(activity)
        start = start if start[0] is not None else (waypoints[0] if waypoints else start)
        stop = stop if stop[0] is not None else (waypoints[-1] if waypoints else stop)
        fixes.add(begin, *start, ACTIVITY_END_ACCURACY_M)
        fixes.add(end, *stop, ACTIVITY_END_ACCURACY_M)
        _raw_path(activity.get("simplifiedRawPath"), fixes)


def _duration(duration: object) -> tuple[float | None, float | None]:
    if not isinstance(duration, dict):
        return None, None
    begin = parse_iso_utc(duration.get("startTimestamp"))
    end = parse_iso_utc(duration.get("endTimestamp"))
    begin = begin if begin is not None else _milliseconds(duration.get("startTimestampMs"))
    end = end if end is not None else _milliseconds(duration.get("endTimestampMs"))
    return begin, end


def _center(visit: dict) -> tuple[float | None, float | None]:
    return _e7(visit.get("centerLatE7")), _e7(visit.get("centerLngE7"))


def _waypoints(activity: dict) -> list[tuple[float | None, float | None]]:
    path = activity.get("waypointPath")
    points = path.get("waypoints") if isinstance(path, dict) else None
    if not isinstance(points, list):
        return []
    return [(_e7(p.get("latE7")), _e7(p.get("lngE7"))) for p in points if isinstance(p, dict)]


def _raw_path(path: object, fixes: FixList) -> None:
    points = path.get("points") if isinstance(path, dict) else None
    for point in points if isinstance(points, list) else []:
        if isinstance(point, dict):
            t = parse_iso_utc(point.get("timestamp"))
            t = t if t is not None else _milliseconds(point.get("timestampMs"))
            fixes.add(t, _e7(point.get("latE7")), _e7(point.get("lngE7")),
                      _number(point.get("accuracyMeters"), PATH_ACCURACY_M))


# ---------------------------------------------------------------- semanticSegments and on-device array

def _segment(entry: dict, fixes: FixList) -> None:
    """Both newer layouts: startTime/endTime with timelinePath (a 'time' or minutes from the start),
    visit.topCandidate.placeLocation, activity.start/end; rawSignals' positions carry an accuracy."""
    begin, end = parse_iso_utc(entry.get("startTime")), parse_iso_utc(entry.get("endTime"))
    path = entry.get("timelinePath")
    for point in path if isinstance(path, list) else []:
        if not isinstance(point, dict):
            continue
        t = parse_iso_utc(point.get("time"))
        offset = _number(point.get("durationMinutesOffsetFromStartTime"), math.nan)
        if t is None and begin is not None and math.isfinite(offset):
            t = begin + 60.0 * offset
        fixes.add(t, *_lat_lon(point.get("point")), PATH_ACCURACY_M)
    visit = entry.get("visit")
    if isinstance(visit, dict):
        candidate = visit.get("topCandidate") if isinstance(visit.get("topCandidate"), dict) else {}
        location = candidate.get("placeLocation")
        text = location.get("latLng") if isinstance(location, dict) else location
        fixes.add_stay(begin, end, *_lat_lon(text), VISIT_ACCURACY_M)
    activity = entry.get("activity")
    if isinstance(activity, dict):
        fixes.add(begin, *_lat_lon(_lat_lng_text(activity.get("start"))), ACTIVITY_END_ACCURACY_M)
        fixes.add(end, *_lat_lon(_lat_lng_text(activity.get("end"))), ACTIVITY_END_ACCURACY_M)
    position = entry.get("position")  # a rawSignals entry
    if isinstance(position, dict):
        fixes.add(parse_iso_utc(position.get("timestamp")), *_lat_lon(position.get("LatLng")),
                  _number(position.get("accuracyMeters"), PATH_ACCURACY_M))


def _lat_lng_text(value: object) -> object:
    return value.get("latLng") if isinstance(value, dict) else value


def _geojson_feature(feature: dict, fixes: FixList) -> None:
    geometry, properties = feature.get("geometry"), feature.get("properties")
    if not isinstance(geometry, dict) or geometry.get("type") != "Point" or not isinstance(properties, dict):
        return
    coordinates = geometry.get("coordinates")
    if not isinstance(coordinates, list) or len(coordinates) < 2:
        return
    t = parse_iso_utc(properties.get("time")) or parse_iso_utc(properties.get("timestamp"))
    fixes.add(t, _number(coordinates[1], math.nan), _number(coordinates[0], math.nan),
              _number(properties.get("accuracy"), math.nan))


# ---------------------------------------------------------------- values

def _lat_lon(text: object) -> tuple[float | None, float | None]:
    """'geo:27.72,-97.34', '50.05°, 14.34°' or '48.85, 2.35'."""
    match = _LAT_LON.match(text) if isinstance(text, str) else None
    return (float(match.group(1)), float(match.group(2))) if match else (None, None)


def _e7(value: object) -> float | None:
    number = _number(value, math.nan)
    if not math.isfinite(number):
        return None
    # Old exports wrote southern/western E7 values as unsigned 32-bit integers
    if number > 1_800_000_000:
        number -= 2**32
    return number / 1e7


def _e7_pair(location: object) -> tuple[float | None, float | None]:
    if not isinstance(location, dict):
        return None, None
    return _e7(location.get("latitudeE7")), _e7(location.get("longitudeE7"))


def _milliseconds(value: object) -> float | None:
    number = _number(value, math.nan)
    return number / 1000.0 if math.isfinite(number) else None


def _number(value: object, default: float) -> float:
    if isinstance(value, bool):
        return default
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:120] if text else type(error).__name__
