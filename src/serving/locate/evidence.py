"""What each piece of library evidence says about one photo: a position and a radius that should hold it.

* `landmark_proposal`: the recognizer placed the photo at a landmark (its own rule, unchanged);
* `time_proposal`: GPS photos of a tied device shortly before and after it (interpolated between them);
* `track_proposal`: a GPS track at the photo's UTC time (`src.serving.locate.tracks.position_at`).

A proposal is never made where the evidence cannot be sure: no fix close enough in time, or the person could
have gone far in between (the train ride). The radius is a bound, not a standard deviation: from every fix the
person can have moved at most ``speed * time``, so the position lies within that of each fix at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from src.serving.locate.geo import distance_m, interpolate

__all__ = ["Proposal", "Fixes", "TimeLimits", "ReachLimits", "time_proposal", "landmark_proposal", "track_proposal", "reach_proposal",
           "LANDMARK_RADIUS_M"]

LANDMARK_RADIUS_M = 1000.0  # a landmark is photographed from within about a kilometre of it


@dataclass(frozen=True)
class Proposal:
    source: str  # "landmark" | "time" | "track" | "visual"
    latitude: float
    longitude: float
    radius_m: float
    detail: str  # what it rests on, for the report
    decides: bool = True  # False: it can only contradict (where the person can have been), never give the position


@dataclass(frozen=True)
class TimeLimits:
    """When photos of known time and place may place a photo between them."""

    max_gap_s: float = 1800.0  # a fix further away in time than this says nothing
    walking_speed_mps: float = 1.5  # how far a person moves per second without a vehicle, at least
    speed_margin: float = 1.5  # the speed between the bracketing fixes, times this, bounds the movement
    unbracketed_speed_mps: float = 4.0  # with fixes on one side only, the person may have left at this speed
    max_radius_m: float = 3000.0  # a proposal vaguer than this is not made


@dataclass(frozen=True)
class Fixes:
    """Positions at known times (GPS photos of tied devices), sorted by time: the library's own "track"."""

    times: np.ndarray  # UTC seconds (or one device's clock seconds, for its own photos)
    latitudes: np.ndarray
    longitudes: np.ndarray
    radii: np.ndarray  # each fix's own uncertainty, metres
    labels: Sequence[str] = field(default_factory=list)  # file names, for the report

    @staticmethod
    def of(times, latitudes, longitudes, radii, labels: Sequence[str]) -> "Fixes":
        order = np.argsort(np.asarray(times, dtype=float), kind="stable")
        return Fixes(np.asarray(times, dtype=float)[order], np.asarray(latitudes, dtype=float)[order],
                     np.asarray(longitudes, dtype=float)[order], np.asarray(radii, dtype=float)[order], [labels[i] for i in order])

    def __len__(self) -> int:
        return len(self.times)

    def window(self, start: float, end: float) -> slice:
        return slice(int(np.searchsorted(self.times, start, "left")), int(np.searchsorted(self.times, end, "right")))


def time_proposal(fixes: Fixes, time: float, uncertainty: float, limits: TimeLimits = TimeLimits(), what: str = "GPS photos") -> Proposal | None:
    """The position between the fixes nearest before and after ``time`` (known to +- ``uncertainty``)."""
    span = fixes.window(time - uncertainty - limits.max_gap_s, time + uncertainty + limits.max_gap_s)
    times = fixes.times[span]
    if len(times) == 0:
        return None
    lats, lons, radii = fixes.latitudes[span], fixes.longitudes[span], fixes.radii[span]
    before = np.flatnonzero(times <= time)
    after = np.flatnonzero(times > time)
    # How fast the person moved then: the fastest hop between consecutive fixes from the last one before the
    # photo's earliest possible time to the first one after its latest bounds it.
    first = before[np.searchsorted(times[before], time - uncertainty, "right") - 1] if len(before) and times[before[0]] <= time - uncertainty else 0
    later = np.flatnonzero(times >= time + uncertainty)
    last = later[0] if len(later) else len(times) - 1
    near = slice(first, last + 1)
    hops = distance_m(lats[near][:-1], lons[near][:-1], lats[near][1:], lons[near][1:]) / np.maximum(np.diff(times[near]), 1.0)
    speed = max(limits.walking_speed_mps, limits.speed_margin * float(hops.max(initial=0.0)))
    if len(before) and len(after):
        b, a = before[-1], after[0]
        latitude, longitude = interpolate(lats[b], lons[b], lats[a], lons[a], (time - times[b]) / max(times[a] - times[b], 1.0))
    else:  # fixes on one side only: nothing says the person did not leave in a vehicle
        nearest = before[-1] if len(before) else after[0]
        latitude, longitude = lats[nearest], lons[nearest]
        speed = max(speed, limits.unbracketed_speed_mps)
    # From every fix the person moved at most speed * (time apart): the position is within that of each at once.
    reach = distance_m(latitude, longitude, lats, lons) + radii + speed * (np.abs(times - time) + uncertainty)
    radius = float(reach.min())
    if radius > limits.max_radius_m:
        return None
    closest = int(np.argmin(np.abs(times - time)))
    minutes = abs(times[closest] - time) / 60
    detail = f"{what} {minutes:.0f} min away ({fixes.labels[span.start + closest]})" if fixes.labels else f"{what} {minutes:.0f} min away"
    return Proposal("time", float(latitude), float(longitude), max(radius, 10.0), detail)


def landmark_proposal(latitude: float, longitude: float, name: str, radius_m: float = LANDMARK_RADIUS_M) -> Proposal:
    return Proposal("landmark", latitude, longitude, radius_m, f"the landmark {name}")


def track_proposal(tracks, time: float, uncertainty: float, limits) -> Proposal | None:
    """The tracks' position at ``time``; with an uncertain clock, every time in +- uncertainty must be covered."""
    from src.serving.locate.tracks import position_at

    centre = position_at(tracks, time, limits)
    if centre is None:
        return None
    radius = centre.radius_m
    if uncertainty > 0:  # the clock is known to +- uncertainty: the track must cover, and bound, all of it
        for moment in np.linspace(time - uncertainty, time + uncertainty, 9):
            edge = position_at(tracks, float(moment), limits)
            if edge is None:
                return None
            radius = max(radius, float(distance_m(centre.latitude, centre.longitude, edge.latitude, edge.longitude)) + edge.radius_m)
    return Proposal("track", centre.latitude, centre.longitude, radius, f"track {centre.source}")


@dataclass(frozen=True)
class ReachLimits:
    """Where the person can have been at all, around the photo's time: what a landmark must not contradict."""

    base_m: float = 100_000.0  # anywhere within this of a fix of that time
    ground_speed_mps: float = 30.0  # plus this speed times the time to that fix
    window_s: float = 6 * 3600.0  # fixes this close in time (beyond the clock's uncertainty) are consulted
    untied_reach_m: float = 2_000_000.0  # a device whose clock is unknown: within this of a fix of about that day
    untied_window_s: float = 27 * 3600.0  # its clock minus UTC lies in -12:30..+14:30, plus half a day


def reach_proposal(fixes: Fixes, latitude: float, longitude: float, time: float | None, clock: float, uncertainty: float,
                   limits: ReachLimits = ReachLimits()) -> Proposal | None:
    """The known-time fix that comes closest to (latitude, longitude) around the photo's time, and how far the person
    can have got from it. Never places a photo; it contradicts a landmark seen where the person cannot have been."""
    if time is not None:
        span = fixes.window(time - uncertainty - limits.window_s, time + uncertainty + limits.window_s)
        reach = limits.base_m + limits.ground_speed_mps * (np.abs(fixes.times[span] - time) + uncertainty)
    elif np.isfinite(clock):
        span = fixes.window(clock - limits.untied_window_s, clock + limits.untied_window_s)
        reach = np.full(span.stop - span.start, limits.untied_reach_m)
    else:
        return None
    if span.stop <= span.start:
        return None
    slack = distance_m(latitude, longitude, fixes.latitudes[span], fixes.longitudes[span]) - reach
    best = int(np.argmin(slack))
    label = fixes.labels[span.start + best] if fixes.labels else "a GPS fix"
    return Proposal("reach", float(fixes.latitudes[span][best]), float(fixes.longitudes[span][best]), float(reach[best]),
                    f"the GPS evidence of that time ({label})", decides=False)
