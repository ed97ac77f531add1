"""Decode photos once, the same way everywhere (data set, app, service, tagger).

Every consumer of photos goes through `load_rgb`, so EXIF orientation, colour-mode
conversion, the decompression-bomb limit and JPEG draft mode behave identically.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Union

from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif")

# Pillow warns above ~89 Mpx and raises above twice that; we refuse anything above this instead.
MAX_PIXELS = 60_000_000

try:  # HEIC/HEIF support is optional (iPhone photos).
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - depends on the environment
    pass

ImageSource = Union[str, Path, bytes, bytearray, memoryview]


class BadImageError(ValueError):
    """A file or upload that cannot be used as a photo; the message says why."""


def is_image_file(path: Union[str, Path]) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


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
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits rather than clipping.
        image = image.point(lambda value: value / 256).convert("L")
    return image.convert("RGB")
