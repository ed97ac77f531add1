"""Tests for src/exif.py: GPS/caption/keyword EXIF round trips on generated photos.

Every photo is generated here (tiny JPEG/WebP/PNG written by Pillow with EXIF built by piexif),
so the suite runs in well under a second and needs no data set.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import piexif
import pytest
from PIL import Image, features

from src.data.images import BadImageError
from src.serving.metadata.exif import (
    ExistingGPSError,
    UnsupportedFormatError,
    has_gps,
    read_gps,
    read_keywords,
    write_location,
)

SYDNEY_OPERA_HOUSE = (-33.8568, 151.2153)
GOLDEN_GATE_BRIDGE = (37.8199, -122.4783)
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "landmark_samples"

CAMERA_EXIF = {
    "0th": {
        piexif.ImageIFD.Make: b"Canon",
        piexif.ImageIFD.Model: b"EOS 5D Mark IV",
        piexif.ImageIFD.Orientation: 6,
        piexif.ImageIFD.Software: b"firmware 1.2.3",
    },
    "Exif": {
        piexif.ExifIFD.DateTimeOriginal: b"2023:07:14 18:30:05",
        piexif.ExifIFD.FNumber: (28, 10),
        # Opaque vendor blob: must survive with its exact bytes (and offset, see below).
        piexif.ExifIFD.MakerNote: b"VENDOR\x00" + bytes(range(40)),
    },
}


def _image(seed: int = 0) -> Image.Image:
    # Noise, so any re-encoding would change the pixels and the test would notice.
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8))


def _jpeg(path: Path, exif: dict | None = CAMERA_EXIF, seed: int = 0) -> Path:
    kwargs = {"exif": piexif.dump(exif)} if exif is not None else {}
    _image(seed).save(path, "JPEG", quality=90, **kwargs)
    return path


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:  # raw decode, deliberately without EXIF transposition
        return np.asarray(image.convert("RGB"))


def _without_exif_segment(data: bytes) -> bytes:
    """The JPEG with its Exif and XMP APP1 segments cut out (everything else, incl. scan data)."""
    pos = 2
    while data[pos + 1] != 0xDA:
        end = pos + 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if data[pos + 1] == 0xE1 and data[pos + 4 : pos + 10] == b"Exif\x00\x00" or data[pos + 1] == 0xE1 and data[pos + 4 : pos + 33] == b"http://ns.adobe.com/xap/1.0/\x00":
            data, end = data[:pos] + data[end:], pos
        pos = end
    return data


def _tiff_block(data: bytes) -> bytes:
    pos = 2
    while data[pos + 1] != 0xDA:
        end = pos + 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if data[pos + 1] == 0xE1 and data[pos + 4 : pos + 10] == b"Exif\x00\x00":
            return data[pos + 10 : end]
        pos = end
    raise AssertionError("no Exif segment")


@pytest.mark.parametrize("location", [SYDNEY_OPERA_HOUSE, GOLDEN_GATE_BRIDGE, (0.0, 0.0), (-90.0, 180.0), (89.9999999, -179.9999999)])
def test_round_trip_keeps_position_exif_and_pixels(tmp_path: Path, location: tuple[float, float]) -> None:
    source = _jpeg(tmp_path / "photo.jpg")
    original = source.read_bytes()

    result = write_location(source, tmp_path / "out" / "nested" / "tagged.jpg", *location)

    assert result == tmp_path / "out" / "nested" / "tagged.jpg"  # parent folders were created
    assert source.read_bytes() == original  # the source is never touched
    latitude, longitude = read_gps(result)
    assert latitude == pytest.approx(location[0], abs=1e-6)
    assert longitude == pytest.approx(location[1], abs=1e-6)
    assert has_gps(result) and not has_gps(source)

    # An independent parser (piexif) agrees on refs, rationals and all the camera tags.
    written = piexif.load(str(result))
    gps = written["GPS"]
    assert gps[piexif.GPSIFD.GPSVersionID] == (2, 2, 0, 0)
    assert gps[piexif.GPSIFD.GPSLatitudeRef] == (b"S" if location[0] < 0 else b"N")
    assert gps[piexif.GPSIFD.GPSLongitudeRef] == (b"W" if location[1] < 0 else b"E")
    for ifd in ("0th", "Exif"):
        for tag, value in CAMERA_EXIF[ifd].items():
            assert written[ifd][tag] == value, (ifd, tag)

    # Only the Exif segment changed: JFIF APP0, tables and the entropy-coded scan are identical.
    assert _without_exif_segment(result.read_bytes()) == _without_exif_segment(original)
    np.testing.assert_array_equal(_pixels(result), _pixels(source))


def test_existing_exif_block_is_only_appended_to(tmp_path: Path) -> None:
    # Maker notes often use absolute offsets; keeping every old byte at its offset keeps them valid.
    source = _jpeg(tmp_path / "photo.jpg")
    before = _tiff_block(source.read_bytes())
    after = _tiff_block(write_location(source, tmp_path / "t.jpg", *SYDNEY_OPERA_HOUSE).read_bytes())
    assert after[:4] == before[:4] and after[8 : len(before)] == before[8:]  # only the IFD0 pointer moved


def test_pillow_sees_orientation_and_gps(tmp_path: Path) -> None:
    tagged = write_location(_jpeg(tmp_path / "photo.jpg"), tmp_path / "t.jpg", *GOLDEN_GATE_BRIDGE)
    with Image.open(tagged) as image:
        exif = image.getexif()
        assert exif[piexif.ImageIFD.Orientation] == 6
        assert exif[piexif.ImageIFD.Make] == "Canon"
        assert exif.get_ifd(0x8825)[piexif.GPSIFD.GPSMapDatum] == "WGS-84"


def test_description_and_keywords(tmp_path: Path) -> None:
    tagged = write_location(
        _jpeg(tmp_path / "photo.jpg"),
        tmp_path / "t.jpg",
        *SYDNEY_OPERA_HOUSE,
        description="Sydney Opera House — Bennelong Point",
        keywords=["Sydney Opera House", " landmark ", "Sydney Opera House", "", "Австралия"],
    )
    assert read_keywords(tagged) == ["Sydney Opera House", "landmark", "Австралия"]
    zeroth = piexif.load(str(tagged))["0th"]
    assert zeroth[piexif.ImageIFD.ImageDescription].decode("utf-8") == "Sydney Opera House — Bennelong Point"
    xp_comment = bytes(zeroth[piexif.ImageIFD.XPComment]).decode("utf-16-le").rstrip("\x00")
    assert xp_comment == "Sydney Opera House — Bennelong Point"

    # None leaves caption/keywords alone; [] clears the keywords.
    again = write_location(tagged, tmp_path / "again.jpg", *GOLDEN_GATE_BRIDGE, overwrite=True)
    assert read_keywords(again) == read_keywords(tagged)
    assert piexif.load(str(again))["0th"][piexif.ImageIFD.ImageDescription] == zeroth[piexif.ImageIFD.ImageDescription]
    cleared = write_location(tagged, tmp_path / "cleared.jpg", *GOLDEN_GATE_BRIDGE, keywords=[], overwrite=True)
    assert read_keywords(cleared) == []


@pytest.mark.parametrize(
    ("keywords", "description"), [(["a;b"], None), (["ok"], "nul\x00byte"), (["nul\x00"], None)]
)
def test_unstorable_text_is_rejected(tmp_path: Path, keywords: list[str], description: str | None) -> None:
    with pytest.raises(ValueError):
        write_location(_jpeg(tmp_path / "p.jpg"), tmp_path / "t.jpg", 1.0, 2.0, description, keywords)


def test_existing_gps_wins_unless_overwrite(tmp_path: Path) -> None:
    source = write_location(_jpeg(tmp_path / "photo.jpg"), tmp_path / "gps.jpg", *SYDNEY_OPERA_HOUSE)
    tagged = source.read_bytes()

    with pytest.raises(ExistingGPSError) as excinfo:
        write_location(source, source, *GOLDEN_GATE_BRIDGE)
    assert isinstance(excinfo.value, ValueError)
    assert excinfo.value.location == pytest.approx(SYDNEY_OPERA_HOUSE, abs=1e-6)
    assert "overwrite=True" in str(excinfo.value)
    assert source.read_bytes() == tagged

    write_location(source, source, *GOLDEN_GATE_BRIDGE, overwrite=True)
    assert read_gps(source) == pytest.approx(GOLDEN_GATE_BRIDGE, abs=1e-6)
    assert piexif.load(str(source))["0th"][piexif.ImageIFD.Model] == b"EOS 5D Mark IV"
    # The replaced position is scrubbed, not left behind as unreferenced bytes.
    old_latitude = _tiff_block(tagged)
    endian = "<" if old_latitude[:2] == b"II" else ">"
    sydney_rationals = struct.pack(endian + "6L", 33, 1, 51, 1, 24480000, 1_000_000)
    assert sydney_rationals in tagged and sydney_rationals not in source.read_bytes()


def test_in_place_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    photo = _jpeg(tmp_path / "photo.jpg")
    os.chmod(photo, 0o644)
    original = photo.read_bytes()

    def fail(*args: object) -> None:
        raise OSError("disk full")  # the temp file is partly written when this hits

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        write_location(photo, photo, *SYDNEY_OPERA_HOUSE)
    monkeypatch.undo()
    assert photo.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg"]  # no temp file left over

    monkeypatch.setattr(os, "replace", lambda *a: fail())
    with pytest.raises(OSError):
        write_location(photo, photo, *SYDNEY_OPERA_HOUSE)
    monkeypatch.undo()
    assert photo.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg"]

    write_location(photo, photo, *SYDNEY_OPERA_HOUSE)
    assert read_gps(photo) == pytest.approx(SYDNEY_OPERA_HOUSE, abs=1e-6)
    assert (photo.stat().st_mode & 0o777) == 0o644  # permissions survive the temp-file swap


def test_photo_without_exif(tmp_path: Path) -> None:
    bare = _jpeg(tmp_path / "bare.jpg", exif=None)
    assert read_gps(bare) is None and read_keywords(bare) == []

    tagged = write_location(bare, tmp_path / "t.jpg", *GOLDEN_GATE_BRIDGE, keywords=["Golden Gate Bridge"])
    assert read_gps(tagged) == pytest.approx(GOLDEN_GATE_BRIDGE, abs=1e-6)
    assert read_keywords(tagged) == ["Golden Gate Bridge"]
    data = tagged.read_bytes()
    assert data[2:4] == b"\xff\xe0" and data[6:11] == b"JFIF\x00"  # JFIF APP0 still comes first
    assert _without_exif_segment(data) == bare.read_bytes()


def test_png_is_written_by_exiv2_with_pixels_kept(tmp_path: Path) -> None:
    png = tmp_path / "photo.png"
    _image().save(png)
    assert read_gps(png) is None
    tagged = write_location(png, tmp_path / "t.png", *SYDNEY_OPERA_HOUSE, keywords=["Opera"])
    assert read_gps(tagged) == pytest.approx(SYDNEY_OPERA_HOUSE, abs=1e-6)
    np.testing.assert_array_equal(_pixels(tagged), _pixels(png))
    with pytest.raises(ExistingGPSError):
        write_location(tagged, tagged, *GOLDEN_GATE_BRIDGE)


def test_gif_is_unsupported_and_says_sidecar(tmp_path: Path) -> None:
    gif = tmp_path / "photo.gif"
    _image().save(gif)
    with pytest.raises(UnsupportedFormatError, match="GIF.*sidecar"):
        write_location(gif, tmp_path / "t.gif", *SYDNEY_OPERA_HOUSE)
    assert not (tmp_path / "t.gif").exists()


def test_png_exif_gps_is_read(tmp_path: Path) -> None:
    png = tmp_path / "photo.png"
    gps = {1: b"S", 2: ((33, 1), (51, 1), (2448, 100)), 3: b"E", 4: ((151, 1), (12, 1), (5508, 100))}
    _image().save(png, exif=piexif.dump({"GPS": gps}))
    assert read_gps(png) == pytest.approx((-33.8568, 151.2153), abs=1e-6)


@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
def test_webp_round_trip(tmp_path: Path) -> None:
    source = tmp_path / "photo.webp"
    _image().save(source, "WEBP", lossless=True, exif=piexif.dump(CAMERA_EXIF))
    tagged = write_location(source, tmp_path / "t.webp", *SYDNEY_OPERA_HOUSE, keywords=["Opera"])
    assert read_gps(tagged) == pytest.approx(SYDNEY_OPERA_HOUSE, abs=1e-6)
    assert read_keywords(tagged) == ["Opera"]
    with Image.open(tagged) as image:
        assert image.getexif()[piexif.ImageIFD.Model] == "EOS 5D Mark IV"
    np.testing.assert_array_equal(_pixels(tagged), _pixels(source))

    bare = tmp_path / "bare.webp"  # simple (VP8L-only) file: a VP8X header must be added
    _image().save(bare, "WEBP", lossless=True)
    tagged_bare = write_location(bare, tmp_path / "t2.webp", *GOLDEN_GATE_BRIDGE)
    assert read_gps(tagged_bare) == pytest.approx(GOLDEN_GATE_BRIDGE, abs=1e-6)
    np.testing.assert_array_equal(_pixels(tagged_bare), _pixels(bare))


@pytest.mark.parametrize(
    "gps",
    [
        {2: ((33, 1), (51, 1), (2448, 100)), 4: ((151, 1), (12, 1), (5508, 100))},  # no refs
        {1: b"X", 2: ((33, 1), (51, 1), (0, 1)), 3: b"E", 4: ((151, 1), (0, 1), (0, 1))},  # bad ref
        {1: b"N", 2: ((33, 0), (0, 1), (0, 1)), 3: b"E", 4: ((151, 1), (0, 1), (0, 1))},  # x/0
        {1: b"N", 2: ((95, 1), (0, 1), (0, 1)), 3: b"E", 4: ((151, 1), (0, 1), (0, 1))},  # > 90
        {1: b"N", 3: b"E", 4: ((151, 1), (0, 1), (0, 1))},  # no latitude
    ],
)
def test_garbled_gps_reads_as_none(tmp_path: Path, gps: dict) -> None:
    photo = _jpeg(tmp_path / "photo.jpg", exif={**CAMERA_EXIF, "GPS": gps})
    assert read_gps(photo) is None
    # Unusable GPS is not "existing GPS": it may be replaced without overwrite=True.
    assert read_gps(write_location(photo, tmp_path / "t.jpg", *SYDNEY_OPERA_HOUSE)) == pytest.approx(
        SYDNEY_OPERA_HOUSE, abs=1e-6
    )


def test_garbage_exif_segment_never_raises_on_read(tmp_path: Path) -> None:
    good = _jpeg(tmp_path / "good.jpg", exif=None).read_bytes()
    segment = b"\xff\xe1" + struct.pack(">H", 2 + 6 + 12) + b"Exif\x00\x00" + b"II*\x00\xff\xff\xff\x7f" + bytes(4)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(good[:2] + segment + good[2:])
    assert read_gps(broken) is None
    with pytest.raises(BadImageError, match="malformed"):  # rewriting it could lose data
        write_location(broken, tmp_path / "t.jpg", 1.0, 2.0)


def test_decimal_degree_writers_are_understood(tmp_path: Path) -> None:
    # Some phones store (degrees, decimal minutes, 0) or a single decimal-degree rational.
    gps = {1: b"S", 2: ((33, 1), (51408, 1000), (0, 1)), 3: b"W", 4: ((1224783, 10000),)}
    photo = _jpeg(tmp_path / "photo.jpg", exif={"GPS": gps})
    assert read_gps(photo) == pytest.approx((-33.8568, -122.4783), abs=1e-6)


@pytest.mark.parametrize(
    ("latitude", "longitude", "error"),
    [
        (90.0001, 0.0, ValueError),
        (-91, 0.0, ValueError),
        (0.0, 180.5, ValueError),
        (0.0, -181, ValueError),
        (float("nan"), 0.0, ValueError),
        (0.0, float("inf"), ValueError),
        (True, 0.0, TypeError),
        ("12.5", 0.0, TypeError),
    ],
)
def test_coordinates_are_validated(tmp_path: Path, latitude: object, longitude: object, error: type) -> None:
    photo = _jpeg(tmp_path / "photo.jpg")
    with pytest.raises(error):
        write_location(photo, tmp_path / "t.jpg", latitude, longitude)  # type: ignore[arg-type]
    assert not (tmp_path / "t.jpg").exists()


def test_numpy_coordinates_are_accepted(tmp_path: Path) -> None:
    tagged = write_location(_jpeg(tmp_path / "p.jpg"), tmp_path / "t.jpg", np.float32(45.5), np.float64(-73.25))
    assert read_gps(tagged) == pytest.approx((45.5, -73.25), abs=1e-6)


def test_unreadable_and_non_image_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_gps(tmp_path / "missing.jpg")
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    with pytest.raises(BadImageError):
        read_gps(text)
    with pytest.raises(BadImageError):
        write_location(text, tmp_path / "t.jpg", 1.0, 2.0)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(BadImageError):
        has_gps(empty)


def test_bytes_that_are_no_image_get_a_readable_message(tmp_path: Path) -> None:
    """The tagger reads a file's bytes once and writes "Cannot read this file: <reason>": the reason must
    read as a sentence, not as a placeholder name for the bytes."""
    with pytest.raises(BadImageError) as raised:
        read_gps(b"not a photo at all")
    assert str(raised.value) == "not an image file (format not recognised)"
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    with pytest.raises(BadImageError, match=r"notes\.jpg: not an image file"):  # given a path, the message names it
        read_gps(text)


def test_big_endian_exif_is_patched_in_its_own_byte_order(tmp_path: Path) -> None:
    # Pillow writes big-endian ("MM") EXIF; piexif writes little-endian. Cover the other order too.
    photo = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[piexif.ImageIFD.Make] = "Nikon"
    exif[piexif.ImageIFD.Orientation] = 3
    _image().save(photo, "JPEG", exif=exif.tobytes())
    order = _tiff_block(photo.read_bytes())[:2]
    tagged = write_location(photo, tmp_path / "t.jpg", *GOLDEN_GATE_BRIDGE)
    assert _tiff_block(tagged.read_bytes())[:2] == order
    assert read_gps(tagged) == pytest.approx(GOLDEN_GATE_BRIDGE, abs=1e-6)
    assert piexif.load(str(tagged))["0th"][piexif.ImageIFD.Make] == b"Nikon"


def test_real_sample_photo(tmp_path: Path) -> None:
    if not SAMPLES.is_dir():
        pytest.skip("../shared not present: no real landmark photos to tag")
    photo = next(iter(sorted(SAMPLES.rglob("*.jpg"))), None)
    if photo is None:
        pytest.skip("../shared not present: landmark_samples holds no JPEGs")
    copy = Path(shutil.copy(photo, tmp_path / photo.name))
    had_gps = has_gps(copy)
    tagged = write_location(copy, tmp_path / "t.jpg", *GOLDEN_GATE_BRIDGE, overwrite=True)
    assert read_gps(tagged) == pytest.approx(GOLDEN_GATE_BRIDGE, abs=1e-6)
    assert _without_exif_segment(tagged.read_bytes()) == _without_exif_segment(copy.read_bytes())
    assert has_gps(copy) == had_gps
    with Image.open(io.BytesIO(tagged.read_bytes())) as image:
        image.load()  # still a decodable JPEG


def test_thumbnail_and_first_ifd_survive(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    _image(1).resize((8, 6)).save(buffer, "JPEG")
    thumbnail = buffer.getvalue()
    exif = {**CAMERA_EXIF, "1st": {piexif.ImageIFD.XResolution: (72, 1)}, "thumbnail": thumbnail}
    source = _jpeg(tmp_path / "photo.jpg", exif=exif)
    before = piexif.load(str(source))
    assert before["thumbnail"]  # (piexif strips the thumbnail's APP0, so compare with what it wrote)
    written = piexif.load(str(write_location(source, tmp_path / "t.jpg", *SYDNEY_OPERA_HOUSE)))
    assert written["thumbnail"] == before["thumbnail"]
    assert written["1st"] == before["1st"]
