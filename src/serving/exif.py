"""Read and write a photo's GPS position (and caption/keywords) in its EXIF metadata.

The tagger infers where a photo was taken from the landmark in it; this module writes that
position back so photo managers (Windows Explorer, Lightroom, Apple/Google Photos, exiftool)
show it on a map.

Design choices, because the photo is someone's original:

* Pixels are never re-encoded. Only the EXIF block is replaced (the JPEG APP1 "Exif" segment or
  the WebP EXIF chunk); every other byte of the file stays as it was.
* Existing EXIF is patched append-only rather than decoded and re-serialised: a new IFD0 and GPS
  IFD are appended to the old TIFF block and the header is pointed at them. Everything else (maker
  notes whose internal offsets are absolute, vendor tags no library knows, the thumbnail) keeps
  its exact bytes and offsets. A load/dump round trip through piexif would drop unknown tags and
  silently break maker notes.
* The photo's own GPS wins: writing over an existing position needs ``overwrite=True``.
* Files are replaced atomically (temp file + ``os.replace``), so tagging in place either fully
  succeeds or leaves the original untouched.

Public API: `read_gps`, `has_gps`, `read_keywords`, `write_location`, `UnsupportedFormatError`,
`ExistingGPSError`.
"""

from __future__ import annotations

import io
import math
import numbers
import os
import struct
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import piexif
from PIL import Image, UnidentifiedImageError

from src.data.images import BadImageError

PathLike = Union[str, Path]

# EXIF tag numbers (IFD0 and GPS IFD) this module reads or writes.
TAG_IMAGE_DESCRIPTION = 0x010E
TAG_GPS_IFD = 0x8825
TAG_XP_COMMENT = 0x9C9C
TAG_XP_KEYWORDS = 0x9C9E
GPS_VERSION_ID = 0x0000
GPS_LATITUDE_REF = 0x0001
GPS_LATITUDE = 0x0002
GPS_LONGITUDE_REF = 0x0003
GPS_LONGITUDE = 0x0004
GPS_MAP_DATUM = 0x0012

# TIFF field types used here, and the byte size of every standard type (needed to know whether a
# value sits inline in its 12-byte entry or at an offset).
_BYTE, _ASCII, _LONG, _RATIONAL = 1, 2, 4, 5
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}

# Seconds are stored as n / 1_000_000: a micro-arcsecond step is ~3e-10 degrees, far below the
# 1e-6 degree round-trip guarantee, and 60 * 1e6 still fits the unsigned 32-bit numerator.
_SECONDS_DENOMINATOR = 1_000_000

# A JPEG segment length is 16 bits and includes itself (2) and the "Exif\0\0" header (6).
_MAX_JPEG_TIFF_BYTES = 0xFFFF - 2 - 6
_EXIF_HEADER = b"Exif\x00\x00"


class UnsupportedFormatError(ValueError):
    """The photo's format cannot be tagged without re-encoding it (only JPEG and still WebP can)."""


class ExistingGPSError(ValueError):
    """The photo already carries a GPS position and ``overwrite=True`` was not given."""

    def __init__(self, path: Path, location: tuple[float, float]):
        self.path = path
        self.location = location
        super().__init__(
            f"{path} already has a GPS position ({location[0]:.6f}, {location[1]:.6f}); "
            "the photo's own metadata wins, pass overwrite=True to replace it"
        )


class _MalformedError(ValueError):
    """Internal: the container or EXIF structure cannot be parsed safely."""


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_gps(path: PathLike) -> tuple[float, float] | None:
    """Return the photo's ``(latitude, longitude)`` in signed decimal degrees, or None.

    None means there is no usable position: no EXIF, no GPS IFD, a missing or invalid N/S/E/W
    reference (the hemisphere would be a guess), a zero denominator, or a value out of range.
    Any image format Pillow can open is read (JPEG, WebP, TIFF, PNG eXIf, HEIC with pillow-heif).

    Raises:
        OSError: the file cannot be read (missing, a directory, no permission).
        BadImageError: the bytes are not a recognisable image at all (e.g. empty or a text file).
    A readable image never raises, however garbled its metadata.
    """
    path = Path(path)
    exif = _load_exif(path.read_bytes(), path)
    return _gps_from_exif(exif) if exif is not None else None


def has_gps(path: PathLike) -> bool:
    """True when `read_gps` finds a usable position (same errors as `read_gps`)."""
    return read_gps(path) is not None


def read_keywords(path: PathLike) -> list[str]:
    """Keywords from the Windows ``XPKeywords`` tag (UTF-16LE, ``;``-separated); [] if none.

    Same errors as `read_gps`; a garbled tag reads as [].
    """
    path = Path(path)
    exif = _load_exif(path.read_bytes(), path)
    if exif is None:
        return []
    try:
        raw = exif.get(TAG_XP_KEYWORDS)
        if raw is None:
            return []
        text = bytes(raw).decode("utf-16-le", errors="replace")
    except Exception:  # untrusted metadata: any parse failure just means "no keywords"
        return []
    return [word.strip() for word in text.rstrip("\x00").split(";") if word.strip()]


def _load_exif(data: bytes, path: Path) -> Image.Exif | None:
    """Parse the EXIF of any image; None when it has none or it cannot be parsed."""
    container = _container(data)
    if container is not None:
        # Our own locator for the formats we write, so reading and writing agree exactly on
        # which EXIF block counts, and no image header needs decoding.
        try:
            tiff = _find_exif(data, container).tiff
        except _MalformedError:
            tiff = None
        return _parse_tiff(tiff) if tiff is not None else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # decompression-bomb warnings: we decode no pixels
            with Image.open(io.BytesIO(data)) as image:
                return image.getexif()
    except UnidentifiedImageError as error:  # an OSError subclass, so it must come first
        raise BadImageError(f"{path}: not an image file (format not recognised)") from error
    except Image.DecompressionBombError:
        return None  # a real, just huge, image: readable images never raise here
    except Exception:  # garbled metadata inside a recognised image
        return None


def _parse_tiff(tiff: bytes) -> Image.Exif | None:
    exif = Image.Exif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Corrupt EXIF data": we report None instead
            exif.load(tiff)
    except Exception:  # untrusted bytes; Pillow raises assorted errors on garbage
        return None
    return exif


def _gps_from_exif(exif: Image.Exif) -> tuple[float, float] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns on corrupt IFDs; None says enough
            gps = exif.get_ifd(TAG_GPS_IFD)
        latitude = _signed_degrees(gps.get(GPS_LATITUDE), gps.get(GPS_LATITUDE_REF), "N", "S", 90.0)
        longitude = _signed_degrees(gps.get(GPS_LONGITUDE), gps.get(GPS_LONGITUDE_REF), "E", "W", 180.0)
    except Exception:  # a GPS IFD pointer into garbage, odd value types, ...
        return None
    if latitude is None or longitude is None:
        return None
    return latitude, longitude


def _signed_degrees(value: object, ref: object, positive: str, negative: str, limit: float) -> float | None:
    """Degrees/minutes/seconds rationals + hemisphere letter -> signed decimal degrees, or None."""
    if value is None or ref is None:
        return None
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", errors="replace")
    ref = str(ref).strip("\x00 ").upper()
    if ref not in (positive, negative):
        return None
    # Usually three rationals (d, m, s); some writers store (d, m.mmm) or just decimal degrees.
    parts = value if isinstance(value, tuple) else (value,)
    if not 1 <= len(parts) <= 3:
        return None
    numbers_ = [float(part) for part in parts]  # IFDRational with a zero denominator -> nan
    if any(not math.isfinite(n) or n < 0 for n in numbers_):
        return None
    degrees = sum(n / 60.0**i for i, n in enumerate(numbers_))
    if degrees > limit:
        return None
    return -degrees if ref == negative else degrees


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def write_location(
    source: PathLike,
    destination: PathLike,
    latitude: float,
    longitude: float,
    description: str | None = None,
    keywords: list[str] | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write a GPS position (plus optional caption and keywords) into a copy of a photo.

    The copy at ``destination`` (parent folders are created; ``destination == source`` tags in
    place) differs from ``source`` only in its EXIF block: image data and all other segments or
    chunks are byte-identical, and every existing EXIF tag is kept except the ones written here:

    * the GPS IFD (replaced as a whole: GPSVersionID 2.2, N/S + E/W refs, degree/minute/second
      rationals exact to ~3e-10 degrees, GPSMapDatum WGS-84). Old GPS fields such as altitude
      describe the old fix, so they are not carried over to a new one.
    * ``description`` -> ImageDescription (UTF-8; plain ASCII stays spec-clean) and XPComment
      (UTF-16LE, which Windows shows correctly for any script). None leaves both untouched.
    * ``keywords`` -> XPKeywords (UTF-16LE, ``;``-separated), replacing old keywords; [] removes
      them, None leaves them untouched.

    The result is written to a temp file in the destination folder and moved into place with
    ``os.replace``: on any failure the destination (and thus an in-place source) is unchanged.

    Raises:
        ValueError: latitude outside [-90, 90], longitude outside [-180, 180], not finite, or a
            keyword/description that cannot be stored (``;`` in a keyword, NUL characters).
        TypeError: a coordinate that is not a real number.
        ExistingGPSError (ValueError): the photo already has a position and overwrite is False.
        UnsupportedFormatError (ValueError): not JPEG or still WebP (PNG, HEIC, animated WebP...).
        BadImageError (ValueError): not an image, a broken JPEG/WebP structure, malformed
            existing EXIF (rewriting it could lose data), or EXIF too large for a JPEG segment.
        OSError: reading the source or writing the destination failed.
    """
    source, destination = Path(source), Path(destination)
    latitude = _check_coordinate(latitude, "latitude", 90.0)
    longitude = _check_coordinate(longitude, "longitude", 180.0)
    _check_text(description, "description")
    words = _clean_keywords(keywords)

    data = source.read_bytes()
    container = _container(data)
    if container is None:
        raise _unsupported(source, data)
    try:
        found = _find_exif(data, container)
    except _MalformedError as error:
        raise BadImageError(f"{source}: broken {container} structure ({error})") from error
    if found.animated:
        raise UnsupportedFormatError(f"{source}: animated WebP is not supported, only still images")

    existing = None
    if found.tiff is not None:
        parsed = _parse_tiff(found.tiff)
        existing = _gps_from_exif(parsed) if parsed is not None else None
    if existing is not None and not overwrite:
        raise ExistingGPSError(source, existing)

    try:
        tiff = _patch_tiff(
            found.tiff,
            latitude,
            longitude,
            description,
            words,
            # Only scrub an old GPS IFD we could read: a garbled pointer may point into data
            # that belongs to something else.
            scrub_old_gps=existing is not None,
        )
    except _MalformedError as error:
        raise BadImageError(
            f"{source}: existing EXIF is malformed ({error}); refusing to rewrite it and lose data"
        ) from error
    _verify(tiff, latitude, longitude)
    new_data = _embed(data, container, found, tiff, source)

    destination.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(destination, new_data, mode_source=source)
    return destination


def _check_coordinate(value: float, name: str, limit: float) -> float:
    # bool is an int subclass; True as a latitude is a caller bug, not 1 degree.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or not -limit <= value <= limit:
        raise ValueError(f"{name} must be within [-{limit:g}, {limit:g}], got {value!r}")
    return value


def _check_text(text: str | None, name: str) -> None:
    if text is not None and "\x00" in text:
        # ASCII and XP tags are NUL-terminated: a NUL would silently truncate the text.
        raise ValueError(f"{name} must not contain NUL characters")


def _clean_keywords(keywords: list[str] | None) -> list[str] | None:
    if keywords is None:
        return None
    if isinstance(keywords, str):  # a bare string would be split into characters
        raise TypeError("keywords must be a list of strings, not a single string")
    cleaned: list[str] = []
    for word in keywords:
        _check_text(word, "keyword")
        word = word.strip()
        if ";" in word:
            raise ValueError(f"keyword {word!r} contains ';', the XPKeywords separator")
        if word and word not in cleaned:
            cleaned.append(word)
    return cleaned


def _unsupported(source: Path, data: bytes) -> ValueError:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                fmt = image.format or "unknown"
    except (UnidentifiedImageError, Image.DecompressionBombError):
        return BadImageError(f"{source}: not an image file (format not recognised)")
    return UnsupportedFormatError(
        f"{source}: cannot write EXIF into {fmt} without re-encoding; only JPEG and WebP are supported"
    )


def _verify(tiff: bytes, latitude: float, longitude: float) -> None:
    """Read the new block back before touching any file: never write what we cannot read."""
    parsed = _parse_tiff(tiff)
    location = _gps_from_exif(parsed) if parsed is not None else None
    if location is None or abs(location[0] - latitude) > 1e-7 or abs(location[1] - longitude) > 1e-7:
        raise RuntimeError(f"internal error: GPS read back as {location}, expected {(latitude, longitude)}")


def _write_atomically(destination: Path, data: bytes, mode_source: Path) -> None:
    # The temp file lives next to the destination so os.replace is a same-filesystem rename.
    fd, temp_name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # contents on disk before the rename makes them visible
        # mkstemp creates 0600; keep the photo's permissions as a copy/in-place edit should.
        os.chmod(temp_name, mode_source.stat().st_mode & 0o7777)
        os.replace(temp_name, destination)
    except BaseException:
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
        raise


# --------------------------------------------------------------------------------------------
# Containers: where the EXIF block lives in a JPEG or WebP file
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ExifLocation:
    tiff: bytes | None  # the TIFF-structured EXIF block, without any "Exif\0\0" header
    span: tuple[int, int] | None  # JPEG: byte range of the existing Exif APP1 segment
    insert_at: int  # JPEG: where a new APP1 goes when there is none
    animated: bool = False  # WebP only


def _container(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _find_exif(data: bytes, container: str) -> _ExifLocation:
    return _find_jpeg_exif(data) if container == "JPEG" else _find_webp_exif(data)


def _find_jpeg_exif(data: bytes) -> _ExifLocation:
    """Walk the marker segments before the image data (SOS) and locate the first Exif APP1."""
    pos = insert_at = 2
    while True:
        if pos + 2 > len(data) or data[pos] != 0xFF:
            raise _MalformedError(f"no JPEG marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: no more metadata
            return _ExifLocation(tiff=None, span=None, insert_at=insert_at)
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        if pos + 4 > len(data):
            raise _MalformedError("truncated JPEG segment header")
        end = pos + 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if end > len(data) or end < pos + 4:
            raise _MalformedError(f"JPEG segment at byte {pos} overruns the file")
        if marker == 0xE1 and data[pos + 4 : pos + 10] == _EXIF_HEADER:
            return _ExifLocation(tiff=data[pos + 10 : end], span=(pos, end), insert_at=insert_at)
        if marker == 0xE0 and pos == insert_at:
            # JFIF/JFXX APP0 must stay first; a new Exif APP1 goes right after it.
            insert_at = end
        pos = end


def _webp_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(fourcc, payload start, payload end) for each RIFF chunk."""
    end = 8 + struct.unpack("<I", data[4:8])[0]
    if end > len(data):
        raise _MalformedError("RIFF size exceeds the file")
    chunks, pos = [], 12
    while pos + 8 <= end:
        size = struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        start, stop = pos + 8, pos + 8 + size
        if stop > end:
            raise _MalformedError(f"WebP chunk at byte {pos} overruns the file")
        chunks.append((data[pos : pos + 4], start, stop))
        pos = stop + (size & 1)  # chunks are padded to even sizes
    return chunks


def _find_webp_exif(data: bytes) -> _ExifLocation:
    chunks = _webp_chunks(data)
    animated = any(fourcc in (b"ANIM", b"ANMF") for fourcc, _, _ in chunks)
    for fourcc, start, stop in chunks:
        if fourcc == b"EXIF":
            tiff = data[start:stop]
            if tiff.startswith(_EXIF_HEADER):  # some writers keep the JPEG-style header
                tiff = tiff[len(_EXIF_HEADER) :]
            return _ExifLocation(tiff=tiff, span=None, insert_at=0, animated=animated)
    return _ExifLocation(tiff=None, span=None, insert_at=0, animated=animated)


def _embed(data: bytes, container: str, found: _ExifLocation, tiff: bytes, source: Path) -> bytes:
    if container == "WEBP":
        # piexif's WebP writer replaces the EXIF chunk and fixes the VP8X flags/RIFF size; it
        # is fine for still images (animated ones are rejected earlier).
        out = io.BytesIO()
        piexif.insert(_EXIF_HEADER + tiff, data, out)
        return out.getvalue()
    # JPEG: splice the segment ourselves. piexif.insert would also drop the JFIF APP0 segment
    # and, when the Exif APP1 is not among the first two segments, leave a duplicate behind.
    if len(tiff) > _MAX_JPEG_TIFF_BYTES:
        raise BadImageError(f"{source}: EXIF would be {len(tiff)} bytes, more than a JPEG segment holds")
    segment = b"\xff\xe1" + struct.pack(">H", 2 + len(_EXIF_HEADER) + len(tiff)) + _EXIF_HEADER + tiff
    start, end = found.span if found.span is not None else (found.insert_at, found.insert_at)
    return data[:start] + segment + data[end:]


# --------------------------------------------------------------------------------------------
# TIFF/EXIF block patching
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """One IFD entry. ``raw`` entries keep their original 4-byte value/offset field verbatim."""

    tag: int
    type: int
    count: int
    value: bytes  # raw: the 4-byte field; otherwise the full value, placed inline or after the IFD
    raw: bool = False


def _parse_ifd(tiff: bytes, offset: int, endian: str) -> tuple[list[_Entry], bytes]:
    """Entries (raw) and the raw next-IFD pointer of the IFD at ``offset``."""
    if offset < 8 or offset + 2 > len(tiff):
        raise _MalformedError(f"IFD offset {offset} is outside the EXIF block")
    count = struct.unpack(endian + "H", tiff[offset : offset + 2])[0]
    table_end = offset + 2 + 12 * count
    if table_end + 4 > len(tiff):
        raise _MalformedError(f"IFD at {offset} with {count} entries overruns the EXIF block")
    entries = []
    for pos in range(offset + 2, table_end, 12):
        tag, type_, n = struct.unpack(endian + "HHL", tiff[pos : pos + 8])
        entries.append(_Entry(tag, type_, n, tiff[pos + 8 : pos + 12], raw=True))
    return entries, tiff[table_end : table_end + 4]


def _pack_ifd(entries: list[_Entry], start: int, endian: str, next_ifd: bytes) -> bytes:
    """Serialise an IFD that will sit at offset ``start``; out-of-line values follow its table."""
    entries = sorted(entries, key=lambda e: e.tag)  # TIFF requires ascending tag order
    table_size = 2 + 12 * len(entries) + 4  # always even, so values start word-aligned
    table = bytearray(struct.pack(endian + "H", len(entries)))
    values = bytearray()
    for entry in entries:
        if entry.raw or len(entry.value) <= 4:
            field = entry.value.ljust(4, b"\x00")
        else:
            field = struct.pack(endian + "L", start + table_size + len(values))
            values += entry.value
            values += b"\x00" * (len(values) % 2)  # keep every offset even, as TIFF requires
        table += struct.pack(endian + "HHL", entry.tag, entry.type, entry.count) + field
    return bytes(table + next_ifd + values)


def _scrub_ifd(buffer: bytearray, offset: int, endian: str) -> None:
    """Zero an IFD we are replacing, so a corrected position does not linger as dead bytes."""
    try:
        entries, _ = _parse_ifd(bytes(buffer), offset, endian)
    except _MalformedError:
        return
    for entry in entries:
        size = _TYPE_SIZES.get(entry.type, 0) * entry.count
        if size > 4:
            at = struct.unpack(endian + "L", entry.value)[0]
            if 8 <= at and at + size <= len(buffer):
                buffer[at : at + size] = bytes(size)
    end = offset + 2 + 12 * len(entries) + 4
    buffer[offset:end] = bytes(end - offset)


def _dms_rationals(value: float, endian: str) -> bytes:
    """|value| degrees as three RATIONALs (d/1, m/1, s/1e6), computed in integers so rounding
    can never produce 60 seconds or 60 minutes."""
    total = round(abs(value) * 3600 * _SECONDS_DENOMINATOR)
    degrees, rest = divmod(total, 3600 * _SECONDS_DENOMINATOR)
    minutes, seconds = divmod(rest, 60 * _SECONDS_DENOMINATOR)
    return struct.pack(endian + "6L", degrees, 1, minutes, 1, seconds, _SECONDS_DENOMINATOR)


def _gps_entries(latitude: float, longitude: float, endian: str) -> list[_Entry]:
    return [
        _Entry(GPS_VERSION_ID, _BYTE, 4, bytes((2, 2, 0, 0))),
        _Entry(GPS_LATITUDE_REF, _ASCII, 2, b"S\x00" if latitude < 0 else b"N\x00"),
        _Entry(GPS_LATITUDE, _RATIONAL, 3, _dms_rationals(latitude, endian)),
        _Entry(GPS_LONGITUDE_REF, _ASCII, 2, b"W\x00" if longitude < 0 else b"E\x00"),
        _Entry(GPS_LONGITUDE, _RATIONAL, 3, _dms_rationals(longitude, endian)),
        # Landmark coordinates (and every map service) are WGS-84; say so explicitly.
        _Entry(GPS_MAP_DATUM, _ASCII, 7, b"WGS-84\x00"),
    ]


def _utf16_entry(tag: int, text: str) -> _Entry:
    value = text.encode("utf-16-le") + b"\x00\x00"  # XP* tags: NUL-terminated UTF-16LE bytes
    return _Entry(tag, _BYTE, len(value), value)


def _patch_tiff(
    tiff: bytes | None,
    latitude: float,
    longitude: float,
    description: str | None,
    keywords: list[str] | None,
    scrub_old_gps: bool,
) -> bytes:
    """Return the EXIF block with a new GPS IFD and updated IFD0 appended (see module doc)."""
    if tiff is None:  # no EXIF yet: start an empty little-endian block
        endian, buffer, old_entries, next_ifd = "<", bytearray(b"II*\x00\x08\x00\x00\x00"), [], bytes(4)
    else:
        endian = {b"II": "<", b"MM": ">"}.get(tiff[:2], "")
        if not endian or len(tiff) < 8 or struct.unpack(endian + "H", tiff[2:4])[0] != 42:
            raise _MalformedError("not a TIFF header")
        buffer = bytearray(tiff)
        old_entries, next_ifd = _parse_ifd(tiff, struct.unpack(endian + "L", tiff[4:8])[0], endian)

    if scrub_old_gps:
        for entry in old_entries:
            if entry.tag == TAG_GPS_IFD and entry.type == _LONG:
                _scrub_ifd(buffer, struct.unpack(endian + "L", entry.value)[0], endian)

    # Tags we set (None value = remove). Everything else in IFD0 is carried over verbatim.
    updates: dict[int, _Entry | None] = {}
    if description is not None:
        updates[TAG_IMAGE_DESCRIPTION] = _Entry(
            TAG_IMAGE_DESCRIPTION, _ASCII, len(description.encode("utf-8")) + 1, description.encode("utf-8") + b"\x00"
        )
        updates[TAG_XP_COMMENT] = _utf16_entry(TAG_XP_COMMENT, description)
    if keywords is not None:
        updates[TAG_XP_KEYWORDS] = _utf16_entry(TAG_XP_KEYWORDS, ";".join(keywords)) if keywords else None

    buffer += b"\x00" * (len(buffer) % 2)
    gps_offset = len(buffer)
    buffer += _pack_ifd(_gps_entries(latitude, longitude, endian), gps_offset, endian, bytes(4))
    updates[TAG_GPS_IFD] = _Entry(TAG_GPS_IFD, _LONG, 1, struct.pack(endian + "L", gps_offset))

    entries = [e for e in old_entries if e.tag not in updates]
    entries += [e for e in updates.values() if e is not None]
    ifd0_offset = len(buffer)  # even: every packed IFD has an even length
    buffer += _pack_ifd(entries, ifd0_offset, endian, next_ifd)
    buffer[4:8] = struct.pack(endian + "L", ifd0_offset)
    return bytes(buffer)
