"""Where the EXIF block lives in a JPEG or WebP file, and how a TIFF-structured EXIF block is patched
with GPS and keyword entries while every other tag (maker notes included) is kept byte for byte."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

import piexif

from src.data.images import BadImageError, image_format
from src.serving.metadata.place_values import radius_rational

# EXIF tag numbers (IFD0 and GPS IFD) this module reads or writes.
TAG_IMAGE_DESCRIPTION = 0x010E
TAG_X_RESOLUTION = 0x011A
TAG_Y_RESOLUTION = 0x011B
TAG_RESOLUTION_UNIT = 0x0128
TAG_YCBCR_POSITIONING = 0x0213
TAG_GPS_IFD = 0x8825
TAG_XP_COMMENT = 0x9C9C
TAG_XP_KEYWORDS = 0x9C9E
GPS_VERSION_ID = 0x0000
GPS_LATITUDE_REF = 0x0001
GPS_LATITUDE = 0x0002
GPS_LONGITUDE_REF = 0x0003
GPS_LONGITUDE = 0x0004
GPS_MAP_DATUM = 0x0012
GPS_PROCESSING_METHOD = 0x001B  # required in a TIFF's GPS IFD
TAG_XMP = 0x02BC  # a TIFF file's XMP packet (XMLPacket, in IFD0)
TIFF_MAGIC = (b"II*\x00", b"MM\x00*")  # TIFF and DNG files (BigTIFF, 43, is not written)
GPS_H_POSITIONING_ERROR = 0x001F  # the radius of the position, in metres (EXIF 2.3)

# TIFF field types used here, and the byte size of every standard type (needed to know whether a
# value sits inline in its 12-byte entry or at an offset).
BYTE, ASCII, SHORT, LONG, RATIONAL = 1, 2, 3, 4, 5
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}

# Seconds are stored as n / 1_000_000: a micro-arcsecond step is ~3e-10 degrees, far below the
# 1e-6 degree round-trip guarantee, and 60 * 1e6 still fits the unsigned 32-bit numerator.
SECONDS_DENOMINATOR = 1_000_000

# A JPEG segment length is 16 bits and includes itself (2) and the "Exif\0\0" header (6).
MAX_JPEG_TIFF_BYTES = 0xFFFF - 2 - 6
EXIF_HEADER = b"Exif\x00\x00"

class MalformedError(ValueError):
    """Internal: the container or EXIF structure cannot be parsed safely."""



# --------------------------------------------------------------------------------------------
# Containers: where the EXIF block lives in a JPEG or WebP file
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ExifLocation:
    tiff: bytes | None  # the TIFF-structured EXIF block, without any "Exif\0\0" header
    span: tuple[int, int] | None  # JPEG: byte range of the existing Exif APP1 segment
    insert_at: int  # JPEG: where a new APP1 goes when there is none
    animated: bool = False  # WebP only


def container_of(data: bytes) -> str | None:
    """JPEG or WEBP: the containers whose EXIF block this module can find and replace; None for others."""
    found = image_format(data[:32])
    return found if found in ("JPEG", "WEBP") else None


def find_exif(data: bytes, container: str) -> _ExifLocation:
    return _find_jpeg_exif(data) if container == "JPEG" else _find_webp_exif(data)


def _find_jpeg_exif(data: bytes) -> _ExifLocation:
    """Walk the marker segments before the image data (SOS) and locate the first Exif APP1."""
    pos = insert_at = 2
    while True:
        if pos + 2 > len(data) or data[pos] != 0xFF:
            raise MalformedError(f"no JPEG marker at byte {pos}")
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
            raise MalformedError("truncated JPEG segment header")
        end = pos + 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if end > len(data) or end < pos + 4:
            raise MalformedError(f"JPEG segment at byte {pos} overruns the file")
        if marker == 0xE1 and data[pos + 4 : pos + 10] == EXIF_HEADER:
            return _ExifLocation(tiff=data[pos + 10 : end], span=(pos, end), insert_at=insert_at)
        if marker == 0xE0 and pos == insert_at:
            # JFIF/JFXX APP0 must stay first; a new Exif APP1 goes right after it.
            insert_at = end
        pos = end


def _webp_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(fourcc, payload start, payload end) for each RIFF chunk."""
    end = 8 + struct.unpack("<I", data[4:8])[0]
    if end > len(data):
        raise MalformedError("RIFF size exceeds the file")
    chunks, pos = [], 12
    while pos + 8 <= end:
        size = struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        start, stop = pos + 8, pos + 8 + size
        if stop > end:
            raise MalformedError(f"WebP chunk at byte {pos} overruns the file")
        chunks.append((data[pos : pos + 4], start, stop))
        pos = stop + (size & 1)  # chunks are padded to even sizes
    return chunks


def _find_webp_exif(data: bytes) -> _ExifLocation:
    chunks = _webp_chunks(data)
    animated = any(fourcc in (b"ANIM", b"ANMF") for fourcc, _, _ in chunks)
    for fourcc, start, stop in chunks:
        if fourcc == b"EXIF":
            tiff = data[start:stop].removeprefix(EXIF_HEADER)  # some writers keep the JPEG-style header
            return _ExifLocation(tiff=tiff, span=None, insert_at=0, animated=animated)
    return _ExifLocation(tiff=None, span=None, insert_at=0, animated=animated)


def embed_exif(data: bytes, container: str, found: _ExifLocation, tiff: bytes, source: Path) -> bytes:
    if container == "WEBP":
        # piexif's WebP writer replaces the EXIF chunk and fixes the VP8X flags/RIFF size; it
        # is fine for still images (animated ones are rejected earlier).
        out = io.BytesIO()
        piexif.insert(EXIF_HEADER + tiff, data, out)
        return out.getvalue()
    # JPEG: splice the segment ourselves. piexif.insert would also drop the JFIF APP0 segment
    # and, when the Exif APP1 is not among the first two segments, leave a duplicate behind.
    if len(tiff) > MAX_JPEG_TIFF_BYTES:
        raise BadImageError(f"{source}: EXIF would be {len(tiff)} bytes, more than a JPEG segment holds")
    segment = b"\xff\xe1" + struct.pack(">H", 2 + len(EXIF_HEADER) + len(tiff)) + EXIF_HEADER + tiff
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
        raise MalformedError(f"IFD offset {offset} is outside the EXIF block")
    count = struct.unpack(endian + "H", tiff[offset : offset + 2])[0]
    table_end = offset + 2 + 12 * count
    if table_end + 4 > len(tiff):
        raise MalformedError(f"IFD at {offset} with {count} entries overruns the EXIF block")
    entries = []
    for pos in range(offset + 2, table_end, 12):
        tag, type_, n = struct.unpack(endian + "HHL", tiff[pos : pos + 8])
        entries.append(_Entry(tag, type_, n, tiff[pos + 8 : pos + 12], raw=True))
    return entries, tiff[table_end : table_end + 4]


def _pack_ifd(entries: list[_Entry], start: int, endian: str, next_ifd: bytes) -> bytes:
    """Serialise an IFD, in the order given (`merged_entries`), that will sit at offset ``start``;
    out-of-line values follow its table."""
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
    except MalformedError:
        return
    for entry in entries:
        size = TYPE_SIZES.get(entry.type, 0) * entry.count
        if size > 4:
            at = struct.unpack(endian + "L", entry.value)[0]
            if 8 <= at and at + size <= len(buffer):
                buffer[at : at + size] = bytes(size)
    end = offset + 2 + 12 * len(entries) + 4
    buffer[offset:end] = bytes(end - offset)


def _dms_rationals(value: float, endian: str) -> bytes:
    """|value| degrees as three RATIONALs (d/1, m/1, s/1e6), computed in integers so rounding
    can never produce 60 seconds or 60 minutes."""
    total = round(abs(value) * 3600 * SECONDS_DENOMINATOR)
    degrees, rest = divmod(total, 3600 * SECONDS_DENOMINATOR)
    minutes, seconds = divmod(rest, 60 * SECONDS_DENOMINATOR)
    return struct.pack(endian + "6L", degrees, 1, minutes, 1, seconds, SECONDS_DENOMINATOR)


def merged_entries(old: list[_Entry], new: list[_Entry]) -> list[_Entry]:
    """The old entries in their own order, each new one (ascending) before the first old one with a higher
    tag: TIFF's ascending order where the old IFD kept it, and no reshuffle where it did not (readers
    such as exiftool give up on an IFD whose first entry is a garbled one moved to the front)."""
    merged, pending = [], sorted(new, key=lambda e: e.tag)
    for entry in old:
        while pending and pending[0].tag < entry.tag:
            merged.append(pending.pop(0))
        merged.append(entry)
    return merged + pending


def _gps_entries(latitude: float, longitude: float, endian: str, radius_m: float | None, container: str) -> list[_Entry]:
    more = [] if radius_m is None else [_Entry(GPS_H_POSITIONING_ERROR, RATIONAL, 1, struct.pack(endian + "2L", *radius_rational(radius_m)))]
    if container == "TIFF":  # an 8-byte character code, then the method: not a satellite fix
        more.insert(0, _Entry(GPS_PROCESSING_METHOD, 7, 14, b"ASCII\x00\x00\x00MANUAL"))
    return [
        _Entry(GPS_VERSION_ID, BYTE, 4, bytes((2, 2 if radius_m is None else 3, 0, 0))),  # GPSHPositioningError is EXIF 2.3
        _Entry(GPS_LATITUDE_REF, ASCII, 2, b"S\x00" if latitude < 0 else b"N\x00"),
        _Entry(GPS_LATITUDE, RATIONAL, 3, _dms_rationals(latitude, endian)),
        _Entry(GPS_LONGITUDE_REF, ASCII, 2, b"W\x00" if longitude < 0 else b"E\x00"),
        _Entry(GPS_LONGITUDE, RATIONAL, 3, _dms_rationals(longitude, endian)),
        # Landmark coordinates (and every map service) are WGS-84; say so explicitly.
        _Entry(GPS_MAP_DATUM, ASCII, 7, b"WGS-84\x00"),
    ] + more


def _jpeg_ifd0_defaults(endian: str) -> list[_Entry]:
    """IFD0 tags EXIF requires in a JPEG (exiftool -validate checks them), for a block we create: 72 dpi
    (what a resolution-less JPEG means) and centred chroma samples (JPEG/JFIF's own convention)."""
    dpi = struct.pack(endian + "2L", 72, 1)
    return [
        _Entry(TAG_X_RESOLUTION, RATIONAL, 1, dpi),
        _Entry(TAG_Y_RESOLUTION, RATIONAL, 1, dpi),
        _Entry(TAG_RESOLUTION_UNIT, SHORT, 1, struct.pack(endian + "H", 2)),  # inches
        _Entry(TAG_YCBCR_POSITIONING, SHORT, 1, struct.pack(endian + "H", 1)),  # centred
    ]


def _utf16_entry(tag: int, text: str) -> _Entry:
    value = text.encode("utf-16-le") + b"\x00\x00"  # XP* tags: NUL-terminated UTF-16LE bytes
    return _Entry(tag, BYTE, len(value), value)


def patch_tiff(
    tiff: bytes | None,
    latitude: float,
    longitude: float,
    description: str | None,
    keywords: list[str] | None,
    scrub_old_gps: bool,
    radius_m: float | None = None,
    container: str = "JPEG",
    xmp: bytes | None = None,
) -> bytes:
    """Return the EXIF block with a new GPS IFD and updated IFD0 appended (see module doc).
    radius_m: GPSHPositioningError (None: not written). container: where the block goes ("JPEG", "WEBP", or
    "TIFF": the block is the whole TIFF/DNG file, whose strip offsets stay valid as only bytes are appended);
    a block created for a JPEG gets the IFD0 tags EXIF requires there. xmp: a TIFF's new XMP packet."""
    if tiff is None:  # no EXIF yet: start an empty little-endian block
        endian, buffer, next_ifd = "<", bytearray(b"II*\x00\x08\x00\x00\x00"), bytes(4)
        old_entries = _jpeg_ifd0_defaults(endian) if container == "JPEG" else []
    else:
        endian = {b"II": "<", b"MM": ">"}.get(tiff[:2], "")
        if not endian or len(tiff) < 8 or struct.unpack(endian + "H", tiff[2:4])[0] != 42:
            raise MalformedError("not a TIFF header")
        buffer = bytearray(tiff)
        old_entries, next_ifd = _parse_ifd(tiff, struct.unpack(endian + "L", tiff[4:8])[0], endian)

    if scrub_old_gps:
        for entry in old_entries:
            if entry.tag == TAG_GPS_IFD and entry.type == LONG:
                _scrub_ifd(buffer, struct.unpack(endian + "L", entry.value)[0], endian)

    # Tags we set (None value = remove). Everything else in IFD0 is carried over verbatim.
    updates: dict[int, _Entry | None] = {}
    if description is not None:
        updates[TAG_IMAGE_DESCRIPTION] = _Entry(
            TAG_IMAGE_DESCRIPTION, ASCII, len(description.encode("utf-8")) + 1, description.encode("utf-8") + b"\x00"
        )
        updates[TAG_XP_COMMENT] = _utf16_entry(TAG_XP_COMMENT, description)
    if keywords is not None:
        updates[TAG_XP_KEYWORDS] = _utf16_entry(TAG_XP_KEYWORDS, ";".join(keywords)) if keywords else None

    buffer += b"\x00" * (len(buffer) % 2)
    gps_offset = len(buffer)
    buffer += _pack_ifd(_gps_entries(latitude, longitude, endian, radius_m, container), gps_offset, endian, bytes(4))
    updates[TAG_GPS_IFD] = _Entry(TAG_GPS_IFD, LONG, 1, struct.pack(endian + "L", gps_offset))
    if xmp is not None:
        updates[TAG_XMP] = _Entry(TAG_XMP, BYTE, len(xmp), xmp)

    kept = [e for e in old_entries if e.tag not in updates]
    entries = merged_entries(kept, [e for e in updates.values() if e is not None])
    ifd0_offset = len(buffer)  # even: every packed IFD has an even length
    buffer += _pack_ifd(entries, ifd0_offset, endian, next_ifd)
    buffer[4:8] = struct.pack(endian + "L", ifd0_offset)
    return bytes(buffer)
