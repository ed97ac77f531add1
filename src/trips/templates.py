"""The five trips the simulated libraries are made from (a sixth library replays the first with another seed).

Each mixes several situations of `src.trips.plan.SITUATIONS`; every situation appears in at least
two trips. Landmark coordinates come from `src.data.landmarks` (landmarks.json); other places
(homes, hotels, restaurants, stations) are real coordinates written here.
"""

from __future__ import annotations

from src.data.landmarks import lookup
from src.trips.plan import Day, Device, Place, Stop, Trip

__all__ = ["TRIPS"]


def _landmark(*classes: str, known: bool = True, shift_m: float = 0.0) -> Place:
    """A place at the first class's coordinates, where photos may show any of `classes`."""
    info = lookup(classes[0])
    if not info.has_coordinates:
        raise ValueError(f"{classes[0]} has no coordinates in src/data/landmarks.json")
    return Place(info.name, info.latitude, info.longitude + shift_m / 100_000.0, classes, known)


def _spot(name: str, lat: float, lon: float, indoor: bool = False) -> Place:
    return Place(name, lat, lon, indoor=indoor)


def _phone(make: str, model: str, serial: str, first: int) -> Device:
    return Device("phone", make, model, serial, "IMG_", first, gps=True, writes_offset=True)


def _camera(key: str, make: str, model: str, serial: str, prefix: str, first: int, home_offset_min: int, error: float, drift: float) -> Device:
    return Device(key, make, model, serial, prefix, first, clock_utc_offset_min=home_offset_min, clock_error_min=error, drift_min_per_day=drift)


QUTB = _landmark("20.Qutub_Minar", "15.Iron_Pillar", "01.Alai_Darwaza", "02.Alai_Minar")
HUMAYUN = _landmark("13.Humayuns_Tomb")
INDIA_GATE = _landmark("14.India_Gate")
LOTUS = _landmark("18.Lotus_Temple")
JAMALI = _landmark("16.Jamali_Kamali_Tomb")
TAJ = _landmark("22.Taj_Mahal")
FATEHPUR = _landmark("09.Fatehpur_Sikri")
HAWA = _landmark("12.Hawa_Mahal")
BERLIN_HOME = _spot("home, Berlin-Pankow", 52.5693, 13.4010, indoor=True)
BERLIN_CENTRE = _spot("Berlin Mitte", 52.5163, 13.3777)

INDIA = Trip(
    "india_from_berlin",
    BERLIN_HOME,
    (
        _phone("Apple", "iPhone 12", "", 4100),
        _camera("camera", "SONY", "ILCE-6400", "3341207", "DSC0", 1200, 60, 2.5, 0.8),
        _camera("home_camera", "Panasonic", "DMC-TZ70", "WH5KA001733", "P10", 10000, 60, -4.0, 0.3),
    ),
    (
        Day("2025-02-04", 60, "11:00", (Stop(BERLIN_CENTRE, (60, 120), devices=("phone",)),
                                         Stop(BERLIN_HOME, (60, 100), trap="before the trip, at home, no GPS evidence within hours")),
            "before_trip"),
        Day("2025-02-10", 330, "08:30", (Stop(QUTB), Stop(JAMALI, (20, 40)), Stop(_spot("lunch, Hauz Khas", 28.5494, 77.2001, True), (45, 70)),
                                          Stop(HUMAYUN), Stop(INDIA_GATE, (20, 50))), "home_clock_camera"),
        Day("2025-02-11", 330, "07:30", (Stop(LOTUS, (30, 60)), Stop(_spot("roadside dhaba, Mathura", 27.4924, 77.6737), (25, 40)),
                                          Stop(TAJ, (60, 100)), Stop(_spot("hotel, Agra Taj Ganj", 27.1660, 78.0455, True), (30, 60))),
            "cities_in_a_day"),
        Day("2025-02-12", 330, "07:00", (Stop(FATEHPUR, (60, 90)), Stop(_spot("Agra Cantt station", 27.1573, 77.9908), (20, 30)),
                                          Stop(_spot("Jaipur Junction", 26.9196, 75.7878), (15, 25), by_train=True), Stop(HAWA, (40, 80))),
            "train_ride"),
        *(Day(date, 60, "10:00", (Stop(BERLIN_HOME, (120, 240), trap="a second camera, at home during the trip", photo_rate_per_min=0.05),), "home_camera",
              devices=("home_camera",), person="partner") for date in ("2025-02-10", "2025-02-11", "2025-02-12")),
    ),
)

PORTO_HOME = _spot("home, Mumbai Bandra", 19.0596, 72.8295, indoor=True)
CLERIGOS = _landmark("01.Clerigos_Tower", known=False)
CITY_HALL = _landmark("05.Porto_City_Hall", known=False)
ARRABIDA = _landmark("04.Ponte_da_Arrabida", known=False)
BIG_BEN = _landmark("00.Big_Ben", known=False)

PORTO_LONDON = Trip(
    "porto_london_from_mumbai",
    PORTO_HOME,
    (
        _phone("samsung", "SM-S911B", "R5CW30ABCDE", 2000),
        _camera("camera", "NIKON CORPORATION", "NIKON Z 50", "6021334", "DSC_", 3000, 330, -1.5, 1.1),
        _camera("home_camera", "Canon", "Canon PowerShot SX740 HS", "433052000123", "IMG_9", 100, 330, 6.0, 0.2),
    ),
    (
        Day("2025-05-08", 330, "12:00", (Stop(_landmark("10.Gateway_of_India"), (40, 70), devices=("phone",)),
                                          Stop(PORTO_HOME, (60, 100), devices=("camera",), trap="before the trip, at home, no GPS evidence within hours")),
            "before_trip"),
        Day("2025-05-12", 60, "09:30", (Stop(CLERIGOS), Stop(CITY_HALL, (20, 50)), Stop(_spot("Majestic Café", 41.1470, -8.6066, True), (40, 60)),
                                         Stop(ARRABIDA, (30, 60))), "unknown_landmarks"),
        Day("2025-05-13", 60, "09:00", (Stop(_spot("Ribeira", 41.1407, -8.6132), (40, 70)), Stop(CLERIGOS, (20, 40)),
                                         Stop(_spot("São Bento station", 41.1456, -8.6108), (15, 25)),
                                         Stop(_spot("Lisboa Santa Apolónia", 38.7137, -9.1224), (15, 25), by_train=True),
                                         Stop(_spot("Alfama", 38.7118, -9.1300), (60, 90))), "train_ride"),
        Day("2025-05-15", 60, "09:00", (Stop(BIG_BEN), Stop(_spot("Westminster Abbey", 51.4993, -0.1273), (40, 70)),
                                         Stop(_spot("British Museum", 51.5194, -0.1270, True), (60, 90))), "unknown_landmarks"),
        *(Day(date, 330, "17:00", (Stop(PORTO_HOME, (90, 180), trap="a second camera, at home during the trip", photo_rate_per_min=0.05),), "home_camera",
              devices=("home_camera",), person="partner") for date in ("2025-05-12", "2025-05-14")),
    ),
)

MUNICH_HOME = _spot("home, Munich Schwabing", 48.1620, 11.5860, indoor=True)
PISA = _landmark("02.Leaning_Tower_of_Pisa", known=False)
COLOSSEUM = _landmark("04.Colosseum")

ITALY_GPX = Trip(
    "italy_camera_and_gpx_from_munich",
    MUNICH_HOME,
    (_camera("camera", "OLYMPUS CORPORATION", "E-M10MarkIII", "BHX207815", "P", 7000000, 60, 1.0, 0.5),),
    (
        Day("2025-07-01", 120, "18:00", (Stop(MUNICH_HOME, (40, 80), trap="before the trip, at home, no GPS evidence at all"),), "before_trip",
            devices=("camera",)),
        Day("2025-07-08", 120, "09:00", (Stop(PISA, (40, 80)), Stop(_spot("Piazza dei Cavalieri", 43.7197, 10.4004), (20, 40)),
                                          Stop(_spot("Lucca walls", 43.8430, 10.5050), (40, 80))), "camera_gpx", devices=("camera",), gpx=True),
        Day("2025-07-09", 120, "08:00", (Stop(_spot("Siena Piazza del Campo", 43.3183, 11.3317), (40, 80)),
                                          Stop(_spot("Orvieto", 42.7185, 12.1107), (30, 60)), Stop(COLOSSEUM, (40, 90))),
            "camera_gpx", devices=("camera",), gpx=True),
        Day("2025-07-10", 120, "08:30", (Stop(_spot("Trastevere", 41.8897, 12.4697), (40, 80)), Stop(COLOSSEUM, (30, 60)),
                                          Stop(_spot("Pantheon", 41.8986, 12.4769, True), (20, 40))), "camera_gpx", devices=("camera",), gpx=True),
    ),
)

SYDNEY_HOME = _spot("home, Sydney Glebe", -33.8790, 151.1840, indoor=True)
FORBIDDEN = _landmark("07.Forbidden_City")
GREAT_WALL = _landmark("09.Great_Wall_of_China")
FUJI = _landmark("03.Mount_Fuji", known=False)
ANGKOR = _landmark("01.Angkor_Wat")

FAR_EAST = Trip(
    "far_east_from_sydney",
    SYDNEY_HOME,
    (
        _phone("Google", "Pixel 7", "", 8000),
        _camera("camera", "FUJIFILM", "X-T30", "9AB12345", "DSCF", 4000, 600, 3.0, -0.7),
        _camera("home_camera", "SONY", "DSC-RX100M5A", "5512390", "DSC0", 5000, 600, -2.0, 0.4),
    ),
    (
        Day("2025-09-01", 600, "12:00", (Stop(_spot("Bondi Beach", -33.8915, 151.2767), (50, 90), devices=("phone",)),
                                          Stop(SYDNEY_HOME, (60, 100), devices=("camera",), trap="before the trip, at home, no GPS evidence within hours")),
            "before_trip"),
        Day("2025-09-06", 540, "08:00", (Stop(_spot("Kawaguchiko station", 35.4986, 138.7690), (20, 30)), Stop(FUJI, (60, 120)),
                                          Stop(_spot("Oishi Park", 35.5220, 138.7430), (30, 60))), "unknown_landmarks"),
        Day("2025-09-08", 480, "08:00", (Stop(FORBIDDEN, (60, 100)), Stop(_spot("Jingshan Park", 39.9250, 116.3966), (20, 40)),
                                          Stop(GREAT_WALL, (60, 120))), "cities_in_a_day"),
        Day("2025-09-09", 480, "08:00", (Stop(_spot("Beijing South station", 39.8652, 116.3786), (20, 30)),
                                          Stop(_spot("Jinan West station", 36.6700, 116.8900), (15, 25), by_train=True),
                                          Stop(_spot("Daming Lake, Jinan", 36.6750, 117.0200), (60, 90))), "train_ride"),
        Day("2025-09-11", 420, "05:30", (Stop(ANGKOR, (90, 150)), Stop(_spot("Siem Reap Pub Street", 13.3549, 103.8553), (40, 70))),
            "home_clock_camera"),
        *(Day(date, 600, "09:00", (Stop(_landmark("07.Sydney_Opera_House", known=False), (60, 120),
                                        trap="a second camera, at home during the trip", photo_rate_per_min=0.05),), "home_camera", devices=("home_camera",), person="partner")
          for date in ("2025-09-06", "2025-09-09")),
    ),
)

NEW_YORK_HOME = _spot("home, Brooklyn", 40.6782, -73.9442, indoor=True)
ST_BASIL = _landmark("06.Saint_Basils_Cathedral", known=False)
EIFFEL = _landmark("06.Eiffel_Tower")
LOUVRE = _landmark("11.Louvre")
VERSAILLES = _landmark("14.Palace_of_Versailles")
COLOGNE = _landmark("03.Cologne_Cathedral")

EUROPE = Trip(
    "moscow_paris_cologne_from_new_york",
    NEW_YORK_HOME,
    (
        _phone("Apple", "iPhone 15 Pro", "", 600),
        _camera("camera", "Canon", "Canon EOS R6", "102033004455", "_MG_", 2500, -300, -3.5, 0.6),
        _camera("home_camera", "SONY", "ILCE-7M3", "4430012", "DSC0", 8800, -300, 1.0, 0.2),
    ),
    (
        Day("2025-03-03", -300, "11:00", (Stop(_spot("Central Park", 40.7812, -73.9665), (60, 100), devices=("phone",)),
                                           Stop(NEW_YORK_HOME, (60, 100), devices=("camera",), trap="before the trip, at home, no GPS evidence within hours")),
            "before_trip"),
        Day("2025-03-07", 180, "09:30", (Stop(ST_BASIL, (40, 80)), Stop(_spot("GUM, Red Square", 55.7547, 37.6215, True), (40, 70)),
                                          Stop(_spot("Zaryadye Park", 55.7510, 37.6285), (30, 60))), "unknown_landmarks"),
        Day("2025-03-09", 60, "08:30", (Stop(LOUVRE, (60, 100)), Stop(EIFFEL, (40, 80)), Stop(VERSAILLES, (60, 120))), "cities_in_a_day"),
        Day("2025-03-10", 60, "08:00", (Stop(_landmark("13.Moulin_Rouge"), (20, 40)), Stop(_spot("Paris Gare du Nord", 48.8809, 2.3553), (20, 30)),
                                         Stop(_spot("Köln Hbf", 50.9430, 6.9589), (15, 25), by_train=True), Stop(COLOGNE, (40, 80))),
            "train_ride"),
        Day("2025-03-11", 60, "09:00", (Stop(_landmark("10.La_Defense"), (40, 80)), Stop(_spot("café, Paris Marais", 48.8590, 2.3620, True), (40, 60)),
                                         Stop(EIFFEL, (30, 60))), "home_clock_camera"),
        *(Day(date, -300, "10:00", (Stop(NEW_YORK_HOME, (120, 200), trap="a second camera, at home during the trip", photo_rate_per_min=0.05),), "home_camera",
              devices=("home_camera",), person="partner") for date in ("2025-03-09", "2025-03-10")),
    ),
)

TRIPS = (INDIA, PORTO_LONDON, ITALY_GPX, FAR_EAST, EUROPE)
