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

__all__ = ["Proposal", "Fixes", "TimeLimits", "time_proposal", "landmark_proposal", "track_proposal", "LANDMARK_RADIUS_M"]

LANDMARK_RADIUS_M = 1000.0  # a landmark is photographed from within about a kilometre of it


@dataclass(frozen=True)
class Proposal:
    source: str  # "landmark" | "time" | "track" | "visual"
    latitude: float
    longitude: float
    radius_m: float
    detail: str  # what it rests on, for the report


@dataclass(frozen=True)
class TimeLimits:
    """When photos of known time and place may place a photo between them."""

    max_gap_s: float = 1800.0  # a fix further away in time than this says nothing
    walking_speed_mps: float = 1.5  # how far a person moves per second without a vehicle, at least
    speed_margin: float = 1.5  # the speed between the bracketing fixes, times this, bounds the movement
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

    def near(self, time: float, window: float) -> tuple[np.ndarray, np.ndarray]:
        span = self.window(time - window, time + window)
        return self.latitudes[span], self.longitudes[span]


def time_proposal(fixes: Fixes, time: float, uncertainty: float, limits: TimeLimits = TimeLimits(), what: str = "GPS photos") -> Proposal | None:
    """The position between the fixes nearest before and after ``time`` (known to +- ``uncertainty``)."""
    span = fixes.window(time - uncertainty - limits.max_gap_s, time + uncertainty + limits.max_gap_s)
    times = fixes.times[span]
    if len(times) == 0:
        return None
    lats, lons, radii = fixes.latitudes[span], fixes.longitudes[span], fixes.radii[span]
    before = np.flatnonzero(times <= time)
    after = np.flatnonzero(times > time)
    speed = limits.walking_speed_mps
    if len(before) and len(after):
        b, a = before[-1], after[0]
        gap = max(times[a] - times[b], 1.0)
        between = float(distance_m(lats[b], lons[b], lats[a], lons[a]))
        speed = max(speed, limits.speed_margin * between / gap)
        latitude, longitude = interpolate(lats[b], lons[b], lats[a], lons[a], (time - times[b]) / gap)
    else:
        nearest = before[-1] if len(before) else after[0]
        latitude, longitude = lats[nearest], lons[nearest]
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
    if uncertainty > 0:
        for moment in (time - uncertainty, time + uncertainty):
            edge = position_at(tracks, moment, limits)
            if edge is None:
                return None
            radius = max(radius, float(distance_m(centre.latitude, centre.longitude, edge.latitude, edge.longitude)) + edge.radius_m)
    return Proposal("track", centre.latitude, centre.longitude, radius, f"track {centre.source}")
