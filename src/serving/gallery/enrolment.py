"""Photos about to be taught: read bounded, decoded at thumbnail size, embedded, before any lock is taken.

Teaching a landmark has a slow part (reading, decoding and embedding its photos) and a fast one
(writing thumbnails and the store under the gallery's lock). `prepare_photos` is the slow part, so a
writer holds the lock for milliseconds; `encode_thumbnail` is how every stored thumbnail is made.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from src.data.images import MAX_FILE_BYTES, MAX_PIXELS, BadImageError, ImageSource, load_rgb, read_photo_file
from src.serving.gallery.store_format import THUMB_SIDE
from src.serving.gallery.validation import MAX_PHOTOS_PER_LANDMARK, GalleryError, check_embeddings, check_photo_size

# Decoded photos -> L2-normalised embeddings [n, D]; the recognizer's `embed`.
Embedder = Callable[[Sequence[Image.Image]], np.ndarray]


@dataclass
class Enrolment:
    """Photos decoded (thumbnail size) and embedded, ready to be added under the gallery's lock: the
    slow part of teaching a landmark runs before the lock is taken (`prepare_photos`)."""

    images: list[Image.Image]
    vectors: np.ndarray  # [len(images), D], L2-normalised
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (photo, why)


def source_name(source: ImageSource, index: int) -> str:
    """What to call a photo in a report when no name was given: its path, else "photo N"."""
    return str(source) if isinstance(source, (str, Path)) else f"photo {index + 1}"


def encode_thumbnail(image: Image.Image) -> bytes:
    """A decoded photo as a stored thumbnail: short side at most THUMB_SIDE, JPEG quality 90."""
    thumb = image.copy()
    box = (THUMB_SIDE * 4, THUMB_SIDE) if thumb.height <= thumb.width else (THUMB_SIDE, THUMB_SIDE * 4)
    thumb.thumbnail(box, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def prepare_photos(
    photos: Sequence[ImageSource], embed: Embedder, *, names: Sequence[str] | None = None,
    max_pixels: int = MAX_PIXELS, max_file_bytes: int = MAX_FILE_BYTES,
) -> Enrolment:
    """Read, decode (shrunk to thumbnail size, one photo at a time) and embed enrolment photos; no lock.

    names: what to call each photo in the report (an upload's file name); default its path or "photo N".
    Files are read bounded and without blocking (a FIFO or /dev/zero is skipped with the reason), images
    over `max_pixels` are refused before decoding (the budget /v1/predict obeys), photos under 32 px a
    side are refused as /v1/predict refuses to name them, and a photo given twice is used once.
    """
    if len(photos) > MAX_PHOTOS_PER_LANDMARK:
        raise GalleryError(f"at most {MAX_PHOTOS_PER_LANDMARK} photos per landmark, got {len(photos)}")
    images: list[Image.Image] = []
    skipped: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for i, source in enumerate(photos):
        label = names[i] if names is not None else source_name(source, i)
        try:
            data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else read_photo_file(source, max_file_bytes)
            digest = hashlib.sha256(data).hexdigest()
            if digest in seen:
                skipped.append((label, f"the same photo as {seen[digest]}"))
                continue
            image = load_rgb(data, short_side=THUMB_SIDE, max_pixels=max_pixels)
            check_photo_size(image.size)
        except (BadImageError, GalleryError) as error:
            skipped.append((label, str(error)))
            continue
        except OSError as error:  # missing, no permission, a folder, ...
            skipped.append((label, error.strerror or str(error)))
            continue
        seen[digest] = label
        images.append(image)
    vectors = check_embeddings(embed(images), len(images), "the model's embeddings") if images else np.zeros((0, 0), np.float32)
    return Enrolment(images, vectors, skipped)
