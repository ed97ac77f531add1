"""Where a photo keeps its XMP packet and PNG EXIF, and the few XMP properties the library context reads.

Why not `src.serving.metadata.xmp.read_xmp` here: it runs Adobe's XMP toolkit through exiv2, which
takes 8-9 ms on a Lightroom packet (measured on ../shared/real_metadata, photoprism/elephants.jpg);
this runs on every photo of a library with a budget under 1 ms. The packet is found by walking the
container (JPEG segments, PNG chunks, the TIFF XMP tag) and only the properties below are taken
from it, by namespace URI, so a packet that binds another prefix to a namespace still reads right.
tests/test_photo_meta.py checks that these values equal read_xmp's on every real photo.
"""

from __future__ import annotations

import html
import re
import struct
import zlib

from src.data.images import PNG_SIGNATURE
from src.serving.metadata.xmp import XMP_JPEG_HEADER

# A packet larger than this is not a camera's or photo manager's: refuse it rather than scan it.
MAX_XMP_BYTES = 2 * 1024 * 1024

# The namespaces read, by the prefix their properties are named with here.
NAMESPACES = {
    "exif": "http://ns.adobe.com/exif/1.0/",
    "exifEX": "http://cipa.jp/exif/1.0/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "tiff": "http://ns.adobe.com/tiff/1.0/",
    "aux": "http://ns.adobe.com/exif/1.0/aux/",
}
PROPERTIES = (
    "exif:DateTimeOriginal", "photoshop:DateCreated", "xmp:CreateDate", "exif:GPSTimeStamp",
    "exif:GPSLatitude", "exif:GPSLongitude", "tiff:Make", "tiff:Model", "aux:SerialNumber", "exifEX:BodySerialNumber",
)
_DECLARATION = re.compile(r"""xmlns:([\w.-]+)\s*=\s*["']([^"']*)["']""")
_ATTRIBUTE_VALUE = re.compile(r"""\s*=\s*(["'])(.*?)\1""", re.S)  # after ``prefix:Name``
_ELEMENT_VALUE = re.compile(r"(?:\s[^>]*)?>([^<]*)<")  # after ``<prefix:Name``, up to the closing tag


def jpeg_xmp(data: bytes) -> str | None:
    """The packet of the XMP APP1 segment, found by walking the segments before the image data."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xDA, 0xD9):  # image data or end: metadata comes before
            return None
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        end = pos + 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker == 0xE1 and data[pos + 4 : pos + 4 + len(XMP_JPEG_HEADER)] == XMP_JPEG_HEADER:
            return data[pos + 4 + len(XMP_JPEG_HEADER) : end].decode("utf-8", errors="replace")
        pos = end
    return None


def png_exif_and_xmp(data: bytes) -> tuple[bytes | None, str | None]:
    """The eXIf chunk (a TIFF block) and the XMP iTXt text of a PNG, without decoding any pixels.

    Pillow's PNG reader decodes the whole image to look for an eXIf chunk after the image data,
    which is where many writers put it; walking the chunks costs nothing.
    """
    exif = xmp = None
    pos = len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"eXIf" and exif is None:
            exif = body.removeprefix(b"Exif\x00\x00")
        elif kind == b"iTXt" and body.startswith(b"XML:com.adobe.xmp\x00") and xmp is None:
            xmp = _itxt_text(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    return exif, xmp


def _itxt_text(body: bytes) -> str | None:
    """iTXt: keyword NUL, compressed flag, method, language NUL, translated keyword NUL, text."""
    keyword_end = body.index(b"\x00")
    compressed = body[keyword_end + 1 : keyword_end + 2] == b"\x01"
    rest = body[keyword_end + 3 :].split(b"\x00", 2)
    if len(rest) < 3:
        return None
    text = rest[2]
    if compressed:
        try:
            text = zlib.decompressobj().decompress(text, MAX_XMP_BYTES)
        except zlib.error:
            return None
    return text.decode("utf-8", errors="replace")


def embedded_xmp(data: bytes) -> str | None:
    """The packet of any other container (WebP chunk, HEIC/AVIF item, ...): XMP is stored as plain text."""
    for tag in (b"x:xmpmeta", b"x:xapmeta"):  # xapmeta: pre-2002 writers
        start = data.find(b"<" + tag)
        end = data.find(b"</" + tag + b">", start, start + MAX_XMP_BYTES) if start >= 0 else -1
        if end >= 0:
            return data[start : end + len(tag) + 3].decode("utf-8", errors="replace")
    return None


def xmp_properties(packet: str) -> dict[str, str]:
    """The simple values of PROPERTIES in a packet: attribute (``exif:Make="..."``) or element form."""
    if len(packet) > MAX_XMP_BYTES or "<!DOCTYPE" in packet:  # XMP forbids DTDs: no entity games
        return {}
    prefixes: dict[str, list[str]] = {}
    for prefix, uri in _DECLARATION.findall(packet):
        prefixes.setdefault(uri, []).append(prefix)
    values: dict[str, str] = {}
    for name in PROPERTIES:
        ours, local = name.split(":")
        for prefix in prefixes.get(NAMESPACES[ours], ()):
            value = _property(packet, f"{prefix}:{local}")
            if value is not None:
                values[name] = html.unescape(value).strip()
                break
    return values


def _property(packet: str, qualified: str) -> str | None:
    """The value of ``prefix:Name`` as an attribute or a simple element; found by plain search
    (a regular expression over a 60 kB Lightroom packet costs milliseconds per property)."""
    at = packet.find(qualified)
    while at >= 0:
        end = at + len(qualified)
        before = packet[at - 1] if at else ""
        if before == "<":
            element = _ELEMENT_VALUE.match(packet, end)
            if element and packet.startswith(f"/{qualified}>", element.end()):
                return element.group(1)
        elif before.isspace():
            attribute = _ATTRIBUTE_VALUE.match(packet, end)
            if attribute:
                return attribute.group(2)
        at = packet.find(qualified, end)
    return None
