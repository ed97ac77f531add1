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

Nothing read from a file is trusted (`src.serving.gallery.validation` checks it): the store is
parsed field by field (`src.serving.gallery.store_format`: names, positions, photo names that can only
be thumbnail hashes, embeddings finite, unit length and one per photo), thumbnails are read bounded and
checked against their hash, and an export is checked completely before one byte is written
(`src.serving.gallery.archive`). A damaged store raises `GalleryUnreadable`, whose message says how
to restore it. Photos are read and embedded by `src.serving.gallery.enrolment`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout
from PIL import Image

from src.data.images import MAX_PIXELS, BadImageError, ImageSource, load_rgb, open_regular_file, read_photo_file
from src.data.landmarks import LandmarkInfo
from src.serving.gallery.enrolment import Embedder, Enrolment, encode_thumbnail, prepare_photos  # noqa: F401 - this module's API too
from src.serving.gallery.gallery_index import GalleryIndex, IndexConfig
from src.serving.gallery.store_format import (  # noqa: F401 - GALLERY_FILE, thumb_name: this module's API too
    GALLERY_FILE,
    MAX_STORE_BYTES,
    MAX_THUMB_BYTES,
    THUMBS,
    StoreContents,
    parse_store,
    serialise_store,
    thumb_name,
)
from src.serving.gallery.validation import (  # noqa: F401 - GalleryError, GalleryUnreadable, check_landmark, parse_tags, MAX_NAME: this module's API too
    MAX_NAME,
    GalleryError,
    GalleryStorageError,
    GalleryUnreadable,
    LandmarkFields,
    check_embeddings,
    check_landmark,
    check_not_trained,
    check_photo_name,
    landmark_fields,
    name_key,
    parse_tags,
    storage_error,
    unreadable,
)
from src.home import landmark_home  # $LANDMARK_HOME, defined once for every user file (imported from here too)
from src.serving.metadata.safe_write import remove_stale_temp_files, write_atomically


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


class Gallery:
    """Taught landmarks with their embeddings, in memory; `load`, `save` and `edit` deal with the folder."""

    def __init__(self, folder: Path, model_id: str | None = None):
        self.folder = Path(folder)
        self.model_id = model_id
        self.landmarks: dict[str, GalleryLandmark] = {}
        self.embeddings: dict[str, np.ndarray] = {}  # name -> [photos, D], rows in `photos` order
        # Thumbnails the store on disk lists, and those written since: a failed edit removes the
        # difference, so a full disk leaves no orphan thumbnails behind (`discard_unsaved`).
        self.saved_photos: set[str] = set()
        self.written_photos: set[str] = set()

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
            with open_regular_file(path, MAX_STORE_BYTES, what="regular file") as handle:
                # As much as the file holds (open_regular_file checked it is at most the cap), not the cap itself.
                data = handle.read(os.fstat(handle.fileno()).st_size + 1)
            return cls.from_contents(folder, parse_store(data, GALLERY_FILE))
        except (OSError, BadImageError, GalleryError) as error:
            raise unreadable(path, getattr(error, "strerror", None) or str(error)) from error

    @classmethod
    def from_contents(cls, folder: Path, contents: StoreContents) -> Gallery:
        """A gallery from a store's checked contents (`parse_store`), its thumbnails under `folder`."""
        gallery = cls(folder, contents.model_id)
        start = 0
        for fields, photos in contents.records:
            gallery.landmarks[fields.name] = GalleryLandmark.of(fields, photos)
            gallery.embeddings[fields.name] = contents.vectors[start : start + len(photos)]
            start += len(photos)
        gallery.saved_photos = gallery.photos
        return gallery

    def _serialise(self) -> bytes:
        names = list(self.landmarks)
        parts = [self.embeddings[n] for n in names if len(self.embeddings[n])]
        vectors = np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 0), np.float32)
        return serialise_store(self.model_id, [self.landmarks[n].to_dict() for n in names], vectors)

    def save(self) -> Path:
        """Replace gallery.npz atomically (a fsynced temporary file, then rename); drop unused thumbnails
        and the temporary files a killed writer left (`remove_stale_temp_files` skips live writers')."""
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomically(self.folder / GALLERY_FILE, self._serialise())
        self.saved_photos, self.written_photos = self.photos, set()
        thumbs = self.folder / THUMBS
        if thumbs.is_dir():
            with contextlib.suppress(OSError):  # the store is saved: a thumbnail left over is only clutter
                for thumb in thumbs.glob("*.jpg"):
                    if thumb.name not in self.saved_photos:
                        thumb.unlink(missing_ok=True)
            remove_stale_temp_files(thumbs)
        remove_stale_temp_files(self.folder)
        return self.folder / GALLERY_FILE

    def discard_unsaved(self) -> None:
        """Remove the thumbnails written since the last load or save that the store on disk does not list
        (an edit that failed, e.g. on a full disk)."""
        for photo in self.written_photos - self.saved_photos:
            with contextlib.suppress(OSError):
                (self.folder / THUMBS / photo).unlink(missing_ok=True)
        self.written_photos = set()

    @property
    def photos(self) -> set[str]:
        """Every thumbnail the landmarks list."""
        return {photo for landmark in self.landmarks.values() for photo in landmark.photos}

    def find(self, name: str) -> str | None:
        """The stored name that is the same landmark as `name` (`name_key`: case, Unicode form and
        look-alike letters do not matter), or None."""
        key = name_key(name)
        return next((stored for stored in self.landmarks if name_key(stored) == key), None)

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
        return self._store_thumbnail_bytes(encode_thumbnail(image))

    def _store_thumbnail_bytes(self, data: bytes) -> str:
        """Write a thumbnail under its hash (atomically: a link planted at that name is replaced, not followed)."""
        name = thumb_name(data)
        path = self.folder / THUMBS / name
        if path.parent.exists() and not path.parent.is_dir():
            raise GalleryStorageError(f"{path.parent} is not a folder (a file is in the way of the gallery's thumbnails): "
                                      "move it away and try again; nothing was changed")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data)
        self.written_photos.add(name)
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
        self, name: str, photos: Sequence[ImageSource], embed: Embedder, model_id: str, *, latitude: float | None = None,
        longitude: float | None = None, country: str = "", city: str = "", tags: str | Sequence[str] | None = None, replace: bool = False,
        trained: Sequence[str] = (), names: Sequence[str] | None = None, max_pixels: int = MAX_PIXELS,
    ) -> AddReport:
        """Enrol a landmark from photos (paths or bytes): `prepare_photos` then `add_prepared`. Unreadable
        photos are skipped and reported; with no usable photo nothing is created. An existing name needs
        replace=True; `trained`: the model's class names, which a taught landmark may not take. Without
        latitude and longitude (or with 0, 0) the landmark has no position: it is named, never placed.
        Writers that hold the lock meanwhile should call the two steps themselves (`enrol`)."""
        fields = landmark_fields(name, latitude, longitude, country=country, city=city, tags=tags, trained=trained)
        self._check_clash(fields.name, replace)  # refused before any photo is decoded
        self._check_model(model_id)
        enrolment = prepare_photos(photos, embed, names=names, max_pixels=max_pixels)
        return self.add_prepared(name, enrolment, model_id, latitude=latitude, longitude=longitude, country=country,
                                 city=city, tags=tags, replace=replace, trained=trained)

    def add_prepared(
        self, name: str, enrolment: Enrolment, model_id: str, *, latitude: float | None = None, longitude: float | None = None,
        country: str = "",
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
        self._forget(fields.name)
        self.landmarks[fields.name], self.embeddings[fields.name] = landmark, enrolment.vectors
        self.model_id = model_id
        report.landmark = landmark
        return report

    def remove(self, name: str) -> GalleryLandmark:
        """Forget a landmark, named as stored or as the same landmark (`find`)."""
        stored = self.find(name)
        if stored is None:
            known = ", ".join(self.landmarks) or "none"
            raise GalleryError(f"the gallery has no landmark {name!r} (it has: {known})")
        self.embeddings.pop(stored)
        return self.landmarks.pop(stored)

    def _forget(self, name: str) -> None:
        """Drop the landmark that `name` is the same as, if any (a replacement takes its place)."""
        stored = self.find(name)
        if stored is not None:
            self.landmarks.pop(stored)
            self.embeddings.pop(stored)

    def _check_clash(self, name: str, replace: bool) -> None:
        stored = self.find(name)
        if stored is not None and not replace:
            same = "" if stored == name else f" (as {stored!r})"
            raise GalleryError(f"the gallery already has {name!r}{same}: pass --replace (replace=True) to replace it")

    def _check_model(self, model_id: str) -> None:
        if self.landmarks and self.model_id != model_id:
            raise GalleryError(f"the gallery was embedded by model {self.model_id}, not {model_id}: re-embed it first (Gallery.reembed)")

    def reembed(self, embed: Embedder, model_id: str) -> None:
        """Embed every stored thumbnail again with another model (the gallery then belongs to it)."""
        for name, landmark in self.landmarks.items():
            images = [load_rgb(self.read_thumbnail(photo)) for photo in landmark.photos]
            self.embeddings[name] = check_embeddings(embed(images), len(images), "the model's embeddings")
        self.model_id = model_id

    # ---- import (exports: `src.serving.gallery.archive`) ----------------------------------------
    def merge(self, other: Gallery, embed: Embedder, model_id: str, replace: bool = False, trained: Sequence[str] = ()) -> list[str]:
        """Add `other`'s landmarks (re-embedded if another model made them: do it before taking the
        lock, `Gallery.reembed`). `other` comes from `read_export`, so every field was checked."""
        clashes = [name for name in other.landmarks if self.find(name) is not None]
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
            self._forget(name)
            self.landmarks[name], self.embeddings[name] = landmark, other.embeddings[name]
        self.model_id = model_id
        return list(other.landmarks)


@contextlib.contextmanager
def edit(folder: Path | None = None, timeout: float = 60.0) -> Iterator[Gallery]:
    """Lock the gallery folder, load it, let the caller change it, save it. On an exception nothing is
    saved and the thumbnails written meanwhile are removed; an OSError (a full disk, a file where the
    folder should be) becomes GalleryStorageError, one sentence instead of a traceback."""
    folder = Path(folder) if folder else default_gallery_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(folder / ".lock"), timeout=timeout)
        lock.acquire()
    except Timeout:
        raise GalleryError(f"the gallery {folder} is locked by another writer (waited {timeout:g} s): try again when it is done") from None
    except OSError as error:
        raise storage_error(error, folder) from error
    try:
        gallery = Gallery.load(folder)
        try:
            yield gallery
            gallery.save()
        except BaseException as error:
            gallery.discard_unsaved()
            if isinstance(error, OSError):
                raise storage_error(error, folder) from error
            raise
    finally:
        lock.release()


def enrol(
    folder: Path | None, name: str, photos: Sequence[ImageSource], embed: Embedder, model_id: str, *,
    latitude: float | None = None, longitude: float | None = None, country: str = "", city: str = "", tags: str | Sequence[str] | None = None, replace: bool = False,
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
