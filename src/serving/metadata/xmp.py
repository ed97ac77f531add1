"""XMP metadata (Lightroom, digiKam, darktable, Immich read it): the place, caption and keywords,
serialised by exiv2, embedded into JPEG/WebP/TIFF, written into PNG by exiv2, or into a sidecar.

Why the split: exiv2 re-serialises the whole EXIF block whenever it writes a JPEG (even when only
XMP changed), which moves maker notes away from the offsets they point with (see docs/serving.md).
So exiv2 builds and parses XMP packets here, and the JPEG APP1 / WebP chunk that holds the packet
is spliced in by this module (a TIFF's IFD0 entry by `src.serving.metadata.exif_blocks`), leaving every
other byte of the photo as it was. PNG, which carries no maker notes in practice, is written by exiv2
itself. HEIC cannot be written by exiv2.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import exiv2

from src.data.images import BadImageError
from src.serving.metadata.place_values import radius_rational

exiv2.LogMsg.setLevel(exiv2.LogMsg.Level.mute)  # its warnings go to stderr; we raise our own errors
exiv2.XmpParser.initialize()

XMP_JPEG_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
# A JPEG segment holds 65533 bytes after its length; larger packets need "extended XMP" (not written).
MAX_JPEG_XMP_BYTES = 0xFFFF - 2 - len(XMP_JPEG_HEADER)
VP8X_XMP_FLAG = 0x04
# The keys this module owns: replaced as a whole on every write, every other XMP property is kept.
OWNED_KEYS = (
    "Xmp.exif.GPSVersionID", "Xmp.exif.GPSLatitude", "Xmp.exif.GPSLongitude", "Xmp.exif.GPSMapDatum", "Xmp.exif.GPSHPositioningError",
    "Xmp.photoshop.City", "Xmp.photoshop.State", "Xmp.photoshop.Country",
)


@dataclass(frozen=True)
class Place:
    """What is written about where a photo was taken (WGS-84 degrees)."""

    latitude: float
    longitude: float
    description: str | None = None  # None: leave the caption alone
    keywords: list[str] | None = None  # None: leave the keywords alone; []: remove them
    city: str = ""
    region: str = ""
    country: str = ""
    extra: dict[str, str] = field(default_factory=dict)  # more XMP text properties, e.g. {"Xmp.dc.title": ...}
    radius_m: float | None = None  # the true position lies within this many metres (GPSHPositioningError); None: not said


# --------------------------------------------------------------------------------------------
# Packets
# --------------------------------------------------------------------------------------------


def xmp_coordinate(value: float, positive: str, negative: str) -> str:
    """XMP's GPSCoordinate: ``"DDD,MM.mmmmmmmK"`` (degrees, decimal minutes, hemisphere)."""
    degrees, minutes = divmod(round(abs(value) * 60 * 10**7), 60 * 10**7)
    return f"{degrees},{minutes // 10**7}.{minutes % 10**7:07d}{negative if value < 0 else positive}"


def build_packet(place: Place, existing: str | None = None) -> str:
    """An XMP packet: ``existing`` (kept, except the properties written here) plus the place."""
    data = _parse(existing) if existing else exiv2.XmpData()
    for key in OWNED_KEYS:
        _erase(data, key)
    data["Xmp.exif.GPSVersionID"] = "2.2.0.0" if place.radius_m is None else "2.3.0.0"  # GPSHPositioningError is EXIF 2.3
    data["Xmp.exif.GPSLatitude"] = xmp_coordinate(place.latitude, "N", "S")
    data["Xmp.exif.GPSLongitude"] = xmp_coordinate(place.longitude, "E", "W")
    data["Xmp.exif.GPSMapDatum"] = "WGS-84"
    if place.radius_m is not None:
        data["Xmp.exif.GPSHPositioningError"] = "{}/{}".format(*radius_rational(place.radius_m))
    for key, value in (("Xmp.photoshop.City", place.city), ("Xmp.photoshop.State", place.region), ("Xmp.photoshop.Country", place.country)):
        if value:
            data[key] = value
    if place.description is not None:
        _erase(data, "Xmp.dc.description")
        data["Xmp.dc.description"] = exiv2.LangAltValue(place.description)
    if place.keywords is not None:
        _erase(data, "Xmp.dc.subject")
        if place.keywords:
            bag = exiv2.Value.create(exiv2.TypeId.xmpBag)
            for word in place.keywords:
                bag.read(word)
            data.add(exiv2.XmpKey("Xmp.dc.subject"), bag)
    for key, value in place.extra.items():
        _erase(data, key)
        data[key] = value
    code, packet = exiv2.XmpParser.encode(data, exiv2.XmpParser.XmpFormatFlags.useCompactFormat)
    if code != 0:
        raise RuntimeError(f"internal error: exiv2 could not serialise the XMP packet (code {code})")
    return packet


def _erase(data: exiv2.XmpData, key: str) -> None:
    found = data.findKey(exiv2.XmpKey(key))
    if found != data.end():
        data.erase(found)


def _parse(packet: str) -> exiv2.XmpData:
    """Parse through an in-memory .xmp "image", the packet parser python-exiv2 exposes."""
    image = exiv2.ImageFactory.open(packet.encode("utf-8"))
    image.readMetadata()
    return image.xmpData()


def read_xmp(source: str | Path | bytes) -> dict[str, str | list[str]]:
    """Every XMP property of a photo or sidecar (path or bytes): text, or a list for bags/sequences.

    Raises BadImageError when exiv2 cannot read the file at all. A file without XMP gives {}.
    """
    try:
        image = exiv2.ImageFactory.open(source if isinstance(source, bytes) else str(source))
        image.readMetadata()
    except exiv2.Exiv2Error as error:
        raise BadImageError(f"exiv2 cannot read this file ({error.args[-1] if error.args else error})") from error
    result: dict[str, str | list[str]] = {}
    for datum in image.xmpData():
        value = datum.value()
        if datum.typeId() in (exiv2.TypeId.xmpBag, exiv2.TypeId.xmpSeq):
            result[datum.key()] = [value.toString(i) for i in range(value.count())]
        elif datum.typeId() == exiv2.TypeId.langAlt:
            result[datum.key()] = value.toString(0)
        else:
            result[datum.key()] = datum.toString()
    return result


def packet_of(data: bytes) -> str | None:
    """The XMP packet embedded in a photo's bytes (any format exiv2 reads), or None."""
    try:
        image = exiv2.ImageFactory.open(data)
        image.readMetadata()
    except exiv2.Exiv2Error:
        return None
    packet = image.xmpPacket()
    return packet or None


# --------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------


def embed_jpeg_xmp(data: bytes, packet: str) -> bytes:
    """Replace the XMP APP1 segment (or add one after JFIF/Exif) without touching other bytes."""
    payload = packet.encode("utf-8")
    if len(payload) > MAX_JPEG_XMP_BYTES:
        raise BadImageError(f"the XMP packet would be {len(payload)} bytes, more than a JPEG segment holds")
    segment = b"\xff\xe1" + struct.pack(">H", 2 + len(XMP_JPEG_HEADER) + len(payload)) + XMP_JPEG_HEADER + payload
    pos = insert_at = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in (0xDA, 0xD9) or not (0xE0 <= marker <= 0xEF or marker == 0xFE or 0xC0 <= marker <= 0xDF):
            break
        end = pos + 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker == 0xE1 and data[pos + 4 : pos + 4 + len(XMP_JPEG_HEADER)] == XMP_JPEG_HEADER:
            return data[:pos] + segment + data[end:]
        if marker in (0xE0, 0xE1) and pos == insert_at:
            insert_at = end  # keep JFIF APP0 and the Exif APP1 first, as readers expect
        pos = end
    return data[:insert_at] + segment + data[insert_at:]


def embed_webp_xmp(data: bytes, packet: str) -> bytes:
    """Replace or append the ``XMP `` chunk of an extended (VP8X) WebP and set its flag."""
    if data[12:16] != b"VP8X":
        raise BadImageError("a WebP without a VP8X header cannot hold XMP (write EXIF first, which adds one)")
    payload = packet.encode("utf-8")
    chunks, pos, end = [], 12, min(len(data), 8 + struct.unpack("<I", data[4:8])[0])
    while pos + 8 <= end:
        size = struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        stop = pos + 8 + size + (size & 1)
        if data[pos : pos + 4] != b"XMP ":
            chunks.append(data[pos:stop])
        pos = stop
    chunks.append(b"XMP " + struct.pack("<I", len(payload)) + payload + b"\x00" * (len(payload) & 1))
    vp8x = bytearray(chunks[0])
    vp8x[8] |= VP8X_XMP_FLAG
    body = b"WEBP" + bytes(vp8x) + b"".join(chunks[1:])
    return b"RIFF" + struct.pack("<I", len(body)) + body


def exiv2_rewrite(data: bytes, exif: dict[str, str], packet: str) -> bytes:
    """PNG: set EXIF values (exiv2 key -> string) and the XMP packet through exiv2, in memory."""
    image = exiv2.ImageFactory.open(data)
    image.readMetadata()
    tags = image.exifData()
    for key, value in exif.items():
        tags[key] = value
    image.setXmpPacket(packet)
    image.writeMetadata()
    return bytes(image.io().mmap())
