"""GPS tracks the user passes with ``--track FILE``: where was the person at UTC time t, and how sure.

read_track turns any supported file (GPX, KML gx:Track, Google Takeout location history, NMEA, IGC)
into clean per-segment numpy tracks plus one clear message per problem, never an exception.
positions_at answers for many photo times at once (np.searchsorted), interpolating between the two
fixes around each time under exiftool -geotag's kind of limits (the longest gap, the farthest
before/after a segment) plus a speed check, with a radius meant to hold the true position >= 95 % of
the time: the fixes' own accuracy, half the distance between them (when in the gap the person moved is
unknown) and a detour term that grows with the time to the nearest fix.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

import numpy as np

from src.serving.locate.geo import distance_m
from src.serving.locate.track_formats import FixList, ParseResult, read_gpx, read_kml
from src.serving.locate.track_logs import read_csv, read_igc, read_nmea, read_owntracks
from src.serving.locate.track_takeout import read_takeout_json

__all__ = [
    "DEFAULT_ACCURACY_M", "Track", "TrackRead", "TrackLimits", "TrackFix",
    "read_track", "read_tracks", "position_at", "positions_at",
]

DEFAULT_MAX_BYTES = 512 * 2**20
DEFAULT_ACCURACY_M = 10.0  # a GPS fix whose file states no accuracy (a 68 % radius, as Takeout's 'accuracy')
ACCURACY_TO_95 = 2.0  # a 68 % radius to a 95 % one (a 2-D normal: 2.45 sigma over 1.51 sigma, rounded up)
EARLIEST_UTC = datetime(1990, 1, 1, tzinfo=timezone.utc).timestamp()  # before consumer GPS: a wrong clock
SNIFF_BYTES = 4096
_NMEA_SENTENCE = re.compile(r"(?m)^\$[A-Z]{4,8},")
_OWNTRACKS_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\S+\t[^\t]*\t\{")


@dataclass(frozen=True)
class Track:
    """One device's fixes (one segment), sorted by time; duplicates of a time merged."""
    source: str  # file name (+ track/segment name)
    times: np.ndarray  # float64 UTC seconds since the epoch, strictly increasing
    latitudes: np.ndarray  # float64 degrees
    longitudes: np.ndarray  # float64 degrees, -180..180
    accuracy_m: np.ndarray | None  # float32 68 % radius where the format gives one, else None

    def __len__(self) -> int:
        return int(self.times.size)


@dataclass(frozen=True)
class TrackRead:
    tracks: list[Track]
    problems: list[str]  # one clear message per problem; empty when the file was read as a whole


@dataclass(frozen=True)
class TrackLimits:
    """Like exiftool -geotag's GeoMaxIntSecs / GeoMaxExtSecs, plus a speed check."""
    max_gap_s: float = 1800.0  # interpolate only between fixes at most this far apart
    max_outside_s: float = 120.0  # before the first / after the last fix of a segment: at most this far
    max_speed_mps: float = 70.0  # a pair of fixes implying more than this is not interpolated (a GPS jump)
    detour_speed_mps: float = 1.0  # how fast the person may stray from the line between two fixes


@dataclass(frozen=True)
class TrackFix:
    latitude: float
    longitude: float
    radius_m: float  # should hold the true position >= 95 % of the time
    source: str  # the track's source
    detail: str  # how: "interpolated 12 s after / 48 s before fixes 35 m apart", "at a fix", ...


# ---------------------------------------------------------------- reading

def read_track(path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES, now: datetime | None = None) -> TrackRead:
    """Every track in one file, cleaned; what could not be used is said in problems, never raised."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            return TrackRead([], [f"{path}: not a file"])
    except OSError as error:
        return TrackRead([], [f"{path}: cannot be read ({error.strerror or error})"])
    if size == 0:
        return TrackRead([], [f"{path.name}: empty file (0 bytes)"])
    if size > max_bytes:
        return TrackRead([], [f"{path.name}: {size / 2**20:.0f} MB, over the {max_bytes / 2**20:.0f} MB "
                              "limit for a track file: not read"])
    try:
        parsed = _parse(path)
    except (OSError, MemoryError) as error:
        return TrackRead([], [f"{path.name}: cannot be read ({error})"])
    except Exception as error:  # the promise is a message, never a traceback: even for a case no reader foresaw
        return TrackRead([], [f"{path.name}: not readable as a track ({type(error).__name__}: {error})"])
    return _clean(path, parsed, now or datetime.now(timezone.utc))


def read_tracks(paths: Sequence[str | Path], **options) -> TrackRead:
    """read_track over several files (the repeatable --track option): all tracks, all problems."""
    tracks: list[Track] = []
    problems: list[str] = []
    for path in paths:
        read = read_track(path, **options)
        tracks.extend(read.tracks)
        problems.extend(read.problems)
    return TrackRead(tracks, problems)


def _parse(path: Path) -> ParseResult:
    with open(path, "rb") as stream:
        head = stream.read(SNIFF_BYTES)
    kind = _sniff(path, head)
    if kind.startswith("unsupported:"):
        return ParseResult(problems=[kind.split(":", 1)[1]])
    if kind == "json":
        return read_takeout_json(path)
    readers = {"gpx": read_gpx, "kml": read_kml, "nmea": read_nmea, "igc": read_igc, "csv": read_csv,
               "owntracks": read_owntracks}
    return readers[kind](path)


def _sniff(path: Path, head: bytes) -> str:
    """The format from the first bytes (a name can lie: a .txt NMEA log, a .json that is a GPX)."""
    text = head.decode("utf-8-sig", errors="replace").lstrip()
    suffix = path.suffix.lower()
    if len(head) >= 12 and head[8:12] == b".FIT":
        return "unsupported:FIT activity file: format not supported (export it as GPX)"
    if head.startswith(b"PK\x03\x04"):
        return "unsupported:a zip archive (KMZ, a Takeout archive?): format not supported (unpack it first)"
    if text.startswith(("{", "[")):
        return "json"
    if text.startswith("<"):
        if "<gpx" in text:
            return "gpx"
        if "<kml" in text:
            return "kml"
        return "unsupported:XML that is neither GPX nor KML: format not supported"
    if _NMEA_SENTENCE.search(text) or suffix in (".nmea", ".nmx"):
        return "nmea"
    if suffix == ".igc" or ("HFDTE" in text and "\nB" in text):
        return "igc"
    if suffix == ".rec" or _OWNTRACKS_LINE.match(text):
        return "owntracks"
    if suffix == ".csv":
        return "csv"  # the CSV reader says which column is missing
    if suffix == ".gpx":
        return "gpx"  # let the GPX reader say how it is broken
    if suffix == ".kml":
        return "kml"
    return (f"unsupported:not a track file this tagger reads ({suffix or 'no extension'}): "
            "format not supported (GPX, KML, Google Takeout JSON, NMEA, IGC, CSV and OwnTracks are)")


def _clean(path: Path, parsed: ParseResult, now: datetime) -> TrackRead:
    problems = [f"{path.name}: {message}" for message in parsed.problems]
    latest = (now + timedelta(days=1)).timestamp()
    tracks: list[Track] = []
    bad_places = too_early = too_late = 0
    early_years: set[int] = set()
    for fixes in parsed.fix_lists:
        if not fixes:
            continue
        times = np.asarray(fixes.times, dtype=np.float64)
        lats = np.asarray(fixes.latitudes, dtype=np.float64)
        lons = np.asarray(fixes.longitudes, dtype=np.float64)
        accuracy = np.asarray(fixes.accuracies, dtype=np.float64)
        valid_place = np.isfinite(lats) & np.isfinite(lons) & (np.abs(lats) <= 90) & (np.abs(lons) <= 180)
        early, late = times < EARLIEST_UTC, times > latest
        bad_places += int((~valid_place).sum())
        too_early += int((early & valid_place).sum())
        too_late += int((late & valid_place).sum())
        early_years.update(_years(times[early & valid_place]))
        keep = valid_place & ~early & ~late & np.isfinite(times)
        if keep.any():
            tracks.append(_track(fixes, times[keep], lats[keep], lons[keep], accuracy[keep]))
    if bad_places:
        problems.append(f"{path.name}: {bad_places} points with an impossible latitude/longitude: dropped")
    if too_early:
        years = ", ".join(str(y) for y in sorted(early_years)[:3])
        problems.append(f"{path.name}: {too_early} points with times in {years} (before 1990, a wrong clock): ignored")
    if too_late:
        problems.append(f"{path.name}: {too_late} points with times in the future: ignored")
    if not tracks and parsed.untimed_points and not parsed.problems:
        problems.append(f"{path.name}: no times: cannot be used to place photos "
                        f"({parsed.untimed_points} points without a time)")
    elif not tracks and not problems:
        problems.append(f"{path.name}: no track points (empty tracks or segments): nothing to place photos with")
    return TrackRead(tracks, problems)


def _track(fixes: FixList, times: np.ndarray, lats: np.ndarray, lons: np.ndarray, accuracy: np.ndarray) -> Track:
    """Sorted by time; of fixes at the same time the most accurate one is kept (unknown counts as worst)."""
    order = np.lexsort((np.nan_to_num(accuracy, nan=np.inf), times))
    times, lats, lons, accuracy = times[order], lats[order], lons[order], accuracy[order]
    first = np.ones(times.size, dtype=bool)
    first[1:] = times[1:] != times[:-1]
    stated = np.isfinite(accuracy[first])
    kept_accuracy = None
    if stated.any():
        kept_accuracy = np.where(stated, accuracy[first], DEFAULT_ACCURACY_M).astype(np.float32)
    return Track(fixes.name, times[first], lats[first], _wrap(lons[first]), kept_accuracy)


def _years(times: np.ndarray) -> set[int]:
    years = set()
    for t in times[np.isfinite(times)][:1000]:
        try:
            years.add((datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=float(t))).year)
        except OverflowError:
            continue
    return years


# ---------------------------------------------------------------- where at time t

def position_at(tracks: Sequence[Track], t_utc: float, limits: TrackLimits = TrackLimits()) -> TrackFix | None:
    """The position at one UTC time, or None when no track covers it within the limits."""
    return positions_at(tracks, np.asarray([t_utc], dtype=np.float64), limits)[0]


def positions_at(tracks: Sequence[Track], times: np.ndarray, limits: TrackLimits = TrackLimits()) -> list[TrackFix | None]:
    """Positions at many UTC times at once. Where several tracks cover a time, the smallest radius wins,
    provided every other track's answer agrees with it (closer than both radii together); where two
    disagree (a tablet left at home in the same Takeout, a friend's GPX), the tracks cannot say where
    the person was: None."""
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    best = _Answers.empty(times.size)
    for index, track in enumerate(tracks):
        if len(track):
            best.keep_better(_answers_for(track, times, limits), index)
    if sum(1 for track in tracks if len(track)) > 1:
        # a second pass, not every track's answers kept at once: memory stays one answer set per call
        for index, track in enumerate(tracks):
            if len(track):
                best.drop_conflicts(_answers_for(track, times, limits))
    return best.fixes(tracks)


@dataclass
class _Answers:
    """Per asked time: position, radius (inf = no answer), which track, and what the detail says."""
    latitude: np.ndarray
    longitude: np.ndarray
    radius: np.ndarray
    track: np.ndarray
    before_s: np.ndarray  # seconds since the fix before (nan: none)
    after_s: np.ndarray  # seconds to the fix after (nan: none)
    pair_m: np.ndarray  # distance between the two fixes (nan: extrapolated)

    @classmethod
    def empty(cls, n: int) -> "_Answers":
        nan = np.full(n, np.nan)
        return cls(nan.copy(), nan.copy(), np.full(n, np.inf), np.full(n, -1), nan.copy(), nan.copy(), nan.copy())

    def keep_better(self, other: "_Answers", index: int) -> None:
        better = other.radius < self.radius
        for name in ("latitude", "longitude", "radius", "before_s", "after_s", "pair_m"):
            getattr(self, name)[better] = getattr(other, name)[better]
        self.track[better] = index

    def drop_conflicts(self, other: "_Answers") -> None:
        both = np.isfinite(self.radius) & np.isfinite(other.radius)
        apart = distance_m(self.latitude[both], self.longitude[both], other.latitude[both], other.longitude[both])
        conflict = np.flatnonzero(both)[apart > self.radius[both] + other.radius[both]]
        self.radius[conflict] = np.inf

    def fixes(self, tracks: Sequence[Track]) -> list[TrackFix | None]:
        answers: list[TrackFix | None] = [None] * self.radius.size
        rows = np.flatnonzero(np.isfinite(self.radius))
        # Python floats, not numpy scalars: building 10,000 answers is then a few milliseconds
        columns = [getattr(self, name)[rows].tolist()
                   for name in ("latitude", "longitude", "radius", "track", "before_s", "after_s", "pair_m")]
        for i, lat, lon, radius, track, before, after, pair in zip(rows.tolist(), *columns):
            answers[i] = TrackFix(lat, lon, radius, tracks[track].source, _detail(before, after, pair))
        return answers


def _answers_for(track: Track, times: np.ndarray, limits: TrackLimits) -> _Answers:
    answers = _Answers.empty(times.size)
    n = len(track)
    accuracy95 = _Accuracy95(track.accuracy_m)
    after = np.searchsorted(track.times, times, side="left")  # first fix at or after t
    finite = np.isfinite(times)
    # exactly at a fix, unless the fix is a spike: too fast to reach from the fix before and to leave for the one after
    at_fix = finite & (after < n) & (track.times[np.minimum(after, n - 1)] == times)
    k = after[at_fix]
    inner = (k > 0) & (k < n - 1)
    spike = np.zeros(k.size, dtype=bool)
    before_gap, before_ok, _ = _pairs(track, k[inner] - 1, k[inner], accuracy95, limits)
    after_gap, after_ok, _ = _pairs(track, k[inner], k[inner] + 1, accuracy95, limits)
    spike[inner] = (before_gap <= limits.max_gap_s) & ~before_ok & (after_gap <= limits.max_gap_s) & ~after_ok
    rows, k = np.flatnonzero(at_fix)[~spike], k[~spike]
    _set(answers, rows, track.latitudes[k], track.longitudes[k], accuracy95[k], before=0.0, after=0.0, pair=0.0)
    # between two fixes
    inside = finite & ~at_fix & (after > 0) & (after < n)
    i1 = after[inside]
    i0 = i1 - 1
    t = times[inside]
    gap, usable, pair_m = _pairs(track, i0, i1, accuracy95, limits)
    fraction = (t - track.times[i0]) / gap
    lat, lon = _interpolate(track.latitudes[i0], track.longitudes[i0], track.latitudes[i1], track.longitudes[i1], fraction)
    since, until = t - track.times[i0], track.times[i1] - t
    radius = (np.maximum(accuracy95[i0], accuracy95[i1]) + 0.5 * pair_m
              + limits.detour_speed_mps * np.minimum(since, until))
    rows = np.flatnonzero(inside)[usable]
    _set(answers, rows, lat[usable], lon[usable], radius[usable], since[usable], until[usable], pair_m[usable])
    # just before the first fix / just after the last: the nearest fix, moving at the first/last pair's pace
    _extrapolate(answers, track, times, finite & ~at_fix & (after == 0), 0, 1, accuracy95, limits)
    _extrapolate(answers, track, times, finite & ~at_fix & (after == n), n - 1, n - 2, accuracy95, limits)
    return answers


def _pairs(track: Track, i0: np.ndarray, i1: np.ndarray, accuracy95: "_Accuracy95",
           limits: TrackLimits) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gap s, usable, distance m) of fix pairs: usable when at most max_gap_s apart and no faster than
    max_speed_mps beyond what the two fixes' own error explains."""
    gap = track.times[i1] - track.times[i0]
    pair_m = distance_m(track.latitudes[i0], track.longitudes[i0], track.latitudes[i1], track.longitudes[i1])
    excess_m = np.maximum(pair_m - accuracy95[i0] - accuracy95[i1], 0.0)
    return gap, (gap <= limits.max_gap_s) & (excess_m <= limits.max_speed_mps * gap), pair_m


def _extrapolate(answers: _Answers, track: Track, times: np.ndarray, mask: np.ndarray, end: int, neighbour: int,
                 accuracy95: "_Accuracy95", limits: TrackLimits) -> None:
    outside_s = np.abs(times - track.times[end])
    mask = mask & (outside_s <= limits.max_outside_s)
    if not mask.any():
        return
    speed = limits.detour_speed_mps
    if 0 <= neighbour < len(track):
        pair_m = float(distance_m(track.latitudes[end], track.longitudes[end],
                                  track.latitudes[neighbour], track.longitudes[neighbour]))
        pace = pair_m / max(abs(track.times[end] - track.times[neighbour]), 1.0)
        speed = max(speed, min(pace, limits.max_speed_mps))
    radius = accuracy95[end] + speed * outside_s[mask]
    before = np.where(times[mask] > track.times[end], outside_s[mask], np.nan)
    after = np.where(times[mask] < track.times[end], outside_s[mask], np.nan)
    _set(answers, mask, np.full(radius.size, track.latitudes[end]), np.full(radius.size, track.longitudes[end]),
         radius, before, after, np.nan)


class _Accuracy95:
    """The fixes' 95 % radius, looked up only where asked (no work per call that grows with the track)."""

    def __init__(self, accuracy_m: np.ndarray | None):
        self._accuracy = accuracy_m

    def __getitem__(self, index):
        if self._accuracy is None:
            return np.full(np.shape(index), ACCURACY_TO_95 * DEFAULT_ACCURACY_M)
        return ACCURACY_TO_95 * self._accuracy[index].astype(np.float64)


def _set(answers: _Answers, rows, lat, lon, radius, before, after, pair) -> None:
    answers.latitude[rows], answers.longitude[rows], answers.radius[rows] = lat, lon, radius
    answers.before_s[rows], answers.after_s[rows], answers.pair_m[rows] = before, after, pair


def _interpolate(lat0: np.ndarray, lon0: np.ndarray, lat1: np.ndarray, lon1: np.ndarray,
                 fraction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear in local metres between fixes at most a speed limit x a gap apart (tens of km at most):
    the longitude step goes the short way round, so a pair across the antimeridian stays near it."""
    dlon = _wrap(lon1 - lon0)
    return lat0 + fraction * (lat1 - lat0), _wrap(lon0 + fraction * dlon)


def _wrap(longitude: np.ndarray) -> np.ndarray:
    wrapped = (np.asarray(longitude, dtype=np.float64) + 180.0) % 360.0 - 180.0
    return np.where((wrapped == -180.0) & (np.asarray(longitude) > 0), 180.0, wrapped)


def _detail(before_s: float, after_s: float, pair_m: float) -> str:
    if before_s == 0.0 and after_s == 0.0:
        return "at a track fix"
    if math.isnan(pair_m):
        side = f"{before_s:.0f} s after the track's last fix" if not math.isnan(before_s) else \
            f"{after_s:.0f} s before the track's first fix"
        return f"{side} (its position kept)"
    return f"interpolated {before_s:.0f} s after / {after_s:.0f} s before fixes {pair_m:.0f} m apart"
