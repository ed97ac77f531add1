"""Importing an exported gallery (`python -m src gallery import`, written by `Gallery.export`).

An export is one zip: ``gallery.npz`` and ``thumbs/<hash>.jpg``. `read_export` checks it completely
before anything reaches the user's gallery: it unpacks into a new temporary folder only, reads nothing
from outside the archive, and refuses the whole archive (GalleryError saying why) when any name,
position, embedding or thumbnail is not valid. `prepare_import` then re-embeds it for the user's model,
still before the gallery's lock is taken; `Gallery.merge` adds it under the lock.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

from src.data.images import BadImageError, open_regular_file
from src.serving.gallery.enrolment import Embedder
from src.serving.gallery.gallery import Gallery
from src.serving.gallery.store_format import (
    GALLERY_FILE,
    MAX_EXPORT_BYTES,
    MAX_STORE_BYTES,
    MAX_THUMB_BYTES,
    THUMBS,
    check_thumbnail,
    export_members,
    parse_store,
    read_member,
)
from src.serving.gallery.validation import GalleryError, check_not_trained


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
                members = export_members(archive, where)
                if GALLERY_FILE not in members:
                    raise GalleryError(f"{where} is not a gallery export: it has no {GALLERY_FILE}")
                store = read_member(archive, members[GALLERY_FILE], MAX_STORE_BYTES, where)
                gallery = Gallery.from_contents(into, parse_store(store, f"{where}: {GALLERY_FILE}"))
                thumbs = {}
                for photo in dict.fromkeys(p for landmark in gallery.landmarks.values() for p in landmark.photos):
                    info = members.get(f"{THUMBS}/{photo}")
                    if info is None:
                        raise GalleryError(f"{where} lists the photo {photo} but does not hold thumbs/{photo}")
                    thumbs[photo] = read_member(archive, info, MAX_THUMB_BYTES, where)
                    check_thumbnail(thumbs[photo], photo, where)
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
