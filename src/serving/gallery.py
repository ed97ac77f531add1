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
"""

from __future__ import annotations

import contextlib
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
from filelock import FileLock
from PIL import Image

from src.data.images import BadImageError, ImageSource, load_rgb
from src.data.landmarks import LandmarkInfo
from src.serving.gallery_index import GalleryIndex, IndexConfig

FORMAT_VERSION = 1
GALLERY_FILE = "gallery.npz"
THUMBS = "thumbs"
THUMB_SIDE = 384  # short side of stored thumbnails: enough for a later model with a larger input
MAX_NAME = 100
MAX_PHOTOS_PER_LANDMARK = 200

# Decoded photos -> L2-normalised embeddings [n, D]; the recognizer's `embed`.
Embedder = Callable[[Sequence[Image.Image]], np.ndarray]


class GalleryError(ValueError):
    """Bad gallery input (name, position, photos) or a gallery file that cannot be used; the message says why."""


def landmark_home() -> Path:
    """$LANDMARK_HOME, else ~/.local/share/landmark_tagger (user data: never the repository)."""
    return Path(os.environ.get("LANDMARK_HOME") or Path.home() / ".local" / "share" / "landmark_tagger")


def default_gallery_dir() -> Path:
    return landmark_home() / "gallery"


@dataclass(frozen=True)
class GalleryLandmark:
    """One taught landmark: what the user said about it and its photos (thumbnail file names)."""

    name: str
    latitude: float
    longitude: float
    country: str = ""
    city: str = ""
    tags: tuple[str, ...] = ()
    photos: tuple[str, ...] = ()

    @property
    def info(self) -> LandmarkInfo:
        return LandmarkInfo(class_name=self.name, name=self.name, city=self.city, country=self.country,
                            latitude=self.latitude, longitude=self.longitude, tags=self.tags or (self.name,))

    def to_dict(self) -> dict:
        return {**asdict(self), "tags": list(self.tags), "photos": list(self.photos)}


def check_landmark(name: str, latitude: float, longitude: float) -> str:
    """The cleaned name; GalleryError for an empty or odd name or a position off the globe."""
    name = " ".join(str(name or "").split())
    if not name or len(name) > MAX_NAME or any(not ch.isprintable() for ch in name) or "/" in name:
        raise GalleryError(f"a landmark name must be 1-{MAX_NAME} printable characters without '/', got {name!r}")
    for value, limit, what in ((latitude, 90, "latitude"), (longitude, 180, "longitude")):
        if not isinstance(value, (int, float)) or math.isnan(value) or abs(value) > limit:
            raise GalleryError(f"{what} must be a number within +-{limit}, got {value!r}")
    return name


def parse_tags(tags: str | Sequence[str] | None) -> tuple[str, ...]:
    """'#a #b' or ['a', '#b'] -> ('a', 'b')."""
    words = tags.replace(",", " ").split() if isinstance(tags, str) else list(tags or ())
    return tuple(word.lstrip("#") for word in words if word.strip("# "))


@dataclass
class AddReport:
    """What `Gallery.add` did: the landmark (None when nothing was usable) and the photos it skipped."""

    landmark: GalleryLandmark | None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (photo, why)


def _source_name(source: ImageSource, index: int) -> str:
    return str(source) if isinstance(source, (str, Path)) else f"photo {index + 1}"


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
        """The gallery in `folder` (default: $LANDMARK_HOME/gallery); empty when there is none yet."""
        folder = Path(folder) if folder else default_gallery_dir()
        gallery = cls(folder)
        path = folder / GALLERY_FILE
        if not path.exists():
            return gallery
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                vectors = np.asarray(data["vectors"], dtype=np.float32)
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as error:
            raise GalleryError(f"the gallery file {path} cannot be read ({error}); restore it from an export "
                               "(`python -m src gallery import FILE`) or move it away to start afresh") from error
        if meta.get("version") != FORMAT_VERSION:
            raise GalleryError(f"{path} is gallery format {meta.get('version')}, this version reads {FORMAT_VERSION}")
        gallery.model_id = meta.get("model_id")
        start = 0
        for raw in meta["landmarks"]:
            landmark = GalleryLandmark(**{**raw, "tags": tuple(raw["tags"]), "photos": tuple(raw["photos"])})
            gallery.landmarks[landmark.name] = landmark
            gallery.embeddings[landmark.name] = vectors[start : start + len(landmark.photos)]
            start += len(landmark.photos)
        return gallery

    def save(self) -> Path:
        """Replace gallery.npz atomically (write a temporary file, then rename); drop unused thumbnails."""
        self.folder.mkdir(parents=True, exist_ok=True)
        names = list(self.landmarks)
        meta = {"version": FORMAT_VERSION, "model_id": self.model_id, "landmarks": [self.landmarks[n].to_dict() for n in names]}
        parts = [self.embeddings[n] for n in names if len(self.embeddings[n])]
        vectors = np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 0), np.float32)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".gallery.", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, meta=np.array(json.dumps(meta)), vectors=vectors)
            os.replace(tmp, self.folder / GALLERY_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        used = {photo for landmark in self.landmarks.values() for photo in landmark.photos}
        for thumb in (self.folder / THUMBS).glob("*.jpg"):
            if thumb.name not in used:
                thumb.unlink(missing_ok=True)
        return self.folder / GALLERY_FILE

    # ---- what the recognizer reads ------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.landmarks)

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

    # ---- changes ------------------------------------------------------------------------------
    def _store_thumbnail(self, image: Image.Image) -> str:
        thumb = image.copy()
        thumb.thumbnail((THUMB_SIDE * 4, THUMB_SIDE), Image.Resampling.BICUBIC) if thumb.height <= thumb.width else \
            thumb.thumbnail((THUMB_SIDE, THUMB_SIDE * 4), Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        thumb.save(buffer, format="JPEG", quality=90)
        data = buffer.getvalue()
        name = hashlib.sha256(data).hexdigest()[:24] + ".jpg"
        folder = self.folder / THUMBS
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / name).exists():
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, folder / name)
        return name

    def add(
        self, name: str, photos: Sequence[ImageSource], embed: Embedder, model_id: str, *, latitude: float, longitude: float,
        country: str = "", city: str = "", tags: str | Sequence[str] | None = None, replace: bool = False,
    ) -> AddReport:
        """Enrol a landmark from photos (paths or bytes). Unreadable photos are skipped and reported;
        with no usable photo nothing is created. An existing name needs replace=True."""
        name = check_landmark(name, latitude, longitude)
        if name in self.landmarks and not replace:
            raise GalleryError(f"the gallery already has {name!r}: pass --replace (replace=True) to replace it")
        self._check_model(model_id)
        if len(photos) > MAX_PHOTOS_PER_LANDMARK:
            raise GalleryError(f"at most {MAX_PHOTOS_PER_LANDMARK} photos per landmark, got {len(photos)}")
        report = AddReport(landmark=None)
        images = []
        for i, source in enumerate(photos):
            try:
                images.append(load_rgb(source, short_side=THUMB_SIDE))
            except BadImageError as error:
                report.skipped.append((_source_name(source, i), str(error)))
        if not images:
            return report
        vectors = np.asarray(embed(images), dtype=np.float32)
        thumbs = tuple(self._store_thumbnail(image) for image in images)
        landmark = GalleryLandmark(name=name, latitude=float(latitude), longitude=float(longitude), country=str(country or ""),
                                   city=str(city or ""), tags=parse_tags(tags), photos=thumbs)
        self.landmarks.pop(name, None)
        self.landmarks[name], self.embeddings[name] = landmark, vectors
        self.model_id = model_id
        report.landmark = landmark
        return report

    def remove(self, name: str) -> GalleryLandmark:
        if name not in self.landmarks:
            known = ", ".join(self.landmarks) or "none"
            raise GalleryError(f"the gallery has no landmark {name!r} (it has: {known})")
        self.embeddings.pop(name)
        return self.landmarks.pop(name)

    def _check_model(self, model_id: str) -> None:
        if self.landmarks and self.model_id != model_id:
            raise GalleryError(f"the gallery was embedded by model {self.model_id}, not {model_id}: re-embed it first (Gallery.reembed)")

    def reembed(self, embed: Embedder, model_id: str) -> None:
        """Embed every stored thumbnail again with another model (the gallery then belongs to it)."""
        for name, landmark in self.landmarks.items():
            images = [load_rgb(self.folder / THUMBS / photo) for photo in landmark.photos]
            self.embeddings[name] = np.asarray(embed(images), dtype=np.float32)
        self.model_id = model_id

    # ---- export and import --------------------------------------------------------------------
    def export(self, path: Path) -> Path:
        """One zip file with gallery.npz and the thumbnails, for backup or another machine."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.write(self.folder / GALLERY_FILE, GALLERY_FILE)
            for landmark in self.landmarks.values():
                for photo in landmark.photos:
                    archive.write(self.folder / THUMBS / photo, f"{THUMBS}/{photo}")
        os.replace(tmp, path)
        return path

    def merge(self, other: Gallery, embed: Embedder, model_id: str, replace: bool = False) -> list[str]:
        """Add `other`'s landmarks (re-embedded from its thumbnails if another model made them)."""
        clashes = [name for name in other.landmarks if name in self.landmarks]
        if clashes and not replace:
            raise GalleryError(f"the gallery already has {', '.join(map(repr, clashes))}: pass --replace to replace them")
        self._check_model(model_id)
        if other.model_id != model_id:
            other.reembed(embed, model_id)
        (self.folder / THUMBS).mkdir(parents=True, exist_ok=True)
        for name, landmark in other.landmarks.items():
            for photo in landmark.photos:
                (self.folder / THUMBS / photo).write_bytes((other.folder / THUMBS / photo).read_bytes())
            self.landmarks.pop(name, None)
            self.landmarks[name], self.embeddings[name] = landmark, other.embeddings[name]
        self.model_id = model_id
        return list(other.landmarks)


def read_export(path: Path, into: Path) -> Gallery:
    """Unpack an exported gallery into the folder `into` (a temporary one) and load it."""
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if member != GALLERY_FILE and not (member.startswith(f"{THUMBS}/") and "/" not in member[len(THUMBS) + 1:] and ".." not in member):
                    raise GalleryError(f"{path} is not a gallery export: unexpected entry {member!r}")
            archive.extractall(into)
    except zipfile.BadZipFile as error:
        raise GalleryError(f"{path} is not a gallery export ({error})") from error
    return Gallery.load(into)


@contextlib.contextmanager
def edit(folder: Path | None = None, timeout: float = 60.0) -> Iterator[Gallery]:
    """Lock the gallery folder, load it, let the caller change it, save it (not on an exception)."""
    folder = Path(folder) if folder else default_gallery_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".lock"), timeout=timeout):
        gallery = Gallery.load(folder)
        yield gallery
        gallery.save()
