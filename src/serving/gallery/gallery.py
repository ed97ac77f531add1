"""The landmark gallery: landmarks a user taught from a few photos, recognised without retraining.

Each enrolled photo is kept as an embedding (from the exported model's `probabilities_and_embedding`)
and as a thumbnail. The gallery lives under ``$LANDMARK_HOME/gallery/`` (default
``~/.local/share/landmark_tagger/gallery/``), never in the repository:

    gallery.npz     one file, replaced atomically: the landmarks (JSON), their embeddings, the model id
    thumbs/*.jpg    the enrolled photos, shrunk; named by their content hash

Embeddings are only comparable within one model, so the gallery records the identity of the model
that made them (`model_id`, a hash of the model file). A recognizer with another model re-embeds
the gallery from the thumbnails (`Gallery.reembed`) instead of comparing incomparable vectors.

Writers take a file lock (`edit`), load the latest state, change it and replace the file: the
service, the app and `python -m src gallery` may write at the same time without losing an edit.
Photos are decoded and embedded before the lock is taken (`enrol`, `prepare_photos`), so the lock is
held for milliseconds.

Nothing read from a file is trusted (`src.serving.gallery.validation` checks it): the store and an export are
parsed field by field (names, positions, photo names that can only be thumbnail hashes, embeddings
finite, unit length and one per photo), thumbnails are read bounded and checked against their hash,
and an export is checked completely before one byte is written. A damaged store raises
`GalleryUnreadable`, whose message says how to restore it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout
from PIL import Image, UnidentifiedImageError

from src.data.images import MAX_FILE_BYTES, MAX_PIXELS, BadImageError, ImageSource, load_rgb, open_regular_file, read_photo_file
from src.data.landmarks import LandmarkInfo
from src.serving.gallery.gallery_index import GalleryIndex, IndexConfig
from src.serving.gallery.validation import (  # noqa: F401 - GalleryError, check_landmark, parse_tags, MAX_NAME: this module's API too
    MAX_NAME,
    MAX_PHOTOS_PER_LANDMARK,
    THUMB_NAME,
    GalleryError,
    GalleryUnreadable,
    LandmarkFields,
    check_embeddings,
    check_landmark,
    check_not_trained,
    check_photo_name,
    check_photo_size,
    landmark_fields,
    landmark_record,
    parse_tags,
    unreadable,
)

FORMAT_VERSION = 1
GALLERY_FILE = "gallery.npz"
THUMBS = "thumbs"
THUMB_SIDE = 384  # short side of stored thumbnails: enough for a later model with a larger input
# Bounds on what is read from a gallery file or an export, whoever wrote it: far above any real
# gallery (a 200-photo landmark is ~1 MB of embeddings, a thumbnail ~50 KB), far below harm.
MAX_STORE_BYTES = 1024 * 2**20
MAX_THUMB_BYTES = 16 * 2**20
MAX_EXPORT_BYTES = 4096 * 2**20
MAX_EXPORT_ENTRIES = 200_000
MAX_MODEL_ID = 300

# Decoded photos -> L2-normalised embeddings [n, D]; the recognizer's `embed`.
Embedder = Callable[[Sequence[Image.Image]], np.ndarray]


def landmark_home() -> Path:
    """$LANDMARK_HOME, else ~/.local/share/landmark_tagger (user data: never the repository)."""
    return Path(os.environ.get("LANDMARK_HOME") or Path.home() / ".local" / "share" / "landmark_tagger")


def default_gallery_dir() -> Path:
    return landmark_home() / "gallery"


@dataclass(frozen=True)
class GalleryLandmark(LandmarkFields):
    """One taught landmark: what the user said about it (validated `LandmarkFields`) and its photos
    (thumbnail file names)."""

    photos: tuple[str, ...] = ()

    @classmethod
    def of(cls, described: LandmarkFields, photos: Sequence[str]) -> GalleryLandmark:
        return cls(**{f.name: getattr(described, f.name) for f in dataclasses.fields(LandmarkFields)}, photos=tuple(photos))

    @property
    def info(self) -> LandmarkInfo:
        return LandmarkInfo(class_name=self.name, name=self.name, city=self.city, country=self.country,
                            latitude=self.latitude, longitude=self.longitude, tags=self.tags or (self.name,))

    def to_dict(self) -> dict:
        return {**asdict(self), "tags": list(self.tags), "photos": list(self.photos)}


@dataclass
class AddReport:
    """What `Gallery.add` did: the landmark (None when nothing was usable) and the photos it skipped."""

    landmark: GalleryLandmark | None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (photo, why)


@dataclass
class Enrolment:
    """Photos decoded (thumbnail size) and embedded, ready to be added under the gallery's lock: the
    slow part of teaching a landmark runs before the lock is taken (`prepare_photos`)."""

    images: list[Image.Image]
    vectors: np.ndarray  # [len(images), D], L2-normalised
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (photo, why)


def _source_name(source: ImageSource, index: int) -> str:
    return str(source) if isinstance(source, (str, Path)) else f"photo {index + 1}"


def thumb_name(data: bytes) -> str:
    """A thumbnail's file name: its content's hash, so a name read from a file can be checked against it."""
    return hashlib.sha256(data).hexdigest()[:24] + ".jpg"


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
        label = names[i] if names is not None else _source_name(source, i)
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


class Gallery:
    """Taught landmarks with their embeddings, in memory; `load`, `save` and `edit` deal with the folder."""

    def __init__(self, folder: Path, model_id: str | None = None):
        self.folder = Path(folder)
        self.model_id = model_id
        self.landmarks: dict[str, GalleryLandmark] = {}
        self.embeddings: dict[str, np.ndarray] = {}  # name -> [photos, D], rows in `photos` order

    # ---- reading and writing the folder -------------------------------------------------------
    @classmethod
    def load(cls, folder: Path | None = None) -> Gallery:
        """The gallery in `folder` (default: $LANDMARK_HOME/gallery); empty when there is none yet.
        GalleryUnreadable (naming the file and how to restore it) when the file is damaged."""
        folder = Path(folder) if folder else default_gallery_dir()
        path = folder / GALLERY_FILE
        if not os.path.lexists(path):
            return cls(folder)
        try:
            data = read_photo_file(path, MAX_STORE_BYTES, what="regular file")
            return _parse_store(data, folder, GALLERY_FILE)
        except (OSError, BadImageError, GalleryError) as error:
            raise unreadable(path, getattr(error, "strerror", None) or str(error)) from error

    def _serialise(self) -> bytes:
        names = list(self.landmarks)
        meta = {"version": FORMAT_VERSION, "model_id": self.model_id, "landmarks": [self.landmarks[n].to_dict() for n in names]}
        parts = [self.embeddings[n] for n in names if len(self.embeddings[n])]
        vectors = np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 0), np.float32)
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.array(json.dumps(meta)), vectors=vectors)
        return buffer.getvalue()

    def save(self) -> Path:
        """Replace gallery.npz atomically (write a temporary file, then rename); drop unused thumbnails."""
        self.folder.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.folder / GALLERY_FILE, self._serialise())
        used = {photo for landmark in self.landmarks.values() for photo in landmark.photos}
        for thumb in (self.folder / THUMBS).glob("*.jpg"):
            if thumb.name not in used:
                thumb.unlink(missing_ok=True)
        return self.folder / GALLERY_FILE

    # ---- what the recognizer reads ------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.landmarks)

    @property
    def dim(self) -> int | None:
        """Width of the stored embeddings (None: no photo yet)."""
        return next((v.shape[1] for v in self.embeddings.values() if v.ndim == 2 and len(v)), None)

    def __len__(self) -> int:
        return len(self.landmarks)

    def index(self, config: IndexConfig | None = None) -> GalleryIndex:
        """All enrolled embeddings, labelled by the landmark's position in `names`."""
        names = self.names
        parts = [self.embeddings[n] for n in names]
        labels = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)]) if parts else np.zeros(0, np.int64)
        dim = next((p.shape[1] for p in parts if p.ndim == 2 and len(p)), 1)
        vectors = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
        return GalleryIndex(vectors, labels, len(names), config)

    # ---- thumbnails -----------------------------------------------------------------------------
    def _store_thumbnail(self, image: Image.Image) -> str:
        thumb = image.copy()
        thumb.thumbnail((THUMB_SIDE * 4, THUMB_SIDE), Image.Resampling.BICUBIC) if thumb.height <= thumb.width else \
            thumb.thumbnail((THUMB_SIDE, THUMB_SIDE * 4), Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        thumb.save(buffer, format="JPEG", quality=90)
        return self._store_thumbnail_bytes(buffer.getvalue())

    def _store_thumbnail_bytes(self, data: bytes) -> str:
        """Write a thumbnail under its hash (atomically: a link planted at that name is replaced, not followed)."""
        name = thumb_name(data)
        path = self.folder / THUMBS / name
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, data)
        return name

    def read_thumbnail(self, name: str) -> bytes:
        """A stored thumbnail's bytes, read bounded and checked against its name (hash)."""
        path = self.folder / THUMBS / check_photo_name(name, str(self.folder / GALLERY_FILE))
        try:
            data = read_photo_file(path, MAX_THUMB_BYTES, what="thumbnail file")
        except (OSError, BadImageError) as error:
            raise GalleryError(f"the thumbnail {path} cannot be read ({getattr(error, 'strerror', None) or error})") from error
        if thumb_name(data) != name:
            raise GalleryError(f"the thumbnail {path} does not match its name (its content changed on disk)")
        return data

    # ---- changes ------------------------------------------------------------------------------
    def add(
        self, name: str, photos: Sequence[ImageSource], embed: Embedder, model_id: str, *, latitude: float, longitude: float,
        country: str = "", city: str = "", tags: str | Sequence[str] | None = None, replace: bool = False,
        trained: Sequence[str] = (), names: Sequence[str] | None = None, max_pixels: int = MAX_PIXELS,
    ) -> AddReport:
        """Enrol a landmark from photos (paths or bytes): `prepare_photos` then `add_prepared`. Unreadable
        photos are skipped and reported; with no usable photo nothing is created. An existing name needs
        replace=True; `trained`: the model's class names, which a taught landmark may not take.
        Writers that hold the lock meanwhile should call the two steps themselves (`enrol`)."""
        fields = landmark_fields(name, latitude, longitude, country=country, city=city, tags=tags, trained=trained)
        self._check_clash(fields.name, replace)  # refused before any photo is decoded
        self._check_model(model_id)
        enrolment = prepare_photos(photos, embed, names=names, max_pixels=max_pixels)
        return self.add_prepared(name, enrolment, model_id, latitude=latitude, longitude=longitude, country=country,
                                 city=city, tags=tags, replace=replace, trained=trained)

    def add_prepared(
        self, name: str, enrolment: Enrolment, model_id: str, *, latitude: float, longitude: float, country: str = "",
        city: str = "", tags: str | Sequence[str] | None = None, replace: bool = False, trained: Sequence[str] = (),
    ) -> AddReport:
        """Add photos already decoded and embedded (`prepare_photos`): only thumbnails are written here."""
        fields = landmark_fields(name, latitude, longitude, country=country, city=city, tags=tags, trained=trained)
        self._check_clash(fields.name, replace)
        self._check_model(model_id)
        report = AddReport(landmark=None, skipped=list(enrolment.skipped))
        if not enrolment.images:
            return report
        if self.landmarks and self.dim is not None and enrolment.vectors.shape[1] != self.dim:
            raise GalleryError(f"the new photos' embeddings are {enrolment.vectors.shape[1]}-dimensional, the gallery's {self.dim}")
        thumbs = tuple(self._store_thumbnail(image) for image in enrolment.images)
        landmark = GalleryLandmark.of(fields, thumbs)
        self.landmarks.pop(fields.name, None)
        self.landmarks[fields.name], self.embeddings[fields.name] = landmark, enrolment.vectors
        self.model_id = model_id
        report.landmark = landmark
        return report

    def remove(self, name: str) -> GalleryLandmark:
        if name not in self.landmarks:
            known = ", ".join(self.landmarks) or "none"
            raise GalleryError(f"the gallery has no landmark {name!r} (it has: {known})")
        self.embeddings.pop(name)
        return self.landmarks.pop(name)

    def _check_clash(self, name: str, replace: bool) -> None:
        if name in self.landmarks and not replace:
            raise GalleryError(f"the gallery already has {name!r}: pass --replace (replace=True) to replace it")

    def _check_model(self, model_id: str) -> None:
        if self.landmarks and self.model_id != model_id:
            raise GalleryError(f"the gallery was embedded by model {self.model_id}, not {model_id}: re-embed it first (Gallery.reembed)")

    def reembed(self, embed: Embedder, model_id: str) -> None:
        """Embed every stored thumbnail again with another model (the gallery then belongs to it)."""
        for name, landmark in self.landmarks.items():
            images = [load_rgb(self.read_thumbnail(photo)) for photo in landmark.photos]
            self.embeddings[name] = check_embeddings(embed(images), len(images), "the model's embeddings")
        self.model_id = model_id

    # ---- export and import --------------------------------------------------------------------
    def export(self, path: Path) -> Path:
        """One zip file with gallery.npz and the thumbnails (each once), for backup or another machine."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        photos = dict.fromkeys(photo for landmark in self.landmarks.values() for photo in landmark.photos)
        try:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
                archive.writestr(GALLERY_FILE, self._serialise())
                for photo in photos:
                    archive.writestr(f"{THUMBS}/{photo}", self.read_thumbnail(photo))
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    def merge(self, other: Gallery, embed: Embedder, model_id: str, replace: bool = False, trained: Sequence[str] = ()) -> list[str]:
        """Add `other`'s landmarks (re-embedded if another model made them: do it before taking the
        lock, `Gallery.reembed`). `other` comes from `read_export`, so every field was checked."""
        clashes = [name for name in other.landmarks if name in self.landmarks]
        if clashes and not replace:
            raise GalleryError(f"the gallery already has {', '.join(map(repr, clashes))}: pass --replace to replace them")
        for name in other.landmarks:
            check_not_trained(name, trained)
        self._check_model(model_id)
        if other.model_id != model_id:
            other.reembed(embed, model_id)
        if self.landmarks and None not in (self.dim, other.dim) and self.dim != other.dim:
            raise GalleryError(f"the imported embeddings are {other.dim}-dimensional, the gallery's {self.dim}")
        for name, landmark in other.landmarks.items():
            for photo in landmark.photos:
                self._store_thumbnail_bytes(other.read_thumbnail(photo))
            self.landmarks.pop(name, None)
            self.landmarks[name], self.embeddings[name] = landmark, other.embeddings[name]
        self.model_id = model_id
        return list(other.landmarks)


def prepare_import(incoming: Gallery, embed: Embedder, model_id: str, dim: int, trained: Sequence[str] = ()) -> None:
    """Make an export's landmarks (`read_export`) ready to merge, before the gallery's lock is taken:
    names the model already knows are refused, embeddings another model made are replaced from the
    thumbnails, and embeddings that claim to be this model's must be as wide as its own (`dim`)."""
    for name in incoming.landmarks:
        check_not_trained(name, trained)
    if incoming.model_id != model_id:
        incoming.reembed(embed, model_id)
    elif incoming.dim is not None and incoming.dim != dim:
        raise GalleryError(f"the export's embeddings are {incoming.dim}-dimensional, but it claims the model {model_id}, "
                           f"which makes {dim}-dimensional ones: refused")


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- reading gallery files: the store on disk and exported archives ---------------------------------


def _read_npy(handle, size: int, where: str) -> np.ndarray:
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


def _parse_store(data: bytes, folder: Path, where: str) -> Gallery:
    """A gallery file's bytes -> Gallery (thumbnails under `folder`), every field checked; GalleryError."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as npz:
            infos = npz.infolist()
            found = sorted(info.filename for info in infos)
            if found != ["meta.npy", "vectors.npy"]:
                raise GalleryError(f"{where} must hold exactly the arrays meta and vectors, found {found[:10]}")
            arrays = {}
            for info in infos:
                with npz.open(info) as handle:
                    arrays[info.filename.removesuffix(".npy")] = _read_npy(handle, info.file_size, where)
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
    gallery = Gallery(folder, model_id)
    records = [landmark_record(raw, where) for raw in landmarks]
    total = sum(len(photos) for _, photos in records)
    if records and model_id is None:
        raise GalleryError(f"{where}: landmarks without the model_id that embedded them")
    vectors = check_embeddings(arrays["vectors"], total, where)
    start = 0
    for fields, photos in records:
        if fields.name in gallery.landmarks:
            raise GalleryError(f"{where} lists the landmark {fields.name!r} twice")
        gallery.landmarks[fields.name] = GalleryLandmark.of(fields, photos)
        gallery.embeddings[fields.name] = vectors[start : start + len(photos)]
        start += len(photos)
    return gallery


def _check_thumbnail(data: bytes, name: str, where: str) -> None:
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


def read_export(path: Path, into: Path) -> Gallery:
    """Check an exported gallery completely, then unpack its thumbnails into the folder `into` (a new,
    temporary one) and return it. Nothing outside `into` is written, nothing is read from outside the
    archive, and nothing is written at all unless every name, position, embedding and thumbnail the
    archive holds is valid (GalleryError saying which is not)."""
    path, into = Path(path), Path(into)
    where = str(path)
    try:
        with open_regular_file(path, MAX_EXPORT_BYTES, what="gallery export (a regular file)") as handle:
            with zipfile.ZipFile(handle) as archive:
                members = _export_members(archive, where)
                if GALLERY_FILE not in members:
                    raise GalleryError(f"{where} is not a gallery export: it has no {GALLERY_FILE}")
                store = _read_member(archive, members[GALLERY_FILE], MAX_STORE_BYTES, where)
                gallery = _parse_store(store, into, f"{where}: {GALLERY_FILE}")
                thumbs = {}
                for photo in dict.fromkeys(p for landmark in gallery.landmarks.values() for p in landmark.photos):
                    info = members.get(f"{THUMBS}/{photo}")
                    if info is None:
                        raise GalleryError(f"{where} lists the photo {photo} but does not hold thumbs/{photo}")
                    thumbs[photo] = _read_member(archive, info, MAX_THUMB_BYTES, where)
                    _check_thumbnail(thumbs[photo], photo, where)
    except GalleryError:
        raise
    except (OSError, BadImageError) as error:
        raise GalleryError(f"{where} cannot be read ({getattr(error, 'strerror', None) or error})") from error
    except Exception as error:  # BadZipFile, zlib.error, NotImplementedError (compression), RuntimeError (encrypted), ...
        raise GalleryError(f"{where} is not a gallery export ({type(error).__name__}: {error})") from error
    (into / THUMBS).mkdir(parents=True, exist_ok=True)
    for photo, data in thumbs.items():
        (into / THUMBS / photo).write_bytes(data)
    return gallery


def _export_members(archive: zipfile.ZipFile, where: str) -> dict[str, zipfile.ZipInfo]:
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


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, where: str) -> bytes:
    if info.file_size > limit:
        raise GalleryError(f"{where}: {info.filename} is too large ({info.file_size / 2**20:.0f} MiB; limit {limit / 2**20:.0f} MiB)")
    with archive.open(info) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise GalleryError(f"{where}: {info.filename} is larger than it declares")
    return data


@contextlib.contextmanager
def edit(folder: Path | None = None, timeout: float = 60.0) -> Iterator[Gallery]:
    """Lock the gallery folder, load it, let the caller change it, save it (not on an exception)."""
    folder = Path(folder) if folder else default_gallery_dir()
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / ".lock"), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise GalleryError(f"the gallery {folder} is locked by another writer (waited {timeout:g} s): try again when it is done") from None
    try:
        gallery = Gallery.load(folder)
        yield gallery
        gallery.save()
    finally:
        lock.release()


def enrol(
    folder: Path | None, name: str, photos: Sequence[ImageSource], embed: Embedder, model_id: str, *, latitude: float,
    longitude: float, country: str = "", city: str = "", tags: str | Sequence[str] | None = None, replace: bool = False,
    trained: Sequence[str] = (), names: Sequence[str] | None = None, max_pixels: int = MAX_PIXELS,
) -> AddReport:
    """Teach a landmark the way every writer should: check its fields, decode and embed its photos, and
    only then lock the gallery to store them (a DELETE or another add never waits for decoding)."""
    landmark_fields(name, latitude, longitude, country=country, city=city, tags=tags, trained=trained)
    enrolment = prepare_photos(photos, embed, names=names, max_pixels=max_pixels)
    if not enrolment.images:
        return AddReport(landmark=None, skipped=enrolment.skipped)
    with edit(folder) as gallery:
        return gallery.add_prepared(name, enrolment, model_id, latitude=latitude, longitude=longitude, country=country,
                                    city=city, tags=tags, replace=replace, trained=trained)
