"""XMP beside EXIF, sidecars, PNG/TIFF/HEIC: written metadata read back with exiv2 and exiftool.

exiftool (Debian libimage-exiftool-perl, installed by .ci/run) is an independent reader; the tests
that use it skip with a reason where it is absent. HEIC photos are generated with pillow-heif.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import exiv2
import numpy as np
import piexif
import pytest
from PIL import Image

from src.data.images import load_rgb
from src.data.landmarks import lookup
from src.serving.metadata.exif import (
    ExistingGPSError,
    UnsupportedFormatError,
    read_gps,
    write_location,
)
from src.serving.tagger.tag_writer import place_of, sidecar_path, write_landmark
from src.serving.metadata.xmp import read_xmp, xmp_coordinate

TAJ = lookup("22.Taj_Mahal")
EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool not installed (Debian: libimage-exiftool-perl; .ci/run installs it)")
CAMERA_EXIF = {
    "0th": {piexif.ImageIFD.Make: b"Canon", piexif.ImageIFD.Model: b"EOS 5D Mark IV"},
    "Exif": {piexif.ExifIFD.MakerNote: b"VENDOR\x00" + bytes(range(40))},
}


def _photo(path: Path, fmt: str | None = None, exif: dict | None = CAMERA_EXIF) -> Path:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8))
    kwargs = {"exif": piexif.dump(exif)} if exif is not None and fmt in (None, "JPEG", "WEBP") else {}
    image.save(path, fmt, **kwargs)
    return path


def _exiftool(path: Path) -> dict:
    out = subprocess.run([EXIFTOOL, "-j", "-n", "-G1", "-a", str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


@pytest.mark.parametrize("ext", ["jpg", "webp", "png", "tif"])
def test_xmp_and_exif_are_written_and_read_back_by_exiv2(tmp_path, ext):
    photo = _photo(tmp_path / f"photo.{ext}")
    tagged = write_landmark(photo, TAJ, destination=tmp_path / f"t.{ext}")
    assert read_gps(tagged) == pytest.approx((TAJ.latitude, TAJ.longitude), abs=1e-6)
    xmp = read_xmp(tagged)
    assert xmp["Xmp.exif.GPSLatitude"] == xmp_coordinate(TAJ.latitude, "N", "S")
    assert xmp["Xmp.exif.GPSLongitude"] == xmp_coordinate(TAJ.longitude, "E", "W")
    assert xmp["Xmp.dc.subject"] == [tag.lstrip("#") for tag in TAJ.hashtags]
    assert xmp["Xmp.dc.description"] == place_of(TAJ).description
    assert xmp["Xmp.photoshop.City"] == TAJ.city and xmp["Xmp.photoshop.Country"] == TAJ.country
    np.testing.assert_array_equal(np.asarray(load_rgb(tagged)), np.asarray(load_rgb(photo)))


def test_other_xmp_properties_survive_a_rewrite(tmp_path):
    photo = write_landmark(_photo(tmp_path / "p.jpg"), TAJ, destination=tmp_path / "t.jpg")
    image = exiv2.ImageFactory.open(str(photo))
    image.readMetadata()
    image.xmpData()["Xmp.xmp.Rating"] = "5"
    image.writeMetadata()  # exiv2 rewrites this copy's EXIF too; only the XMP rating matters here
    again = write_location(photo, tmp_path / "again.jpg", 48.8584, 2.2945, overwrite=True)
    xmp = read_xmp(again)
    assert xmp["Xmp.xmp.Rating"] == "5" and xmp["Xmp.exif.GPSLatitude"] == xmp_coordinate(48.8584, "N", "S")


@needs_exiftool
@pytest.mark.parametrize("ext", ["jpg", "webp", "png", "tif"])
def test_exiftool_reads_what_was_written(tmp_path, ext):
    tagged = write_landmark(_photo(tmp_path / f"photo.{ext}"), TAJ, destination=tmp_path / f"t.{ext}")
    tags = _exiftool(tagged)
    assert tags["Composite:GPSLatitude"] == pytest.approx(TAJ.latitude, abs=1e-6)
    assert tags["Composite:GPSLongitude"] == pytest.approx(TAJ.longitude, abs=1e-6)
    assert tags["XMP-photoshop:City"] == TAJ.city
    subjects = tags["XMP-dc:Subject"]
    assert (subjects if isinstance(subjects, list) else [subjects]) == [t.lstrip("#") for t in TAJ.hashtags]
    if ext == "jpg":
        assert tags["IFD0:Make"] == "Canon" and "Warning" not in tags


@needs_exiftool
def test_exiftool_reads_the_sidecar(tmp_path):
    photo = _photo(tmp_path / "p.jpg")
    sidecar = write_landmark(photo, TAJ, sidecar=True)
    assert sidecar == sidecar_path(photo) == tmp_path / "p.jpg.xmp"
    tags = _exiftool(sidecar)
    assert tags["XMP-exif:GPSLatitude"] == pytest.approx(TAJ.latitude, abs=1e-6)
    assert tags["XMP-exif:GPSLongitude"] == pytest.approx(TAJ.longitude, abs=1e-6)


def test_heic_is_recognised_and_tagged_through_a_sidecar(tmp_path, tiny_data):
    pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif is not installed")
    assert pillow_heif is not None
    heic = tmp_path / "photo.heic"
    Image.open(tiny_data / "test" / "01.Green_Square_Gate" / "005.jpg").save(heic, quality=90)
    assert load_rgb(heic).size == Image.open(tiny_data / "test" / "01.Green_Square_Gate" / "005.jpg").size
    with pytest.raises(UnsupportedFormatError, match="--sidecar"):
        write_landmark(heic, TAJ, destination=tmp_path / "t.heic")  # exiv2 cannot write BMFF files
    before = heic.read_bytes()
    sidecar = write_landmark(heic, TAJ, sidecar=True)
    assert heic.read_bytes() == before
    assert read_xmp(sidecar)["Xmp.exif.GPSLatitude"] == xmp_coordinate(TAJ.latitude, "N", "S")
    with pytest.raises(ExistingGPSError):  # the sidecar's own position now wins
        write_landmark(heic, TAJ, sidecar=True)


def test_exiv2_would_move_the_maker_note(tmp_path):
    """The evidence for keeping the hand-written EXIF patcher: when exiv2 adds the GPS tags it
    re-serialises the EXIF block and the maker note lands at another offset; our patcher keeps it."""
    camera = {
        "0th": {**CAMERA_EXIF["0th"], piexif.ImageIFD.Orientation: 6, piexif.ImageIFD.Software: b"firmware 1.2.3"},
        "Exif": {**CAMERA_EXIF["Exif"], piexif.ExifIFD.DateTimeOriginal: b"2023:07:14 18:30:05", piexif.ExifIFD.FNumber: (28, 10)},
    }
    photo = _photo(tmp_path / "p.jpg", exif=camera)

    def maker_note_offset(path: Path) -> int:  # from the TIFF header, which maker-note offsets count from
        data = path.read_bytes()
        return data.find(b"VENDOR") - (data.find(b"Exif\x00\x00") + 6)

    offset = maker_note_offset(photo)
    ours = write_landmark(photo, TAJ, destination=tmp_path / "ours.jpg")
    assert maker_note_offset(ours) == offset
    theirs = Path(shutil.copy(photo, tmp_path / "exiv2.jpg"))
    image = exiv2.ImageFactory.open(str(theirs))
    image.readMetadata()
    image.exifData()["Exif.GPSInfo.GPSLatitudeRef"] = "N"
    image.exifData()["Exif.GPSInfo.GPSLatitude"] = "27/1 10/1 30/1"
    image.writeMetadata()
    assert maker_note_offset(theirs) != offset


@pytest.mark.parametrize(
    ("mode", "values", "expected"),
    [
        ("F", [0.0, 0.5, 1.0], [0, 128, 255]),  # float 0..1 (main scaled it as 16-bit: all black)
        ("F", [-2.0, 0.0, 2.0], [0, 128, 255]),  # any other float range: stretched
        ("I", [0, 32896, 65535], [0, 128, 255]),  # 16-bit values held in 32 bits
        ("I", [0, 2**30, 2**31 - 1], [0, 128, 255]),  # true 32-bit (main: all white)
    ],
)
def test_float_and_32_bit_tiffs_are_scaled_by_their_range(tmp_path, mode, values, expected):
    array = np.array([values], dtype=np.float32 if mode == "F" else np.int32)
    path = tmp_path / "grey.tif"
    Image.fromarray(array, mode).save(path)
    assert np.asarray(load_rgb(path))[0, :, 0].tolist() == expected
