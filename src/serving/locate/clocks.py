"""Each device's clock against UTC: read where the photos say it, tied to the GPS devices where they do not.

A phone writes its UTC offset (OffsetTimeOriginal) or a GPS time beside its local time: its clock is known. A
camera keeps its owner's home time and drifts by minutes, and writes neither: its offset has to be estimated
from the library, never assumed. Two ways to tie it, both looking for the offset ``c`` (device clock minus UTC)
under which the camera's photos line up with the photos and tracks whose time is known:

* **landmarks**: the camera's photos placed by a landmark must be where the known-time evidence was at
  ``clock - c`` (the same place at the same time);
* **bursts**: people take photos in bursts; the camera's bursts must line up with the phone's.

A device that fits no single offset (two cameras under one name, say) or fits several equally well is not tied,
and gets no position from other devices' time (`DeviceClock.offset_s` is None, `why` says why).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ClockLimits", "DeviceClock", "parse_camera_offsets", "known_clock", "tie_by_landmarks", "tie_by_bursts", "refine_by_bursts", "narrow_per_day", "refine_by_stillness", "clock_days", "format_offset"]

HOUR = 3600.0


@dataclass(frozen=True)
class ClockLimits:
    """How sure a tie must be before a device's photos take positions from other devices' time."""

    earliest_offset_s: float = -12.5 * HOUR  # clock minus UTC: the time zones span -12:00 .. +14:00, plus drift
    latest_offset_s: float = 14.5 * HOUR
    same_time_s: float = 600.0  # a landmark photo and a known-time fix this close in time count as "the same time"
    same_place_m: float = 1500.0  # ... and this close in space as "the same place"
    other_place_m: float = 5_000.0  # a fix this far away at the same time contradicts the offset
    min_landmark_ties: int = 2  # landmark photos that must agree on the offset
    max_landmark_photos: int = 200  # a tie weighs at most this many of a device's landmark photos, spread over time
    landmark_agreement: int = 4  # ... at least this many times as many as disagree (a misnamed landmark happens)
    max_uncertainty_s: float = 2 * HOUR  # a tie vaguer than this is no tie
    burst_window_s: float = 180.0  # a camera photo "lines up" with a known-time photo this close
    burst_step_s: float = 30.0
    refine_slack: int = 1  # narrowing a tie: offsets within this many photos of the best one stay possible
    still_window_s: float = 60.0  # a photo "falls on" a still fix of the track this close
    sharp_day_s: float = 450.0  # a burst tie must narrow at least one day in ... to +- this
    sharp_day_share_inverse: int = 3  # ... this many (with no sharp day, bursts lined up by chance)
    drift_search_s: float = 900.0  # a day is narrowed within this of the device's offset
    drift_s_per_day: float = 180.0  # a camera's clock may wander this much per day (the simulated ones: 0.5-1.5 min)
    min_burst_matches: int = 10
    min_burst_share: float = 0.4  # of the device's photos inside the known-time photos' span
    burst_uniqueness: float = 1.4  # the best offset must match this many times more photos than any offset ...
    burst_separation_s: float = 2700.0  # ... this far from it


@dataclass(frozen=True)
class DeviceClock:
    device: str
    offset_s: float | None  # device clock minus UTC; None: not known, not tied
    uncertainty_s: float = 0.0  # the offset is known to +- this
    how: str = ""  # "offset tags", "GPS time", "3 landmark photos", "bursts (14 photos)", "--camera-offset"
    why: str = ""  # why a device is not tied
    days: tuple[tuple[int, float, float], ...] = ()  # (day of the clock, offset, uncertainty) where a day was narrowed
    drift_s_per_day: float = 0.0  # how far the offset may wander per day away from where it was measured

    @property
    def tied(self) -> bool:
        return self.offset_s is not None

    def at(self, clock_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The offset and its uncertainty at each clock time: a camera drifts by minutes over a trip, so the offset
        of the photo's own day where one was narrowed, else the nearest such day's (or the device's) plus drift."""
        clock_s = np.asarray(clock_s, dtype=float)
        if not self.days:
            return np.full(clock_s.shape, self.offset_s, dtype=float), np.full(clock_s.shape, self.uncertainty_s, dtype=float)
        days = np.array([d for d, _, _ in self.days], dtype=float)
        offsets = np.array([o for _, o, _ in self.days])
        uncertainties = np.array([u for _, _, u in self.days])
        photo_day = clock_days(clock_s)
        nearest = np.abs(photo_day[:, None] - days[None, :]).argmin(axis=1)
        apart = np.abs(photo_day - days[nearest])
        return offsets[nearest], uncertainties[nearest] + apart * self.drift_s_per_day


def clock_days(clock_s: np.ndarray) -> np.ndarray:
    """The day of each clock time (seconds of the device's wall clock), as a whole number of days."""
    return np.floor(np.asarray(clock_s, dtype=float) / 86400.0)


def format_offset(seconds: float | None) -> str:
    """+05:30 style (with seconds where they are not zero); '' for None."""
    if seconds is None or not np.isfinite(seconds):
        return ""
    sign = "-" if seconds < 0 else "+"
    total = int(round(abs(seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")


_OFFSET_RE = re.compile(r"^\s*(?P<device>.+?)\s*=\s*(?P<sign>[+-])(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}))?\s*$")


def parse_camera_offsets(texts: Sequence[str]) -> dict[str, float]:
    """``["Canon EOS 80D=+01:00", ...]`` -> {device text (casefolded): clock minus UTC in seconds}.

    Raises ValueError with the offending text when one makes no sense."""
    offsets: dict[str, float] = {}
    for text in texts:
        match = _OFFSET_RE.match(text)
        if match is None:
            raise ValueError(f"--camera-offset {text!r}: expected \"MAKE MODEL=+HH:MM\" (the camera's clock minus UTC), e.g. \"Canon EOS 80D=+01:00\"")
        hours, minutes, seconds = int(match["h"]), int(match["m"]), int(match["s"] or 0)
        if minutes >= 60 or seconds >= 60 or hours > 15:
            raise ValueError(f"--camera-offset {text!r}: {match['sign']}{hours:02d}:{minutes:02d} is not an offset (at most +-15:00, minutes below 60)")
        value = (hours * HOUR + minutes * 60 + seconds) * (-1 if match["sign"] == "-" else 1)
        key = match["device"].casefold()
        if key in offsets and offsets[key] != value:
            raise ValueError(f"--camera-offset gives {match['device']!r} two different offsets")
        offsets[key] = value
    return offsets


def known_clock(device: str, clock_s: np.ndarray, utc_s: np.ndarray, how: str) -> tuple[DeviceClock, np.ndarray]:
    """A device some of whose photos carry their UTC time: every photo's UTC from its nearest such photo's offset.

    clock_s: the photos' clock times (seconds, NaN where unknown); utc_s: their UTC where the photo says it (NaN
    elsewhere). Returns the device's clock (its median offset, for the report) and every photo's UTC estimate."""
    known = np.isfinite(clock_s) & np.isfinite(utc_s)
    order = np.argsort(clock_s[known])
    known_clock_times, known_offsets = clock_s[known][order], (clock_s[known] - utc_s[known])[order]
    # Time zones change on a trip: each photo takes the offset of the photo nearest in clock time that knows it.
    last = len(known_clock_times) - 1
    index = np.searchsorted(known_clock_times, clock_s)
    lower, upper = np.clip(index - 1, 0, last), np.clip(index, 0, last)
    nearest = np.where(np.abs(clock_s - known_clock_times[lower]) <= np.abs(known_clock_times[upper] - clock_s), lower, upper)
    estimated = clock_s - known_offsets[nearest]
    utc = np.where(np.isfinite(utc_s), utc_s, estimated)
    # A photo's own time tags are good to about a minute (a GPS time is the last fix's, not the shutter's).
    return DeviceClock(device, float(np.median(known_offsets)), 60.0, how), utc


def tie_by_landmarks(
    device: str,
    clock_s: np.ndarray,
    latitudes: np.ndarray,
    longitudes: np.ndarray,
    candidate_offsets: np.ndarray,
    fix_times: np.ndarray,
    fix_latitudes: np.ndarray,
    fix_longitudes: np.ndarray,
    limits: ClockLimits = ClockLimits(),
) -> DeviceClock | None:
    """The offset under which the device's landmark-placed photos (clock_s, positions) are where the known-time
    evidence (fix_*: GPS photos and track points, sorted by UTC time) was at the same time. candidate_offsets:
    clock - utc of every known-time fix near one of the landmarks (the only offsets that can make a photo
    agree). None when the device has too few landmark photos."""
    from src.serving.locate.geo import distance_m

    if len(clock_s) < limits.min_landmark_ties or len(candidate_offsets) == 0:
        return None
    plausible = (candidate_offsets >= limits.earliest_offset_s) & (candidate_offsets <= limits.latest_offset_s)
    # Each fix near a landmark makes the offsets within same_time_s of it possible: a minute grid over those.
    spread = np.arange(-limits.same_time_s, limits.same_time_s + 1, 60.0)
    candidates = np.unique(np.round((candidate_offsets[plausible][:, None] + spread[None, :]) / 60.0) * 60.0)
    agree_a = np.zeros(len(candidates), dtype=int)
    disagree_a = np.zeros(len(candidates), dtype=int)
    against_a = np.zeros(len(candidates), dtype=int)
    for clock, lat, lon in zip(clock_s, latitudes, longitudes):
        # For every candidate offset at once: the fixes within same_time_s of the photo's UTC time under it,
        # counted by prefix sums (how many lie at the landmark, how many far from it). No fix then (a gap
        # in the track) says nothing either way.
        times = clock - candidates
        # Only the fixes some candidate offset can reach (a library may hold a year of them).
        span = slice(int(np.searchsorted(fix_times, times.min() - limits.same_time_s, "left")),
                     int(np.searchsorted(fix_times, times.max() + limits.same_time_s, "right")))
        distances = distance_m(lat, lon, fix_latitudes[span], fix_longitudes[span])
        near = np.concatenate([[0], np.cumsum(distances <= limits.same_place_m)])
        far = np.concatenate([[0], np.cumsum(distances > limits.other_place_m)])
        low = np.searchsorted(fix_times[span], times - limits.same_time_s, "left")
        high = np.searchsorted(fix_times[span], times + limits.same_time_s, "right")
        seen = high > low
        at_landmark = near[high] - near[low]
        agree_a += seen & (at_landmark > 0)
        disagree_a += seen & (at_landmark == 0)
        against_a += seen & (far[high] - far[low] == high - low)
    scores = agree_a - 2 * against_a
    best = int(np.argmax(scores)) if len(scores) else 0
    if not len(scores) or agree_a[best] < limits.min_landmark_ties:
        return DeviceClock(device, None, why=f"its {len(clock_s)} landmark photos agree with the known-time evidence under no single clock offset")
    if against_a[best] * limits.landmark_agreement > agree_a[best]:  # one misnamed landmark in four may disagree, not more
        return DeviceClock(device, None, why="its landmark photos fit no single clock offset (two devices under one name?)")
    # The best-scoring offset need not be the true one: while the person lingers at a landmark every offset that
    # keeps the photos there agrees, and a photo in a gap of the track agrees with nothing. Every offset that
    # contradicts (almost) none of them and joins the best one without a break stays possible.
    feasible = (agree_a >= limits.min_landmark_ties) & (disagree_a * limits.landmark_agreement <= agree_a)
    low = high = float(candidates[best])
    ordered = np.flatnonzero(feasible)
    for index in ordered[ordered > best]:
        if candidates[index] - high > 2 * limits.same_time_s:
            break
        high = float(candidates[index])
    for index in ordered[ordered < best][::-1]:
        if low - candidates[index] > 2 * limits.same_time_s:
            break
        low = float(candidates[index])
    uncertainty = (high - low) / 2 + 60.0  # each photo's window was already widened by same_time_s
    best_score = int(agree_a[best])
    if uncertainty > limits.max_uncertainty_s:
        return DeviceClock(device, None, why=f"its landmark photos fit offsets from {format_offset(low)} to {format_offset(high)}: too vague")
    return DeviceClock(device, (low + high) / 2, uncertainty, f"{best_score} landmark photos at the same place and time as known-time evidence")


def refine_by_bursts(clock: DeviceClock, clock_s: np.ndarray, known_utc_s: np.ndarray, limits: ClockLimits = ClockLimits()) -> DeviceClock:
    """A tie known to +- many minutes (one landmark stop) narrowed to the offset, within it, under which the device's
    photos line up best with the known-time photos; unchanged where no offset stands out."""
    clock_s = np.sort(clock_s[np.isfinite(clock_s)])
    known = np.sort(known_utc_s[np.isfinite(known_utc_s)])
    if not clock.tied or len(known) == 0 or clock.uncertainty_s <= limits.burst_window_s:
        return clock
    offsets = np.arange(clock.offset_s - clock.uncertainty_s, clock.offset_s + clock.uncertainty_s + 1, limits.burst_step_s)
    scores = np.array([_matches(clock_s - offset, known, limits.burst_window_s) for offset in offsets])
    top = scores.max()
    plateau = offsets[scores >= top - limits.refine_slack]
    if top < limits.min_landmark_ties or plateau.max() - plateau.min() >= 2 * clock.uncertainty_s - limits.burst_step_s:
        return clock
    low, high = float(plateau.min()), float(plateau.max())
    return DeviceClock(clock.device, (low + high) / 2, (high - low) / 2 + limits.burst_window_s, clock.how + ", narrowed by bursts", clock.why)


def refine_by_stillness(clock: DeviceClock, clock_s: np.ndarray, still_utc_s: np.ndarray, limits: ClockLimits = ClockLimits()) -> DeviceClock:
    """A tie narrowed with a track alone: people stop to take photos, so under the true offset the photos fall on
    the track's still stretches (``still_utc_s``: times of fixes where the person stood or strolled), not on the road."""
    clock_s = np.sort(clock_s[np.isfinite(clock_s)])
    if not clock.tied or len(still_utc_s) == 0 or len(clock_s) < limits.min_landmark_ties:
        return clock
    offsets = np.arange(clock.offset_s - clock.uncertainty_s, clock.offset_s + clock.uncertainty_s + 1, limits.burst_step_s)
    scores = np.array([_matches(clock_s - offset, still_utc_s, limits.still_window_s) for offset in offsets])
    plateau = offsets[scores >= scores.max() - limits.refine_slack]
    low, high = float(plateau.min()), float(plateau.max())
    if high - low >= offsets[-1] - offsets[0] - limits.burst_step_s:
        return clock
    return DeviceClock(clock.device, (low + high) / 2, (high - low) / 2 + limits.still_window_s, clock.how + ", narrowed by the track's stops",
                       clock.why)


def narrow_per_day(clock: DeviceClock, clock_s: np.ndarray, narrow: Callable[[DeviceClock, np.ndarray], DeviceClock],
                   limits: ClockLimits = ClockLimits()) -> DeviceClock:
    """A tied clock narrowed day by day (`narrow`: `refine_by_bursts` or a landmark tie, on one day's photos): a drifting
    camera is minutes off by the end of a trip. Days that cannot be narrowed take the nearest narrowed day's offset,
    with the drift allowance per day apart."""
    if not clock.tied:
        return clock
    finite = clock_s[np.isfinite(clock_s)]
    narrowed = []
    days = clock_days(finite)
    for day in np.unique(days):
        todays = finite[days == day]
        wide = DeviceClock(clock.device, clock.offset_s, max(clock.uncertainty_s, limits.drift_search_s), clock.how)
        result = narrow(wide, todays)
        if result.tied and result.uncertainty_s < wide.uncertainty_s:
            narrowed.append((int(day), float(result.offset_s), float(result.uncertainty_s)))
    if not narrowed:
        return DeviceClock(clock.device, clock.offset_s, clock.uncertainty_s, clock.how, clock.why, (), 0.0)
    return DeviceClock(clock.device, float(np.median([o for _, o, _ in narrowed])), clock.uncertainty_s, clock.how + f", {len(narrowed)} days narrowed",
                       clock.why, tuple(narrowed), limits.drift_s_per_day)


def tie_by_bursts(device: str, clock_s: np.ndarray, known_utc_s: np.ndarray, limits: ClockLimits = ClockLimits(),
                  zones: Sequence[float] = ()) -> DeviceClock:
    """The offset under which the device's photos line up with the known-time photos' bursts, if one stands out.

    zones: the UTC offsets the library's known clocks kept (a phone's home zone before the trip, the zones it
    crossed). A camera is set at home like the phone was and then left alone, so its offset is one of those plus
    its error and drift: with zones, only offsets within drift_search_s of one compete."""
    clock_s = np.sort(clock_s[np.isfinite(clock_s)])
    known = np.sort(known_utc_s[np.isfinite(known_utc_s)])
    if len(clock_s) < limits.min_burst_matches or len(known) < limits.min_burst_matches:
        return DeviceClock(device, None, why="too few photos to line up its bursts with a GPS device's")
    offsets = np.arange(limits.earliest_offset_s, limits.latest_offset_s + limits.burst_step_s, limits.burst_step_s)
    if len(zones):
        offsets = offsets[np.abs(offsets[:, None] - np.asarray(zones, dtype=float)[None, :]).min(axis=1) <= limits.drift_search_s]
    scores = np.array([_matches(clock_s - offset, known, limits.burst_window_s) for offset in offsets])
    best = int(np.argmax(scores))
    top = int(scores[best])
    plateau = offsets[scores == top]
    far = np.abs(offsets - offsets[best]) > limits.burst_separation_s
    runner_up = int(scores[far].max()) if far.any() else 0
    inside = int(np.sum((clock_s - offsets[best] >= known[0] - 3600) & (clock_s - offsets[best] <= known[-1] + 3600)))
    if top < limits.min_burst_matches or top < limits.min_burst_share * max(inside, 1):
        return DeviceClock(device, None, why=f"its photos line up with a GPS device's at no clock offset (best: {top} of {len(clock_s)})")
    if top < limits.burst_uniqueness * runner_up:
        return DeviceClock(device, None, why=f"its photos line up with a GPS device's equally well at several clock offsets ({top} vs {runner_up} photos)")
    low, high = float(plateau.min()), float(plateau.max())
    if high - low > 1800:  # several separate plateaus of the same height
        return DeviceClock(device, None, why="its bursts fit several clock offsets")
    return DeviceClock(device, (low + high) / 2, (high - low) / 2 + limits.burst_window_s, f"bursts ({top} photos line up)")


def _matches(times: np.ndarray, known: np.ndarray, window: float) -> int:
    """How many of ``times`` have a ``known`` time within ``window`` (both sorted)."""
    position = np.searchsorted(known, times)
    before = np.abs(times - known[np.clip(position - 1, 0, len(known) - 1)])
    after = np.abs(known[np.clip(position, 0, len(known) - 1)] - times)
    return int(np.sum(np.minimum(before, after) <= window))
