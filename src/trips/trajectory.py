"""Where a person is at every moment of a simulated trip: a chain of stays and moves in UTC seconds.

Ground truth needs more than the photos' own positions: whether a person "stayed within 1 km"
between two photos depends on where they were in between (a train ride between two stations 200 km
apart is not a stay, however close the two photos are in time).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from src.serving.locate.geo import distance_m, interpolate

__all__ = ["Leg", "Trajectory", "offset_position"]

SAMPLE_STEP_S = 60.0  # one minute: no simulated move covers 1 km in less


@dataclass(frozen=True)
class Leg:
    """From (lat0, lon0) at t0 to (lat1, lon1) at t1, at constant speed (a stay when both ends are equal)."""

    t0: float
    t1: float
    lat0: float
    lon0: float
    lat1: float
    lon1: float

    def at(self, t: float) -> tuple[float, float]:
        if self.t1 <= self.t0:
            return self.lat1, self.lon1
        fraction = min(1.0, max(0.0, (t - self.t0) / (self.t1 - self.t0)))
        return interpolate(self.lat0, self.lon0, self.lat1, self.lon1, fraction)


@dataclass
class Trajectory:
    """A person's legs in time order; before the first and after the last they stand at its ends."""

    legs: list[Leg] = field(default_factory=list)

    def add(self, t0: float, t1: float, start: tuple[float, float], end: tuple[float, float]) -> None:
        if self.legs and t0 < self.legs[-1].t1:
            raise ValueError("legs must be added in time order")
        self.legs.append(Leg(t0, t1, start[0], start[1], end[0], end[1]))

    def at(self, t: float) -> tuple[float, float]:
        """The position at UTC second `t`; between two legs (the night, a flight) moving from one to the next."""
        if not self.legs:
            raise ValueError("an empty trajectory has no position")
        index = bisect.bisect_right([leg.t0 for leg in self.legs], t) - 1  # the last leg that started by t
        if index < 0:
            return self.legs[0].lat0, self.legs[0].lon0
        leg = self.legs[index]
        if t <= leg.t1 or index + 1 == len(self.legs):
            return leg.at(t)
        following = self.legs[index + 1]
        return Leg(leg.t1, following.t0, leg.lat1, leg.lon1, following.lat0, following.lon0).at(t)

    def farthest_m(self, t_from: float, t_to: float, lat: float, lon: float) -> float:
        """How far from (lat, lon) the person got between the two times (sampled every minute, both ends included)."""
        start, end = min(t_from, t_to), max(t_from, t_to)
        steps = max(1, math.ceil((end - start) / SAMPLE_STEP_S))
        times = [start + (end - start) * i / steps for i in range(steps + 1)]
        return max(float(distance_m(lat, lon, *self.at(t))) for t in times)


def offset_position(lat: float, lon: float, east_m: float, north_m: float) -> tuple[float, float]:
    """(lat, lon) moved a few hundred metres east and north (flat-Earth step, fine at that scale)."""
    dlat = north_m / 111_320.0
    dlon = east_m / (111_320.0 * max(0.01, math.cos(math.radians(lat))))
    return lat + dlat, lon + dlon
