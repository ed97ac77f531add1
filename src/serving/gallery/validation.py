"""Checks on everything that crosses a trust boundary into the landmark gallery, in one place.

The gallery takes input from four sides: the HTTP API (form fields, the Authorization header), the
command line (arguments), exported archives (`gallery import`) and its own store on disk
(``gallery.npz``, which another process, a disk error or a user may have changed). Each side calls
the functions here, so a name, a position, a tag or an embedding that one side refuses, every side
refuses, with the same message. Photos themselves are checked where they are decoded
(`src.data.images.load_rgb`, `src.serving.web.uploads.check_upload`); what a photo must be to be enrolled
(`check_photo_size`) is here.

Everything raises `GalleryError` (a ValueError) with a message that says what was wrong and where.
"""

from __future__ import annotations

import errno
import math
import numbers
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.data.landmarks import display_name
from src.evaluation.openset_rule import MIN_SIDE, too_small

MAX_NAME = 100  # characters of a landmark's name
MAX_TEXT = 100  # characters of a country or city
MAX_TAGS_TEXT = 500  # characters of the tags as typed ("#A #B ...")
MAX_TAG = 100  # characters of one tag
MAX_TAGS = 50
MAX_PHOTOS_PER_LANDMARK = 200
# Thumbnails are stored under the first 24 hex digits of their content's SHA-256: nothing else is a
# photo name, so a name read from a file can never point outside the gallery's thumbs/ folder.
THUMB_NAME = re.compile(r"[0-9a-f]{24}\.jpg")
# Embeddings are L2-normalised; a vector far from unit length would outscore every enrolled photo.
UNIT_TOLERANCE = 0.05
# RFC 6750: "Bearer" (any case), one space, the token (visible ASCII, no whitespace), nothing else.
_BEARER = re.compile(r"bearer ([!-~]+)", re.IGNORECASE)
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off", ""}
# Letters of other scripts drawn like Latin ones (after casefold): "Taj Mahаl" with a Cyrillic а must
# compare equal to "Taj Mahal". The look-alikes of Unicode's confusables list that matter for names
# typed in Latin letters; NFKC already folds the compatibility forms (fullwidth, ligatures, ...).
_LATIN_LOOKALIKES = str.maketrans({
    # Cyrillic
    "а": "a", "в": "b", "с": "c", "ԁ": "d", "е": "e", "ё": "e", "һ": "h", "н": "h", "і": "i", "ї": "i", "ј": "j",
    "к": "k", "ӏ": "l", "м": "m", "п": "n", "о": "o", "р": "p", "ԛ": "q", "ѕ": "s", "т": "t", "ѵ": "v",
    "ԝ": "w", "х": "x", "у": "y",
    # Greek
    "α": "a", "β": "b", "ϲ": "c", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "m", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "γ": "y", "ζ": "z",
    # Latin letters drawn alike
    "ı": "i", "ɩ": "i", "ȷ": "j", "ɡ": "g", "ℓ": "l", "ſ": "s",
})


class GalleryError(ValueError):
    """Bad gallery input (name, position, photos, archive) or a gallery file that cannot be used; the message says why."""


class GalleryUnreadable(GalleryError):
    """The gallery file on disk cannot be used; the message names it and says how to restore it."""


def unreadable(path: object, reason: str) -> GalleryUnreadable:
    """The one sentence the service's log, /healthz and the command lines give for a damaged gallery file."""
    return GalleryUnreadable(
        f"the gallery file {path} cannot be read ({reason}): move it away (mv {path} {path}.broken) "
        "and restore its landmarks from an export (python -m src gallery import FILE)"
    )


DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


class GalleryStorageError(GalleryError):
    """The gallery's folder cannot be written (a full disk, no permission, a file where a folder should
    be); nothing was changed. `disk_full`: the disk or quota is full (the service answers 507)."""

    def __init__(self, message: str, disk_full: bool = False):
        super().__init__(message)
        self.disk_full = disk_full


def storage_error(error: OSError, folder: Path) -> GalleryStorageError:
    """An OSError from writing the gallery as one sentence: what failed, where, and that nothing changed."""
    full = error.errno in DISK_FULL
    what = "the disk is full" if full else (error.strerror or str(error))
    where = f" ({error.filename})" if error.filename else ""
    hint = ": free some space and try again" if full else ""
    return GalleryStorageError(f"cannot write the gallery {folder}: {what}{where}; nothing was changed{hint}", disk_full=full)


# --------------------------------------------------------------------------------------------
# What a user says about a landmark (API form, command line, archive metadata)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LandmarkFields:
    """A landmark's validated description: what the gallery stores besides its photos. A landmark
    taught without a position has latitude and longitude None: it is named, never placed."""

    name: str
    latitude: float | None
    longitude: float | None
    country: str = ""
    city: str = ""
    tags: tuple[str, ...] = ()


def clean_name(name: object) -> str:
    """The name in NFC with runs of whitespace collapsed; refused when empty, too long, not printable or
    with '/'. (NFC: "Café" typed with a combining accent is stored as the same text as "Café".)"""
    if not isinstance(name, str):
        raise GalleryError(f"a landmark name must be text, got {type(name).__name__}")
    cleaned = " ".join(unicodedata.normalize("NFC", name).split())
    if not cleaned or len(cleaned) > MAX_NAME or any(not ch.isprintable() for ch in cleaned) or "/" in cleaned or "\\" in cleaned:
        raise GalleryError(f"a landmark name must be 1-{MAX_NAME} printable characters without '/' or '\\', got {name!r}")
    if not cleaned.strip("."):
        raise GalleryError(f"a landmark name must not be only dots, got {name!r}")
    return cleaned


def name_key(name: str) -> str:
    """What two names must share to be one landmark: NFKC, casefold, Latin look-alikes of other scripts
    folded, whitespace and underscores collapsed. "Café Tower" typed in NFC or NFD, "CAFÉ TOWER" and
    "Cafe\u0301 Tower" are one key; so are "Taj Mahal" and "Taj Mahаl" with a Cyrillic а."""
    folded = unicodedata.normalize("NFKC", name).casefold().translate(_LATIN_LOOKALIKES)
    return " ".join(unicodedata.normalize("NFKC", folded).replace("_", " ").split())


def check_position(latitude: object, longitude: object) -> tuple[float | None, float | None]:
    """(latitude, longitude) as floats, or (None, None) for "no position": both missing, or exactly 0, 0
    (the Gulf of Guinea: what an untouched form or an old store meant by "none"). Refused when only
    one is given or either is not a finite real number on the globe."""
    if latitude is None and longitude is None:
        return None, None
    if latitude is None or longitude is None:
        raise GalleryError("give both latitude and longitude, or neither (a landmark without a position is named, never placed)")
    checked = []
    for value, limit, what in ((latitude, 90, "latitude"), (longitude, 180, "longitude")):
        # bool is an int subclass: True as a latitude is a mistake, not 1 degree.
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or abs(value) > limit:
            raise GalleryError(f"{what} must be a number within +-{limit}, got {value!r}")
        checked.append(float(value))
    if checked == [0.0, 0.0]:
        return None, None
    return checked[0], checked[1]


def check_landmark(name: object, latitude: object, longitude: object) -> str:
    """The cleaned name; GalleryError for an odd name or a position off the globe."""
    name = clean_name(name)
    check_position(latitude, longitude)
    return name


def clean_text(value: object, what: str, limit: int = MAX_TEXT) -> str:
    """A short printable text (country, city); None is ""."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise GalleryError(f"{what} must be text, got {type(value).__name__}")
    cleaned = " ".join(value.split())
    if len(cleaned) > limit or any(not ch.isprintable() for ch in cleaned):
        raise GalleryError(f"{what} must be at most {limit} printable characters, got {value!r}")
    return cleaned


def parse_tags(tags: str | Sequence[str] | None) -> tuple[str, ...]:
    """'#a #b' or ['a', '#b'] -> ('a', 'b'); refused when too many, too long or not printable."""
    if tags is None:
        return ()
    if isinstance(tags, str):
        if len(tags) > MAX_TAGS_TEXT:
            raise GalleryError(f"tags must be at most {MAX_TAGS_TEXT} characters, got {len(tags)}")
        words = tags.replace(",", " ").split()
    elif isinstance(tags, Sequence) and all(isinstance(word, str) for word in tags):
        words = list(tags)
    else:
        raise GalleryError(f"tags must be text or a list of texts, got {tags!r}"[:300])
    cleaned = tuple(word.strip().lstrip("#") for word in words if word.strip("# "))
    if len(cleaned) > MAX_TAGS:
        raise GalleryError(f"at most {MAX_TAGS} tags, got {len(cleaned)}")
    for tag in cleaned:
        if len(tag) > MAX_TAG or any(ch.isspace() or not ch.isprintable() for ch in tag):
            raise GalleryError(f"a tag must be at most {MAX_TAG} printable characters without spaces, got {tag!r}")
    return cleaned


def check_not_trained(name: str, trained: Sequence[str]) -> None:
    """Refuse a name that is one of the model's own classes, as folder name ("22.Taj_Mahal") or display
    name ("Taj Mahal", any case, spaces or underscores, look-alike letters of other scripts: `name_key`):
    answers would name two different things alike."""
    key = name_key(display_name(name))
    for class_name in trained:
        if key == name_key(display_name(class_name)):
            raise GalleryError(f"{name!r} is a landmark the model already knows ({class_name}): teach it under another name")


def landmark_fields(
    name: object, latitude: object = None, longitude: object = None, *, country: object = "", city: object = "",
    tags: str | Sequence[str] | None = None, trained: Sequence[str] = (),
) -> LandmarkFields:
    """Every field of a landmark checked: what the API, the command line and an import all accept
    (latitude and longitude None, or 0 and 0: no position, `check_position`)."""
    cleaned = check_landmark(name, latitude, longitude)
    check_not_trained(cleaned, trained)
    lat, lon = check_position(latitude, longitude)
    return LandmarkFields(cleaned, lat, lon, clean_text(country, "country"), clean_text(city, "city"), parse_tags(tags))


def parse_optional_number(text: object, what: str) -> float | None:
    """A form field's number, or None when the field is empty or missing (`parse_number` otherwise)."""
    return None if text is None or not str(text).strip() else parse_number(text, what)


def parse_number(text: object, what: str) -> float:
    """A form field's number ("48.85"); refused when missing or not a number (NaN and infinities included)."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise GalleryError(f"{what} must be a number, got {str(text)[:50]!r}") from None
    if not math.isfinite(value):
        raise GalleryError(f"{what} must be a finite number, got {str(text)[:50]!r}")
    return value


def parse_flag(text: object, what: str) -> bool:
    """A form field's yes/no ("true", "false", "1", "0", "yes", "no", "on", "off")."""
    word = str(text).strip().lower()
    if word not in _TRUE | _FALSE:
        raise GalleryError(f"{what} must be true or false, got {str(text)[:50]!r}")
    return word in _TRUE


# --------------------------------------------------------------------------------------------
# What the gallery keeps: photo names, embeddings, records read back from a file
# --------------------------------------------------------------------------------------------


def check_photo_name(name: object, where: str) -> str:
    """A thumbnail name from a file: exactly what the gallery writes (24 hex digits + .jpg), never a path."""
    if not isinstance(name, str) or not THUMB_NAME.fullmatch(name):
        raise GalleryError(f"{where} lists a photo named {str(name)[:80]!r}: not a gallery thumbnail name (24 hex digits + .jpg)")
    return name


def check_photo_size(size: tuple[int, int]) -> None:
    """Refuse a photo /v1/predict would call too small to show a landmark."""
    if too_small(size):
        raise GalleryError(f"the photo is too small to show a landmark ({size[0]}x{size[1]} px; at least {MIN_SIDE} px a side)")


def check_embeddings(vectors: object, count: int, where: str, dim: int | None = None) -> np.ndarray:
    """float32 [count, D] embeddings; refused unless floating point, finite, unit length, one per photo
    and (when `dim` is given) as wide as the model's."""
    array = np.asarray(vectors)
    if array.dtype.kind != "f":
        raise GalleryError(f"{where}: embeddings must be floating point numbers, got dtype {array.dtype}")
    if count == 0 and array.size == 0:
        return np.zeros((0, dim or 0), np.float32)
    if array.ndim != 2 or array.shape[1] == 0:
        raise GalleryError(f"{where}: embeddings must be a [photos, dimensions] table, got shape {array.shape}")
    if len(array) != count:
        raise GalleryError(f"{where}: {len(array)} embeddings for {count} photos (one per photo expected)")
    if dim is not None and array.shape[1] != dim:
        raise GalleryError(f"{where}: {array.shape[1]}-dimensional embeddings, the model makes {dim}-dimensional ones")
    if not np.isfinite(array).all():
        raise GalleryError(f"{where}: embeddings hold NaN or infinite values")
    norms = np.sqrt(np.einsum("ij,ij->i", array, array))  # no float64 copy of a large table
    if np.abs(norms - 1).max() > UNIT_TOLERANCE:
        raise GalleryError(f"{where}: embeddings must be unit length (L2-normalised), found lengths {norms.min():.3g}..{norms.max():.3g}")
    return array.astype(np.float32)


def landmark_record(raw: object, where: str) -> tuple[LandmarkFields, tuple[str, ...]]:
    """A landmark as stored in a gallery file (JSON): its fields and photo names, every one checked."""
    keys = {"name", "latitude", "longitude", "country", "city", "tags", "photos"}
    if not isinstance(raw, Mapping):
        raise GalleryError(f"{where}: a landmark must be a JSON object, got {type(raw).__name__}")
    if set(raw) != keys:
        unknown, missing = sorted(set(raw) - keys), sorted(keys - set(raw))
        raise GalleryError(f"{where}: landmark {str(raw.get('name'))[:80]!r} has unexpected fields {unknown} / lacks {missing}")
    if not isinstance(raw["tags"], list):
        raise GalleryError(f"{where}: landmark {str(raw['name'])[:80]!r} must list its tags as a JSON list")
    # latitude and longitude null: no position; 0, 0 (what older stores wrote for none) reads as none too.
    fields = landmark_fields(raw["name"], raw["latitude"], raw["longitude"], country=raw["country"], city=raw["city"], tags=raw["tags"])
    photos = raw["photos"]
    if not isinstance(photos, list) or not 0 < len(photos) <= MAX_PHOTOS_PER_LANDMARK:
        raise GalleryError(f"{where}: landmark {fields.name!r} must list 1-{MAX_PHOTOS_PER_LANDMARK} photos")
    names = tuple(check_photo_name(photo, where) for photo in photos)
    if len(set(names)) != len(names):
        raise GalleryError(f"{where}: landmark {fields.name!r} lists a photo twice")
    return fields, names


# --------------------------------------------------------------------------------------------
# The admin token
# --------------------------------------------------------------------------------------------


def bearer_token(authorization: str | None) -> str | None:
    """The token of ``Authorization: Bearer TOKEN`` (one space, nothing around it); None when absent or malformed."""
    match = _BEARER.fullmatch(authorization or "")
    return match.group(1) if match else None
