"""The photos of one run as one library: each photo's time, its device's clock, and one decision on its position.

`locate_library` is the whole second pass of the tagger (after recognition, before writing):

1. every photo's clock time and, where the photo says it (OffsetTimeOriginal or a GPS time), its UTC time;
2. each device's clock (`src.serving.locate.clocks`): known from its own tags, set by ``--camera-offset``, or
   tied to the known-time evidence by landmarks or bursts; untied devices take no position from others' time;
3. the library's own fixes: GPS photos of devices whose clock is known, plus the tracks given;
4. for each photo without its own GPS: the evidence (`src.serving.locate.evidence`) and one decision
   (`src.serving.locate.decide`). A photo's own GPS is never changed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path

import numpy as np

from src.serving.locate.clocks import (
    ClockLimits,
    DeviceClock,
    clock_days,
    known_clock,
    narrow_per_day,
    refine_by_bursts,
    refine_by_stillness,
    tie_by_bursts,
    tie_by_landmarks,
)
from src.serving.locate.decide import Decision, decide
from src.serving.locate.evidence import (
    Fixes,
    Proposal,
    ReachLimits,
    TimeLimits,
    landmark_proposal,
    reach_proposal,
    time_proposal,
    track_proposal,
)
from src.serving.locate.geo import distance_m
from src.serving.locate.photo_meta import PhotoMeta, device_key
from src.serving.locate.tracks import Track, TrackLimits

__all__ = ["ContextConfig", "LibraryPhoto", "Located", "library_photo", "locate_library", "GPS_PHOTO_RADIUS_M"]

GPS_PHOTO_RADIUS_M = 30.0  # a phone's own fix, as a neighbour of other photos


@dataclass(frozen=True)
class LibraryPhoto:
    name: str
    meta: PhotoMeta | None  # None: the file could not be read
    device: str = ""
    landmark: tuple[float, float] | None = None  # where the recognizer placed it (its landmark's position)
    landmark_name: str = ""


def library_photo(name: str, meta: PhotoMeta, landmark: tuple[float, float] | None = None, landmark_name: str = "") -> LibraryPhoto:
    """A readable photo, grouped with its device's others. A photo nothing identifies (no make, model or telling
    file name) is a device of its own: never grouped by chance."""
    file_name = Path(name).name
    return LibraryPhoto(name, meta, device_key(meta, file_name) or f"unidentified ({file_name})", landmark, landmark_name)


@dataclass(frozen=True)
class ContextConfig:
    tracks: Sequence[Track] = ()
    camera_offsets: Mapping[str, float] = field(default_factory=dict)  # casefolded device text -> clock minus UTC (s)
    clocks: ClockLimits = ClockLimits()
    time: TimeLimits = TimeLimits()
    reach: ReachLimits = ReachLimits()
    track_limits: TrackLimits = TrackLimits()


@dataclass(frozen=True)
class Located:
    decision: Decision
    device: str
    time_utc: float | None  # UTC seconds, as estimated (None: the device's clock is unknown)
    clock: DeviceClock | None


def locate_library(photos: Sequence[LibraryPhoto], config: ContextConfig = ContextConfig()) -> list[Located]:
    clock_s = np.array([_seconds(p.meta.taken_local) if p.meta and p.meta.taken_local else np.nan for p in photos])
    utc_s = np.array([_own_utc(p.meta) for p in photos])
    by_device: dict[str, list[int]] = defaultdict(list)
    for index, photo in enumerate(photos):
        if photo.meta is not None:
            by_device[photo.device].append(index)

    clocks: dict[str, DeviceClock] = {}
    uncertainty = np.full(len(photos), np.nan)
    pending: list[str] = []
    for device, members in by_device.items():
        members_a = np.array(members)
        user = _user_offset(device, config.camera_offsets)
        if user is not None:
            clocks[device] = DeviceClock(device, user, 60.0, "--camera-offset")
            utc_s[members_a] = np.where(np.isfinite(utc_s[members_a]), utc_s[members_a], clock_s[members_a] - user)
        elif np.any(np.isfinite(clock_s[members_a]) & np.isfinite(utc_s[members_a])):
            how = "offset tags" if any(photos[i].meta.offset is not None for i in members) else "GPS time"
            clocks[device], utc_s[members_a] = known_clock(device, clock_s[members_a], utc_s[members_a], how)
        else:
            pending.append(device)
            continue
        uncertainty[members_a] = clocks[device].uncertainty_s

    fixes = _photo_fixes(photos, utc_s)
    everywhere = _with_tracks(fixes, config.tracks)
    known_times = utc_s[np.isfinite(utc_s)]
    # A camera is set at home, like the phone, and left alone: its offset is looked for near the home zone, the one
    # the library's earliest known-time photo kept (to the quarter hour). A library that starts abroad has none.
    told = np.flatnonzero(np.isfinite(clock_s) & np.isfinite(utc_s))
    first = told[np.argmin(utc_s[told])] if len(told) else None
    zones = np.array([np.round((clock_s[first] - utc_s[first]) / 900.0) * 900.0]) if first is not None else np.array([])
    for device in pending:
        members_a = np.array(by_device[device])
        clock = _tie(device, members_a, photos, clock_s, everywhere, known_times, zones, config)
        clocks[device] = clock
        if clock.tied:
            offsets, uncertainties = clock.at(clock_s[members_a])
            utc_s[members_a] = clock_s[members_a] - offsets
            uncertainty[members_a] = uncertainties

    own_fixes = {device: _own_clock_fixes(photos, members, clock_s) for device, members in by_device.items() if not clocks[device].tied}
    located = []
    for index, photo in enumerate(photos):
        clock = clocks.get(photo.device)
        time = float(utc_s[index]) if np.isfinite(utc_s[index]) else None
        if photo.meta is None:
            decision = Decision("")
        elif photo.meta.position is not None:
            decision = Decision("gps", *photo.meta.position, None, "the photo's own GPS position (left unchanged)")
        else:
            proposals = _proposals(photo, time, float(uncertainty[index]) if time is not None else 0.0, fixes, everywhere,
                                   own_fixes.get(photo.device), float(clock_s[index]), config)
            decision = decide(proposals)
            if not proposals and clock is not None and not clock.tied and clock.why:
                decision = Decision("", message=f"no position from the photos around it: device {photo.device!r} is not tied to GPS time ({clock.why})")
        located.append(Located(decision, photo.device, time, clock))
    return located


def _proposals(photo: LibraryPhoto, time: float | None, uncertainty: float, fixes: Fixes, everywhere: Fixes, own: Fixes | None,
               clock: float, config: ContextConfig) -> list[Proposal]:
    proposals = []
    if photo.landmark is not None:
        proposals.append(landmark_proposal(*photo.landmark, photo.landmark_name))
        reach = reach_proposal(everywhere, *photo.landmark, time, clock, uncertainty, config.reach)
        if reach is not None:
            proposals.append(reach)
    if time is not None:
        by_time = time_proposal(fixes, time, uncertainty, config.time)
        if by_time is not None:
            proposals.append(by_time)
        if config.tracks:
            by_track = track_proposal(config.tracks, time, uncertainty, config.track_limits)
            if by_track is not None and by_track.radius_m <= config.time.max_radius_m:
                proposals.append(by_track)
    elif own is not None and len(own) and np.isfinite(clock):  # an untied device's own GPS photos share its clock
        by_time = time_proposal(own, clock, 0.0, config.time, what="this device's GPS photos")
        if by_time is not None:
            proposals.append(by_time)
    return proposals


def _tie(device: str, members: np.ndarray, photos: Sequence[LibraryPhoto], clock_s: np.ndarray, everywhere: Fixes,
         known_times: np.ndarray, zones: np.ndarray, config: ContextConfig) -> DeviceClock:
    """Tie an unknown clock by its landmark photos, else by its bursts; then narrow it day by day (cameras drift)."""
    landmarks = np.array([i for i in members if photos[i].landmark is not None and np.isfinite(clock_s[i])], dtype=int)
    clocks = clock_s[members]
    by_bursts = lambda clock, times: refine_by_bursts(clock, times, known_times, config.clocks)
    if len(landmarks) and len(everywhere):
        tied = _landmark_tie(device, landmarks, photos, clock_s, everywhere, config)
        if tied is not None and tied.tied:
            if len(known_times):
                return narrow_per_day(by_bursts(tied, clocks), clocks, by_bursts, config.clocks)
            # Only tracks know the time: the camera's photos were taken where the person stood or strolled, not on the road.
            still = _still_fixes(config.tracks)
            by_stillness = lambda clock, times: refine_by_stillness(clock, times, still, config.clocks)
            return narrow_per_day(by_stillness(tied, clocks), clocks, by_stillness, config.clocks)
    if len(known_times) == 0:
        return DeviceClock(device, None, why="no photo in the library says its UTC time (no GPS photo, no offset tags)")
    tied = narrow_per_day(tie_by_bursts(device, clocks[np.isfinite(clocks)], known_times, config.clocks, zones), clocks, by_bursts, config.clocks)
    sharp = sum(uncertainty <= config.clocks.sharp_day_s for _, _, uncertainty in tied.days)
    if tied.tied and sharp * config.clocks.sharp_day_share_inverse < len(np.unique(clock_days(clocks[np.isfinite(clocks)]))):
        # Bursts that line up by chance (a camera at home while the phone travels) do so loosely, day after day.
        return DeviceClock(device, None, why=f"its bursts line up sharply on {sharp} of its days only")
    return tied


def _still_fixes(tracks: Sequence[Track], still_mps: float = 2.5) -> np.ndarray:
    """The times of track fixes where the person stood or strolled (slower than ``still_mps`` both ways), sorted."""
    times = []
    for track in tracks:
        if len(track) < 3:
            continue
        speed = distance_m(track.latitudes[:-1], track.longitudes[:-1], track.latitudes[1:], track.longitudes[1:]) / np.maximum(np.diff(track.times), 1.0)
        slow = np.minimum(np.r_[speed[0], speed], np.r_[speed, speed[-1]]) < still_mps
        slow &= np.maximum(np.r_[speed[0], speed], np.r_[speed, speed[-1]]) < still_mps
        times.append(track.times[slow])
    return np.sort(np.concatenate(times)) if times else np.array([])


def _landmark_tie(device: str, landmarks: np.ndarray, photos: Sequence[LibraryPhoto], clock_s: np.ndarray, everywhere: Fixes,
                  config: ContextConfig) -> DeviceClock | None:
    """tie_by_landmarks over these landmark photos against every known-time fix (GPS photos and track points)."""
    if len(landmarks) == 0:
        return None
    if len(landmarks) > config.clocks.max_landmark_photos:  # evenly over the device's time: enough to tie, linear cost
        landmarks = landmarks[np.argsort(clock_s[landmarks])][np.linspace(0, len(landmarks) - 1, config.clocks.max_landmark_photos).astype(int)]
    lats = np.array([photos[i].landmark[0] for i in landmarks])
    lons = np.array([photos[i].landmark[1] for i in landmarks])
    clocks = clock_s[landmarks]
    candidates = _candidate_offsets(clocks, lats, lons, everywhere, config)
    return tie_by_landmarks(device, clocks, lats, lons, candidates, everywhere.times, everywhere.latitudes, everywhere.longitudes, config.clocks)


def _candidate_offsets(clocks, lats, lons, everywhere: Fixes, config: ContextConfig) -> np.ndarray:
    """clock - utc for every known-time fix (photo or track point) near one of the landmark photos."""
    offsets = []
    for clock, lat, lon in zip(clocks, lats, lons):  # only fixes a plausible clock offset can reach
        span = everywhere.window(clock - config.clocks.latest_offset_s, clock - config.clocks.earliest_offset_s)
        close = distance_m(lat, lon, everywhere.latitudes[span], everywhere.longitudes[span]) <= config.clocks.same_place_m
        offsets.append(clock - everywhere.times[span][close])
    return np.concatenate(offsets) if offsets else np.array([])


def _with_tracks(fixes: Fixes, tracks: Sequence[Track]) -> Fixes:
    """The photos' fixes and every track point, in one time order (where the person was, whoever recorded it)."""
    if not tracks:
        return fixes
    return Fixes.of(np.concatenate([fixes.times, *[t.times for t in tracks]]),
                    np.concatenate([fixes.latitudes, *[t.latitudes for t in tracks]]),
                    np.concatenate([fixes.longitudes, *[t.longitudes for t in tracks]]),
                    np.concatenate([fixes.radii, *[np.full(len(t), GPS_PHOTO_RADIUS_M) for t in tracks]]),
                    list(fixes.labels) + [t.source for t in tracks for _ in range(len(t))])


def _photo_fixes(photos: Sequence[LibraryPhoto], utc_s: np.ndarray) -> Fixes:
    chosen = [i for i, p in enumerate(photos) if p.meta is not None and p.meta.position is not None and np.isfinite(utc_s[i])]
    return Fixes.of(utc_s[chosen], [photos[i].meta.position[0] for i in chosen], [photos[i].meta.position[1] for i in chosen],
                    np.full(len(chosen), GPS_PHOTO_RADIUS_M), [photos[i].name for i in chosen])


def _own_clock_fixes(photos: Sequence[LibraryPhoto], members: Sequence[int], clock_s: np.ndarray) -> Fixes:
    chosen = [i for i in members if photos[i].meta.position is not None and np.isfinite(clock_s[i])]
    return Fixes.of(clock_s[chosen], [photos[i].meta.position[0] for i in chosen], [photos[i].meta.position[1] for i in chosen],
                    np.full(len(chosen), GPS_PHOTO_RADIUS_M), [photos[i].name for i in chosen])


def _user_offset(device: str, offsets: Mapping[str, float]) -> float | None:
    """--camera-offset "MAKE MODEL=..." applies to that device, whatever its serial number or file-name pattern."""
    name = device.casefold()
    for key, value in offsets.items():
        if name == key or name.startswith(key + " "):
            return value
    return None


def _seconds(moment) -> float:
    """A naive wall-clock time as seconds on its own clock (as if it were UTC)."""
    return moment.replace(tzinfo=timezone.utc).timestamp() if moment.tzinfo is None else moment.timestamp()


def _own_utc(meta: PhotoMeta | None) -> float:
    if meta is None:
        return np.nan
    if meta.time_utc is not None:
        return meta.time_utc.timestamp()
    if meta.gps_utc is not None:
        return meta.gps_utc.timestamp()
    return np.nan
