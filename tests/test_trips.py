"""The library simulator (src.trips): halves, ground truth, what exiftool wrote, the scorer and the baselines."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import SHARED
from src.trips.baselines import Answer, LibraryPhoto, nearest_within_hour, read_library, same_day
from src.trips.plan import SITUATIONS, Day, Device, Place, PlannedPhoto, Stop, Trip
from src.trips.pools import half_of
from src.trips.score import POOLED, TruthPhoto, score, score_by_situation
from src.trips.templates import TRIPS
from src.trips.trajectory import Trajectory
from src.trips.truth import label_truth, track_covers

NEEDS_EXIFTOOL = pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed (it writes the simulated libraries)")
NEEDS_POOLS = pytest.mark.skipif(not (SHARED / "other_landmarks").is_dir() or not (SHARED / "no_landmark").is_dir(),
                                 reason="../shared photo sets are not present (they exist on the dev machines and in CI)")
DELHI, AGRA = (28.5245, 77.1855), (27.1751, 78.0421)  # Qutub Minar, Taj Mahal: 180 km apart


def test_halves_are_stable_and_even():
    paths = [f"no_landmark/x_image_{i:04d}.jpg" for i in range(2000)]
    halves = [half_of(p) for p in paths]
    assert halves == [half_of(p) for p in paths]  # no per-process salt (Python's hash() would differ per run)
    assert half_of("indian_monuments/test/22.Taj_Mahal/0001.jpg") == half_of("indian_monuments/test/22.Taj_Mahal/0001.jpg")
    assert 0.45 < halves.count("a") / len(halves) < 0.55


def test_every_situation_is_in_at_least_two_trips():
    for situation in SITUATIONS:
        trips = [t.name for t in TRIPS if any(d.situation == situation for d in t.days)]
        assert len(trips) >= 2 or situation == "camera_gpx", (situation, trips)
    assert any(day.gpx for trip in TRIPS for day in trip.days)


def test_track_covers_only_gaps_of_30_minutes_or_less():
    fixes = [0.0, 600.0, 1200.0, 1200.0 + 31 * 60]
    assert track_covers(fixes, 300.0) and track_covers(fixes, 1200.0)
    assert not track_covers(fixes, 1300.0)  # inside the 31-minute gap
    assert not track_covers(fixes, -1.0) and not track_covers(fixes, 1e9)  # before the first, after the last fix


def _photo(device: str, utc: float, where: tuple, has_gps: bool = False, trap: str = "", known: bool = False, person: str = "me") -> PlannedPhoto:
    return PlannedPhoto("s", person, device, utc, where[0], where[1], "x.jpg", "22.Taj_Mahal" if known else "", known, has_gps, trap)


def test_ground_truth_needs_a_stay_and_a_tied_device():
    me = Trajectory()
    me.add(0, 3600, DELHI, DELHI)  # an hour at the Qutub Minar
    me.add(3600, 3 * 3600, DELHI, AGRA)  # two hours on the road
    partner = Trajectory()
    partner.add(0, 4 * 3600, AGRA, AGRA)
    photos = [
        _photo("phone", 600, DELHI, has_gps=True), _photo("phone", 1200, DELHI, has_gps=True), _photo("phone", 1800, DELHI, has_gps=True),
        _photo("camera", 700, DELHI), _photo("camera", 1300, DELHI), _photo("camera", 1900, DELHI),  # three moments: tied
        _photo("camera", 4000, me.at(4000), trap="on the road"),  # 7 min after leaving: still 30 min from a GPS photo, but not within 1 km
        _photo("phone", 3000, DELHI),  # indoors, no fix: the phone's own GPS photos 20 min earlier
        _photo("other", 900, AGRA, person="partner"),  # nobody with GPS around the partner
        _photo("other", 950, AGRA, person="partner", known=True),  # but a known landmark places itself
    ]
    label_truth(photos, [], {"me": me, "partner": partner}, gps_devices={"phone"})
    assert [p.placeable for p in photos[3:]] == [True, True, True, False, True, False, True]
    assert photos[6].trap and "cannot" not in photos[6].why
    # a device with fewer than 3 shared moments is not tied: the same photos without two of the camera's
    label_truth([*photos[:4]], [], {"me": me}, gps_devices={"phone"})
    assert not photos[3].placeable and "cannot be tied" in photos[3].why


def test_scorer_on_hand_made_rows():
    truths = [
        TruthPhoto("a", "trip", 28.0, 77.0, has_gps=False, placeable=True, trap=False),
        TruthPhoto("b", "trip", 28.0, 77.0, has_gps=False, placeable=True, trap=False),
        TruthPhoto("c", "trip", 28.0, 77.0, has_gps=False, placeable=True, trap=False),
        TruthPhoto("d", "trip", 28.0, 77.0, has_gps=False, placeable=True, trap=False),
        TruthPhoto("e", "home", 52.5, 13.4, has_gps=False, placeable=False, trap=True),
        TruthPhoto("f", "trip", 28.0, 77.0, has_gps=True, placeable=False, trap=False),
        TruthPhoto("g", "trip", 28.0, 77.0, has_gps=True, placeable=False, trap=False),
    ]
    answers = {
        "a": Answer("a", True, 28.0, 77.005, radius_m=1000.0),  # ~490 m off, radius holds
        "b": Answer("b", True, 28.1, 77.0, radius_m=5000.0),  # ~11 km off, radius fails
        "c": Answer("c", True, 27.0, 77.0),  # ~111 km off
        "e": Answer("e", True, 28.0, 77.0),  # a trap placed (thousands of km off)
        "f": Answer("f", False, 28.0, 77.0),  # GPS photo reported with its own position
        "g": Answer("g", False, 28.01, 77.0),  # GPS photo moved 1.1 km
    }
    result = score(zip(truths, [answers.get(t.file) for t in truths]))
    assert (result.without_gps, result.placeable, result.within_1km, result.within_25km, result.over_25km) == (5, 4, 1, 1, 1)
    assert (result.over_25km_all, result.traps, result.traps_placed) == (2, 1, 1)
    assert (result.with_radius, result.radius_holds) == (2, 1)
    assert (result.with_gps, result.gps_untouched) == (2, 1)
    shares = result.shares()
    assert shares["within_1km"] == 0.25 and shares["over_25km_of_all"] == pytest.approx(0.4) and shares["gps_untouched"] == 0.5
    by = score_by_situation(truths, answers)
    assert list(by) == ["home", "trip", POOLED] and by["home"].traps_placed == 1 and by[POOLED].without_gps == 5


def _written(day: str, hhmm: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{hhmm}")


def test_baselines_on_a_hand_made_train_ride():
    """Morning phone photos in Agra, the train, evening photos in Jaipur; a camera photo taken in the morning."""
    photos = [
        LibraryPhoto("IMG_1.JPG", _written("2025-02-12", "08:00:00"), AGRA),
        LibraryPhoto("DSC_1.JPG", _written("2025-02-12", "08:40:00"), None),  # 40 min after the Agra GPS photo
        LibraryPhoto("DSC_2.JPG", _written("2025-02-12", "13:00:00"), None),  # on the train, nearer the Jaipur photo
        LibraryPhoto("IMG_2.JPG", _written("2025-02-12", "16:30:00"), (26.9239, 75.8267)),
        LibraryPhoto("DSC_3.JPG", _written("2025-02-13", "08:00:00"), None),  # the next day: no GPS photo that day
        LibraryPhoto("DSC_4.JPG", None, None),  # no time at all
    ]
    day = {a.file: a for a in same_day(photos)}
    assert (day["IMG_1.JPG"].latitude, day["IMG_1.JPG"].longitude) == AGRA and day["IMG_1.JPG"].source == "gps"
    assert (day["DSC_1.JPG"].latitude, day["DSC_1.JPG"].longitude) == AGRA
    assert day["DSC_2.JPG"].placed and day["DSC_2.JPG"].latitude == 26.9239  # the train-ride failure: placed at the far end
    assert not day["DSC_3.JPG"].placed and not day["DSC_4.JPG"].placed
    hour = {a.file: a for a in nearest_within_hour(photos)}
    assert hour["DSC_1.JPG"].placed and hour["DSC_1.JPG"].latitude == AGRA[0]
    assert not hour["DSC_2.JPG"].placed and not hour["DSC_3.JPG"].placed  # 3.5 h from the nearest GPS photo


SMALL_TRIP = Trip(
    "small",
    Place("home", 52.5693, 13.4010, indoor=True),
    (Device("phone", "Apple", "iPhone 12", "", "IMG_", 100, gps=True, writes_offset=True),
     Device("camera", "SONY", "ILCE-6400", "3341207", "DSC0", 200, clock_utc_offset_min=60, clock_error_min=2.5)),
    (Day("2025-02-10", 330, "09:00", (Stop(Place("Qutub Minar", *DELHI, ("20.Qutub_Minar",)), (15, 20)),
                                       Stop(Place("Jaipur Junction", 26.9196, 75.7878), (10, 12), by_train=True)),
         "train_ride"),),
)


@NEEDS_EXIFTOOL
@NEEDS_POOLS
def test_a_small_library_says_in_its_files_what_truth_csv_says(tmp_path):
    from src.trips.itinerary import simulate
    from src.trips.library import read_truth, write_library
    from src.trips.pools import load_pools

    simulation = simulate(SMALL_TRIP, load_pools("a", SHARED), seed=3)
    label_truth(simulation.photos, simulation.tracks, simulation.trajectories, {"phone"})
    write_library(simulation, tmp_path / "lib", SHARED)
    truth = {row["file"]: row for row in read_truth(tmp_path / "lib")}
    assert {row["situation"] for row in truth.values()} == {"train_ride"}
    assert any(row["trap"] == "yes" and row["device"] == "camera" and row["placeable"] == "no" for row in truth.values())  # on the train
    done = subprocess.run(["exiftool", "-j", "-n", "-DateTimeOriginal", "-OffsetTimeOriginal", "-GPSLatitude", "-GPSLongitude",
                           "-GPSDateStamp", "-GPSTimeStamp", "-Make", "-Model", "-SerialNumber", "-ext", "jpg", str(tmp_path / "lib")],
                          capture_output=True, text=True, check=True)
    written = {Path(item["SourceFile"]).name: item for item in json.loads(done.stdout)}
    assert set(written) == set(truth)
    for name, row in truth.items():
        item = written[name]
        assert item["DateTimeOriginal"] == row["written_local"] and item["Make"] == row["make"] and item["Model"] == row["model"]
        assert item.get("OffsetTimeOriginal", "") == row["offset"]
        if row["has_gps"] == "yes":
            assert item["GPSLatitude"] == pytest.approx(float(row["latitude"]), abs=1e-6)
            assert item["GPSLongitude"] == pytest.approx(float(row["longitude"]), abs=1e-6)
            assert f"{item['GPSDateStamp']}T{item['GPSTimeStamp']}Z".replace(":", "-", 2) == row["time_utc"]
        else:
            assert "GPSLatitude" not in item
        if row["device"] == "camera":  # on home time (+01:00) in India (+05:30), 2.5 min fast, no offset written
            utc = dt.datetime.fromisoformat(row["time_utc"].replace("Z", "+00:00"))
            shown = dt.datetime.strptime(row["written_local"], "%Y:%m:%d %H:%M:%S").replace(tzinfo=dt.timezone.utc)
            assert (shown - utc).total_seconds() / 60 == pytest.approx(60 + 2.5, abs=0.1)
            assert str(item["SerialNumber"]) == "3341207" and name.startswith("DSC0")
    # the baselines read the same files through the project's reader
    photos = {p.file: p for p in read_library(tmp_path / "lib")}
    assert set(photos) == set(truth)
    assert all((photos[n].position is not None) == (row["has_gps"] == "yes") for n, row in truth.items())


def test_markdown_puts_methods_side_by_side_then_situations():
    from src.trips.report import markdown

    truths = [TruthPhoto("a", "train_ride", 28.0, 77.0, False, True, False), TruthPhoto("b", "home_camera", 52.5, 13.4, False, False, True)]
    scores = {"rule": score_by_situation(truths, {"a": Answer("a", True, 28.0, 77.0), "b": Answer("b", True, 28.0, 77.0)})}
    text = markdown(scores, "title")
    assert "| rule | 2 | 1 | 100.0 % | 0.0 % | 0.0 % | 50.0 % | 1 of 1 | no radius | – |" in text
    assert "| home_camera | 1 | 0 | – |" in text and "| **pooled** |" in text


def test_evaluate_without_libraries_says_so(tmp_path, capsys):
    from src.trips.__main__ import main

    assert main(["evaluate", str(tmp_path)]) == 2
    assert "no library found" in capsys.readouterr().err
