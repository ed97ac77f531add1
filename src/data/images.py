"""Decode photos once, the same way everywhere (data set, app, service, tagger).

Every consumer of photos goes through `load_rgb`, so EXIF orientation, colour-mode
conversion, the decompression-bomb limit and JPEG draft mode behave identically.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif")

# Pillow warns above ~89 Mpx and raises above twice that; we refuse anything above this instead.
MAX_PIXELS = 60_000_000
# Largest photo file read from disk (the tagger): bigger files are refused before any byte is read.
MAX_FILE_BYTES = 200 * 1024 * 1024
# Peak memory of decoding, per pixel of the image: the compressed bytes, the decoded RGB(A) buffer and
# the copies conversion makes. Used to turn a memory budget into a number of decodes at once.
DECODE_BYTES_PER_PIXEL = 6

try:  # HEIC/HEIF support is optional (iPhone photos).
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - depends on the environment
    pass

ImageSource = str | Path | bytes | bytearray | memoryview


# Brands in an ISO-BMFF `ftyp` box (bytes 8-12) that make a file HEIF (HEIC) or AVIF. mif1/msf1 are the
# generic image/sequence brands both use; read as HEIF, which pillow-heif opens either way.
HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
AVIF_BRANDS = {b"avif", b"avis"}
BMP_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_format(head: bytes) -> str | None:
    """The image format a file's first bytes say (magic numbers; 32 bytes are enough), as Pillow names
    it: JPEG, PNG, GIF, WEBP, TIFF (DNG too), HEIF, AVIF or BMP; None if none matches. Never the name's
    word: a photo named .jpg that is a PNG is a PNG."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(PNG_SIGNATURE):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS:
        return "HEIF"
    if head[4:8] == b"ftyp" and head[8:12] in AVIF_BRANDS:
        return "AVIF"
    # "BM" alone is too weak (plenty of text starts with it): also require a known DIB header size.
    if head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in BMP_HEADER_SIZES:
        return "BMP"
    return None


class BadImageError(ValueError):
    """A file or upload that cannot be used as a photo; the message says why."""


def is_image_file(path: str | Path) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def decodes_within(memory_bytes: int, max_pixels: int = MAX_PIXELS) -> int:
    """How many photos of up to ``max_pixels`` may be decoded at once within ``memory_bytes`` (at least 1)."""
    return max(1, memory_bytes // (max_pixels * DECODE_BYTES_PER_PIXEL))


_FILE_KINDS = {stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device",
               stat.S_ISSOCK: "a socket", stat.S_ISDIR: "a folder"}


def open_regular_file(path: str | Path, max_bytes: int, what: str = "photo file") -> BinaryIO:
    """The open file at ``path`` when it is a regular file of at most ``max_bytes``; never blocks.

    A FIFO, device or socket named like a photo (or a gallery file) would block a plain ``open`` or
    ``read`` forever or grow until memory runs out (``/dev/zero``): the file is opened non-blocking
    and checked with fstat (on the open descriptor, so it cannot be swapped in between).

    what: how the file is called in the refusal ("not a photo file: it is a FIFO (named pipe)").
    Raises BadImageError (not a regular file, too large) or OSError (missing, no permission, ...).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _FILE_KINDS.items() if test(info.st_mode)), "not a regular file")
            raise BadImageError(f"not a {what}: it is {kind}")
        if info.st_size > max_bytes:
            raise BadImageError(f"the file is too large ({info.st_size / 2**20:.0f} MiB; limit {max_bytes / 2**20:.0f} MiB)")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_photo_file(path: str | Path, max_bytes: int = MAX_FILE_BYTES, what: str = "photo file") -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; never blocks and never reads more
    (`open_regular_file`). Raises BadImageError (not a regular file, too large) or OSError (missing,
    no permission, ...)."""
    with open_regular_file(path, max_bytes, what) as handle:
        data = handle.read(max_bytes + 1)  # a file that grew since fstat is still cut off
    if len(data) > max_bytes:
        raise BadImageError(f"the file is too large (more than {max_bytes / 2**20:.0f} MiB)")
    return data


def _open(source: ImageSource) -> Image.Image:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise BadImageError("the file is empty (0 bytes)")
        return Image.open(io.BytesIO(data))
    return Image.open(source)


def load_rgb(source: ImageSource, short_side: int | None = None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode a photo (path or bytes) into an upright RGB image.

    short_side: when given, shrink so the shorter side is about this many pixels. For JPEGs this uses
    Pillow's draft mode, which decodes at 1/2, 1/4 or 1/8 scale directly and is several times faster
    than decoding at full size and resizing.

    Raises BadImageError with a human-readable reason for anything that is not a usable image.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = _open(source)
            width, height = image.size
            if width * height > max_pixels:
                raise BadImageError(
                    f"the image is too large ({width}x{height} = {width * height / 1e6:.0f} Mpx; "
                    f"limit {max_pixels / 1e6:.0f} Mpx)"
                )
            if short_side is not None and image.format == "JPEG":
                scale = short_side / min(width, height)
                if scale < 1:
                    # draft() picks the largest 1/2^k reduction that stays >= the requested size.
                    image.draft("RGB", (max(1, round(width * scale)), max(1, round(height * scale))))
            image.load()
            image = ImageOps.exif_transpose(image)
            image = _to_rgb(image)
    except BadImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise BadImageError(f"the image is too large (a possible decompression bomb: {error})") from error
    except UnidentifiedImageError as error:
        raise BadImageError("not a readable image (unknown or unsupported format)") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        # Truncated or corrupt data surfaces as OSError ("image file is truncated") or similar.
        raise BadImageError(f"corrupt or truncated image ({error})") from error
    if short_side is not None and min(image.size) > short_side:
        image = ImageOps.contain(image, _fit_box(image.size, short_side), Image.Resampling.BILINEAR)
    return image


def centre_square(image: Image.Image, side: int) -> np.ndarray:
    """uint8 [side, side, 3]: the centre square of a decoded photo (already resized so its short side
    is `side`, `load_rgb`), the pixels the exported model's centre crop sees. Small photos are not
    upscaled when decoded: their square is brought to `side` here (as the model's own resize would),
    so any mix of photos stacks into one batch. numpy, not torch: serving through OpenVINO never
    imports torch."""
    width, height = image.size
    short = min(width, height)
    left, top = (width - short) // 2, (height - short) // 2
    square = image.crop((left, top, left + short, top + short))
    if short != side:
        square = square.resize((side, side), Image.Resampling.BICUBIC)
    return np.asarray(square)


def _fit_box(size: tuple[int, int], short_side: int) -> tuple[int, int]:
    width, height = size
    scale = short_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGBA/LA/P-with-transparency are composited on white; CMYK, L, I;16 etc. are converted."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit greyscale: scale to 8 bits rather than clipping.
        image = image.point(lambda value: value / 256).convert("L")
    elif image.mode in ("I", "F"):
        image = _wide_grey_to_l(image)
    return image.convert("RGB")


def _wide_grey_to_l(image: Image.Image) -> Image.Image:
    """32-bit integer or float greyscale -> 8 bits, by the range the values actually use.

    "I" holds 16-bit PNGs as well as true 32-bit TIFFs, and "F" floats are usually 0..1 but may be
    any range: scaling all of them as 16-bit turned float photos black and 32-bit ones white.
    """
    values = np.asarray(image, dtype=np.float64)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if image.mode == "F" and low >= 0.0 and high <= 1.0:
        scaled = values * 255.0  # the common float convention: 0 black, 1 white
    elif low >= 0.0 and high <= 255.0:
        scaled = values
    elif low >= 0.0 and high <= 65535.0:
        scaled = values / 257.0
    else:
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return Image.fromarray(np.nan_to_num(scaled, nan=0.0).clip(0, 255).round().astype(np.uint8), "L")
