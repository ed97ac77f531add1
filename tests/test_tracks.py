"""GPS tracks (src.serving.locate.tracks): every real track file read without a crash, interpolation
checked against exiftool -geotag, the limits, the Takeout layouts, KML, NMEA, IGC and bad input."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from src.serving.locate.geo import distance_m
from src.serving.locate.tracks import (
    Track, TrackLimits, position_at, positions_at, read_track, read_tracks,
)

from conftest import SHARED

TRACKS = SHARED / "real_metadata" / "tracks"
NEEDS_TRACKS = pytest.mark.skipif(
    not TRACKS.is_dir(), reason="../shared/real_metadata/tracks is not present (dev machines and CI only)")


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def gpx(points: list[tuple[float, float, str | None]], extra: str = "") -> str:
    rows = "\n".join(f'<trkpt lat="{lat}" lon="{lon}">' + (f"<time>{t}</time>" if t else "") + "</trkpt>"
                     for lat, lon, t in points)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<gpx version="1.1" creator="test" '
            f'xmlns="http://www.topografix.com/GPX/1/1">{extra}<trk><name>walk</name><trkseg>\n{rows}\n'
            '</trkseg></trk></gpx>\n')


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def assert_clean(track: Track) -> None:
    assert track.times.dtype == np.float64 and track.times.size >= 1
    assert np.all(np.diff(track.times) > 0), f"{track.source}: times not strictly increasing"
    assert np.all(np.abs(track.latitudes) <= 90) and np.all(np.abs(track.longitudes) <= 180)
    assert track.latitudes.shape == track.longitudes.shape == track.times.shape
    assert track.accuracy_m is None or (track.accuracy_m.shape == track.times.shape and np.all(track.accuracy_m > 0))


# ---------------------------------------------------------------- the real files

# What the odd real files must say (a substring of one of their problems).
REAL_ODD = {
    "gpxpy/Mojstrovka.gpx": "times in 1901",
    "georust-gpx/strava_route_example.gpx": "no times",
    "georust-gpx/viking_with_route_extensions.gpx": "no times",
    "gpxpy/route.gpx": "no times",
    "gpsbabel/holux.gpx": "no times",
    "gpxpy/unicode2.gpx": "no track points",
    "georust-gpx/empty_name_tag.gpx": "no track points",
    "gpsbabel/skydrop.kml": "no times",
    "gpsbabel/adddate.nmea": "without $GPRMC",
    "exiftool-t-images/Geotag.log": "without $GPRMC",
    "exiftool-t-images/Garmin.fit": "not supported",
    "exiftool-t-images/Geotag.xml": "not supported",
    "exiftool-t-images/Geotag3.log": "not supported",
    "exiftool-t-images/Geotag_DJI_2020-12-02_[07-50-31].csv": "without a date and time column",
}
# Real files that must give tracks: every supported layout, odd ones included (BOM, blank line before
# the XML declaration, local-offset times with milliseconds, empty segments, waypoints only, empty gx:coord).
REAL_GOOD = {
    "exiftool-t-images/Geotag.gpx": 9, "exiftool-t-images/Geotag.kml": 3, "exiftool-t-images/Geotag.igc": 10,
    "exiftool-t-images/Geotag2.log": 3, "georust-gpx/garmin-activity.gpx": 900, "georust-gpx/with_accuracy.gpx": 3,
    "gpsbabel/basecamp.gpx": 2, "gpsbabel/google_ext.kml": 400, "gpsbabel/opentracks.kml": 2,
    "gpsbabel/mtk_locus.nmea": 1, "gpxpy/cerknicko-jezero.gpx": 290, "gpxpy/cerknicko-without-times.gpx": 5,
    "gpxpy/track-with-empty-segment.gpx": 9, "gpxpy/track-with-less-sec-time.gpx": 2,
    "gpxpy/unicode_with_bom.gpx": 1, "dawarich/gpx/arc_example.gpx": 7, "dawarich/gpx/garmin_example.gpx": 1,
    "dawarich/gpx/gpx_track_multiple_tracks.gpx": 30, "dawarich/kml/gx_track.kml": 4,
    "dawarich/google/records.json": 3, "dawarich/google-watched/Records.json": 5,
    "dawarich/google/semantic_history.json": 4, "dawarich/google/edge_cases/semantic_history_with_bom.json": 2,
    "dawarich/google/timeline_new_format.json": 5, "dawarich/google/phone-takeout_w_3_duplicates.json": 3,
    "dawarich/google/location-history.json": 5, "dawarich/csv/gpslogger.csv": 3, "dawarich/owntracks/2024-03.rec": 5,
    "dawarich/geojson/gpslogger_example.json": 1, "dawarich/google/edge_cases/phone_takeout_array_timeline_path.json": 3,
}


@NEEDS_TRACKS
def test_every_real_track_file_is_read_with_tracks_or_a_message():
    manifest = {row["path"]: row for row in csv.DictReader(open(SHARED / "real_metadata" / "manifest.csv"))}
    files = sorted(p for p in TRACKS.rglob("*") if p.is_file())
    assert len(files) == 63
    for path in files:
        name = str(path.relative_to(TRACKS))
        assert f"tracks/{name}" in manifest, name
        read = read_track(path)
        assert read.tracks or read.problems, f"{name}: neither tracks nor a message"
        assert all(isinstance(p, str) and path.name in p for p in read.problems)
        for track in read.tracks:
            assert_clean(track)
            assert path.name in track.source
        if name in REAL_GOOD:
            assert sum(len(t) for t in read.tracks) >= REAL_GOOD[name], (name, read.problems)
        if name in REAL_ODD:
            assert not read.tracks and any(REAL_ODD[name] in p for p in read.problems), (name, read.problems)


@NEEDS_TRACKS
def test_cut_and_corrupted_real_files_give_messages_from_the_readers(tmp_path):
    """Every real file cut short and with bytes flipped: each reader says what is wrong itself (the
    catch-all 'not readable as a track' would mean a reader let an exception through)."""
    rng = np.random.default_rng(0)
    for path in sorted(p for p in TRACKS.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for k in range(4):
            damaged = bytearray(data[: int(rng.integers(1, len(data) + 1))])
            for i in rng.integers(0, len(damaged), 5 if k >= 2 else 0):
                damaged[i] = int(rng.integers(0, 256))
            read = read_track(write(tmp_path, f"{k}_{path.name}", bytes(damaged)))
            assert read.tracks or read.problems
            assert not any("not readable as a track" in p for p in read.problems), (path.name, k, read.problems)
            for track in read.tracks:
                assert_clean(track)


@NEEDS_TRACKS
def test_real_gpx_with_local_offset_and_milliseconds_is_utc():
    track = read_track(TRACKS / "gpxpy/track-with-less-sec-time.gpx").tracks[0]
    assert track.times[0] == utc("2015-12-11T14:43:13")  # 15:43:13.000+01:00
    garmin = read_track(TRACKS / "dawarich/gpx/garmin_example.gpx").tracks[0]
    assert garmin.times[0] == pytest.approx(utc("2024-11-03T09:30:11.331"))  # 16:30:11.331+07:00


# ---------------------------------------------------------------- interpolation against exiftool

@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed (the independent oracle)")
def test_interpolation_matches_exiftool_geotag(tmp_path):
    from PIL import Image

    points = [(48.858, 2.294, "2024-05-01T10:00:00Z"), (48.859, 2.296, "2024-05-01T10:01:00Z"),
              (48.861, 2.2975, "2024-05-01T10:03:00Z"), (48.8605, 2.3001, "2024-05-01T10:03:40Z")]
    track_file = write(tmp_path, "walk.gpx", gpx(points))
    tracks = read_track(track_file).tracks
    for k, clock in enumerate(["10:00:20", "10:01:45", "10:02:59", "10:03:10"]):
        photo = tmp_path / f"p{k}.jpg"
        Image.new("RGB", (16, 16)).save(photo)
        subprocess.run(["exiftool", "-q", "-overwrite_original", f"-DateTimeOriginal=2024:05:01 {clock}", str(photo)], check=True)
        subprocess.run(["exiftool", "-q", "-overwrite_original", "-geotag", str(track_file),
                        "-geotime<${DateTimeOriginal}+00:00", str(photo)], check=True)
        out = subprocess.run(["exiftool", "-n", "-j", "-GPSLatitude", "-GPSLongitude", str(photo)],
                             check=True, capture_output=True, text=True).stdout
        oracle = json.loads(out)[0]
        fix = position_at(tracks, utc(f"2024-05-01T{clock}"))
        assert fix is not None
        assert distance_m(fix.latitude, fix.longitude, oracle["GPSLatitude"], oracle["GPSLongitude"]) < 2.0


# ---------------------------------------------------------------- limits and radius

def simple_track(times, lats, lons, accuracy=None) -> Track:
    return Track("test", np.asarray(times, float), np.asarray(lats, float), np.asarray(lons, float),
                 None if accuracy is None else np.asarray(accuracy, np.float32))


def test_gap_longer_than_the_limit_gives_none():
    track = simple_track([0, 60, 60 + 3600], [10.0, 10.001, 10.002], [20.0, 20.0, 20.0])
    assert position_at([track], 30) is not None
    assert position_at([track], 60 + 1800) is None
    assert position_at([track], 60 + 1800, TrackLimits(max_gap_s=7200)) is not None


def test_a_jump_faster_than_the_speed_limit_gives_none():
    # 0.1 degree of latitude (11 km) in 60 s is 185 m/s: a GPS jump, not a journey
    track = simple_track([0, 60, 120], [10.0, 10.1, 10.1005], [20.0, 20.0, 20.0])
    assert position_at([track], 30) is None
    assert position_at([track], 90) is not None
    assert position_at([track], 30, TrackLimits(max_speed_mps=300)) is not None


def test_a_lone_gps_spike_is_not_used_even_at_its_own_second():
    lats = [10.0, 10.00001, 10.00002, 10.2, 10.00004, 10.00005]  # the fourth fix is 22 km off for one second
    track = simple_track([0, 1, 2, 3, 4, 5], lats, [20.0] * 6)
    assert position_at([track], 3) is None and position_at([track], 2.5) is None and position_at([track], 3.5) is None
    assert position_at([track], 2).latitude == 10.00002 and position_at([track], 1.5) is not None
    alone = simple_track([0, 3600, 7200], [10.0, 10.2, 10.0], [20.0] * 3)  # far apart in time: no spike to judge
    assert position_at([alone], 3600).latitude == 10.2


def test_before_and_after_a_segment_within_max_outside_only():
    track = simple_track([1000, 1060], [10.0, 10.0], [20.0, 20.001])
    before, after = position_at([track], 1000 - 100), position_at([track], 1060 + 100)
    assert before is not None and (before.latitude, before.longitude) == (10.0, 20.0)
    assert after is not None and after.longitude == pytest.approx(20.001)
    assert "before the track's first fix" in before.detail and "after the track's last fix" in after.detail
    assert position_at([track], 1000 - 121) is None and position_at([track], 1060 + 121) is None
    assert position_at([], 1000) is None and position_at([track], float("nan")) is None


def test_radius_is_the_accuracy_at_a_fix_and_grows_with_time_to_the_nearest_fix():
    track = simple_track([0, 600], [10.0, 10.0], [20.0, 20.0], accuracy=[5.0, 30.0])
    at_fix = position_at([track], 0)
    assert at_fix.radius_m == pytest.approx(10.0) and at_fix.detail == "at a track fix"
    radii = [position_at([track], t).radius_m for t in (10, 100, 300)]
    assert radii[0] < radii[1] < radii[2]
    assert position_at([track], 300).radius_m == pytest.approx(60.0 + 300.0)  # 2 x 30 m + 1 m/s x 300 s
    # a long, fast pair: the person may have moved at any moment of it, so half its length is in the radius
    moving = simple_track([0, 600], [10.0, 10.1], [20.0, 20.0])
    pair = distance_m(10.0, 20.0, 10.1, 20.0)
    assert position_at([moving], 5).radius_m >= pair / 2


def test_interpolation_across_the_antimeridian_stays_near_it():
    track = simple_track([0, 60], [-17.0, -17.0], [179.9995, -179.9995])
    fix = position_at([track], 30)
    assert abs(fix.longitude) == pytest.approx(180.0, abs=1e-9)
    assert distance_m(fix.latitude, fix.longitude, -17.0, 179.9995) < 60


def test_positions_at_matches_position_at_and_prefers_the_smaller_radius():
    rng = np.random.default_rng(0)
    times = np.cumsum(rng.uniform(1, 30, 500))
    coarse = simple_track(times, 45 + np.cumsum(rng.normal(0, 1e-4, 500)), 7 + np.cumsum(rng.normal(0, 1e-4, 500)),
                          accuracy=np.full(500, 80.0))
    fine = simple_track(times[::3] + 0.5, coarse.latitudes[::3], coarse.longitudes[::3])
    asked = np.concatenate([rng.uniform(times[0] - 200, times[-1] + 200, 300), times[:5], [np.nan]])
    many = positions_at([coarse, fine], asked)
    for t, fix in zip(asked, many):
        one = position_at([coarse, fine], t)
        assert (one is None) == (fix is None)
        if fix is not None:
            assert (fix.latitude, fix.longitude, fix.radius_m, fix.source) == (one.latitude, one.longitude, one.radius_m, one.source)
            others = [f for f in (position_at([coarse], t), position_at([fine], t)) if f is not None]
            assert fix.radius_m == min(f.radius_m for f in others)


def simulated_day(rng: np.random.Generator, seconds: int = 4 * 3600) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A true path second by second: stops, walks that wander, bike, car and train legs."""
    speeds = {"stop": 0.0, "walk": 1.4, "bike": 5.0, "drive": 15.0, "train": 35.0}
    speed, heading = np.empty(seconds), np.empty(seconds)
    t, h = 0, rng.uniform(0, 2 * np.pi)
    while t < seconds:
        mode = rng.choice(list(speeds), p=[0.3, 0.35, 0.1, 0.15, 0.1])
        length = min(int(rng.uniform(120, 1800)), seconds - t)
        speed[t:t + length] = speeds[mode] * rng.uniform(0.6, 1.2)
        heading[t:t + length] = h + np.cumsum(rng.normal(0, 0.15 if mode == "walk" else 0.05, length))
        h, t = heading[t + length - 1], t + length
    north, east = np.cumsum(speed * np.cos(heading)), np.cumsum(speed * np.sin(heading))
    return np.arange(seconds, dtype=float), 45 + north / 111_195.0, 7 + east / (111_195.0 * np.cos(np.radians(45)))


@pytest.mark.parametrize("interval_s", [5, 60, 300])
def test_the_radius_holds_the_true_position_at_least_95_percent_of_the_time(interval_s):
    """A logger every interval_s with 5 m noise, 10 % of fixes lost and dropouts of up to 25 minutes."""
    rng = np.random.default_rng(interval_s)
    held = placed = 0
    for _ in range(8):
        times, lats, lons = simulated_day(rng)
        keep = np.arange(0, times.size, interval_s)
        keep = keep[rng.random(keep.size) > 0.1]
        for start in rng.uniform(0, times[-1], 3):
            keep = keep[(times[keep] < start) | (times[keep] > start + rng.uniform(120, 1500))]
        noise = rng.normal(0, 5.0, (2, keep.size))
        track = simple_track(times[keep], lats[keep] + noise[0] / 111_195.0,
                             lons[keep] + noise[1] / (111_195.0 * np.cos(np.radians(45))))
        asked = rng.integers(0, times.size, 300)
        for i, fix in zip(asked, positions_at([track], times[asked])):
            if fix is not None:
                placed += 1
                held += distance_m(fix.latitude, fix.longitude, lats[i], lons[i]) <= fix.radius_m
    assert placed > 0.8 * 8 * 300
    assert held / placed >= 0.95


# ---------------------------------------------------------------- GPX details

def test_gpx_waypoints_routes_naive_times_and_duplicates(tmp_path):
    extra = ('<wpt lat="1.0" lon="2.0"><time>2020-01-01T09:00:00Z</time></wpt>'
             '<rte><rtept lat="1.5" lon="2.5"><time>2020-01-01T08:00:00</time></rtept></rte>')
    points = [(1.1, 2.1, "2020-01-01T10:00:00"), (1.2, 2.2, "2020-01-01T10:00:00Z"), (1.3, 2.3, "2020-01-01T10:01:00Z"),
              (1.4, 2.4, None)]
    read = read_track(write(tmp_path, "mixed.gpx", "\ufeff" + gpx(points, extra)))
    assert read.problems == []
    by_name = {t.source: t for t in read.tracks}
    assert set(by_name) == {"mixed.gpx track 1 'walk' segment 1", "mixed.gpx route 1", "mixed.gpx waypoints"}
    walk = by_name["mixed.gpx track 1 'walk' segment 1"]
    assert list(walk.times) == [utc("2020-01-01T10:00:00"), utc("2020-01-01T10:01:00")]  # duplicate merged
    assert by_name["mixed.gpx route 1"].times[0] == utc("2020-01-01T08:00:00")  # a time without zone is UTC
    assert walk.accuracy_m is None


def test_gpx_that_gpxpy_rejects_is_read_by_the_lenient_reader(tmp_path):
    text = gpx([(1.0, 2.0, "2020-01-01T10:00:00Z"), (1.001, 2.0, "2020-01-01T10:00:10Z")])
    text = text.replace("</time></trkpt>", "</time><fix>not-in-the-spec</fix><hdop>2</hdop></trkpt>")
    read = read_track(write(tmp_path, "odd.gpx", text))
    assert read.problems == [] and len(read.tracks[0]) == 2
    assert read.tracks[0].accuracy_m[0] == pytest.approx(10.0)  # HDOP 2 x 5 m


def test_big_gpx_is_streamed_with_the_same_fixes(tmp_path, monkeypatch):
    from src.serving.locate import track_formats

    points = [(1 + k * 1e-4, 2.0, f"2020-01-01T10:{k:02d}:00Z") for k in range(50)] + [(9.0, 9.0, None)]
    path = write(tmp_path, "long.gpx", "\n\n" + gpx(points))
    whole = read_track(path)
    monkeypatch.setattr(track_formats, "GPX_GPXPY_MAX_BYTES", 0)
    streamed = read_track(path)
    assert [t.source for t in streamed.tracks] == ["long.gpx segment 1"]
    assert np.array_equal(whole.tracks[0].times, streamed.tracks[0].times)
    assert np.array_equal(whole.tracks[0].latitudes, streamed.tracks[0].latitudes)
    monkeypatch.undo()
    truncated = write(tmp_path, "cut.gpx", gpx(points)[:-200])
    cut = read_track(truncated)
    assert cut.problems and "broken XML" in cut.problems[0] and len(cut.tracks[0]) > 40  # points before the break kept


# ---------------------------------------------------------------- Takeout layouts

def test_takeout_records_with_e7_timestamp_ms_and_accuracy(tmp_path):
    records = {"locations": [
        {"latitudeE7": 533690550, "longitudeE7": 836950010, "accuracy": 20, "timestampMs": "1355581289460"},
        {"latitudeE7": 4294967296 - 338688000, "longitudeE7": 1512093000, "timestamp": "2013-01-04T10:22:43.225Z"},
        {"latitudeE7": 2136400000, "longitudeE7": 0, "timestamp": "2013-01-05T10:00:00Z"},
    ]}
    read = read_track(write(tmp_path, "Records.json", json.dumps(records)))
    (track,) = read.tracks
    assert track.times[0] == pytest.approx(1355581289.460)
    assert track.latitudes[1] == pytest.approx(-33.8688)  # an old export's unsigned negative E7
    assert list(track.accuracy_m) == [20.0, 50.0]
    assert any("1 points with an impossible latitude" in p for p in read.problems)


def test_semantic_location_history_visit_and_activity(tmp_path):
    history = {"timelineObjects": [
        {"placeVisit": {"location": {"latitudeE7": 485000000, "longitudeE7": 23000000},
                        "duration": {"startTimestamp": "2024-03-01T09:00:00Z", "endTimestamp": "2024-03-01T12:00:00Z"}}},
        {"activitySegment": {"startLocation": {"latitudeE7": 485000000, "longitudeE7": 23000000},
                             "endLocation": {"latitudeE7": 486000000, "longitudeE7": 23500000},
                             "duration": {"startTimestampMs": str(int(utc("2024-03-01T12:00:00") * 1000)),
                                          "endTimestampMs": str(int(utc("2024-03-01T12:20:00") * 1000))}}},
    ]}
    tracks = read_track(write(tmp_path, "2024_MARCH.json", json.dumps(history))).tracks
    in_the_visit = position_at(tracks, utc("2024-03-01T10:31:00"))  # a 3-hour stay is not a 3-hour gap
    assert in_the_visit is not None and in_the_visit.latitude == pytest.approx(48.5)
    end = position_at(tracks, utc("2024-03-01T12:20:00"))
    assert (end.latitude, end.longitude) == (pytest.approx(48.6), pytest.approx(2.35))


def test_semantic_segments_and_on_device_array(tmp_path):
    segments = {"semanticSegments": [
        {"startTime": "2024-06-15T10:30:00.000+02:00", "endTime": "2024-06-15T11:00:00.000+02:00",
         "timelinePath": [{"point": "48.8606°, 2.3376°", "time": "2024-06-15T10:35:00.000+02:00"},
                          {"point": "48.8620°, 2.3350°", "time": "2024-06-15T10:40:00.000+02:00"}]},
        {"startTime": "2024-06-15T11:00:00.000+02:00", "endTime": "2024-06-15T12:00:00.000+02:00",
         "visit": {"topCandidate": {"placeLocation": {"latLng": "48.8630°, 2.3300°"}}}},
    ], "rawSignals": [{"position": {"LatLng": "48.8566°, 2.3522°", "accuracyMeters": 15,
                                    "timestamp": "2024-06-15T07:05:00.000Z"}}]}
    tracks = read_track(write(tmp_path, "Timeline.json", json.dumps(segments))).tracks
    assert position_at(tracks, utc("2024-06-15T08:35:00")).latitude == pytest.approx(48.8606)
    assert position_at(tracks, utc("2024-06-15T07:05:00")).radius_m == pytest.approx(30.0)
    assert position_at(tracks, utc("2024-06-15T09:30:00")).longitude == pytest.approx(2.33)
    array = [{"startTime": "2025-07-29T13:00:00.000Z", "endTime": "2025-07-29T15:00:00.000Z",
              "timelinePath": [{"point": "geo:29.725358,-95.482259", "durationMinutesOffsetFromStartTime": "1"}]},
             {"startTime": "2025-07-29T16:00:00.000Z", "endTime": "2025-07-29T17:00:00.000Z",
              "visit": {"topCandidate": {"placeLocation": "geo:29.732,-95.485"}}}]
    tracks = read_track(write(tmp_path, "location-history.json", json.dumps(array))).tracks
    assert position_at(tracks, utc("2025-07-29T13:01:00")).longitude == pytest.approx(-95.482259)
    assert position_at(tracks, utc("2025-07-29T16:30:00")).latitude == pytest.approx(29.732)


def test_json_of_the_wrong_layout_and_broken_json_are_messages(tmp_path):
    wrong = read_track(write(tmp_path, "photo.json", json.dumps({"title": "x", "photoTakenTime": {"timestamp": "1"}})))
    assert not wrong.tracks and "unknown layout" in wrong.problems[0]
    cut = '{"locations": [{"latitudeE7": 10, "longitudeE7": 20, "timestamp": "2020-01-01T00:00:00Z"}, {"latitudeE7": 1'
    broken = read_track(write(tmp_path, "Records.json", cut))
    assert len(broken.tracks[0]) == 1 and "broken JSON after 1 entries" in broken.problems[0]


# ---------------------------------------------------------------- KML, NMEA, IGC

def test_kml_gx_track_and_stamped_placemarks(tmp_path):
    kml = """<?xml version="1.0" encoding="UTF-8"?>
<kml xmlns="http://www.opengis.net/kml/2.2" xmlns:gx="http://www.google.com/kml/ext/2.2"><Document>
<Placemark><gx:Track><when>2024-01-20T08:00:00Z</when><when>2024-01-20T08:01:00Z</when><when>2024-01-20T08:02:00Z</when>
<gx:coord>-122.0841 37.4220 10</gx:coord><gx:coord/><gx:coord>-122.0861 37.4240 14</gx:coord></gx:Track></Placemark>
<Placemark><TimeStamp><when>2024-01-20T09:00:00Z</when></TimeStamp><Point><coordinates>-122.1,37.5,0</coordinates></Point></Placemark>
</Document></kml>"""
    read = read_track(write(tmp_path, "history.kml", kml))
    track = next(t for t in read.tracks if "gx:Track" in t.source)
    assert list(track.longitudes) == [-122.0841, -122.0861] and list(track.latitudes) == [37.4220, 37.4240]
    assert position_at(read.tracks, utc("2024-01-20T09:00:00")).latitude == 37.5


def test_nmea_rmc_with_garbage_and_bad_checksums(tmp_path):
    lines = ["blah7.000,A,5103.6616,N,11407.4451,W,0.63,333.96,261012,,,A*7D", "\x00\x13garbage",
             "$GPRMC,112723.000,A,5040.3182,N,00505.9469,E,28.66,138.74,240410,,,A*51",
             "$GPRMC,112742.000,A,5040.2023,N,00506.1107,E,27.89,139.01,240410,,,A*00",  # wrong checksum
             "$GPRMC,112802.000,A,5040.0932,N,00506.2621,E,25.54,138.58,240410,,,A*59",
             "$GPRMC,112803.000,V,5040.0932,N,00506.2621,E,25.54,138.58,240410,,,A"]  # void fix
    (track,) = read_track(write(tmp_path, "log.txt", "\n".join(lines))).tracks
    assert list(track.times) == [utc("2010-04-24T11:27:23"), utc("2010-04-24T11:28:02")]
    assert track.latitudes[0] == pytest.approx(50 + 40.3182 / 60) and track.longitudes[0] == pytest.approx(5 + 5.9469 / 60)


def test_igc_b_records_across_midnight(tmp_path):
    igc = "AXXX test\nHFDTE311299\nB2359584916430N00643910WA0000000443\nB0000104916530S00643910EA0000000443\n"
    (track,) = read_track(write(tmp_path, "flight.igc", igc)).tracks
    assert list(track.times) == [utc("1999-12-31T23:59:58"), utc("2000-01-01T00:00:10")]
    assert track.longitudes[0] == pytest.approx(-(6 + 43.910 / 60)) and track.latitudes[1] < 0


def test_csv_logs_and_owntracks(tmp_path):
    rows = ["time,lat,lon,elevation,accuracy", "2024-06-15T10:30:00.000Z,52.52,13.405,34,8",
            "1718447460,52.521,13.406,35,", "1718447520000,52.522,13.407,36,7", "not a time,1,2,3,4"]
    (track,) = read_track(write(tmp_path, "log.csv", "\n".join(rows))).tracks
    assert list(track.times) == [utc("2024-06-15T10:30:00"), utc("2024-06-15T10:31:00"), utc("2024-06-15T10:32:00")]
    assert list(track.accuracy_m) == [8.0, 10.0, 7.0]  # the default where the row gives none
    relative = read_track(write(tmp_path, "flight.csv", "Id,Time(seconds),Latitude,Longitude\n1,0.3,-44.69,170.42\n"))
    assert not relative.tracks and "without a date and time column" in relative.problems[0]
    rec = ('2024-03-01T09:03:09Z\t*\t{"_type":"location","lat":52.225,"lon":13.332,"tst":1709283789,"acc":10}\n'
           '2024-03-01T09:04:00Z\t*\t{"_type":"transition","lat":1,"lon":1,"tst":1709283840}\nbroken line\n')
    (track,) = read_track(write(tmp_path, "2024-03.rec", rec)).tracks
    assert list(track.times) == [1709283789.0] and list(track.accuracy_m) == [10.0]


# ---------------------------------------------------------------- bad input

def test_bad_files_give_messages_never_exceptions(tmp_path):
    cases = {
        "empty.gpx": b"", "broken.gpx": gpx([(1, 2, "2020-01-01T00:00:00Z")])[:150],
        "notimes.gpx": gpx([(1, 2, None), (1.1, 2, None)]), "random.bin": bytes(range(256)) * 4,
        "text.kml": "not xml at all", "weird.xml": "<?xml version='1.0'?><History/>",
    }
    expected = {"empty.gpx": "empty file", "broken.gpx": "broken XML", "notimes.gpx": "no times: cannot be used",
                "random.bin": "not supported", "text.kml": "broken XML", "weird.xml": "not supported"}
    for name, content in cases.items():
        read = read_track(write(tmp_path, name, content))
        assert not read.tracks and any(expected[name] in p for p in read.problems), (name, read.problems)
    assert "cannot be read" in read_track(tmp_path / "missing.gpx").problems[0]
    assert "not a file" in read_track(tmp_path).problems[0]
    big = write(tmp_path, "big.gpx", gpx([(1, 2, "2020-01-01T00:00:00Z")] * 50))
    assert "over the" in read_track(big, max_bytes=1000).problems[0]


def test_old_future_and_impossible_points_are_dropped_with_one_message_each(tmp_path):
    points = [(46.4, 13.8, "1901-12-13T20:45:52Z"), (46.41, 13.8, "1901-12-13T20:46:52Z"),
              (213.6, 13.8, "2020-01-01T10:00:00Z"), (46.4, 13.8, "2020-01-01T10:01:00Z"),
              (46.4, 13.8, "2020-01-03T10:00:00Z")]
    read = read_track(write(tmp_path, "clock.gpx", gpx(points)), now=datetime(2020, 1, 1, 12, tzinfo=timezone.utc))
    assert [len(t) for t in read.tracks] == [1]
    assert sorted(read.problems) == sorted([
        "clock.gpx: 1 points with an impossible latitude/longitude: dropped",
        "clock.gpx: 2 points with times in 1901 (before 1990, a wrong clock): ignored",
        "clock.gpx: 1 points with times in the future: ignored"])


def test_read_tracks_combines_files(tmp_path):
    a = write(tmp_path, "a.gpx", gpx([(1, 2, "2020-01-01T00:00:00Z")]))
    read = read_tracks([a, tmp_path / "nothing.gpx"])
    assert len(read.tracks) == 1 and len(read.problems) == 1


def test_records_of_two_devices_are_two_tracks_and_their_disagreement_gives_none(tmp_path):
    """A phone on the trip and a tablet at home in one Records.json: no zig-zag, and no answer where
    they disagree; where only the phone has fixes, the phone answers."""
    def record(lat, minute, device):
        return {"latitudeE7": int(lat * 1e7), "longitudeE7": 20_000_000, "accuracy": 10, "deviceTag": device,
                "timestamp": f"2024-05-01T10:{minute:02d}:00Z"}
    records = {"locations": [record(48.0, 0, 1), record(48.001, 2, 1), record(48.002, 4, 1), record(48.003, 6, 1),
                             record(50.0, 1, 2), record(50.0, 3, 2)]}
    read = read_track(write(tmp_path, "Records.json", json.dumps(records)))
    assert sorted(len(t) for t in read.tracks) == [2, 4]
    assert all("device" in t.source for t in read.tracks)
    assert position_at(read.tracks, utc("2024-05-01T10:02:00")) is None  # 220 km apart at the same time
    phone = position_at(read.tracks, utc("2024-05-01T10:03:30"))  # the tablet's last fix is 30 s earlier...
    assert phone is None  # ...and still within max_outside_s: it disagrees
    later = position_at(read.tracks, utc("2024-05-01T10:05:30"))  # the tablet's last fix is 150 s earlier
    assert later is not None and later.latitude == pytest.approx(48.00275) and "device 1" in later.source
