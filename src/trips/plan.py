"""What a simulated trip is made of: devices, places, stops, days, and the photos and tracks it yields.

Pure data (no I/O): `src.trips.itinerary` turns a `Trip` into `PlannedPhoto`s and `Track`s,
`src.trips.truth` decides which of them some evidence could place, `src.trips.library` writes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

__all__ = ["Device", "Place", "Stop", "Day", "Trip", "PlannedPhoto", "Track", "SITUATIONS"]

# Every photo carries one of these labels (docs/context.md, "Simulated libraries", says what each is).
SITUATIONS = (
    "home_clock_camera",  # phone + camera whose clock stays on home time, drifting, without OffsetTime
    "cities_in_a_day",  # two cities 20-200 km apart on one day
    "unknown_landmarks",  # landmarks the model does not know (other_landmarks)
    "camera_gpx",  # a camera alone with a GPX log that has gaps, its clock an hour off (daylight saving)
    "train_ride",  # photos in city A, a long ride, photos in city B; the camera's photos on the train are traps
    "home_camera",  # a second camera at home during the trip: traps
    "before_trip",  # photos days before the trip, at home: traps
)


@dataclass(frozen=True)
class Device:
    """A camera or phone: what it writes and how its clock runs."""

    key: str  # "phone", "camera", "home_camera"
    make: str
    model: str
    serial: str
    file_prefix: str  # "IMG_" (phone), "DSC0" (Sony), "P10" (Panasonic): the device's own file names
    first_number: int
    gps: bool = False  # writes GPS and GPSDateStamp/GPSTimeStamp when it has a fix
    writes_offset: bool = False  # OffsetTimeOriginal + a clock that follows the local time zone (a phone)
    clock_utc_offset_min: float = 0.0  # a camera's clock: the UTC offset it was set to (home time), never changed
    clock_error_min: float = 0.0  # how far off it was at the trip's start
    drift_min_per_day: float = 0.0  # and how it drifts

    def number_width(self) -> int:
        return 8 - len(self.file_prefix)  # IMG_1234, DSC01234, P1001234: 8 characters before .JPG


@dataclass(frozen=True)
class Place:
    """A point a person stays at; `landmark` is the class folder name seen there ("" for none)."""

    name: str
    lat: float
    lon: float
    landmarks: tuple[str, ...] = ()  # one of these is in a landmark photo taken here
    known: bool = True  # landmarks the shipped model knows (else other_landmarks)
    indoor: bool = False  # phones get no fix here (mostly)


@dataclass(frozen=True)
class Stop:
    """A stay at a place: how long, who photographs, and what a photo there must not get (trap)."""

    place: Place
    dwell_min: tuple[float, float] = (20.0, 90.0)
    devices: Optional[tuple[str, ...]] = None  # None: the day's devices
    by_train: bool = False  # reached by train: the camera photographs during the ride (traps)
    trap: str = ""  # why photos here must get no position ("" = not a trap)
    photo_rate_per_min: float = 0.36


@dataclass(frozen=True)
class Day:
    """One day of one person: local date, time zone, start time, stops in order."""

    date: str  # YYYY-MM-DD, local
    utc_offset_min: int  # local time zone where the person is that day
    start: str  # HH:MM local
    stops: tuple[Stop, ...]
    situation: str
    devices: tuple[str, ...] = ("phone", "camera")
    person: str = "traveller"  # "partner": somebody else (at home)
    gpx: bool = False  # a GPX logger records this day


@dataclass(frozen=True)
class Trip:
    """A library's template: who, where from, which devices, which days."""

    name: str
    home: Place
    devices: tuple[Device, ...]
    days: tuple[Day, ...]

    def device(self, key: str) -> Device:
        for device in self.devices:
            if device.key == key:
                return device
        raise KeyError(f"trip {self.name}: no device {key!r}")


@dataclass
class PlannedPhoto:
    """One photo as it really was (truth) and as its device writes it."""

    situation: str
    person: str
    device: str
    utc: float  # true UTC time, seconds since the epoch
    lat: float  # true position
    lon: float
    source: str  # the shared photo copied
    landmark: str = ""  # class folder name in the photo ("" = none)
    known_landmark: bool = False
    has_gps: bool = False
    trap: str = ""
    file: str = ""  # name in the library (set when numbered)
    written_local: str = ""  # DateTimeOriginal as written, "YYYY:MM:DD HH:MM:SS"
    subsec: str = ""
    offset: str = ""  # OffsetTimeOriginal ("" for devices that write none)
    placeable: bool = False
    why: str = ""  # why it is placeable, or why not


@dataclass
class Track:
    """A GPX log: fixes (UTC seconds, lat, lon) in time order, split where the logger lost them."""

    name: str
    person: str
    segments: list[list[tuple[float, float, float]]] = field(default_factory=list)

    def fix_times(self) -> list[float]:
        return sorted(t for segment in self.segments for t, _, _ in segment)
