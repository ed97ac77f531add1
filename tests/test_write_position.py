"""A position's radius and source, and positions that came from no landmark (issue 37, writing): written as
EXIF + XMP (or a sidecar) and read back by exiftool, an independent reader."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from src.data.landmarks import lookup
from src.serving.metadata.exif import write_location
from src.serving.tagger.tag_writer import describe_source, nearest_place, place_at, write_landmark, write_position

EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool not installed (Debian: libimage-exiftool-perl; .ci/run installs it)")
TAJ = lookup("22.Taj_Mahal")
AGRA_FORT = (27.1795, 78.0211)  # a position some 2 km from the Taj Mahal: named by the reverse geocoder


def _photo(path: Path) -> Path:
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(path)
    return path


def _exiftool(path: Path) -> dict:
    out = subprocess.run([EXIFTOOL, "-j", "-n", "-G1", "-a", str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


@needs_exiftool
@pytest.mark.parametrize("ext", ["jpg", "webp", "png", "tif"])
def test_a_position_from_time_neighbours_is_written_with_its_radius_place_and_source(tmp_path, ext):
    written = write_position(_photo(tmp_path / f"p.{ext}"), *AGRA_FORT, 350.0, "time", destination=tmp_path / f"out.{ext}")
    tags = _exiftool(written)
    assert tags["Composite:GPSLatitude"] == pytest.approx(AGRA_FORT[0], abs=1e-6)
    assert tags["Composite:GPSLongitude"] == pytest.approx(AGRA_FORT[1], abs=1e-6)
    assert tags["GPS:GPSHPositioningError"] == 350 and tags["XMP-exif:GPSHPositioningError"] == 350
    assert tags["GPS:GPSVersionID"] == "2 3 0 0"  # the radius is an EXIF 2.3 tag
    assert tags["XMP-photoshop:City"] == "Agra" and tags["XMP-photoshop:Country"] == "India"
    assert "geotag:time" in _as_list(tags["XMP-dc:Subject"])
    assert tags["XMP-dc:Description"] == f"Agra, Uttar Pradesh, India; {describe_source('time')}"


@needs_exiftool
def test_a_sidecar_holds_the_radius_and_source_text(tmp_path):
    photo = _photo(tmp_path / "p.jpg")
    text = "placed by: time neighbours (phone photos 4 min before/after)"
    sidecar = write_position(photo, *AGRA_FORT, 120.5, text, sidecar=True)
    tags = _exiftool(sidecar)
    assert tags["XMP-exif:GPSHPositioningError"] == pytest.approx(120.5)
    assert tags["XMP-dc:Description"].endswith(text) and "geotag:time" in _as_list(tags["XMP-dc:Subject"])
    assert "GPS:GPSLatitude" not in _exiftool(photo)  # the photo itself is never written in sidecar mode


@needs_exiftool
def test_a_landmark_position_can_carry_its_radius_and_source(tmp_path):
    written = write_landmark(_photo(tmp_path / "p.jpg"), TAJ, destination=tmp_path / "t.jpg", radius_m=250, source="landmark")
    tags = _exiftool(written)
    assert tags["GPS:GPSHPositioningError"] == 250
    assert tags["XMP-dc:Description"].startswith("Taj Mahal") and tags["XMP-dc:Description"].endswith(describe_source("landmark"))
    assert "geotag:landmark" in _as_list(tags["XMP-dc:Subject"])


@needs_exiftool
def test_without_radius_or_source_nothing_more_is_written(tmp_path):
    tags = _exiftool(write_landmark(_photo(tmp_path / "p.jpg"), TAJ, destination=tmp_path / "t.jpg"))
    assert "GPS:GPSHPositioningError" not in tags and "XMP-exif:GPSHPositioningError" not in tags
    assert tags["GPS:GPSVersionID"] == "2 2 0 0" and not any(str(k).startswith("geotag:") for k in _as_list(tags["XMP-dc:Subject"]))


def test_the_open_sea_gets_no_town_name():
    assert nearest_place(0.0, -160.0) == ("", "", "")  # the nearest town in the list is some 250 km away
    place = place_at(0.0, -160.0, 5000, "track")
    assert place.city == place.country == "" and place.description == describe_source("track")


@pytest.mark.parametrize("radius", [-1.0, float("nan"), float("inf"), 3e7])
def test_an_impossible_radius_is_refused_before_anything_is_written(tmp_path, radius):
    photo = _photo(tmp_path / "p.jpg")
    with pytest.raises(ValueError, match="radius_m"):
        write_location(photo, tmp_path / "t.jpg", *AGRA_FORT, radius_m=radius)
    assert not (tmp_path / "t.jpg").exists()


@needs_exiftool
@pytest.mark.parametrize("ext", ["jpg", "webp", "png"])
def test_a_photo_without_metadata_still_validates_clean_after_writing(tmp_path, ext):
    """A JPEG that had no EXIF gets the IFD0 tags EXIF requires (XResolution, ...), and the radius its EXIF 2.3 version."""
    photo = _photo(tmp_path / f"p.{ext}")
    written = write_position(photo, *AGRA_FORT, 80.0, "track", destination=tmp_path / f"t.{ext}")
    for path in (photo, written):
        result = subprocess.run([EXIFTOOL, "-validate", "-warning", "-a", "-S", str(path)], capture_output=True, text=True, check=True)
        assert "Validate: OK" in result.stdout, result.stdout
