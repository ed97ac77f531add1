"""When and by which device a photo was taken, and its own GPS: what the library context reads per photo.

`read_photo_meta` reads the photo's bytes (already read, bounded, by `src.data.images.read_photo_file`)
and never raises: whatever is missing or wrong becomes a sentence in ``problems``. Sources, in order:

* EXIF: the block is found where the tagger's writer finds it (`exif_blocks.find_exif`: JPEG APP1,
  WebP EXIF chunk), in a PNG eXIf chunk, or is the TIFF/DNG file itself, and only the wanted tags
  are decoded (`photo_meta_exif`, for speed); HEIC/AVIF go through `exif.load_exif` (pillow-heif);
* the XMP equivalents (`photo_meta_xmp`), only for what EXIF does not have at all: a value EXIF
  has but that is wrong (a year-0 date, a latitude of 213) stays refused, with its message;
* a Google Photos Takeout sidecar (`photo_meta_takeout.read_takeout_sidecar`, merged by
  `with_sidecar`), for what the photo itself lacks.

No pixel is decoded. The time of a photo is kept as the device wrote it (``taken_local``, the
wall time of the device's clock) apart from the offset the device wrote (``offset``) and the GPS
receiver's UTC time (``gps_utc``): which clock to trust is decided later, per device, from the
whole library (issue 37), never guessed here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from src.data.images import BadImageError, image_format
from src.serving.locate.photo_meta_exif import (
    GPS_DATE_STAMP,
    GPS_LATITUDE,
    GPS_LONGITUDE,
    GPS_TIME_STAMP,
    TAG_BODY_SERIAL,
    TAG_CAMERA_SERIAL,
    TAG_DATETIME_ORIGINAL,
    TAG_MAKE,
    TAG_MODEL,
    TAG_OFFSET_TIME,
    TAG_OFFSET_TIME_ORIGINAL,
    TAG_SUBSEC_ORIGINAL,
    TAG_XMP,
    ExifTags,
    gps_position,
    read_tags,
    tags_of_pillow,
)
from src.serving.locate.photo_meta_values import (
    TimeLimits,
    checked_position,
    gps_moment,
    gps_seconds_of_day,
    is_blank,
    parse_datetime,
    parse_gps_date,
    parse_offset,
    parse_subseconds,
    parse_xmp_coordinate,
    text_of,
)
from src.serving.locate.photo_meta_xmp import (
    PNG_SIGNATURE,
    embedded_xmp,
    jpeg_xmp,
    png_exif_and_xmp,
    xmp_properties,
)
from src.serving.metadata.exif import load_exif
from src.serving.metadata.exif_blocks import MalformedError, container_of, find_exif

XMP_TAKEN = ("exif:DateTimeOriginal", "photoshop:DateCreated", "xmp:CreateDate")

# The container a file's first bytes say it is, and the one its name says (to report mislabelled files).
_EXTENSION_FORMATS = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".png": "PNG", ".webp": "WEBP", ".tif": "TIFF",
    ".tiff": "TIFF", ".dng": "TIFF", ".heic": "HEIF", ".heif": "HEIF", ".hif": "HEIF", ".avif": "AVIF",
}


@dataclass(frozen=True)
class PhotoMeta:
    """What one photo says about when, by which device and where it was taken."""

    taken_local: datetime | None = None  # DateTimeOriginal (+ SubSecTimeOriginal), naive: the device clock's wall time
    offset: timedelta | None = None  # OffsetTimeOriginal, else OffsetTime, as written (None: not written)
    gps_utc: datetime | None = None  # GPSDateStamp + GPSTimeStamp, aware UTC (None without a date: no day is guessed)
    position: tuple[float, float] | None = None  # the photo's own valid GPS (latitude, longitude)
    make: str = ""
    model: str = ""
    serial: str = ""  # BodySerialNumber, CameraSerialNumber (DNG) or XMP aux:SerialNumber; maker notes are not read
    problems: tuple[str, ...] = ()

    @property
    def time_utc(self) -> datetime | None:
        """The capture time in UTC when the device wrote its offset; None when its clock is unknown."""
        if self.taken_local is None or self.offset is None:
            return None
        return (self.taken_local - self.offset).replace(tzinfo=timezone.utc)


@dataclass
class _Found:
    """The fields while they are being read (mutable), with the problems met on the way."""

    values: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    absent: set[str] = field(default_factory=set)  # fields the EXIF does not have at all: XMP may fill them

    def note(self, problem: str | None) -> None:
        if problem and problem not in self.problems:
            self.problems.append(problem)


def read_photo_meta(data: bytes, name: str = "", now: datetime | None = None) -> PhotoMeta:
    """Times, device and own GPS of a photo's bytes; never raises: problems say what was wrong.

    name: the file name, to recognise a file whose name lies about its format (a JPEG named .png).
    now: what "in the future" is measured against (aware; default the current time).
    """
    limits = TimeLimits(now or datetime.now(timezone.utc))
    found = _Found()
    found.note(_mislabelled(data, name))
    try:
        tags, packet = _tags_and_packet(data, found)
    except BadImageError:
        return PhotoMeta(problems=(*found.problems, "not an image file (format not recognised): no metadata read"))
    except Exception as error:  # untrusted bytes: a parser's surprise is this file's problem, not the run's
        return PhotoMeta(problems=(*found.problems, f"metadata could not be read ({type(error).__name__}: {error})"))
    try:
        _read_exif(tags, found, limits)
        if packet and (found.absent or not all(found.values.get(key) for key in ("make", "model", "serial"))):
            _read_xmp(xmp_properties(packet), found, limits)
    except Exception as error:  # same reason: keep what was read, say what failed
        found.note(f"metadata partly unreadable ({type(error).__name__}: {error})")
    values = found.values
    return PhotoMeta(
        taken_local=values.get("taken_local"), offset=values.get("offset"), gps_utc=values.get("gps_utc"),
        position=values.get("position"), make=values.get("make", ""), model=values.get("model", ""),
        serial=values.get("serial", ""), problems=tuple(found.problems),
    )


def _tags_and_packet(data: bytes, found: _Found) -> tuple[ExifTags | None, str | None]:
    """The wanted EXIF tags and the XMP packet text of any supported container."""
    if data.startswith(PNG_SIGNATURE):
        tiff, packet = png_exif_and_xmp(data)
        return (read_tags(tiff) if tiff else None), packet
    container = container_of(data)
    if container in ("JPEG", "WEBP"):  # the EXIF block where the tagger's writer finds it
        try:
            tiff = find_exif(data, container).tiff
        except MalformedError as error:
            found.note(f"broken {container} structure ({error}): its EXIF could not be read")
            tiff = None
        return (read_tags(tiff) if tiff else None), (jpeg_xmp(data) if container == "JPEG" else embedded_xmp(data))
    if image_format(data[:32]) == "TIFF":  # TIFF, DNG: the file is the EXIF structure, with XMP as a tag
        tags = read_tags(data)
        packet = tags.ifd0.get(TAG_XMP) if tags is not None else None
        return tags, (packet.decode("utf-8", errors="replace") if isinstance(packet, bytes) else None)
    exif = load_exif(data)  # HEIC, AVIF, ... through Pillow and pillow-heif; BadImageError: not an image
    return (tags_of_pillow(exif) if exif is not None else None), embedded_xmp(data)


def _read_exif(tags: ExifTags | None, found: _Found, limits: TimeLimits) -> None:
    if tags is None:
        found.absent.update(("taken_local", "offset", "gps_utc", "position"))
        return
    for key, text in (("make", text_of(tags.ifd0.get(TAG_MAKE))), ("model", text_of(tags.ifd0.get(TAG_MODEL))),
                      ("serial", text_of(tags.exif.get(TAG_BODY_SERIAL)) or text_of(tags.ifd0.get(TAG_CAMERA_SERIAL)))):
        if text:
            found.values[key] = " ".join(text.split())
    _read_exif_time(tags.exif, found, limits)
    _read_gps_time(tags.gps, found, limits)
    position, problem = gps_position(tags.gps)
    found.note(problem)
    if position is not None:
        found.values["position"] = position
    elif GPS_LATITUDE not in tags.gps and GPS_LONGITUDE not in tags.gps:
        found.absent.add("position")


def _read_exif_time(exif_ifd: dict, found: _Found, limits: TimeLimits) -> None:
    text = text_of(exif_ifd.get(TAG_DATETIME_ORIGINAL))
    taken, suffix_offset, problem = parse_datetime(text, "DateTimeOriginal", limits)
    found.note(problem)
    if is_blank(text):
        found.absent.add("taken_local")
    if taken is not None:
        fraction, problem = parse_subseconds(text_of(exif_ifd.get(TAG_SUBSEC_ORIGINAL)), "SubSecTimeOriginal")
        found.note(problem)
        found.values["taken_local"] = taken + fraction
    offset = None
    for tag, label in ((TAG_OFFSET_TIME_ORIGINAL, "OffsetTimeOriginal"), (TAG_OFFSET_TIME, "OffsetTime")):
        offset, problem = parse_offset(text_of(exif_ifd.get(tag)), label)
        found.note(problem)
        if offset is not None:
            break
    offset = offset if offset is not None else suffix_offset
    if offset is not None:
        found.values["offset"] = offset
    else:
        found.absent.add("offset")


def _read_gps_time(gps: dict, found: _Found, limits: TimeLimits) -> None:
    date_text = text_of(gps.get(GPS_DATE_STAMP))
    day, date_problem = parse_gps_date(date_text, limits)
    seconds, time_problem = gps_seconds_of_day(gps.get(GPS_TIME_STAMP))
    found.note(date_problem)
    found.note(time_problem)
    if day is not None and seconds is not None:
        found.values["gps_utc"] = gps_moment(day, seconds)
        return
    if seconds is not None and not date_text.strip(" :-"):
        found.note("GPS time without a date: ignored (the day is never guessed)")
    elif day is not None and GPS_TIME_STAMP not in gps:
        found.note("GPS date without a time of day: ignored")
    if GPS_DATE_STAMP not in gps and GPS_TIME_STAMP not in gps:
        found.absent.add("gps_utc")


def _read_xmp(properties: dict[str, str], found: _Found, limits: TimeLimits) -> None:
    """Fill what EXIF lacks from the packet's XMP equivalents."""
    values = found.values
    for key, names in (("make", ("tiff:Make",)), ("model", ("tiff:Model",)),
                       ("serial", ("aux:SerialNumber", "exifEX:BodySerialNumber"))):
        text = next((properties[name] for name in names if properties.get(name)), "")
        if text and not values.get(key):
            values[key] = " ".join(text.split())
    if "taken_local" in found.absent:
        _read_xmp_taken(properties, found, limits)
    if "gps_utc" in found.absent and properties.get("exif:GPSTimeStamp"):
        moment, offset, problem = parse_datetime(properties["exif:GPSTimeStamp"], "XMP exif:GPSTimeStamp", limits)
        found.note(problem)
        if moment is not None:  # XMP's GPSTimeStamp is UTC unless it says otherwise
            values["gps_utc"] = (moment - (offset or timedelta(0))).replace(tzinfo=timezone.utc)
    if "position" in found.absent and properties.get("exif:GPSLatitude") and properties.get("exif:GPSLongitude"):
        latitude = parse_xmp_coordinate(properties["exif:GPSLatitude"])
        longitude = parse_xmp_coordinate(properties["exif:GPSLongitude"])
        if latitude is None or longitude is None:
            found.note("XMP GPS position is not a coordinate like 45,30.04N: ignored")
            return
        position, problem = checked_position(latitude, longitude, "XMP GPS")
        found.note(problem)
        if position is not None:
            values["position"] = position


def _read_xmp_taken(properties: dict[str, str], found: _Found, limits: TimeLimits) -> None:
    """The first usable XMP capture time, with its zone suffix when EXIF wrote no offset.

    A zone is only taken with an XMP time, never added to the EXIF time: photo software writes
    the computer's zone beside a camera's wall time, which says nothing about the camera's clock.
    """
    problems = []
    for name in XMP_TAKEN:
        if name in properties:
            taken, offset, problem = parse_datetime(properties[name], f"XMP {name}", limits)
            if taken is not None:
                found.values["taken_local"] = taken
                if offset is not None and "offset" in found.absent:
                    found.values["offset"] = offset
                return
            problems.append(problem)
    for problem in problems:  # only when no XMP time was usable: otherwise they are noise
        found.note(problem)


def _mislabelled(data: bytes, name: str) -> str | None:
    named = _EXTENSION_FORMATS.get(Path(name).suffix.lower())
    actual = image_format(data[:32])
    if named is None or actual is None or named == actual or {named, actual} <= {"HEIF", "AVIF"}:
        return None
    return f"the file is a {actual} named {Path(name).suffix}: read as a {actual}"


# --------------------------------------------------------------------------------------------
# Devices
# --------------------------------------------------------------------------------------------

_COPY_SUFFIX = re.compile(r"(\s*\(\d+\)|[-_ ](edited|copy|bearbeitet))+$", re.IGNORECASE)
_DATED_NAME = re.compile(r"([A-Za-z][A-Za-z_-]*?[_-]?)(19|20)\d\d[01]\d[0-3]\d")


def device_key(meta: PhotoMeta, file_name: str) -> str:
    """Which device took the photo: ``"Make Model #serial"`` where the photo says, else its name's pattern.

    Without make and model, photos of one unknown device share their camera's naming scheme:
    ``IMG_1234.JPG`` -> ``"IMG_####.JPG"``, ``DSC01234`` -> ``"DSC#####"``, a dated name such as
    ``PXL_20240512_093000123.jpg`` -> ``"PXL_"`` (its length varies), copies (``IMG_1234 (1).JPG``,
    ``-edited``) as the original. "" when neither says anything.
    """
    device = " ".join(part for part in (meta.make, meta.model) if part)
    if device or meta.serial:
        return f"{device} #{meta.serial}".strip() if meta.serial else device
    path = Path(file_name)
    stem = _COPY_SUFFIX.sub("", path.stem)
    dated = _DATED_NAME.match(stem)
    if dated:
        return dated.group(1)
    return re.sub(r"\d", "#", stem) + path.suffix.upper()
