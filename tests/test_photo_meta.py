"""Photo times, devices and own GPS (src.serving.locate.photo_meta): every real file of
../shared/real_metadata read without an exception and checked against its manifest and against exiftool
(an independent reader), synthetic photos written by exiftool, odd values, device keys, Takeout sidecars.

exiftool (Debian libimage-exiftool-perl, installed by .ci/run) writes and reads independently of this
code; the tests that need it, or the shared files, skip with a reason where they are absent.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from src.data.images import BadImageError, read_photo_file
from src.serving.locate.photo_meta import PhotoMeta, device_key, read_photo_meta
from src.serving.locate.photo_meta_exif import gps_position
from src.serving.locate.photo_meta_takeout import find_takeout_sidecar, read_takeout_sidecar, with_sidecar
from src.serving.locate.photo_meta_values import TimeLimits, parse_datetime, parse_offset
from src.serving.locate.photo_meta_xmp import PROPERTIES, embedded_xmp, jpeg_xmp, png_exif_and_xmp, xmp_properties
from src.serving.metadata.exif import read_gps
from src.serving.metadata.xmp import read_xmp

from conftest import SHARED

REAL = SHARED / "real_metadata"
# The manifest calls a 2026 date "in the future": the corpus was put together before 2026 (its newest
# real photo is from May 2025). A fixed `now` keeps every result reproducible.
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
UTC = timezone.utc
EXIFTOOL = shutil.which("exiftool")
needs_real = pytest.mark.skipif(not (REAL / "manifest.csv").is_file(), reason="../shared/real_metadata is not present (dev machines and CI only)")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool not installed (Debian: libimage-exiftool-perl; .ci/run installs it)")
ORACLE_TAGS = ["-DateTimeOriginal", "-SubSecTimeOriginal", "-OffsetTimeOriginal", "-OffsetTime", "-GPSDateStamp",
               "-GPSTimeStamp", "-GPSLatitude", "-GPSLongitude", "-Make", "-Model", "-SerialNumber"]


def _manifest() -> list[dict[str, str]]:
    with open(REAL / "manifest.csv", newline="", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle) if row["kind"] in ("photo", "sidecar")]


def _photo_rows() -> list[dict[str, str]]:
    return [row for row in _manifest() if row["kind"] == "photo"] if (REAL / "manifest.csv").is_file() else []


def _read(row: dict[str, str]) -> PhotoMeta:
    path = REAL / row["path"]
    return read_photo_meta(read_photo_file(path), path.name, now=NOW)


# ---------------------------------------------------------------- the real files


@needs_real
def test_every_real_file_is_read_without_an_exception():
    rows = _manifest()
    assert len([row for row in rows if row["kind"] == "photo"]) == 76
    for row in rows:
        path = REAL / row["path"]
        meta = read_takeout_sidecar(path, now=NOW) if row["kind"] == "sidecar" else _read(row)
        assert isinstance(meta, PhotoMeta), path
        assert all(isinstance(problem, str) and problem for problem in meta.problems), path


# What a manifest note says is odd -> the field that must stay empty and the words its problem must carry.
ODD_NOTES = {
    "GPSLatitude out of range": ("position", "latitude 213.64 is out of range"),
    "DateTimeOriginal = 0000:00:00": ("taken_local", "0000:00:00 00:00:00 is not a date"),
    "GPSTimeStamp without GPSDateStamp": ("gps_utc", "GPS time without a date"),
    "DateTimeOriginal in the future": ("taken_local", "is in the future"),
    "GPS 0/0": ("position", "0,0 means no fix"),
    "GPS IFD present but empty": ("position", "GPS"),
    "GPS tags present but empty": ("position", "present but empty"),
}


@needs_real
@pytest.mark.parametrize("row", _photo_rows(), ids=lambda row: row["path"].split("/", 2)[-1])
def test_real_photo_matches_its_manifest(row):
    meta = _read(row)
    problems = " | ".join(meta.problems)
    for note, (field, words) in ODD_NOTES.items():
        if note in row["notes"]:
            assert getattr(meta, field) is None, f"{field} should be refused: {note}"
            assert words in problems, f"no message for {note!r}: {meta.problems}"
    if "data with ." in row["notes"]:  # "JPEG data with .png extension": read, and said
        assert f"the file is a JPEG named {Path(row['path']).suffix}" in problems
        assert meta.taken_local is not None
    if row["has_DateTimeOriginal"] == "yes":
        assert meta.taken_local is not None or "DateTimeOriginal" in problems
    if row["has_OffsetTimeOriginal"] == "yes":
        assert meta.offset is not None and meta.time_utc is not None
    if row["has_GPS"] == "yes":
        assert meta.position is not None or "GPS" in problems
    elif row["has_GPS"] == "empty":
        assert meta.position is None and "GPS" in problems
    else:
        assert meta.position is None
    if row["has_GPS_time"] == "yes":
        assert meta.gps_utc is not None or "GPS" in problems
    if row["make"]:
        assert meta.make == row["make"] and meta.model == row["model"]
        assert device_key(meta, Path(row["path"]).name).startswith(f"{row['make']} {row['model']}")


@pytest.fixture(scope="module")
def exiftool_oracle() -> dict[str, dict]:
    """exiftool's reading of every real photo: the tags as the brief names them, and the serial numbers
    by group (-G1), because exiftool's plain SerialNumber also comes from maker notes, which are not read here."""
    if EXIFTOOL is None or not (REAL / "photos").is_dir():
        pytest.skip("exiftool or ../shared/real_metadata is missing")
    folder = str(REAL / "photos")
    plain = subprocess.run([EXIFTOOL, "-j", "-n", *ORACLE_TAGS, "-r", "--ext", "json", folder], capture_output=True, text=True, check=True)
    grouped = subprocess.run([EXIFTOOL, "-j", "-n", "-G1", "-a", "-SerialNumber", "-CameraSerialNumber", "-BodySerialNumber",
                              "-r", "--ext", "json", folder], capture_output=True, text=True, check=True)
    serials = {entry["SourceFile"]: entry for entry in json.loads(grouped.stdout)}
    return {entry["SourceFile"]: {**entry, "serials": serials[entry["SourceFile"]]} for entry in json.loads(plain.stdout)}


def _oracle_time(text: object) -> datetime | None:
    try:
        moment = datetime.strptime(str(text)[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    return moment if 1990 <= moment.year and moment <= NOW.replace(tzinfo=None) + timedelta(days=1) else None


def _xmp_dated(path: Path) -> bool:
    keys = ("Xmp.exif.DateTimeOriginal", "Xmp.photoshop.DateCreated", "Xmp.xmp.CreateDate")
    return any(key in read_xmp(path) for key in keys)


@needs_real
@needs_exiftool
def test_real_photos_agree_with_exiftool(exiftool_oracle):
    checked = 0
    for row in _photo_rows():
        path = REAL / row["path"]
        oracle, meta, where = exiftool_oracle[str(path)], _read(row), row["path"]
        expected = _oracle_time(oracle.get("DateTimeOriginal"))
        if expected is not None:
            fraction = str(oracle.get("SubSecTimeOriginal", ""))
            expected += timedelta(microseconds=round(float(f"0.{fraction}") * 1e6)) if fraction.isdigit() else timedelta(0)
            assert meta.taken_local == expected, where
        elif "DateTimeOriginal" in oracle:
            assert meta.taken_local is None, where
        else:  # exiftool has no DateTimeOriginal: only an XMP date may give one
            assert meta.taken_local is None or _xmp_dated(path), where
        offsets = [oracle[tag] for tag in ("OffsetTimeOriginal", "OffsetTime") if tag in oracle]
        suffix = str(oracle.get("DateTimeOriginal", ""))[19:]
        if offsets or suffix:
            text = str(offsets[0] if offsets else suffix)  # "+05:30"
            assert meta.offset == (-1 if text[0] == "-" else 1) * timedelta(hours=int(text[1:3]), minutes=int(text[4:6])), where
        elif meta.offset is not None:
            assert _xmp_dated(path), where
        day, clock = str(oracle.get("GPSDateStamp", "")), str(oracle.get("GPSTimeStamp", ""))
        gps_day = _oracle_time(f"{day} 00:00:00") if day else None
        if gps_day is not None and clock:
            hours, minutes, seconds = (float(part) for part in clock.split(":"))
            expected_utc = gps_day.replace(tzinfo=UTC) + timedelta(hours=hours, minutes=minutes, seconds=seconds)
            assert meta.gps_utc is not None and abs(meta.gps_utc - expected_utc) < timedelta(milliseconds=1), where
        else:
            assert meta.gps_utc is None, where
        latitude, longitude = oracle.get("GPSLatitude"), oracle.get("GPSLongitude")
        if isinstance(latitude, (int, float)) and isinstance(longitude, (int, float)) and abs(latitude) <= 90 and (latitude, longitude) != (0, 0):
            assert meta.position == pytest.approx((latitude, longitude), abs=1e-6), where
        else:
            assert meta.position is None, where
        for field in ("Make", "Model"):
            assert getattr(meta, field.lower()) == " ".join(str(oracle.get(field, "")).split()), where
        groups = oracle["serials"]
        serial = next((str(groups[key]) for key in ("ExifIFD:SerialNumber", "IFD0:CameraSerialNumber", "XMP-aux:SerialNumber") if key in groups), "")
        assert meta.serial.lstrip("0") == serial.lstrip("0"), where  # -n prints "012345" as the number 12345
        checked += 1
    assert checked == 76


@needs_real
def test_positions_follow_read_gps(tmp_path):
    """The project's GPS reader and this one agree, except that 0,0 (no fix) is refused here."""
    for row in _photo_rows():
        data = read_photo_file(REAL / row["path"])
        own, meta = read_gps(data), read_photo_meta(data, now=NOW)
        if own is not None and own != (0.0, 0.0):
            assert meta.position == own, row["path"]
        elif meta.position is not None:  # a position from XMP, which read_gps does not read
            assert "Xmp.exif.GPSLatitude" in read_xmp(REAL / row["path"]), row["path"]


@needs_real
def test_xmp_properties_equal_exiv2s_reading():
    """The fast XMP reader gives read_xmp's (exiv2's) values for every property it reads, on every real photo."""
    compared = 0
    for row in _photo_rows():
        path = REAL / row["path"]
        data = read_photo_file(path)
        packet = jpeg_xmp(data) if data[:2] == b"\xff\xd8" else png_exif_and_xmp(data)[1] if data[:4] == b"\x89PNG" else embedded_xmp(data)
        try:
            exiv2_values = read_xmp(path)
        except BadImageError:  # exiv2 refuses the whole file (an invalid ICC profile): parse the packet alone
            exiv2_values = read_xmp(packet.encode("utf-8")) if packet else {}
        ours = xmp_properties(packet) if packet else {}
        for name in PROPERTIES:
            prefix, local = name.split(":")
            key = f"Xmp.{prefix}.{local}"
            if key in exiv2_values:
                assert ours.get(name) == exiv2_values[key].strip(), (row["path"], name)  # ours is stripped
                compared += 1
            elif exiv2_values:  # exiv2 rejects some whole packets that exiftool reads (below)
                assert name not in ours, (row["path"], name)
    assert compared >= 20
    # exiv2 reads nothing of this packet (a namespace it dislikes); exiftool reads XMP-xmp:CreateDate 2017:06:27 11:52:32+05:30.
    packet = jpeg_xmp(read_photo_file(REAL / "photos/drewnoakes-metadata-extractor-images/Issue 308.jpg"))
    assert xmp_properties(packet) == {"xmp:CreateDate": "2017-06-27T11:52:32+05:30"}


@needs_real
def test_real_takeout_sidecars():
    sidecars = {row["path"].rsplit("/", 1)[-1]: read_takeout_sidecar(REAL / row["path"], now=NOW) for row in _manifest() if row["kind"] == "sidecar"}
    assert len(sidecars) == 5
    assert all(meta.time_utc is not None and not meta.problems for meta in sidecars.values())
    assert sidecars["gphotos-1.json"].time_utc == datetime.fromtimestamp(1449418710, UTC)
    assert sidecars["gphotos-2.json"].position == pytest.approx((52.510758333333335, 13.456647222222221))  # geoDataExif first
    assert sidecars["2015-02-04.jpg.json"].position is None  # 0,0 is Takeout's "no position"
    photo = REAL / "photos/photoprism/google-photos-sidecars/2015-02-04.jpg"  # the sidecar alone was kept
    assert find_takeout_sidecar(photo) == photo.with_name("2015-02-04.jpg.json")


# ---------------------------------------------------------------- synthetic photos written by exiftool


def _jpeg(path: Path, *tags: str) -> Path:
    """A small JPEG with the given exiftool assignments (exiftool writes them, not this project)."""
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)).save(path, "JPEG")
    if tags:
        subprocess.run([EXIFTOOL, "-q", "-overwrite_original", *tags, str(path)], check=True, capture_output=True)
    return path


def _meta(path: Path) -> PhotoMeta:
    return read_photo_meta(read_photo_file(path), path.name, now=NOW)


@needs_exiftool
def test_phone_with_offset_and_gps_time(tmp_path):
    photo = _jpeg(tmp_path / "PXL_20250301_101000123.jpg", "-Make=Google", "-Model=Pixel 8", "-DateTimeOriginal=2025:03:01 10:10:00",
                  "-SubSecTimeOriginal=250", "-OffsetTimeOriginal=+05:30", "-GPSDateStamp=2025:03:01", "-GPSTimeStamp=04:39:58",
                  "-GPSLatitude=28.6129", "-GPSLatitudeRef=N", "-GPSLongitude=77.2295", "-GPSLongitudeRef=E")
    meta = _meta(photo)
    assert meta.taken_local == datetime(2025, 3, 1, 10, 10, 0, 250000)
    assert meta.offset == timedelta(hours=5, minutes=30)
    assert meta.time_utc == datetime(2025, 3, 1, 4, 40, 0, 250000, tzinfo=UTC)
    assert meta.gps_utc == datetime(2025, 3, 1, 4, 39, 58, tzinfo=UTC)
    assert meta.position == pytest.approx((28.6129, 77.2295), abs=1e-6)
    assert (meta.make, meta.model, meta.problems) == ("Google", "Pixel 8", ())
    assert device_key(meta, photo.name) == "Google Pixel 8"


@needs_exiftool
def test_camera_with_only_its_clock(tmp_path):
    photo = _jpeg(tmp_path / "IMG_0042.JPG", "-Make=Canon", "-Model=Canon EOS 6D", "-SerialNumber=033024001432",
                  "-DateTimeOriginal=2025:03:01 06:10:00", "-SubSecTimeOriginal=05")
    meta = _meta(photo)
    assert meta.taken_local == datetime(2025, 3, 1, 6, 10, 0, 50000)  # "05" is 0.05 s
    assert meta.offset is None and meta.time_utc is None and meta.gps_utc is None and meta.position is None
    assert meta.serial == "033024001432" and meta.problems == ()
    assert device_key(meta, photo.name) == "Canon Canon EOS 6D #033024001432"


@needs_exiftool
def test_xmp_only_times_and_place(tmp_path):
    photo = _jpeg(tmp_path / "scan.jpg", "-XMP-photoshop:DateCreated=2024:05:12 10:00:00+02:00", "-XMP-tiff:Make=Fujifilm",
                  "-XMP-tiff:Model=X100V", "-XMP-aux:SerialNumber=55A1", "-XMP-exif:GPSLatitude=48.8584", "-XMP-exif:GPSLongitude=2.2945",
                  "-XMP-exif:GPSDateTime=2024:05:12 08:00:03Z")
    meta = _meta(photo)
    assert meta.taken_local == datetime(2024, 5, 12, 10, 0) and meta.offset == timedelta(hours=2)
    assert meta.time_utc == datetime(2024, 5, 12, 8, 0, tzinfo=UTC)
    assert meta.gps_utc == datetime(2024, 5, 12, 8, 0, 3, tzinfo=UTC)
    assert meta.position == pytest.approx((48.8584, 2.2945), abs=1e-6)
    assert (meta.make, meta.model, meta.serial) == ("Fujifilm", "X100V", "55A1")


@needs_exiftool
def test_exif_wins_over_xmp_and_a_wrong_exif_value_is_not_replaced(tmp_path):
    photo = _jpeg(tmp_path / "a.jpg", "-DateTimeOriginal=2023:01:02 03:04:05", "-XMP-photoshop:DateCreated=2020:01:01 00:00:00+09:00",
                  "-GPSLatitude=0", "-GPSLatitudeRef=N", "-GPSLongitude=0", "-GPSLongitudeRef=E",
                  "-XMP-exif:GPSLatitude=10", "-XMP-exif:GPSLongitude=20")
    meta = _meta(photo)
    # EXIF's time stands, and the computer's zone photo software wrote into XMP is not given to it.
    assert meta.taken_local == datetime(2023, 1, 2, 3, 4, 5) and meta.offset is None
    assert meta.position is None and any("0,0 means no fix" in problem for problem in meta.problems)


@needs_exiftool
@pytest.mark.parametrize(("tags", "field", "words"), [
    (["-DateTimeOriginal=1985:06:01 12:00:00"], "taken_local", "before 1990"),
    (["-DateTimeOriginal=2026:01:03 00:00:00"], "taken_local", "in the future"),
    (["-DateTimeOriginal=2025:01:01 10:00:00", "-OffsetTimeOriginal=+15:00"], "offset", "outside -12:00..+14:00"),
    (["-DateTimeOriginal=2025:01:01 10:00:00", "-OffsetTimeOriginal#=5:30"], "offset", "not an offset like +05:30"),
    (["-GPSTimeStamp=10:00:00"], "gps_utc", "GPS time without a date"),
    (["-GPSLatitude=0", "-GPSLatitudeRef=N", "-GPSLongitude=0", "-GPSLongitudeRef=E"], "position", "0,0 means no fix"),
], ids=["before-1990", "future", "offset-range", "offset-format", "gps-no-date", "null-island"])
def test_odd_values_are_refused_with_a_message(tmp_path, tags, field, words):
    meta = _meta(_jpeg(tmp_path / "odd.jpg", *tags))
    assert getattr(meta, field) is None
    assert any(words in problem for problem in meta.problems), meta.problems


@needs_exiftool
@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_other_containers(tmp_path, fmt):
    path = tmp_path / f"photo.{fmt.lower()}"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path, fmt)
    subprocess.run([EXIFTOOL, "-q", "-overwrite_original", "-Make=Sony", "-Model=ILCE-7M3", "-DateTimeOriginal=2024:07:01 09:30:00",
                    "-OffsetTimeOriginal=-04:00", "-GPSLatitude=40.7", "-GPSLatitudeRef=N", "-GPSLongitude=74.0", "-GPSLongitudeRef=W",
                    str(path)], check=True, capture_output=True)
    meta = _meta(path)
    assert meta.time_utc == datetime(2024, 7, 1, 13, 30, tzinfo=UTC)
    assert meta.position == pytest.approx((40.7, -74.0), abs=1e-6)
    assert (meta.make, meta.model, meta.problems) == ("Sony", "ILCE-7M3", ())


def test_bad_bytes_give_a_problem_not_an_exception():
    for data in (b"", b"not a photo", b"\xff\xd8\xff\xe1\xff\xff", b"II*\x00\xff\xff\xff\x7f", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xffeXIf"):
        meta = read_photo_meta(data, "x.jpg", now=NOW)
        assert meta.taken_local is None and meta.position is None
    assert read_photo_meta(b"not a photo", now=NOW).problems == ("not an image file (format not recognised): no metadata read",)


def test_xmp_packets_in_any_container():
    packet = '<x:xmpmeta><rdf:RDF><rdf:Description xmlns:e="http://ns.adobe.com/exif/1.0/" e:DateTimeOriginal="2024-05-12T10:00:00"/></rdf:RDF></x:xmpmeta>'
    data = b"RIFF....WEBPXMP " + packet.encode() + b"\x00rest"
    assert embedded_xmp(data) == packet
    # Another prefix bound to the EXIF namespace still reads; the usual prefix bound elsewhere does not.
    assert xmp_properties(packet) == {"exif:DateTimeOriginal": "2024-05-12T10:00:00"}
    assert xmp_properties(packet.replace("http://ns.adobe.com/exif/1.0/", "urn:other").replace("e:", "exif:")) == {}
    element = '<x:xmpmeta xmlns:tiff="http://ns.adobe.com/tiff/1.0/"><tiff:Make>Nikon &amp; Co</tiff:Make><tiff:ModelX>no</tiff:ModelX></x:xmpmeta>'
    assert xmp_properties(element) == {"tiff:Make": "Nikon & Co"}


# ---------------------------------------------------------------- values


@pytest.mark.parametrize(("text", "expected"), [
    ("+05:30", timedelta(hours=5, minutes=30)), ("-12:00", timedelta(hours=-12)), ("+14:00", timedelta(hours=14)),
    ("   :  ", None), ("", None), ("+14:30", None), ("-12:30", None), ("+0530", None), ("+05:75", None), ("Z", None),
])
def test_offsets(text, expected):
    offset, problem = parse_offset(text, "OffsetTime")
    assert offset == expected
    assert (problem is None) == (expected is not None or not text.strip(" :"))


def test_xmp_dates_and_limits():
    limits = TimeLimits(NOW)
    assert parse_datetime("2024-05-12T10:00:00.5Z", "x", limits) == (datetime(2024, 5, 12, 10, 0, 0, 500000), timedelta(0), None)
    assert parse_datetime("2024-05-12T10:00-0300", "x", limits)[:2] == (datetime(2024, 5, 12, 10), timedelta(hours=-3))
    assert "no time of day" in parse_datetime("2024-05-12", "x", limits)[2]
    assert "is not a date" in parse_datetime("2024:02:30 10:00:00", "x", limits)[2]
    assert parse_datetime("2011/04/02 18:30:10", "x", limits)[0] == datetime(2011, 4, 2, 18, 30, 10)
    assert parse_datetime("    :  :     :  :  ", "x", limits) == (None, None, None)  # EXIF's "unknown"
    assert parse_datetime("2026:01:01 23:59:00", "x", limits)[0] is not None  # a clock up to a day ahead is allowed
    naive_now = TimeLimits(NOW.replace(tzinfo=None))  # taken as UTC, never a TypeError against an aware GPS time
    assert naive_now.problem(datetime(2026, 1, 3, tzinfo=UTC), "GPS") == "GPS is in the future: ignored"


def test_gps_position_reasons():
    nan = math.nan
    assert gps_position({1: "N", 2: (48.0, 15.0, 595404.032), 3: "E", 4: (11.0, 40.0, 0.0)})[1] == "GPS latitude 213.64 is out of range: position ignored"
    assert "zero denominator" in gps_position({1: "N", 2: (48.0, 53.3, nan), 3: "E", 4: (21.0, 2.5, 0.0)})[1]
    assert "present but empty" in gps_position({1: "\x00", 2: (nan, nan, nan), 3: "\x00", 4: (nan, nan, nan)})[1]
    assert "reference 'X'" in gps_position({1: "X", 2: (1.0, 0.0, 0.0), 3: "E", 4: (1.0, 0.0, 0.0)})[1]
    assert gps_position({1: "S", 2: (33.0, 30.0, 0.0), 3: "W", 4: (70.0, 0.0, 36.0)}) == ((-33.5, -70.01), None)
    assert gps_position({}) == (None, None)


# ---------------------------------------------------------------- devices


def test_device_keys_group_photos_of_one_device():
    unknown = PhotoMeta()
    keys = {name: device_key(unknown, name) for name in (
        "IMG_1234.JPG", "IMG_9999.jpg", "IMG_1234 (1).JPG", "IMG_1234-edited.jpg", "DSC01234.ARW", "DSC00001.arw", "DSC01234",
        "PXL_20240512_093000123.jpg", "PXL_20240513_101010999.MP.jpg", "IMG_20240512_093000.jpg", "P1000123.JPG", "")}
    assert keys["IMG_1234.JPG"] == keys["IMG_9999.jpg"] == keys["IMG_1234 (1).JPG"] == keys["IMG_1234-edited.jpg"] == "IMG_####.JPG"
    assert keys["DSC01234.ARW"] == keys["DSC00001.arw"] == "DSC#####.ARW" and keys["DSC01234"] == "DSC#####"
    assert keys["PXL_20240512_093000123.jpg"] == keys["PXL_20240513_101010999.MP.jpg"] == "PXL_"
    assert keys["IMG_20240512_093000.jpg"] == "IMG_" != keys["IMG_1234.JPG"]  # an Android phone, not an iPhone
    assert keys["P1000123.JPG"] == "P#######.JPG" and keys[""] == ""
    camera = PhotoMeta(make="Canon", model="Canon EOS 6D", serial="033024001432")
    assert device_key(camera, "IMG_0001.JPG") == "Canon Canon EOS 6D #033024001432"
    assert device_key(PhotoMeta(make="Canon", model="Canon EOS 6D", serial="999"), "IMG_0001.JPG") != device_key(camera, "IMG_0001.JPG")
    assert device_key(PhotoMeta(make="Apple", model="iPhone 12"), "IMG_0001.HEIC") == "Apple iPhone 12"


# ---------------------------------------------------------------- Takeout sidecars


def _write(path: Path, content: str) -> Path:
    path.write_text(content, encoding="utf-8")
    return path


def test_takeout_sidecar_layouts_and_bad_files(tmp_path):
    good = {"photoTakenTime": {"timestamp": "1709267400"}, "geoData": {"latitude": 28.6, "longitude": 77.2},
            "geoDataExif": {"latitude": 0.0, "longitude": 0.0}}
    photo = tmp_path / "IMG_0001.jpg"
    photo.write_bytes(b"")
    sidecar = _write(tmp_path / "IMG_0001.jpg.supplemental-metadata.json", json.dumps(good))
    assert find_takeout_sidecar(photo) == sidecar
    meta = read_takeout_sidecar(sidecar, now=NOW)
    assert meta.time_utc == datetime(2024, 3, 1, 4, 30, tzinfo=UTC) and meta.position == (28.6, 77.2) and meta.problems == ()
    assert find_takeout_sidecar(tmp_path / "other.jpg") is None
    duplicate = _write(tmp_path / "IMG_0001.jpg(1).json", json.dumps(good))  # Takeout's name for "IMG_0001(1).jpg"
    assert find_takeout_sidecar(tmp_path / "IMG_0001(1).jpg") == duplicate
    cases = {
        "broken.json": ("{not json", "not JSON"),
        "list.json": ("[1, 2]", "not a Google Photos Takeout sidecar"),
        "when.json": (json.dumps({"photoTakenTime": {"timestamp": "soon"}}), "not a time in seconds"),
        "future.json": (json.dumps({"photoTakenTime": {"timestamp": "1893456000"}}), "in the future"),
        "far.json": (json.dumps({"photoTakenTime": {"timestamp": "1709267400"}, "geoData": {"latitude": 95, "longitude": 1}}), "out of range"),
        "deep.json": ("[" * 100_000 + "]" * 100_000, "not JSON"),
    }
    for name, (content, words) in cases.items():
        result = read_takeout_sidecar(_write(tmp_path / name, content), now=NOW)
        assert any(words in problem and name in problem for problem in result.problems), (name, result.problems)
    assert "cannot be read" in read_takeout_sidecar(tmp_path / "missing.json").problems[0]


def test_the_photo_wins_over_its_sidecar():
    sidecar = PhotoMeta(taken_local=datetime(2024, 3, 1, 4, 30), offset=timedelta(0), position=(28.6, 77.2), problems=("s.json: x",))
    camera = PhotoMeta(taken_local=datetime(2024, 3, 1, 10, 0), make="Canon")
    merged = with_sidecar(camera, sidecar)
    # The camera's own clock stays unknown: Google's zone for it is a guess, not a measurement.
    assert merged.taken_local == datetime(2024, 3, 1, 10, 0) and merged.offset is None and merged.position == (28.6, 77.2)
    assert merged.problems == ("s.json: x",) and merged.make == "Canon"
    assert with_sidecar(PhotoMeta(), sidecar).time_utc == datetime(2024, 3, 1, 4, 30, tzinfo=UTC)
