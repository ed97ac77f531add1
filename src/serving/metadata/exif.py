"""Read and write a photo's GPS position (and caption/keywords) in its EXIF metadata.

The tagger infers where a photo was taken from the landmark in it; this module writes that
position back so photo managers (Windows Explorer, Lightroom, Apple/Google Photos, exiftool)
show it on a map.

Design choices, because the photo is someone's original:

* Pixels are never re-encoded. Only the EXIF block and the XMP packet are replaced (JPEG APP1
  segments, WebP EXIF/XMP chunks); every other byte of the file stays as it was. A TIFF or DNG file
  is itself a TIFF block and is patched the same way (its XMP in IFD0); PNG is written by exiv2
  (both in `src.serving.metadata.whole_file_writers`); HEIC cannot be written (use a sidecar,
  `src.serving.tagger.tag_writer`).
* Copies validate as cleanly as their originals (`exiftool -validate`, tests/test_valid_files.py).
* Existing EXIF is patched append-only rather than decoded and re-serialised: a new IFD0 and GPS
  IFD are appended to the old TIFF block and the header is pointed at them. Everything else (maker
  notes whose internal offsets are absolute, vendor tags no library knows, the thumbnail) keeps
  its exact bytes and offsets. A load/dump round trip through piexif would drop unknown tags and
  silently break maker notes, and so would exiv2, which re-serialises the block (docs/serving.md).
* The photo's own GPS wins: writing over an existing position needs ``overwrite=True``.
* Files are replaced atomically (temp file + ``os.replace``), so tagging in place either fully
  succeeds or leaves the original untouched.

Public API: `read_gps`, `has_gps`, `read_keywords`, `write_location`, `UnsupportedFormatError`,
`ExistingGPSError`; for readers of more than the position: `load_exif`, `gps_from_exif`.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from src.data.images import MAX_FILE_BYTES, BadImageError, read_photo_file
from src.serving.metadata.exif_blocks import (
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
from src.serving.metadata.place_values import check_coordinate, check_radius, check_text, clean_keywords
from src.serving.metadata.safe_write import write_atomically
from src.serving.metadata.xmp import (
    Place,
    build_packet,
    embed_jpeg_xmp,
    embed_webp_xmp,
    packet_of,
)

PathLike = str | Path
Source = str | Path | bytes



class UnsupportedFormatError(ValueError):
    """The photo's format cannot hold the tags in the file (HEIC, GIF, BMP, animated WebP): use a sidecar."""


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


def _bytes_of(source: Source, max_bytes: int = MAX_FILE_BYTES) -> tuple[bytes, Path | None]:
    """A photo's bytes, read without blocking on FIFOs/devices and bounded in size, and its path (None for bytes)."""
    if isinstance(source, bytes):
        return source, None
    return read_photo_file(source, max_bytes), Path(source)


def read_gps(path: Source) -> tuple[float, float] | None:
    """Return the photo's ``(latitude, longitude)`` in signed decimal degrees, or None.

    None means there is no usable position: no EXIF, no GPS IFD, a missing or invalid N/S/E/W
    reference (the hemisphere would be a guess), a zero denominator, or a value out of range.
    Any image format Pillow can open is read (JPEG, WebP, TIFF, PNG eXIf, HEIC with pillow-heif).

    path: a file, or the photo's bytes already read.

    Raises:
        OSError: the file cannot be read (missing, no permission).
        BadImageError: the bytes are not a recognisable image at all (e.g. empty or a text file), or
            the path is not a regular file (a folder, FIFO, device) or is over MAX_FILE_BYTES.
    A readable image never raises, however garbled its metadata.
    """
    data, path = _bytes_of(path)
    exif = load_exif(data, path)
    return gps_from_exif(exif) if exif is not None else None


def has_gps(path: Source) -> bool:
    """True when `read_gps` finds a usable position (same errors as `read_gps`)."""
    return read_gps(path) is not None


def read_keywords(path: Source) -> list[str]:
    """Keywords from the Windows ``XPKeywords`` tag (UTF-16LE, ``;``-separated); [] if none.

    Same errors as `read_gps`; a garbled tag reads as [].
    """
    data, path = _bytes_of(path)
    exif = load_exif(data, path)
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


def load_exif(data: bytes, path: Path | None = None) -> Image.Exif | None:
    """Parse the EXIF of any image's bytes; None when it has none or it cannot be parsed (BadImageError: not an
    image, naming `path` where given: callers that name the file themselves pass none)."""
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
        raise BadImageError(f"{path}: not an image file (format not recognised)" if path else "not an image file (format not recognised)") from error
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


def gps_from_exif(exif: Image.Exif) -> tuple[float, float] | None:
    """`read_gps`'s position from already parsed EXIF: ``(latitude, longitude)`` or None, never raises."""
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
    city: str = "",
    region: str = "",
    country: str = "",
    max_bytes: int = MAX_FILE_BYTES,
    radius_m: float | None = None,
) -> Path:
    """Write a GPS position (plus optional caption, keywords and radius) into a copy of a photo.

    The copy at ``destination`` (parent folders are created; ``destination == source`` tags in
    place) differs from ``source`` only in its EXIF block: image data and all other segments or
    chunks are byte-identical, and every existing EXIF tag is kept except the ones written here:

    * the GPS IFD (replaced as a whole: GPSVersionID 2.2, N/S + E/W refs, degree/minute/second
      rationals exact to ~3e-10 degrees, GPSMapDatum WGS-84). Old GPS fields such as altitude
      describe the old fix, so they are not carried over to a new one. ``radius_m``: the position's
      radius in metres as GPSHPositioningError (and XMP exif:GPSHPositioningError); None writes none.
    * a JPEG that had no EXIF gets the IFD0 tags EXIF requires there (72 dpi, centred chroma), so a
      copy validates (``exiftool -validate``) as cleanly as its original.
    * ``description`` -> ImageDescription (UTF-8; plain ASCII stays spec-clean) and XPComment
      (UTF-16LE, which Windows shows correctly for any script). None leaves both untouched.
    * ``keywords`` -> XPKeywords (UTF-16LE, ``;``-separated), replacing old keywords; [] removes
      them, None leaves them untouched.
    * XMP beside EXIF (`src.serving.metadata.xmp.build_packet`): exif:GPSLatitude/Longitude, dc:description,
      dc:subject, photoshop:City/State/Country from city/region/country; other XMP is kept.

    JPEG, still WebP, TIFF and DNG are patched as above; PNG is written by exiv2 (EXIF + XMP).

    The result is written to a temp file in the destination folder and moved into place with
    ``os.replace``: on any failure the destination (and thus an in-place source) is unchanged.

    Raises:
        ValueError: latitude outside [-90, 90], longitude outside [-180, 180], not finite, or a
            keyword/description that cannot be stored (``;`` in a keyword, NUL characters).
        TypeError: a coordinate that is not a real number.
        ExistingGPSError (ValueError): the photo already has a position and overwrite is False.
        UnsupportedFormatError (ValueError): HEIC, GIF, BMP, animated WebP...: use a sidecar.
        BadImageError (ValueError): not an image, a broken JPEG/WebP structure, malformed
            existing EXIF (rewriting it could lose data), or EXIF too large for a JPEG segment.
        OSError: reading the source or writing the destination failed.
    """
    source, destination = Path(source), Path(destination)
    latitude = check_coordinate(latitude, "latitude", 90.0)
    longitude = check_coordinate(longitude, "longitude", 180.0)
    check_text(description, "description")
    words = clean_keywords(keywords)
    radius_m = check_radius(radius_m)

    data = read_photo_file(source, max_bytes)
    place = Place(latitude, longitude, description, words, city, region, country, radius_m=radius_m)
    container = container_of(data)
    if container is None:  # no JPEG/WebP container: the file is written whole (its own module reads through this one)
        from src.serving.metadata.whole_file_writers import write_whole_file

        new_data = write_whole_file(source, data, place, overwrite)
        destination.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(destination, new_data, mode_source=source)
        return destination
    try:
        found = find_exif(data, container)
    except MalformedError as error:
        raise BadImageError(f"{source}: broken {container} structure ({error})") from error
    if found.animated:
        raise UnsupportedFormatError(f"{source}: animated WebP is not supported, only still images")

    existing = None
    if found.tiff is not None:
        parsed = _parse_tiff(found.tiff)
        existing = gps_from_exif(parsed) if parsed is not None else None
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
            radius_m=radius_m,
            container=container,
        )
    except MalformedError as error:
        raise BadImageError(
            f"{source}: existing EXIF is malformed ({error}); refusing to rewrite it and lose data"
        ) from error
    _verify(tiff, latitude, longitude)
    new_data = embed_exif(data, container, found, tiff, source)
    packet = build_packet(place, packet_of(data))
    new_data = embed_jpeg_xmp(new_data, packet) if container == "JPEG" else embed_webp_xmp(new_data, packet)

    destination.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(destination, new_data, mode_source=source)
    return destination


def _verify(tiff: bytes, latitude: float, longitude: float) -> None:
    """Read the new block back before touching any file: never write what we cannot read."""
    parsed = _parse_tiff(tiff)
    location = gps_from_exif(parsed) if parsed is not None else None
    if location is None or abs(location[0] - latitude) > 1e-7 or abs(location[1] - longitude) > 1e-7:
        raise RuntimeError(f"internal error: GPS read back as {location}, expected {(latitude, longitude)}")
