"""A trip template played out: people move from stop to stop, their devices take photos, loggers log.

Seeded and pure: the same trip, pools and seed give the same photos, positions and times.
People dwell at a stop for 20-90 minutes (photos jittered within ~200 m of it), walk short hops,
drive longer ones, and take the train where the template says so.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass

from src.serving.locate.geo import distance_m, interpolate
from src.trips.plan import Day, Device, PlannedPhoto, Place, Track, Trip
from src.trips.pools import Pools
from src.trips.trajectory import Trajectory, offset_position

__all__ = ["Simulation", "simulate", "written_clock"]

WALK_KMH, CITY_KMH, ROAD_KMH, TRAIN_KMH = 4.5, 22.0, 65.0, 95.0
JITTER_M = 200.0  # photos at a stop lie within this of it (the person walks between them)
PHONE_FIX = 0.9  # share of outdoor phone photos with a GPS fix
PHONE_FIX_INDOOR = 0.0  # no fix indoors
LANDMARK_SHARE = {"phone": 0.35, "camera": 0.55}  # share of photos at a landmark that show it
RIDE_MARGIN_S = 40 * 60  # the camera's ride photos start this long after departure (well past 1 km)
TRACK_STEP_S = 30.0
TRACK_GAPS_PER_DAY = (1, 2)
TRACK_GAP_MIN = (35.0, 110.0)  # lost fix: longer than the 30 min a track must cover a photo within


@dataclass
class Simulation:
    """What a trip produced: its photos (time order), GPX logs and everybody's trajectory."""

    trip: Trip
    photos: list[PlannedPhoto]
    tracks: list[Track]
    trajectories: dict[str, Trajectory]


def _utc(date: str, hhmm: str, utc_offset_min: int) -> float:
    local = dt.datetime.fromisoformat(f"{date}T{hhmm}:00").replace(tzinfo=dt.timezone.utc)
    return local.timestamp() - utc_offset_min * 60


def _speed_kmh(km: float, by_train: bool) -> float:
    if by_train:
        return TRAIN_KMH
    return WALK_KMH if km <= 2.0 else CITY_KMH if km <= 30.0 else ROAD_KMH


def written_clock(device: Device, utc: float, local_offset_min: int, trip_start_utc: float) -> tuple[str, str]:
    """(DateTimeOriginal as the device writes it, OffsetTimeOriginal or ""): a phone follows the local zone;
    a camera keeps the zone it was set to, plus its error and drift."""
    if device.writes_offset:
        shown = utc + local_offset_min * 60
        sign = "+" if local_offset_min >= 0 else "-"
        offset = f"{sign}{abs(local_offset_min) // 60:02d}:{abs(local_offset_min) % 60:02d}"
    else:
        days = (utc - trip_start_utc) / 86400.0
        shown = utc + (device.clock_utc_offset_min + device.clock_error_min + device.drift_min_per_day * days) * 60
        offset = ""
    text = dt.datetime.fromtimestamp(math.floor(shown), dt.timezone.utc).strftime("%Y:%m:%d %H:%M:%S")
    return text, offset


class _Player:
    """Plays one trip: keeps each person's clock, position and trajectory while photos are planned."""

    def __init__(self, trip: Trip, pools: Pools, rng: random.Random):
        self.trip, self.pools, self.rng = trip, pools, rng
        self.photos: list[PlannedPhoto] = []
        self.tracks: list[Track] = []
        self.trajectories: dict[str, Trajectory] = {}
        self.used: set[str] = set()

    def pick(self, candidates: list) -> str:
        """A photo not used yet in this library (any, once all are used)."""
        fresh = [p for p in candidates if str(p) not in self.used]
        chosen = self.rng.choice(fresh or candidates)
        self.used.add(str(chosen))
        return str(chosen)

    def content(self, place: Place, device: str) -> tuple[str, str, bool]:
        """(source photo, landmark class or "", known?) of one photo taken at `place` with `device`."""
        share = LANDMARK_SHARE["phone" if device == "phone" else "camera"]
        pool = self.pools.known if place.known else self.pools.unknown
        classes = [c for c in place.landmarks if pool.get(c)]
        if classes and self.rng.random() < share:
            landmark = self.rng.choice(classes)
            return self.pick(pool[landmark]), landmark, place.known
        return self.pick(self.pools.anything), "", False

    def shoot(self, day: Day, utc: float, position: tuple[float, float], device: str, situation: str, trap: str, place: Place | None) -> None:
        source, landmark, known = self.content(place, device) if place else (self.pick(self.pools.anything), "", False)
        indoor = place.indoor if place else False
        fix = self.trip.device(device).gps and self.rng.random() < (PHONE_FIX_INDOOR if indoor else PHONE_FIX)
        self.photos.append(PlannedPhoto(situation, day.person, device, utc, position[0], position[1], source, landmark, known, fix, trap))

    def play_day(self, day: Day) -> None:
        trajectory = self.trajectories.setdefault(day.person, Trajectory())
        t = _utc(day.date, day.start, day.utc_offset_min) + self.rng.uniform(-20, 20) * 60
        here = (day.stops[0].place.lat, day.stops[0].place.lon)
        for stop in day.stops:
            there = (stop.place.lat, stop.place.lon)
            km = float(distance_m(*here, *there)) / 1000.0
            if km > 0.05:
                ride_s = km / _speed_kmh(km, stop.by_train) * 3600.0
                trajectory.add(t, t + ride_s, here, there)
                if stop.by_train:
                    self.ride_photos(day, trajectory, t, t + ride_s, here, there)
                t += ride_s
            dwell_s = self.rng.uniform(*stop.dwell_min) * 60.0
            devices = stop.devices or day.devices
            count = max(1, round(self.rng.gauss(dwell_s / 60.0 * stop.photo_rate_per_min, 2.0)))
            # the person strolls from photo spot to photo spot around the stop (a logger and a phone record that walk)
            previous, previous_t = there, t
            for moment in sorted(self.rng.uniform(t, t + dwell_s) for _ in range(count)):
                position = self.stroll(there, previous, moment - previous_t)
                trajectory.add(previous_t, moment, previous, position)
                previous, previous_t = position, moment
                self.shoot(day, moment, position, self.rng.choice(devices), day.situation, stop.trap, stop.place)
            trajectory.add(previous_t, t + dwell_s, previous, there)
            t += dwell_s
            here = there

    def stroll(self, centre: tuple[float, float], start: tuple[float, float], seconds: float) -> tuple[float, float]:
        """A spot within JITTER_M of the stop, reached from `start` on foot in `seconds` (towards a random spot)."""
        angle, radius = self.rng.uniform(0, 2 * math.pi), JITTER_M * math.sqrt(self.rng.random())
        goal = offset_position(*centre, radius * math.cos(angle), radius * math.sin(angle))
        far = float(distance_m(*start, *goal))
        reach = WALK_KMH / 3.6 * seconds
        return goal if far <= reach else interpolate(*start, *goal, reach / far)

    def ride_photos(self, day: Day, trajectory: Trajectory, t0: float, t1: float, start: tuple, end: tuple) -> None:
        """The camera photographs the landscape from the train: far from both stations, so traps."""
        cameras = [d for d in day.devices if not self.trip.device(d).gps]
        if not cameras or t1 - t0 <= 2 * RIDE_MARGIN_S:
            return
        count = max(2, round((t1 - t0) / 3600.0 * 3))
        for moment in sorted(self.rng.uniform(t0 + RIDE_MARGIN_S, t1 - RIDE_MARGIN_S) for _ in range(count)):
            self.shoot(day, moment, trajectory.at(moment), self.rng.choice(cameras), day.situation,
                       "taken on the train, hundreds of km from both stations", None)

    def log_track(self, day: Day, index: int) -> None:
        """A GPX logger's fixes over the day's legs, with one or two lost stretches longer than 30 minutes."""
        legs = [leg for leg in self.trajectories[day.person].legs if leg.t0 >= _utc(day.date, "00:00", day.utc_offset_min) - 3 * 3600
                and leg.t1 <= _utc(day.date, "23:59", day.utc_offset_min) + 3 * 3600]
        if not legs:
            return
        start, end = legs[0].t0, legs[-1].t1
        gaps = []
        for _ in range(self.rng.randint(*TRACK_GAPS_PER_DAY)):
            length = self.rng.uniform(*TRACK_GAP_MIN) * 60
            begin = self.rng.uniform(start + 1800, max(start + 1800, end - length - 1800))
            gaps.append((begin, begin + length))
        segments: list[list[tuple[float, float, float]]] = [[]]
        trajectory = self.trajectories[day.person]
        t = start
        while t <= end:
            if any(a <= t < b for a, b in gaps):
                if segments[-1]:
                    segments.append([])
            else:
                lat, lon = trajectory.at(t)
                segments[-1].append((t, lat, lon))
            t += TRACK_STEP_S
        self.tracks.append(Track(f"{day.date}_{index}.gpx", day.person, [s for s in segments if s]))


def simulate(trip: Trip, pools: Pools, seed: int) -> Simulation:
    """Play `trip` with photos from `pools`: photos in time order, numbered per device, with their written clocks."""
    player = _Player(trip, pools, random.Random(seed))
    trip_days = [d for d in trip.days if d.situation != "before_trip"]
    trip_start = min(_utc(d.date, d.start, d.utc_offset_min) for d in trip_days or trip.days)
    for day in sorted(trip.days, key=lambda d: (d.person, d.date)):
        player.play_day(day)
    for index, day in enumerate(trip.days):
        if day.gpx:
            player.log_track(day, index)
    photos = sorted(player.photos, key=lambda p: p.utc)
    counters = {device.key: device.first_number + player.rng.randint(0, 300) for device in trip.devices}
    offset_of_day = {(d.person, d.date): d.utc_offset_min for d in trip.days}
    for photo in photos:
        device = trip.device(photo.device)
        counters[photo.device] += 1
        photo.file = f"{device.file_prefix}{counters[photo.device] % 10 ** device.number_width():0{device.number_width()}d}.JPG"
        local_offset = _local_offset(photo, trip, offset_of_day)
        photo.written_local, photo.offset = written_clock(device, photo.utc, local_offset, trip_start)
        photo.subsec = f"{int(photo.utc * 1000) % 1000:03d}" if device.writes_offset else f"{int(photo.utc * 100) % 100:02d}"
    return Simulation(trip, photos, player.tracks, player.trajectories)


def _local_offset(photo: PlannedPhoto, trip: Trip, offset_of_day: dict) -> int:
    """The local zone a phone shows: that of the day (in the person's own calendar) the photo falls on."""
    candidates = [d for d in trip.days if d.person == photo.person]
    best = min(candidates, key=lambda d: abs(_utc(d.date, "12:00", d.utc_offset_min) - photo.utc))
    return offset_of_day[(best.person, best.date)]
