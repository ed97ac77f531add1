"""Property-based tests (hypothesis) at every boundary where a file or a client's bytes come in:

* the gallery archive reader (`read_export`) and the store reader (`Gallery.load`): any bytes, any
  metadata -> a checked gallery or GalleryError, never another exception, never a byte written
  outside the unpack folder (and none at all when refused);
* the upload parser (`check_upload`, then `load_rgb`) and the form/header checks of
  `src.serving.gallery.validation`: any bytes or text -> accepted within the limits, or a 4xx reason;
* the EXIF/XMP writers (`write_location`, `write_sidecar`): random photos and places -> written, read
  back by exiv2 (and exiftool where installed) with the same pixels, the same other tags, GPS right.

Bounded for the normal suite (LANDMARK_FUZZ_EXAMPLES examples each, default 20, and a deadline);
`python -m scripts.fuzz` runs the same properties far longer (docs/gallery.md).
"""

from __future__ import annotations

import atexit
import datetime
import io
import json
import math
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import piexif
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from PIL import Image

from src.data.images import BadImageError, load_rgb
from src.serving.metadata.exif import read_gps, write_location
from src.serving.gallery.archive import read_export
from src.serving.gallery.gallery import GALLERY_FILE, Gallery, GalleryError, GalleryUnreadable, thumb_name
from src.serving.tagger.tag_writer import write_sidecar
from src.serving.web.uploads import RejectedUpload, check_upload
from src.serving.gallery.validation import (
    MAX_NAME,
    bearer_token,
    check_embeddings,
    landmark_fields,
    name_key,
    parse_number,
)
from src.serving.metadata.xmp import Place, read_xmp, xmp_coordinate

# hypothesis caches what it learns (constants of the code under test, examples) in ./.hypothesis even
# without an example database: keep it in a temporary folder that is removed at exit.
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="landmark_hypothesis_")
set_hypothesis_home_dir(_HYPOTHESIS_HOME)
atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, ignore_errors=True)
EXAMPLES = int(os.environ.get("LANDMARK_FUZZ_EXAMPLES", "20"))
# The fuzz script runs without a deadline (a slow example on a busy machine is not a bug); the suite
# keeps a generous one so that a pathological slow path still shows up.
DEADLINE = None if os.environ.get("LANDMARK_FUZZ_NO_DEADLINE") else datetime.timedelta(seconds=10)
FUZZ = settings(max_examples=EXAMPLES, deadline=DEADLINE, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])
EXIFTOOL = shutil.which("exiftool")
DIM = 8
# Pillow warns about the corrupt files this module feeds it on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")


class ExiftoolReader:
    """One ``exiftool -stay_open`` process answering every example: starting Perl for each one took most of
    the long run (270 s of `python -m scripts.fuzz`)."""

    def __init__(self, executable: str):
        self.process = subprocess.Popen([executable, "-stay_open", "True", "-@", "-"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def gps(self, photo: Path) -> tuple[float, float]:
        """(latitude, longitude) as exiftool reads them. Its JSON gives a number it would print in exponent
        form ("1e-07") as a string: float() reads both."""
        self.process.stdin.write("\n".join(["-j", "-n", "-GPSLatitude", "-GPSLongitude", str(photo), "-execute"]) + "\n")
        self.process.stdin.flush()
        lines = []
        while (line := self.process.stdout.readline()) and line.strip() != "{ready}":
            lines.append(line)
        read = json.loads("".join(lines))[0]
        return float(read["GPSLatitude"]), float(read["GPSLongitude"])

    def close(self) -> None:
        self.process.stdin.write("-stay_open\nFalse\n")
        self.process.stdin.close()
        self.process.wait(timeout=30)


_EXIFTOOL_READER: list[ExiftoolReader] = []


def _exiftool() -> ExiftoolReader:
    if not _EXIFTOOL_READER:
        _EXIFTOOL_READER.append(ExiftoolReader(EXIFTOOL))
        atexit.register(_EXIFTOOL_READER[0].close)
    return _EXIFTOOL_READER[0]


# ---- a valid export and store to mutate ----------------------------------------------------------------


def _thumb(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


THUMBS = {thumb_name(data): data for data in (_thumb(0), _thumb(1))}


def _unit(rows: int) -> np.ndarray:
    x = np.random.default_rng(rows).normal(size=(rows, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _store(meta: object, vectors: object) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps(meta)), vectors=np.asarray(vectors))
    return buffer.getvalue()


def _export(store: bytes, thumbs: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(GALLERY_FILE, store)
        for name, data in thumbs.items():
            archive.writestr(f"thumbs/{name}", data)
    return buffer.getvalue()


VALID_LANDMARK = {"name": "Far Tower", "latitude": 10.0, "longitude": 20.0, "country": "", "city": "", "tags": ["Far"], "photos": list(THUMBS)}
VALID_STORE = _store({"version": 1, "model_id": "m", "landmarks": [VALID_LANDMARK]}, _unit(2))
VALID_EXPORT = _export(VALID_STORE, THUMBS)


def _mutated(valid: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, and the valid file with bytes flipped, cut short or spliced (what a disk or an attacker does)."""
    flips = st.lists(st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)), min_size=1, max_size=8)
    return st.one_of(
        st.binary(max_size=400),
        flips.map(lambda changes: bytes(_apply(valid, changes))),
        st.integers(0, len(valid)).map(lambda cut: valid[:cut]),
        st.tuples(st.integers(0, len(valid)), st.binary(max_size=64)).map(lambda t: valid[: t[0]] + t[1] + valid[t[0] :]),
    )


def _apply(data: bytes, changes) -> bytearray:
    out = bytearray(data)
    for position, value in changes:
        out[position] = value
    return out


ANY_JSON = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
PHOTO_NAMES = st.one_of(st.sampled_from(list(THUMBS)), st.sampled_from(["../gallery.npz", "/dev/zero", "/etc/hostname", "thumbs/../x.jpg",
                                                                        "a" * 24 + ".jpg", ""]), st.text(max_size=30))


@st.composite
def hostile_metadata(draw) -> bytes:
    """A gallery export whose metadata and embeddings are drawn field by field, valid or not."""
    landmark = dict(VALID_LANDMARK)
    for key in draw(st.sets(st.sampled_from(sorted(VALID_LANDMARK)))):
        landmark[key] = draw(st.one_of(ANY_JSON, st.lists(PHOTO_NAMES, max_size=3), st.floats(-1e12, 1e12)))
    if draw(st.booleans()):
        landmark[draw(st.text(max_size=8))] = draw(ANY_JSON)
    meta = {"version": draw(st.sampled_from([1, 1, 2, "1", None])), "model_id": draw(st.sampled_from(["m", None, 7, "x" * 400])),
            "landmarks": draw(st.lists(st.just(landmark), min_size=0, max_size=2))}
    rows = draw(st.integers(0, 4))
    vectors = draw(st.sampled_from([
        _unit(rows), _unit(rows) * 2, np.full((rows, DIM), np.nan, np.float32), np.ones((rows, DIM), np.int32), np.zeros(rows),
        _unit(rows).astype(np.float16), np.zeros((rows, 0), np.float32),
    ]))
    thumbs = dict(THUMBS) if draw(st.booleans()) else {name: draw(st.binary(max_size=64)) for name in THUMBS}
    return _export(_store(meta, vectors), thumbs)


@FUZZ
@given(st.one_of(_mutated(VALID_EXPORT), hostile_metadata()))
def test_the_archive_reader_returns_a_checked_gallery_or_refuses_without_writing(archive: bytes):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "in.zip").write_bytes(archive)
        into = root / "unpacked"
        try:
            gallery = read_export(root / "in.zip", into)
        except GalleryError:
            assert not into.exists()  # refused: nothing was written
            return
        assert sorted(p.name for p in root.iterdir()) == ["in.zip", "unpacked"]  # nothing outside the unpack folder
        for name, landmark in gallery.landmarks.items():
            landmark_fields(name, landmark.latitude, landmark.longitude, country=landmark.country, city=landmark.city, tags=list(landmark.tags))
            check_embeddings(gallery.embeddings[name], len(landmark.photos), "fuzz")
            for photo in landmark.photos:
                path = into / "thumbs" / photo
                assert path.is_file() and not path.is_symlink() and thumb_name(path.read_bytes()) == photo


@FUZZ
@given(st.one_of(_mutated(VALID_STORE), hostile_metadata().map(lambda archive: zipfile.ZipFile(io.BytesIO(archive)).read(GALLERY_FILE))))
def test_the_store_reader_loads_or_says_the_file_is_unreadable(store: bytes):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / GALLERY_FILE).write_bytes(store)
        try:
            gallery = Gallery.load(Path(tmp))
        except GalleryUnreadable as error:
            assert "python -m src gallery import" in str(error)
            return
        for name, landmark in gallery.landmarks.items():
            assert gallery.embeddings[name].shape[0] == len(landmark.photos) and np.isfinite(gallery.embeddings[name]).all()


# ---- the upload parser and the form/header checks --------------------------------------------------------------


def _image_bytes(fmt: str, size: tuple[int, int], seed: int) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    image.save(buffer, fmt)
    return buffer.getvalue()


UPLOAD_SEEDS = [_image_bytes(fmt, (40, 30), i) for i, fmt in enumerate(["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])]
MAX_PIXELS = 5_000


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.sampled_from(UPLOAD_SEEDS).flatmap(_mutated)))
def test_the_upload_parser_accepts_within_limits_or_gives_a_reason(data: bytes):
    try:
        fmt = check_upload(data, MAX_PIXELS)
    except RejectedUpload as error:
        assert error.status_code in (413, 415, 422) and error.detail
        return
    assert fmt in {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF"}
    try:
        image = load_rgb(data, max_pixels=MAX_PIXELS)
    except BadImageError:
        return  # a header that parses over pixels that do not: the decoder says so, nothing else
    assert image.mode == "RGB" and image.width * image.height <= MAX_PIXELS


@FUZZ
@given(st.one_of(st.text(max_size=120), st.sampled_from(["Taj Mahal", "../../x/..", "a/b", "..", " x ", "\x00", "\u202e"])),
       st.one_of(st.floats(), st.integers(-1000, 1000), st.booleans(), st.none(), st.text(max_size=5)),
       st.one_of(st.floats(), st.integers(-1000, 1000)))
def test_landmark_fields_are_checked_alike_for_every_input(name, latitude, longitude):
    try:
        fields = landmark_fields(name, latitude, longitude, trained=["22.Taj_Mahal"])
    except GalleryError as error:
        assert str(error)
        return
    assert 0 < len(fields.name) <= MAX_NAME and fields.name.isprintable() and "/" not in fields.name and name_key(fields.name) != "taj mahal"
    if (fields.latitude, fields.longitude) == (None, None):  # no position: both missing, or exactly 0, 0 (never stored as 0, 0)
        assert (latitude, longitude) in ((None, None), (0, 0))
        return
    assert math.isfinite(fields.latitude) and abs(fields.latitude) <= 90 and math.isfinite(fields.longitude) and abs(fields.longitude) <= 180


@FUZZ
@given(st.text(max_size=30))
def test_form_numbers_are_finite_or_refused(text):
    try:
        assert math.isfinite(parse_number(text, "latitude"))
    except GalleryError:
        pass


@FUZZ
@given(st.text(max_size=40))
def test_only_one_exact_bearer_form_is_accepted(header):
    token = bearer_token(header)
    if token is not None:
        assert header == header[:7] + token and header[:7].lower() == "bearer " and token.isprintable() and not any(c.isspace() for c in token)


# ---- the EXIF/XMP writers: write, read back, compare -----------------------------------------------------------------


TEXT = st.text(st.characters(whitelist_categories=("L", "N", "P", "Zs", "S")), max_size=40)
KEYWORDS = st.lists(st.text(st.characters(whitelist_categories=("L", "N", "Pd")), min_size=1, max_size=12), max_size=5)


def _photo(path: Path, fmt: str, size: tuple[int, int], seed: int) -> Path:
    image = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    kwargs = {"exif": piexif.dump({"0th": {piexif.ImageIFD.Make: b"FuzzCam"}})} if fmt in ("JPEG", "WEBP", "PNG") else {}
    image.save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}), **kwargs)
    return path


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _expected_keywords(keywords: list[str]) -> list[str]:
    out: list[str] = []
    for word in (w.strip() for w in keywords):
        if word and word not in out:
            out.append(word)
    return out


@FUZZ
@given(fmt=st.sampled_from(["JPEG", "PNG", "WEBP", "TIFF"]), size=st.tuples(st.integers(8, 64), st.integers(8, 64)), seed=st.integers(0, 99),
       latitude=st.floats(-90, 90), longitude=st.floats(-180, 180), description=st.none() | TEXT, keywords=KEYWORDS)
@example(fmt="JPEG", size=(8, 8), seed=0, latitude=10.0, longitude=1e-07, description=None, keywords=[])  # exiftool: "1e-07", a string
def test_written_places_read_back_with_the_same_pixels_and_other_tags(fmt, size, seed, latitude, longitude, description, keywords):
    with tempfile.TemporaryDirectory() as tmp:
        photo = _photo(Path(tmp) / f"p.{fmt.lower()}", fmt, size, seed)
        original = photo.read_bytes()
        tagged = write_location(photo, Path(tmp) / f"t.{fmt.lower()}", latitude, longitude, description, keywords)
        assert photo.read_bytes() == original  # the source is only read
        assert read_gps(tagged) == pytest.approx((latitude, longitude), abs=1e-6)
        np.testing.assert_array_equal(_pixels(tagged), _pixels(photo))
        with Image.open(tagged) as image:
            assert fmt == "TIFF" or image.getexif().get(piexif.ImageIFD.Make) in ("FuzzCam", b"FuzzCam")  # other tags kept
        xmp = read_xmp(tagged)
        assert xmp["Xmp.exif.GPSLatitude"] == xmp_coordinate(latitude, "N", "S")
        assert xmp["Xmp.exif.GPSLongitude"] == xmp_coordinate(longitude, "E", "W")
        assert xmp.get("Xmp.dc.subject", []) == _expected_keywords(keywords)
        if description is not None:
            assert xmp.get("Xmp.dc.description", "") == description
        if EXIFTOOL:  # an independent reader (Debian libimage-exiftool-perl; .ci/run installs it)
            assert _exiftool().gps(tagged) == pytest.approx((latitude, longitude), abs=1e-6)


@FUZZ
@given(latitude=st.floats(-90, 90), longitude=st.floats(-180, 180), city=TEXT, keywords=KEYWORDS)
def test_sidecars_read_back_and_never_touch_the_photo(latitude, longitude, city, keywords):
    with tempfile.TemporaryDirectory() as tmp:
        photo = _photo(Path(tmp) / "p.jpg", "JPEG", (16, 16), 0)
        original = photo.read_bytes()
        sidecar = write_sidecar(photo, Path(tmp) / "p.jpg.xmp", Place(latitude, longitude, None, keywords, city=city.strip()))
        assert photo.read_bytes() == original
        xmp = read_xmp(sidecar)
        assert xmp["Xmp.exif.GPSLatitude"] == xmp_coordinate(latitude, "N", "S")
        assert xmp["Xmp.exif.GPSLongitude"] == xmp_coordinate(longitude, "E", "W")
        assert xmp.get("Xmp.dc.subject", []) == keywords
        assert xmp.get("Xmp.photoshop.City", "") == city.strip()
