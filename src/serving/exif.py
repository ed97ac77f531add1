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
import tempfile
import warnings
from pathlib import Path
from typing import Union

from PIL import Image, UnidentifiedImageError

from src.data.images import BadImageError
from src.serving.exif_blocks import (
    GPS_LATITUDE,
    GPS_LATITUDE_REF,
    GPS_LONGITUDE,
    GPS_LONGITUDE_REF,
    TAG_GPS_IFD,
    TAG_XP_KEYWORDS,
    MalformedError,
    container_of,
    embed_exif,
    find_exif,
    patch_tiff,
)

PathLike = Union[str, Path]



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
    container = container_of(data)
    if container is not None:
        # Our own locator for the formats we write, so reading and writing agree exactly on
        # which EXIF block counts, and no image header needs decoding.
        try:
            tiff = find_exif(data, container).tiff
        except MalformedError:
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
    container = container_of(data)
    if container is None:
        raise _unsupported(source, data)
    try:
        found = find_exif(data, container)
    except MalformedError as error:
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
        tiff = patch_tiff(
            found.tiff,
            latitude,
            longitude,
            description,
            words,
            # Only scrub an old GPS IFD we could read: a garbled pointer may point into data
            # that belongs to something else.
            scrub_old_gps=existing is not None,
        )
    except MalformedError as error:
        raise BadImageError(
            f"{source}: existing EXIF is malformed ({error}); refusing to rewrite it and lose data"
        ) from error
    _verify(tiff, latitude, longitude)
    new_data = embed_exif(data, container, found, tiff, source)

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


