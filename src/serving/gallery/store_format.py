"""The gallery's files, byte by byte: the store (``gallery.npz``) and the members of an exported zip.

``gallery.npz`` holds two arrays: ``meta`` (one JSON text: format version, the model that embedded
the photos, the landmarks) and ``vectors`` (every enrolled photo's embedding, landmark after landmark).
Thumbnails are JPEGs named by their content's hash (`thumb_name`).

Nothing read here is trusted: every size a zip or .npy header declares is checked against a cap
before one byte of it is read or allocated, so a small file cannot claim gigabytes, and every field is
checked (`src.serving.gallery.validation`). These functions build no `Gallery`: `parse_store` returns
the checked contents, which `src.serving.gallery.gallery` turns into one.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from src.serving.gallery.validation import THUMB_NAME, GalleryError, LandmarkFields, check_embeddings, landmark_record

FORMAT_VERSION = 1
GALLERY_FILE = "gallery.npz"
THUMBS = "thumbs"
THUMB_SIDE = 384  # short side of stored thumbnails: enough for a later model with a larger input
# Bounds on what is read from a gallery file or an export, whoever wrote it, each checked against the
# size a zip or .npy header declares before reading: far above any real gallery (a 1280-wide embedding
# is 5 KiB, so 64 MiB holds 13,000 enrolled photos; a thumbnail is ~50 KB), far below harm. Reading
# a store costs at most about three times MAX_STORE_BYTES of memory, an import one thumbnail more.
MAX_VECTORS_BYTES = 64 * 2**20
MAX_META_BYTES = 16 * 2**20
MAX_STORE_BYTES = MAX_VECTORS_BYTES + MAX_META_BYTES + 2**20  # the two arrays and the zip's framing
MAX_THUMB_BYTES = 2 * 2**20  # a stored thumbnail (THUMB_SIDE x 4 * THUMB_SIDE, JPEG q90) is under 1 MiB
MAX_EXPORT_THUMBS_BYTES = 1024 * 2**20  # all thumbnails of one export together
MAX_EXPORT_BYTES = MAX_STORE_BYTES + MAX_EXPORT_THUMBS_BYTES + 64 * 2**20
MAX_EXPORT_ENTRIES = 200_000
MAX_MODEL_ID = 300
_ARRAY_LIMITS = {"meta.npy": MAX_META_BYTES, "vectors.npy": MAX_VECTORS_BYTES}


@dataclass
class StoreContents:
    """A store's checked contents: the model that embedded the photos, each landmark's fields and photo
    names, and one embedding per photo (landmark after landmark, in `records` order)."""

    model_id: str | None
    records: list[tuple[LandmarkFields, tuple[str, ...]]]
    vectors: np.ndarray


def thumb_name(data: bytes) -> str:
    """A thumbnail's file name: its content's hash, so a name read from a file can be checked against it."""
    return hashlib.sha256(data).hexdigest()[:24] + ".jpg"


def serialise_store(model_id: str | None, landmarks: list[dict], vectors: np.ndarray) -> bytes:
    """The bytes of gallery.npz: the landmarks (as `GalleryLandmark.to_dict` gives them) and their embeddings.
    GalleryError when the store would pass the sizes `parse_store` reads: it could not be read back."""
    meta = np.array(json.dumps({"version": FORMAT_VERSION, "model_id": model_id, "landmarks": landmarks}))
    for array, limit in ((meta, MAX_META_BYTES), (vectors, MAX_VECTORS_BYTES)):
        if array.nbytes > limit:
            raise GalleryError(f"the gallery is full: it would take {array.nbytes / 2**20:.0f} MiB (at most {limit / 2**20:.0f} MiB); "
                               "remove a landmark or teach with fewer photos")
    buffer = io.BytesIO()
    np.savez(buffer, meta=meta, vectors=vectors)
    return buffer.getvalue()


def read_npy(handle, size: int, where: str) -> np.ndarray:
    """One array of a .npz, its header checked before anything is allocated: no objects (pickles), and
    no more data declared than the member holds (a few bytes cannot claim gigabytes)."""
    version = np.lib.format.read_magic(handle)
    if version not in ((1, 0), (2, 0)):
        raise GalleryError(f"{where}: unsupported array format {version}")
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(handle)
    if dtype.hasobject:
        raise GalleryError(f"{where}: arrays of Python objects are not allowed")
    need = math.prod(shape) * dtype.itemsize
    if need > size:
        raise GalleryError(f"{where}: an array declares {need} bytes but its file holds {size}")
    data = handle.read(need)
    if len(data) != need:
        raise GalleryError(f"{where}: an array is truncated ({len(data)} of {need} bytes)")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _read_arrays(data: bytes, where: str) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(io.BytesIO(data)) as npz:
        infos = npz.infolist()
        found = sorted(info.filename for info in infos)
        if found != ["meta.npy", "vectors.npy"]:
            raise GalleryError(f"{where} must hold exactly the arrays meta and vectors, found {found[:10]}")
        arrays = {}
        for info in infos:
            limit = _ARRAY_LIMITS[info.filename]
            if info.file_size > limit:  # declared in the zip header: refused before one byte is inflated
                raise GalleryError(f"{where}: {info.filename} is too large ({info.file_size / 2**20:.0f} MiB; "
                                   f"limit {limit / 2**20:.0f} MiB)")
            with npz.open(info) as handle:
                arrays[info.filename.removesuffix(".npy")] = read_npy(handle, info.file_size, where)
    return arrays


def parse_store(data: bytes, where: str) -> StoreContents:
    """A gallery file's bytes -> its contents, every field checked; GalleryError saying what is wrong."""
    try:
        arrays = _read_arrays(data, where)
        meta_array = arrays["meta"]
        if meta_array.shape != () or meta_array.dtype.kind != "U":
            raise GalleryError(f"{where}: meta must be one JSON text")
        meta = json.loads(str(meta_array))
    except GalleryError:
        raise
    except Exception as error:  # a damaged or hostile zip/npy/JSON fails in many ways (BadZipFile, EOFError, zlib.error, ...)
        raise GalleryError(f"{where} is damaged ({type(error).__name__}: {error})") from error
    if not isinstance(meta, dict) or set(meta) != {"version", "model_id", "landmarks"}:
        raise GalleryError(f"{where}: meta must have exactly version, model_id and landmarks")
    if meta["version"] != FORMAT_VERSION:
        raise GalleryError(f"{where} is gallery format {meta['version']!r}, this version reads {FORMAT_VERSION}")
    model_id, landmarks = meta["model_id"], meta["landmarks"]
    if model_id is not None and (not isinstance(model_id, str) or len(model_id) > MAX_MODEL_ID or not model_id.isprintable()):
        raise GalleryError(f"{where}: model_id must be a short printable text")
    if not isinstance(landmarks, list):
        raise GalleryError(f"{where}: landmarks must be a list")
    records = [landmark_record(raw, where) for raw in landmarks]
    if records and model_id is None:
        raise GalleryError(f"{where}: landmarks without the model_id that embedded them")
    seen: set[str] = set()
    for fields, _ in records:
        if fields.name in seen:
            raise GalleryError(f"{where} lists the landmark {fields.name!r} twice")
        seen.add(fields.name)
    vectors = check_embeddings(arrays["vectors"], sum(len(photos) for _, photos in records), where)
    return StoreContents(model_id, records, vectors)


# ---- the members of an exported zip --------------------------------------------------------------


def export_members(archive: zipfile.ZipFile, where: str) -> dict[str, zipfile.ZipInfo]:
    """The archive's entries by name: gallery.npz and thumbs/<hash>.jpg only, each once."""
    infos = archive.infolist()
    if len(infos) > MAX_EXPORT_ENTRIES:
        raise GalleryError(f"{where} has {len(infos)} entries (at most {MAX_EXPORT_ENTRIES})")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        if name == f"{THUMBS}/" and info.is_dir():
            continue
        if name != GALLERY_FILE and not (name.startswith(f"{THUMBS}/") and THUMB_NAME.fullmatch(name[len(THUMBS) + 1 :])):
            raise GalleryError(f"{where} is not a gallery export: unexpected entry {name[:100]!r}")
        if name in members:
            raise GalleryError(f"{where} holds {name!r} twice")
        members[name] = info
    return members


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, where: str) -> bytes:
    """A member's bytes, refused from its declared size before reading, and cut off if it lies about it."""
    if info.file_size > limit:
        raise GalleryError(f"{where}: {info.filename} is too large ({info.file_size / 2**20:.0f} MiB; limit {limit / 2**20:.0f} MiB)")
    with archive.open(info) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise GalleryError(f"{where}: {info.filename} is larger than it declares")
    return data


def check_thumbnail(data: bytes, name: str, where: str) -> None:
    """An archived thumbnail: named by its own hash and a JPEG of thumbnail size (header only, no decode)."""
    if thumb_name(data) != name:
        raise GalleryError(f"{where}: thumbs/{name} does not match its name (content hash)")
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise GalleryError(f"{where}: thumbs/{name} is not a JPEG thumbnail ({error})") from error
    if min(width, height) < 1 or max(width, height) > THUMB_SIDE * 4:
        raise GalleryError(f"{where}: thumbs/{name} is {width}x{height} px, not a thumbnail")
