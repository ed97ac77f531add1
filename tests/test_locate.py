"""The library context's pure parts: device clocks, evidence radii, the one decision (issue 37)."""

from __future__ import annotations

import numpy as np
import pytest

from src.serving.locate.clocks import ClockLimits, format_offset, known_clock, parse_camera_offsets, tie_by_bursts, tie_by_landmarks
from src.serving.locate.decide import decide
from src.serving.locate.evidence import Fixes, Proposal, TimeLimits, time_proposal
from src.serving.locate.geo import distance_m, interpolate

DELHI = (28.5535, 77.2588)  # Lotus Temple
AGRA = (27.1751, 78.0421)  # Taj Mahal
SYDNEY = (-33.8568, 151.2153)


def test_distance_and_interpolation_on_the_sphere():
    assert distance_m(10.0, 20.0, 11.0, 20.0) == pytest.approx(111_195, rel=1e-4)  # one degree of a meridian
    lat, lon = interpolate(0.0, 179.5, 0.0, -179.5, 0.5)  # across the antimeridian, not through Greenwich
    assert lat == pytest.approx(0.0, abs=1e-9) and abs(lon) == pytest.approx(180.0, abs=1e-6)


@pytest.mark.parametrize("text, seconds", [("Canon EOS 80D=+01:00", 3600), ("NIKON D750 = -03:30", -12600), ("x=+00:04:10", 250)])
def test_camera_offsets_parse(text, seconds):
    assert list(parse_camera_offsets([text]).values()) == [seconds]


@pytest.mark.parametrize("text", ["Canon", "Canon=1", "Canon=+25:00", "Canon=+01:75", "=+01:00"])
def test_camera_offsets_that_make_no_sense_are_refused_with_the_text(text):
    with pytest.raises(ValueError, match="camera-offset"):
        parse_camera_offsets([text])


def test_format_offset():
    assert format_offset(5.5 * 3600) == "+05:30" and format_offset(-3600 - 7) == "-01:00:07" and format_offset(None) == ""


def test_known_clock_follows_a_time_zone_change():
    utc = np.array([0.0, 600, 1200, 86400, 87000])
    offsets = np.array([3600, 3600, 3600, 19800, 19800])  # flew from +01:00 to +05:30
    clock = utc + offsets
    told = np.array([0.0, np.nan, 1200, np.nan, 87000])  # two photos do not say their UTC time
    device, estimated = known_clock("phone", clock, told, "offset tags")
    assert device.tied and np.allclose(estimated, utc)


def _bursts(rng, start, count):
    """Photo times in bursts: a few photos a minute apart at each stop, stops an hour or two apart."""
    times = []
    for stop in range(count):
        base = start + stop * rng.uniform(3600, 7200)
        times.extend(base + np.sort(rng.uniform(0, 600, size=rng.integers(3, 8))))
    return np.sort(np.array(times))


def test_bursts_tie_a_camera_on_home_time():
    rng = np.random.default_rng(0)
    phone_utc = _bursts(rng, 1.7e9, 8)
    camera_utc = phone_utc[rng.random(len(phone_utc)) < 0.6] + rng.uniform(-60, 60)
    offset = -4.5 * 3600 + 130  # a European camera in India, 2 min fast
    clock = tie_by_bursts("camera", camera_utc + offset, phone_utc)
    assert clock.tied and abs(clock.offset_s - offset) <= clock.uncertainty_s and clock.uncertainty_s <= 600


def test_bursts_do_not_tie_a_camera_that_shoots_at_other_times():
    rng = np.random.default_rng(1)
    phone_utc = _bursts(rng, 1.7e9, 8)
    home = np.sort(1.7e9 + rng.uniform(0, 12 * 3600, size=15))  # someone else's camera, at home
    assert not tie_by_bursts("home camera", home, phone_utc).tied


def test_landmarks_tie_a_camera_and_refuse_two_cameras_under_one_name():
    fixes = Fixes.of([0.0, 1800, 7200, 9000], [DELHI[0], DELHI[0], AGRA[0], AGRA[0]], [DELHI[1], DELHI[1], AGRA[1], AGRA[1]],
                     np.full(4, 30.0), ["a", "b", "c", "d"])
    offset = 3600.0
    clocks = np.array([900.0, 8100.0]) + offset
    lats, lons = np.array([DELHI[0], AGRA[0]]), np.array([DELHI[1], AGRA[1]])
    candidates = np.concatenate([clocks[0] - fixes.times[:2], clocks[1] - fixes.times[2:]])
    tied = tie_by_landmarks("camera", clocks, lats, lons, candidates, fixes.times, fixes.latitudes, fixes.longitudes)
    assert tied.tied and abs(tied.offset_s - offset) <= tied.uncertainty_s <= 2 * 3600
    # One landmark photo alone never ties a clock
    assert tie_by_landmarks("camera", clocks[:1], lats[:1], lons[:1], candidates, fixes.times, fixes.latitudes, fixes.longitudes) is None


def test_time_neighbours_interpolate_and_state_a_radius_that_holds():
    fixes = Fixes.of([0.0, 1200.0], [DELHI[0], DELHI[0] + 0.01], [DELHI[1], DELHI[1]], np.full(2, 30.0), ["before", "after"])
    proposal = time_proposal(fixes, 600.0, 0.0)
    assert proposal is not None and proposal.source == "time"
    truth_anywhere_on_the_way = [DELHI[0] + 0.01 * f for f in (0.3, 0.5, 0.7)]
    assert all(distance_m(lat, DELHI[1], proposal.latitude, proposal.longitude) <= proposal.radius_m for lat in truth_anywhere_on_the_way)


def test_the_train_ride_is_refused():
    # Photos in Delhi, then 3 hours later in Agra: a camera photo in between could be anywhere on the line.
    fixes = Fixes.of([0.0, 3 * 3600.0], [DELHI[0], AGRA[0]], [DELHI[1], AGRA[1]], np.full(2, 30.0), ["delhi", "agra"])
    assert time_proposal(fixes, 5400.0, 0.0) is None
    # ...and within the gap limit, but moving at train speed, the radius is too wide to give
    fast = Fixes.of([0.0, 1500.0], [DELHI[0], DELHI[0] + 0.3], [DELHI[1], DELHI[1]], np.full(2, 30.0), ["a", "b"])
    assert time_proposal(fast, 750.0, 0.0, TimeLimits(max_radius_m=1000)) is None


def test_decide_refuses_conflicts_and_names_the_agreeing_evidence():
    landmark = Proposal("landmark", *DELHI, 1000.0, "the landmark Lotus Temple")
    phone_in_sydney = Proposal("time", *SYDNEY, 200.0, "GPS photos 4 min away")
    conflict = decide([landmark, phone_in_sydney])
    assert conflict.source == "conflict" and not conflict.placed and "Lotus Temple" in conflict.message
    phone_nearby = Proposal("time", DELHI[0] + 0.002, DELHI[1], 150.0, "GPS photos 2 min away")
    agreed = decide([landmark, phone_nearby])
    assert agreed.source == "time" and agreed.radius_m == 150.0 and "Lotus Temple" in agreed.message
    assert decide([]).source == "" and not decide([]).placed


def test_bursts_look_near_the_home_zone_only():
    rng = np.random.default_rng(2)
    phone_utc = _bursts(rng, 1.7e9, 10)
    camera_utc = phone_utc[rng.random(len(phone_utc)) < 0.6] + rng.uniform(-60, 60)
    offset = 5.5 * 3600 - 90  # set at home in Mumbai, 90 s slow
    assert tie_by_bursts("camera", camera_utc + offset, phone_utc, zones=[5.5 * 3600]).tied
    assert not tie_by_bursts("camera", camera_utc + offset, phone_utc, zones=[1 * 3600]).tied  # not where it was set


def test_a_drifting_camera_is_narrowed_day_by_day():
    from src.serving.locate.clocks import DeviceClock, narrow_per_day, refine_by_bursts

    rng = np.random.default_rng(3)
    phone_utc = np.concatenate([_bursts(rng, 1.7e9 + day * 86400, 6) for day in range(4)])
    camera_utc = phone_utc[rng.random(len(phone_utc)) < 0.7]
    drift = 120.0  # two minutes a day
    clocks = camera_utc + 3600 + drift * (camera_utc - camera_utc[0]) / 86400
    start = DeviceClock("camera", 3600 + 1.5 * drift, 600.0, "test")
    narrowed = narrow_per_day(start, clocks, lambda clock, times: refine_by_bursts(clock, times, phone_utc))
    offsets, uncertainties = narrowed.at(clocks)
    truth = clocks - camera_utc
    assert len(narrowed.days) >= 3 and np.mean(np.abs(offsets - truth) <= uncertainties + 60) >= 0.9


def test_a_track_narrows_a_camera_to_where_the_person_stood():
    from src.serving.locate.clocks import DeviceClock, refine_by_stillness

    still = np.concatenate([np.arange(0, 1800, 30.0), np.arange(3600, 5400, 30.0)])  # two stops, a drive between
    photos_utc = np.array([300.0, 900, 1500, 3900, 4500, 5100])
    clock = DeviceClock("camera", 3600.0, 1500.0, "landmarks")
    narrowed = refine_by_stillness(clock, photos_utc + 3600.0 + 240, still)
    assert narrowed.uncertainty_s < clock.uncertainty_s and abs(narrowed.offset_s - 3840.0) <= narrowed.uncertainty_s


def test_a_library_of_100_000_photos_without_any_time_places_nothing():
    from src.serving.locate.library import LibraryPhoto, locate_library
    from src.serving.locate.photo_meta import PhotoMeta

    photos = [LibraryPhoto(f"IMG_{i:06d}.JPG", PhotoMeta(problems=("no date",)), "IMG_######.JPG") for i in range(100_000)]
    located = locate_library(photos)  # its cost is measured by `python -m src bench`, not here
    assert all(not answer.decision.placed for answer in located) and len(located) == len(photos)
