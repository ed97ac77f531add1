"""The tagger with library context (issue 37): photos placed by the GPS photos around them and by tracks, clocks
set by --camera-offset, conflicts refused, bad tracks and offsets reported. Metadata is written by exiftool, an
independent writer (the tests skip with that reason without it); the model is the tiny test model: with
threshold 1 it places nothing, so every position comes from the library."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import gpxpy
import gpxpy.gpx
import numpy as np
import pytest
from PIL import Image

from src.data.landmarks import lookup
from src.serving.locate.clocks import parse_camera_offsets
from src.serving.locate.geo import distance_m
from src.serving.locate.library import ContextConfig
from src.serving.locate.tracks import read_track
from src.serving.recognizer.recognize import Recognizer
from src.serving.tagger.cli import main
from src.serving.tagger.tag import tag_paths

pytestmark = pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool (the independent metadata writer) is not installed")

DELHI = (28.5535, 77.2588)
SYDNEY = (-33.8568, 151.2153)


@pytest.fixture(scope="module")
def blind(tiny_model) -> Recognizer:
    """Never names, never places: every position in these tests comes from the library."""
    return Recognizer(tiny_model, threshold=1.0)


def _photo(folder: Path, name: str, seed: int, **tags: str) -> Path:
    path = folder / name
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path, quality=85)
    arguments = [f"-{key}={value}" for key, value in tags.items()]
    subprocess.run(["exiftool", "-q", "-overwrite_original", *arguments, str(path)], check=True)
    return path


def _phone(folder: Path, name: str, seed: int, local: str, position: tuple[float, float] | None, offset: str = "+05:30", utc: str = "") -> Path:
    tags = {"Make": "Apple", "Model": "iPhone 12", "DateTimeOriginal": local, "OffsetTimeOriginal": offset}
    if position is not None:
        tags |= {"GPSLatitude": abs(position[0]), "GPSLatitudeRef": "N" if position[0] >= 0 else "S",
                 "GPSLongitude": abs(position[1]), "GPSLongitudeRef": "E" if position[1] >= 0 else "W",
                 "GPSDateStamp": utc.split(" ")[0], "GPSTimeStamp": utc.split(" ")[1]}
    return _photo(folder, name, seed, **tags)


def _camera(folder: Path, name: str, seed: int, clock: str) -> Path:
    return _photo(folder, name, seed, Make="Canon", Model="EOS 80D", DateTimeOriginal=clock)


@pytest.fixture
def trip(tmp_path) -> Path:
    """A phone in Delhi (+05:30) with GPS on two photos 20 min apart and none on the one between; a camera on
    home time (+01:00, 4 h 30 min behind) shooting between them; a phone photo six hours later with nothing near."""
    folder = tmp_path / "trip"
    folder.mkdir()
    _phone(folder, "IMG_0001.JPG", 1, "2025:03:01 10:00:00", DELHI, utc="2025:03:01 04:30:00")
    _phone(folder, "IMG_0002.JPG", 2, "2025:03:01 10:10:00", None)
    _phone(folder, "IMG_0003.JPG", 3, "2025:03:01 10:20:00", (DELHI[0] + 0.001, DELHI[1]), utc="2025:03:01 04:50:00")
    _phone(folder, "IMG_0004.JPG", 4, "2025:03:01 16:30:00", None)
    _camera(folder, "DSC_0001.JPG", 5, "2025:03:01 05:42:00")  # 10:12 in Delhi
    return folder


def _rows(rows) -> dict[str, object]:
    return {Path(row.file).name: row for row in rows}


def test_photos_between_gps_photos_are_placed_by_time_and_the_radius_holds(trip, blind):
    rows = _rows(tag_paths([trip], blind, progress=False, context=ContextConfig()))
    between = rows["IMG_0002.JPG"]
    assert between.status == "placed" and between.placed == "yes" and between.source == "time"
    assert float(distance_m(DELHI[0] + 0.0005, DELHI[1], between.latitude, between.longitude)) <= between.radius_m
    assert between.device == "Apple iPhone 12" and between.time_utc == "2025-03-01T04:40:00Z" and between.clock_offset == "+05:30"
    # Six hours from any GPS photo: nothing can be said
    assert rows["IMG_0004.JPG"].placed == "no" and rows["IMG_0004.JPG"].latitude is None
    # Its own GPS is never changed
    assert rows["IMG_0001.JPG"].status == "has_gps" and rows["IMG_0001.JPG"].source == "gps"
    assert (rows["IMG_0001.JPG"].latitude, rows["IMG_0001.JPG"].longitude) == pytest.approx(DELHI)


def test_a_camera_on_home_time_takes_no_position_until_its_clock_is_known(trip, blind):
    alone = _rows(tag_paths([trip], blind, progress=False, context=ContextConfig()))["DSC_0001.JPG"]
    assert alone.placed == "no" and alone.time_utc == "" and "not tied" in alone.message
    offsets = parse_camera_offsets(["Canon EOS 80D=+01:00"])
    told = _rows(tag_paths([trip], blind, progress=False, context=ContextConfig(camera_offsets=offsets)))["DSC_0001.JPG"]
    assert told.source == "time" and told.time_utc == "2025-03-01T04:42:00Z" and told.clock_offset == "+01:00"
    assert float(distance_m(*DELHI, told.latitude, told.longitude)) <= told.radius_m


def test_without_context_nothing_is_placed_by_the_library(trip, blind):
    rows = _rows(tag_paths([trip], blind, progress=False))
    assert all(row.placed != "yes" for row in rows.values())
    assert rows["IMG_0002.JPG"].source == "" and rows["IMG_0002.JPG"].device == ""


def test_a_track_places_a_camera_whose_clock_is_given(tmp_path, blind):
    folder = tmp_path / "walk"
    folder.mkdir()
    camera = _camera(folder, "DSC_0002.JPG", 6, "2025:03:01 06:00:30")  # +01:00 clock: 05:00:30 UTC
    gpx = gpxpy.gpx.GPX()
    segment = gpxpy.gpx.GPXTrackSegment()
    from datetime import datetime, timedelta, timezone

    start = datetime(2025, 3, 1, 4, 50, tzinfo=timezone.utc)
    for minute in range(0, 30):
        segment.points.append(gpxpy.gpx.GPXTrackPoint(DELHI[0] + minute * 1e-4, DELHI[1], time=start + timedelta(minutes=minute)))
    track = gpxpy.gpx.GPXTrack()
    track.segments.append(segment)
    gpx.tracks.append(track)
    track_file = tmp_path / "walk.gpx"
    track_file.write_text(gpx.to_xml())
    config = ContextConfig(tracks=tuple(read_track(track_file).tracks), camera_offsets=parse_camera_offsets(["Canon EOS 80D=+01:00"]))
    [row] = tag_paths([camera], blind, progress=False, context=config)
    assert row.source == "track" and row.placed == "yes"
    truth = (DELHI[0] + 10.5e-4, DELHI[1])
    assert float(distance_m(*truth, row.latitude, row.longitude)) <= min(row.radius_m, 50)


def test_a_landmark_the_photos_around_it_contradict_is_not_placed(tmp_path, tiny_model):
    """The landmark says one place, the phone photos minutes around it another: no position, the conflict said."""
    from tests.test_tag import geo  # the tiny model's classes renamed to real landmarks: it places every photo

    recognizer = geo(Recognizer(tiny_model, threshold=0.0, placement=0.0))
    folder = tmp_path / "conflict"
    folder.mkdir()
    _phone(folder, "IMG_0001.JPG", 1, "2025:03:01 10:00:00", SYDNEY, offset="+11:00", utc="2025:02:28 23:00:00")
    _phone(folder, "IMG_0002.JPG", 2, "2025:03:01 10:05:00", None, offset="+11:00")
    _phone(folder, "IMG_0003.JPG", 3, "2025:03:01 10:10:00", SYDNEY, offset="+11:00", utc="2025:02:28 23:10:00")
    rows = _rows(tag_paths([folder], recognizer, progress=False, context=ContextConfig()))
    middle = rows["IMG_0002.JPG"]
    landmark = lookup(middle.guess)
    if float(distance_m(landmark.latitude, landmark.longitude, *SYDNEY)) < 5000:
        pytest.skip("the tiny model named the Sydney landmark: no conflict to show")
    assert middle.source == "conflict" and middle.placed == "no" and middle.latitude is None
    assert middle.status == "guess" and middle.name == "" and "conflicting evidence" in middle.message


def test_bad_tracks_and_offsets_are_reported_not_fatal(trip, tmp_path, tiny_model, capsys):
    broken = tmp_path / "broken.gpx"
    broken.write_text("<gpx><trk><trkseg><trkpt lat='999' lon='0'><time>nonsense</time></trkpt>")
    report = tmp_path / "report.csv"
    code = main([str(trip), "-q", "-o", str(report), "--model", str(tiny_model), "--track", str(broken)])
    err = capsys.readouterr().err
    assert code == 1 and "broken.gpx" in err and report.exists()  # the photos were still tagged
    assert main([str(trip), "-q", "--model", str(tiny_model), "--camera-offset", "Canon=+1"]) == 2
    assert "MAKE MODEL=+HH:MM" in capsys.readouterr().err
    assert main([str(trip), "-q", "--model", str(tiny_model), "--no-context", "--track", str(broken)]) == 2


def test_positions_from_time_are_written_with_their_radius_and_source(trip, blind, tmp_path):
    out = tmp_path / "tagged"
    rows = _rows(tag_paths([trip], blind, progress=False, context=ContextConfig(), write_gps=True, out_dir=out))
    between = rows["IMG_0002.JPG"]
    assert between.written and Path(between.written).parent == out
    assert not (out / "IMG_0004.JPG").exists()  # not placed: not written
    read = subprocess.run(["exiftool", "-j", "-n", "-GPSLatitude", "-GPSLongitude", "-GPSHPositioningError", "-XMP:Subject", str(between.written)],
                          check=True, capture_output=True, text=True).stdout
    import json

    [tags] = json.loads(read)
    assert (tags["GPSLatitude"], tags["GPSLongitude"]) == pytest.approx((between.latitude, between.longitude), abs=1e-5)
    assert tags["GPSHPositioningError"] == pytest.approx(between.radius_m, rel=0.01)
    assert any("time" in keyword for keyword in np.atleast_1d(tags["Subject"]))


def test_photos_uploaded_to_the_app_together_are_one_library(trip, blind):
    """The app's cards say what placed a photo (the photos around it, with the radius) or why nothing did."""
    import ipywidgets as widgets

    from src.serving.web.app import build_app, iter_widgets
    from tests.test_app import _cards, _upload

    app = build_app(blind)
    _upload(app, *[(path.name, path.read_bytes()) for path in sorted(trip.glob("*.JPG"))])
    cards = {}
    for card in _cards(app):
        text = card.children[-1].value
        cards[text.split('class="lt-file"', 1)[1].split(">", 1)[1].split(".JPG", 1)[0]] = text  # the card's file name
    assert "Placed by the photos taken shortly before and after it" in cards["IMG_0002"] and "within" in cards["IMG_0002"]
    assert "Own GPS" in cards["IMG_0001"]
    assert "not tied" in cards["DSC_0001"] and "Placed by" not in cards["DSC_0001"]
    status = "\n".join(w.value for w in iter_widgets(app) if isinstance(w, widgets.HTML))
    assert "1 photo placed by the photos around it" in status
