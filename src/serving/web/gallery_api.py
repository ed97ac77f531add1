"""The service's gallery endpoints: teach, list and forget landmarks over HTTP.

    POST   /v1/landmarks          multipart: name, [latitude, longitude, country, city, tags, replace], files
    GET    /v1/landmarks          the taught landmarks
    DELETE /v1/landmarks/{name}   forget one

Writes need ``Authorization: Bearer $LANDMARK_ADMIN_TOKEN``; with the variable unset, writes are off
(403), a missing or malformed token is 401, a wrong one 403, answered before the body is read.
Writes are serialised (a lock here, a file lock in `src.serving.gallery.gallery.edit`, atomic file
replacement), so concurrent requests never lose an edit. The request body is bounded by the service's
own upload limit; fields are checked by `src.serving.gallery.validation` (as the command line and imports
are); each photo is checked like a predict upload, then decoded and embedded within the service's
pixel and memory budget before the gallery is locked; an unusable photo is reported, by its file
name, and skipped. A landmark taught without latitude and longitude (or with 0, 0) has no position:
it is named, never placed. An unreadable gallery file is 503, with how to restore it; a full disk 507
(nothing is changed, no thumbnail is left behind).
"""

from __future__ import annotations

import os
import secrets
import threading

import anyio
from fastapi import APIRouter, Header, HTTPException, Request
from pydantic import BaseModel, Field
from starlette.datastructures import FormData

from src.serving.gallery.gallery import Enrolment, Gallery, GalleryError, edit, prepare_photos
from src.serving.recognizer.lookalike import known_lookalike
from src.serving.recognizer.recognize import Recognizer
from src.serving.web.uploads import RejectedUpload, check_upload
from src.serving.gallery.validation import (
    MAX_NAME,
    MAX_TAGS_TEXT,
    MAX_TEXT,
    GalleryStorageError,
    GalleryUnreadable,
    LandmarkFields,
    bearer_token,
    landmark_fields,
    parse_flag,
    parse_optional_number,
)

ADMIN_TOKEN_ENV = "LANDMARK_ADMIN_TOKEN"
MAX_PHOTOS_PER_REQUEST = 50


class TaughtLandmark(BaseModel):
    name: str = Field(examples=["Sydney Opera House"])
    latitude: float | None = Field(None, description="null: taught without a position (named, never placed)")
    longitude: float | None = None
    country: str = ""
    city: str = ""
    hashtags: list[str] = []
    photos: int = Field(description="enrolled photos")


class AddResult(BaseModel):
    landmark: TaughtLandmark
    skipped: list[dict] = Field(default=[], description="photos that could not be used, with the reason")
    warning: str | None = Field(None, description="set when most photos look like a landmark the model already knows: "
                                "photos of the taught one will likely still be named as that one")


def _describe(gallery: Gallery, name: str) -> TaughtLandmark:
    landmark = gallery.landmarks[name]
    return TaughtLandmark(name=landmark.name, latitude=landmark.latitude, longitude=landmark.longitude, country=landmark.country,
                          city=landmark.city, hashtags=landmark.info.hashtags, photos=len(landmark.photos))


def require_admin(authorization: str | None) -> None:
    """401 without a well-formed bearer token (``Bearer TOKEN``, one space, nothing around it), 403 when
    writes are off or the token is wrong. Runs before one byte of a request body is read."""
    expected = os.environ.get(ADMIN_TOKEN_ENV)
    if not expected:
        raise HTTPException(403, f"teaching landmarks is off on this server: set {ADMIN_TOKEN_ENV} to enable it")
    token = bearer_token(authorization)
    if token is None:
        raise HTTPException(401, "send Authorization: Bearer <admin token> (one space, no other whitespace)",
                            headers={"WWW-Authenticate": "Bearer"})
    if not secrets.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(403, "wrong admin token")


# The multipart body of POST /v1/landmarks, documented by hand: the endpoint parses it itself, after
# the token is checked (FastAPI reads declared form fields before any check runs).
_ADD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object",
    "required": ["name", "files"],
    "properties": {
        "name": {"type": "string", "maxLength": MAX_NAME, "description": "not one of the model's own landmarks (nor one that "
                 "differs only by case, Unicode form or look-alike letters)"},
        "latitude": {"type": "number", "minimum": -90, "maximum": 90,
                     "description": "with longitude, or neither: without a position the landmark is named, never placed"},
        "longitude": {"type": "number", "minimum": -180, "maximum": 180},
        "country": {"type": "string", "maxLength": MAX_TEXT},
        "city": {"type": "string", "maxLength": MAX_TEXT},
        "tags": {"type": "string", "maxLength": MAX_TAGS_TEXT, "description": "hashtags, e.g. '#SydneyOperaHouse #Sydney'"},
        "replace": {"type": "boolean", "default": False},
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}, "maxItems": MAX_PHOTOS_PER_REQUEST,
                  "description": "photos of the landmark (at least 32 px a side)"},
    },
}}}}}
_FIELDS = ("name", "latitude", "longitude", "country", "city", "tags", "replace")


def _text(form: FormData, key: str, required: bool = False) -> str:
    values = form.getlist(key)
    if len(values) > 1:
        raise GalleryError(f"the field {key!r} appears more than once")
    if not values:
        if required:
            raise GalleryError(f"the field {key!r} is missing")
        return ""
    if not isinstance(values[0], str):
        raise GalleryError(f"the field {key!r} must be text, not a file")
    return values[0]


def landmark_form(form: FormData, trained: list[str]) -> tuple[LandmarkFields, bool]:
    """The form's fields, checked by `src.serving.gallery.validation` as the command line and imports are."""
    unknown = sorted(set(form.keys()) - set(_FIELDS) - {"files"})
    if unknown:
        raise GalleryError(f"unknown fields {unknown}: expected {', '.join(_FIELDS)} and files")
    fields = landmark_fields(
        _text(form, "name", required=True), parse_optional_number(_text(form, "latitude"), "latitude"),
        parse_optional_number(_text(form, "longitude"), "longitude"), country=_text(form, "country"),
        city=_text(form, "city"), tags=_text(form, "tags") or None, trained=trained,
    )
    return fields, parse_flag(_text(form, "replace"), "replace")


def gallery_router() -> APIRouter:
    """The endpoints, reading the service's loaded Recognizer from `request.app.state.recognizer`."""
    router = APIRouter(prefix="/v1/landmarks", tags=["gallery"])
    write_lock = threading.Lock()

    def recognizer_of(request: Request) -> Recognizer:
        recognizer = request.app.state.recognizer
        if recognizer is None:
            raise HTTPException(503, "the model is not loaded yet")
        return recognizer

    @router.get("", response_model=list[TaughtLandmark])
    async def list_landmarks(request: Request) -> list[TaughtLandmark]:
        """The landmarks taught to this server (they are recognised by /v1/predict); 503 when the
        gallery file is unreadable (the answer says how to restore it)."""
        recognizer = recognizer_of(request)
        if not recognizer.gallery_dir:
            return []
        await anyio.to_thread.run_sync(recognizer.refresh_gallery)  # the recognizer's own checks (embedding width)
        if recognizer.gallery_problem:
            raise HTTPException(503, recognizer.gallery_problem)
        try:
            gallery = Gallery.load(recognizer.gallery_dir)
        except GalleryError as error:
            raise HTTPException(503, str(error)) from error
        return [_describe(gallery, name) for name in gallery.names]

    @router.post("", response_model=AddResult, status_code=201, openapi_extra=_ADD_BODY)
    async def add_landmark(request: Request, authorization: str | None = Header(None)) -> AddResult:
        """Teach a landmark from a few photos; at once recognised by /v1/predict. Multipart form: name,
        latitude, longitude, [country, city, tags, replace], files."""
        require_admin(authorization)  # before the body: a client without the token never gets it read
        recognizer = recognizer_of(request)
        if recognizer.gallery_dir is None:
            raise HTTPException(409, "this server runs without a gallery")
        form = await request.form(max_files=MAX_PHOTOS_PER_REQUEST + 1, max_fields=len(_FIELDS) + 1)
        uploads = form.getlist("files")
        if len(uploads) > MAX_PHOTOS_PER_REQUEST:
            raise HTTPException(413, f"at most {MAX_PHOTOS_PER_REQUEST} photos per request")
        try:
            fields, replace = landmark_form(form, recognizer.class_names)
            recognizer.require_embeddings()
        except GalleryError as error:
            raise HTTPException(422, {"message": str(error), "skipped": []}) from error
        photos, names, skipped = [], [], []
        for index, upload in enumerate(uploads):
            label = getattr(upload, "filename", None) or f"photo {index + 1}"
            try:
                if isinstance(upload, str):
                    raise RejectedUpload(422, "a text value, not an uploaded file")
                data = await upload.read(request.app.state.max_upload_bytes + 1)
                if len(data) > request.app.state.max_upload_bytes:
                    raise RejectedUpload(413, "the photo is too large")
                check_upload(data, request.app.state.max_pixels)
                photos.append(data)
                names.append(label)
            except RejectedUpload as error:
                skipped.append({"photo": label, "reason": error.detail})

        def prepare() -> tuple[Enrolment, str | None]:  # decoding and embedding: the service's memory budget, no gallery lock
            enrolment = prepare_photos(photos, recognizer.embed, names=names, max_pixels=request.app.state.max_pixels)
            return enrolment, known_lookalike(recognizer, photos, fields.name) if enrolment.images else None

        def write(enrolment: Enrolment, warning: str | None) -> AddResult:
            with write_lock, edit(recognizer.gallery_dir) as gallery:
                report = gallery.add_prepared(fields.name, enrolment, recognizer.model_id, latitude=fields.latitude,
                                              longitude=fields.longitude, country=fields.country, city=fields.city,
                                              tags=list(fields.tags), replace=replace, trained=recognizer.class_names)
                result = AddResult(landmark=_describe(gallery, fields.name), warning=warning,
                                   skipped=skipped + [{"photo": source, "reason": why} for source, why in report.skipped])
            recognizer.refresh_gallery()
            return result

        try:
            enrolment, warning = await anyio.to_thread.run_sync(prepare, limiter=request.app.state.limiter) if photos else (None, None)
            if enrolment is None or not enrolment.images:
                skipped += [{"photo": source, "reason": why} for source, why in (enrolment.skipped if enrolment else [])]
                raise GalleryError("no usable photo: nothing was added")
            return await anyio.to_thread.run_sync(write, enrolment, warning)
        except (GalleryUnreadable, GalleryStorageError) as error:
            raise HTTPException(storage_status(error), {"message": str(error), "skipped": skipped}) from error
        except GalleryError as error:
            status = 409 if "already has" in str(error) else 422
            raise HTTPException(status, {"message": str(error), "skipped": skipped}) from error

    @router.delete("/{name}", response_model=TaughtLandmark)
    async def delete_landmark(request: Request, name: str, authorization: str | None = Header(None)) -> TaughtLandmark:
        """Forget a taught landmark."""
        require_admin(authorization)
        recognizer = recognizer_of(request)

        def write() -> TaughtLandmark:
            with write_lock, edit(recognizer.gallery_dir) as gallery:
                stored = gallery.find(name)
                if stored is None:
                    raise HTTPException(404, f"no taught landmark {name!r}")
                described = _describe(gallery, stored)
                gallery.remove(stored)
            recognizer.refresh_gallery()
            return described

        try:
            return await anyio.to_thread.run_sync(write)
        except (GalleryUnreadable, GalleryStorageError) as error:
            raise HTTPException(storage_status(error), str(error)) from error
        except GalleryError as error:
            raise HTTPException(409, str(error)) from error

    return router


def storage_status(error: GalleryError) -> int:
    """507 Insufficient Storage for a full disk, else 503: the server's problem, not the client's request."""
    return 507 if isinstance(error, GalleryStorageError) and error.disk_full else 503
