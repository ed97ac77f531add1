"""Ground truth: which photos without GPS SOME evidence in the library could place, and which are traps.

A photo without GPS is placeable when
  (1) a landmark the shipped model knows is in it, or
  (2) [a track covers its true time (a fix before and after it, at most 30 min apart), or
       a GPS photo of the same person lies within 30 min of it while the person stayed within 1 km]
      AND its device can be tied to GPS time: the device writes GPS itself, or at least 3 of its photos
      have (2)'s evidence (moments it shares with a GPS device: where the clocks can be lined up).
A trap is a photo the trip template marks (train ride, second camera at home, before the trip) that no
evidence places: it must get no position.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from src.trips.plan import PlannedPhoto, Track
from src.trips.trajectory import Trajectory

__all__ = ["NEIGHBOUR_S", "STAY_M", "TRACK_GAP_S", "TIE_MOMENTS", "track_covers", "gps_neighbour", "label_truth"]

TRACK_GAP_S = 30 * 60.0
NEIGHBOUR_S = 30 * 60.0
STAY_M = 1000.0
TIE_MOMENTS = 3


def track_covers(fix_times: Sequence[float], utc: float, max_gap_s: float = TRACK_GAP_S) -> bool:
    """A fix at or before `utc` and one at or after it, at most `max_gap_s` apart (`fix_times` sorted)."""
    after = bisect.bisect_left(fix_times, utc)
    if after < len(fix_times) and fix_times[after] == utc:
        return True
    return 0 < after < len(fix_times) and fix_times[after] - fix_times[after - 1] <= max_gap_s


def gps_neighbour(photo: PlannedPhoto, gps_photos: Sequence[PlannedPhoto], trajectory: Trajectory) -> bool:
    """A GPS photo of the same person within 30 min while that person stayed within 1 km of `photo`."""
    for other in gps_photos:
        if other.person == photo.person and abs(other.utc - photo.utc) <= NEIGHBOUR_S:
            if trajectory.farthest_m(photo.utc, other.utc, photo.lat, photo.lon) <= STAY_M:
                return True
    return False


def _time_evidence(photos: Sequence[PlannedPhoto], tracks: Sequence[Track], trajectories: dict[str, Trajectory]) -> list[str]:
    """Per photo: "track", "gps photo" or "" (what could place it, if its device is tied)."""
    fixes = {}
    for track in tracks:
        fixes.setdefault(track.person, []).extend(track.fix_times())
    fixes = {person: sorted(times) for person, times in fixes.items()}
    gps = [p for p in photos if p.has_gps]
    evidence = []
    for photo in photos:
        if photo.has_gps:
            evidence.append("")
        elif track_covers(fixes.get(photo.person, []), photo.utc):
            evidence.append("track")
        elif gps_neighbour(photo, gps, trajectories[photo.person]):
            evidence.append("gps photo")
        else:
            evidence.append("")
    return evidence


def label_truth(photos: Sequence[PlannedPhoto], tracks: Sequence[Track], trajectories: dict[str, Trajectory],
                gps_devices: set[str]) -> None:
    """Set `placeable` and `why` on every photo (and clear `trap` where evidence does place it)."""
    evidence = _time_evidence(photos, tracks, trajectories)
    moments: dict[str, int] = {}
    for photo, found in zip(photos, evidence):
        if found:
            moments[photo.device] = moments.get(photo.device, 0) + 1
    for photo, found in zip(photos, evidence):
        tied = photo.device in gps_devices or moments.get(photo.device, 0) >= TIE_MOMENTS
        if photo.has_gps:
            photo.placeable, photo.why, photo.trap = False, "has its own GPS", ""
        elif photo.known_landmark:
            photo.placeable, photo.why = True, f"known landmark {photo.landmark}"
        elif found and tied:
            photo.placeable, photo.why = True, f"{found} within 30 min, device tied ({moments.get(photo.device, 0)} moments)"
        elif found:
            photo.placeable, photo.why = False, f"{found} within 30 min, but its device cannot be tied to GPS time"
        else:
            photo.placeable, photo.why = False, "no landmark it knows, no track or GPS photo within 30 min and 1 km"
        if photo.placeable:
            photo.trap = ""
