"""Exported galleries: `write_export` (`python -m src gallery export`) and `read_export` (`... import`).

An export is one zip: ``gallery.npz`` and ``thumbs/<hash>.jpg``. `read_export` checks it completely
before anything reaches the user's gallery: it unpacks into a temporary folder only, reads nothing from
outside the archive, checks every size a header declares before reading it (`store_format` caps: a
small zip cannot inflate to gigabytes), re-encodes every thumbnail (a JPEG padded with megabytes of
junk is stored at its real size), and refuses the whole archive (GalleryError saying why, the folder
left as it was) when any name, position, embedding or thumbnail is not valid. `prepare_import` then
re-embeds it for the user's model, still before the gallery's lock is taken; `Gallery.merge` adds it
under the lock.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from src.data.images import BadImageError, load_rgb, open_regular_file
from src.serving.gallery.enrolment import Embedder, encode_thumbnail
from src.serving.gallery.gallery import Gallery, GalleryLandmark
from src.serving.gallery.store_format import (
    GALLERY_FILE,
    MAX_EXPORT_BYTES,
    MAX_EXPORT_THUMBS_BYTES,
    MAX_STORE_BYTES,
    MAX_THUMB_BYTES,
    THUMB_SIDE,
    THUMBS,
    StoreContents,
    check_thumbnail,
    export_members,
    parse_store,
    read_member,
    thumb_name,
)
from src.serving.gallery.validation import DISK_FULL, GalleryError, GalleryStorageError, check_not_trained


@dataclass
class ExportReport:
    """What `write_export` wrote: the file, the landmarks in it, and the photos left out (landmark, why)."""

    path: Path
    landmarks: list[str]
    missing: list[tuple[str, str]] = field(default_factory=list)


def write_export(gallery: Gallery, path: Path) -> ExportReport:
    """One zip file with gallery.npz and the thumbnails (each once), for backup or another machine.

    A thumbnail that cannot be read (deleted, damaged) does not block the others: that photo is left
    out (a landmark with none left is left out) and named in `missing`. GalleryError, with nothing
    written, when `path` is a folder or cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise GalleryError(f"{path} is a folder: give the export a file name, e.g. {path / 'landmarks.zip'}")
    readable, missing = _readable_part(gallery)
    if not readable.landmarks:
        raise GalleryError(f"nothing to export: no thumbnail could be read ({'; '.join(why for _, why in missing[:3])})")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(GALLERY_FILE, readable._serialise())
            for photo in dict.fromkeys(p for landmark in readable.landmarks.values() for p in landmark.photos):
                archive.writestr(f"{THUMBS}/{photo}", gallery.read_thumbnail(photo))
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise GalleryError(f"cannot write the export {path}: {error.strerror or error}") from error
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ExportReport(path, readable.names, missing)


def _readable_part(gallery: Gallery) -> tuple[Gallery, list[tuple[str, str]]]:
    """A copy of the gallery without the photos whose thumbnail cannot be read, and those photos (landmark, why)."""
    readable, missing = Gallery(gallery.folder, gallery.model_id), []
    for name, landmark in gallery.landmarks.items():
        keep = []
        for row, photo in enumerate(landmark.photos):
            try:
                gallery.read_thumbnail(photo)
                keep.append(row)
            except GalleryError as error:
                missing.append((name, str(error)))
        if keep:
            readable.landmarks[name] = GalleryLandmark.of(landmark, [landmark.photos[row] for row in keep])
            readable.embeddings[name] = gallery.embeddings[name][keep]
    return readable, missing


def read_export(path: Path, into: Path) -> Gallery:
    """Check an exported gallery completely while unpacking its thumbnails (re-encoded) into the folder
    `into` (a new, temporary one), and return it. Nothing outside `into` is written, nothing is read from
    outside the archive, and when any name, position, embedding or thumbnail is not valid everything
    written is removed again (GalleryError saying which is not). Memory: the store (at most
    MAX_STORE_BYTES) and one thumbnail at a time."""
    path, into = Path(path), Path(into)
    where = str(path)
    created = [folder for folder in (into, into / THUMBS) if not folder.exists()]
    written: list[Path] = []
    try:
        with open_regular_file(path, MAX_EXPORT_BYTES, what="gallery export (a regular file)") as handle:
            with zipfile.ZipFile(handle) as archive:
                contents = _unpack(archive, where, into, written)
    except BaseException as error:
        for item in written:
            item.unlink(missing_ok=True)
        for folder in reversed(created):
            shutil.rmtree(folder, ignore_errors=True)
        if isinstance(error, GalleryError):
            raise
        if isinstance(error, OSError) and error.errno in DISK_FULL:  # unpacking into `into`, not reading the archive
            raise GalleryStorageError(f"{where} cannot be unpacked into {into}: the disk is full; nothing was changed",
                                      disk_full=True) from error
        if isinstance(error, (OSError, BadImageError)):
            raise GalleryError(f"{where} cannot be read ({getattr(error, 'strerror', None) or error})") from error
        if isinstance(error, Exception):  # BadZipFile, zlib.error, NotImplementedError (compression), RuntimeError (encrypted), ...
            raise GalleryError(f"{where} is not a gallery export ({type(error).__name__}: {error})") from error
        raise
    return Gallery.from_contents(into, contents)


def _unpack(archive: zipfile.ZipFile, where: str, into: Path, written: list[Path]) -> StoreContents:
    """The archive's checked store, its thumbnails re-encoded into `into`/thumbs (each file appended to `written`)."""
    members = export_members(archive, where)
    if GALLERY_FILE not in members:
        raise GalleryError(f"{where} is not a gallery export: it has no {GALLERY_FILE}")
    contents = parse_store(read_member(archive, members[GALLERY_FILE], MAX_STORE_BYTES, where), f"{where}: {GALLERY_FILE}")
    listed = list(dict.fromkeys(photo for _, photos in contents.records for photo in photos))
    missing = [photo for photo in listed if f"{THUMBS}/{photo}" not in members]
    if missing:
        raise GalleryError(f"{where} lists the photo {missing[0]} but does not hold thumbs/{missing[0]}")
    total = sum(members[f"{THUMBS}/{photo}"].file_size for photo in listed)
    if total > MAX_EXPORT_THUMBS_BYTES:  # declared sizes: refused before one thumbnail is read
        raise GalleryError(f"{where}: its thumbnails take {total / 2**20:.0f} MiB (limit {MAX_EXPORT_THUMBS_BYTES / 2**20:.0f} MiB)")
    (into / THUMBS).mkdir(parents=True, exist_ok=True)
    renamed: dict[str, str] = {}
    for photo in listed:
        data = read_member(archive, members[f"{THUMBS}/{photo}"], MAX_THUMB_BYTES, where)
        check_thumbnail(data, photo, where)
        fresh = _reencoded(data, photo, where)
        renamed[photo] = thumb_name(fresh)
        target = into / THUMBS / renamed[photo]
        if not target.exists():
            target.write_bytes(fresh)
            written.append(target)
    return _with_names(contents, renamed, where)


def _reencoded(data: bytes, name: str, where: str) -> bytes:
    """A thumbnail decoded and encoded again as the gallery makes them: whatever was appended or hidden in
    the file (megabytes of padding, other segments) is not stored."""
    try:
        return encode_thumbnail(load_rgb(data, max_pixels=(THUMB_SIDE * 4) ** 2))
    except BadImageError as error:
        raise GalleryError(f"{where}: thumbs/{name} is not a readable JPEG ({error})") from error


def _with_names(contents: StoreContents, renamed: dict[str, str], where: str) -> StoreContents:
    """The store's records with each photo under its re-encoded thumbnail's name."""
    records = []
    for fields, photos in contents.records:
        names = tuple(renamed[photo] for photo in photos)
        if len(set(names)) != len(names):
            raise GalleryError(f"{where}: landmark {fields.name!r} holds the same picture twice under different names")
        records.append((fields, names))
    return StoreContents(contents.model_id, records, np.asarray(contents.vectors))


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
