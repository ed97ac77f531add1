"""The service's gallery endpoints: teach, list and forget landmarks over HTTP.

    POST   /v1/landmarks          multipart: name, latitude, longitude, [country, city, tags, replace], files
    GET    /v1/landmarks          the taught landmarks
    DELETE /v1/landmarks/{name}   forget one

Writes need ``Authorization: Bearer $LANDMARK_ADMIN_TOKEN``; with the variable unset, writes are off
(403), a missing token is 401, a wrong one 403. Writes are serialised (a lock here, a file lock in
`src.serving.gallery.edit`, atomic file replacement), so concurrent requests never lose an edit. The
request body is bounded by the service's own upload limit, and each photo is checked like a predict
upload; an unusable photo is reported and skipped.
"""

from __future__ import annotations

import os
import secrets
import threading
from typing import Annotated

import anyio
from fastapi import APIRouter, File, Form, Header, HTTPException, Request, UploadFile
from pydantic import BaseModel, Field

from src.serving.gallery import Gallery, GalleryError, edit
from src.serving.recognize import Recognizer
from src.serving.uploads import RejectedUpload, check_upload

ADMIN_TOKEN_ENV = "LANDMARK_ADMIN_TOKEN"
MAX_PHOTOS_PER_REQUEST = 50


class TaughtLandmark(BaseModel):
    name: str = Field(examples=["Sydney Opera House"])
    latitude: float
    longitude: float
    country: str = ""
    city: str = ""
    hashtags: list[str] = []
    photos: int = Field(description="enrolled photos")


class AddResult(BaseModel):
    landmark: TaughtLandmark
    skipped: list[dict] = Field(default=[], description="photos that could not be used, with the reason")


def _describe(gallery: Gallery, name: str) -> TaughtLandmark:
    landmark = gallery.landmarks[name]
    return TaughtLandmark(name=landmark.name, latitude=landmark.latitude, longitude=landmark.longitude, country=landmark.country,
                          city=landmark.city, hashtags=landmark.info.hashtags, photos=len(landmark.photos))


def require_admin(authorization: str | None) -> None:
    """401 without a bearer token, 403 when writes are off or the token is wrong."""
    expected = os.environ.get(ADMIN_TOKEN_ENV)
    if not expected:
        raise HTTPException(403, f"teaching landmarks is off on this server: set {ADMIN_TOKEN_ENV} to enable it")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "send Authorization: Bearer <admin token>", headers={"WWW-Authenticate": "Bearer"})
    if not secrets.compare_digest(token.strip().encode(), expected.encode()):
        raise HTTPException(403, "wrong admin token")


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
        """The landmarks taught to this server (they are recognised by /v1/predict)."""
        recognizer = recognizer_of(request)
        gallery = Gallery.load(recognizer.gallery_dir) if recognizer.gallery_dir else None
        return [_describe(gallery, name) for name in gallery.names] if gallery else []

    @router.post("", response_model=AddResult, status_code=201)
    async def add_landmark(
        request: Request,
        files: Annotated[list[UploadFile], File(description="photos of the landmark")],
        name: str = Form(..., max_length=100),
        latitude: float = Form(..., ge=-90, le=90),
        longitude: float = Form(..., ge=-180, le=180),
        country: str = Form("", max_length=100),
        city: str = Form("", max_length=100),
        tags: str = Form("", max_length=500),
        replace: bool = Form(False),
        authorization: str | None = Header(None),
    ) -> AddResult:
        """Teach a landmark from a few photos; at once recognised by /v1/predict."""
        require_admin(authorization)
        recognizer = recognizer_of(request)
        if recognizer.gallery_dir is None:
            raise HTTPException(409, "this server runs without a gallery")
        if len(files) > MAX_PHOTOS_PER_REQUEST:
            raise HTTPException(413, f"at most {MAX_PHOTOS_PER_REQUEST} photos per request")
        photos, skipped = [], []
        for upload in files:
            data = await upload.read(request.app.state.max_upload_bytes + 1)
            try:
                if len(data) > request.app.state.max_upload_bytes:
                    raise RejectedUpload(413, "the photo is too large")
                check_upload(data, request.app.state.max_pixels)
                photos.append(data)
            except RejectedUpload as error:
                skipped.append({"photo": upload.filename or "photo", "reason": error.detail})

        def write() -> AddResult:
            with write_lock, edit(recognizer.gallery_dir) as gallery:
                report = gallery.add(name, photos, recognizer.embed, recognizer.model_id, latitude=latitude, longitude=longitude,
                                     country=country, city=city, tags=tags or None, replace=replace)
                if report.landmark is None:
                    raise GalleryError("no usable photo: nothing was added")
                result = AddResult(landmark=_describe(gallery, report.landmark.name),
                                   skipped=skipped + [{"photo": source, "reason": why} for source, why in report.skipped])
            recognizer.refresh_gallery()
            return result

        try:
            if not photos:
                raise GalleryError("no usable photo: nothing was added")
            recognizer.require_embeddings()
            return await anyio.to_thread.run_sync(write)
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
                if name not in gallery.landmarks:
                    raise HTTPException(404, f"no taught landmark {name!r}")
                described = _describe(gallery, name)
                gallery.remove(name)
            recognizer.refresh_gallery()
            return described

        return await anyio.to_thread.run_sync(write)

    return router
