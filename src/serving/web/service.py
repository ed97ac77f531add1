"""JSON web service: upload a photo, get the top-k landmarks with location and tags.

    make service                                   # uvicorn src.serving.web.service:app on 127.0.0.1:8000
    python -m src.serving.web.service --port 8000 --model checkpoints/transfer_exported.pt

Endpoints (interactive docs at ``/docs``, schema at ``/openapi.json``):

* ``POST /v1/predict`` -- multipart/form-data field ``file`` (the photo), optional query ``top_k``
  (1..10). Answers ``{status: "placed"|"guess"|"unknown", placed, position, message, landmark, guess, top: [...],
  rule, model}``: ``landmark`` and ``position`` only when placed; ``guess`` and ``top`` never carry coordinates.
* ``GET /healthz`` -- ``{status: "ok", model, classes, placement}`` once the model is loaded, plus ``gallery``
  (why, and how to restore it) while an unreadable gallery file keeps taught landmarks off.

Every answer comes from `src.recognize.Recognizer`, the same decision rule the app and the batch
tagger use. The model is loaded once per process, at startup (lifespan), from the ``model_path``
given to `create_app`, else ``$LANDMARK_MODEL``, else the model in ``checkpoints/``.

Untrusted uploads are checked before any pixel is decoded, and every bad input gets a JSON
``{"detail": "..."}`` with a 4xx status, never a 500:

* 413 -- the upload is larger than ``max_upload_bytes`` (``$LANDMARK_MAX_UPLOAD_MB``, default 20 MB;
  the request body is counted while it streams in and refused as soon as it passes the limit), or
  the image has more than ``max_pixels`` pixels (``$LANDMARK_MAX_PIXELS``, default 60 Mpx: a
  decompression bomb is refused from its header, before decoding).
* 415 -- the bytes are not a JPEG, PNG, WebP, GIF, BMP, TIFF or HEIC image. The type is sniffed
  from the content (magic numbers), never from the file name or the declared content type.
* 422 -- an empty, truncated or corrupt image, a missing ``file`` field, two ``file`` parts,
  ``top_k`` out of range.
* 400 -- the body is not multipart/form-data at all (e.g. no boundary in the Content-Type).
* 408 -- the client stopped sending its body for ``body_timeout_s`` seconds (a stalled upload), or its
  body was not complete ``request_deadline_s`` seconds after the request began (a trickle).

Inference runs in worker threads (never on the event loop), at most ``max_concurrency`` at a time.
That number is derived from a memory budget (``memory_bytes``, ``$LANDMARK_MEMORY_MB``, default
1024 MB) divided by what decoding the largest allowed image costs (``max_pixels`` x
`src.data.images.DECODE_BYTES_PER_PIXEL`), and never more than the CPU cores: however many clients
send 56 Mpx PNGs at once, decoding stays within the budget; the others wait their turn.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import anyio
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field

from src.data.images import MAX_PIXELS, decodes_within
from src.serving.web.gallery_api import gallery_router
from src.serving.recognizer.recognize import MAX_UPLOAD_BYTES, Recognizer, default_model_path
from src.serving.web.service_options import serve_parser
from src.serving.web.uploads import (
    BODY_TIMEOUT_S,
    MULTIPART_OVERHEAD_BYTES,
    REQUEST_DEADLINE_S,
    SUPPORTED_FORMATS,
    BodyLimit,
    RejectedUpload,
    check_upload,
    describe_validation_errors,
    format_mib,
)

log = logging.getLogger(__name__)

__all__ = [
    "ErrorResponse",
    "Guess",
    "Health",
    "Prediction",
    "RejectedUpload",
    "app",
    "create_app",
    "main",
]

CHUNK_BYTES = 1024 * 1024
MAX_TOP_K = 10
DEFAULT_MEMORY_BYTES = 1024 * 2**20


# --------------------------------------------------------------------------------------------
# Response models
# --------------------------------------------------------------------------------------------


class Guess(BaseModel):
    """One candidate landmark with its probability and what is known about it, never where it is: a candidate
    is not a place (`top`, `guess`)."""

    class_name: str = Field(description="class folder name the model was trained on", examples=["22.Taj_Mahal"])
    name: str = Field(description="display name", examples=["Taj Mahal"])
    probability: float = Field(ge=0.0, le=1.0, examples=[0.93])
    city: str = ""
    region: str = ""
    country: str = ""
    location: str = Field("", description="city, region, country", examples=["Agra, Uttar Pradesh, India"])
    hashtags: list[str] = Field(default_factory=list, examples=[["#TajMahal", "#Agra"]])


class PlacedLandmark(Guess):
    """The placed landmark: a candidate with its coordinates."""

    latitude: float = Field(description="WGS-84 degrees", examples=[27.175])
    longitude: float = Field(description="WGS-84 degrees", examples=[78.0421])
    map_url: str = Field(description="OpenStreetMap link with a marker on the landmark")


class Position(BaseModel):
    """Where the photo was taken: the placed landmark's coordinates."""

    latitude: float = Field(description="WGS-84 degrees", examples=[27.175])
    longitude: float = Field(description="WGS-84 degrees", examples=[78.0421])


class Prediction(BaseModel):
    """The answer for one photo. A guess is never a place: coordinates appear only when `placed`."""

    status: Literal["placed", "guess", "unknown"] = Field(
        description='"placed": top[0] is recognised and its position given; "guess": top[0] looks likely but is not sure enough to '
        'place (or has no position); "unknown": not one of the known landmarks. The tagger\'s report uses the same words.'
    )
    placed: bool = Field(description="true when the placement rule is sure enough to give the named landmark's position "
                         "(the default point places at most 1 % of photos of landmarks the model never saw; docs/unknown.md)")
    position: Position | None = Field(None, description="the placed landmark's coordinates; null unless placed")
    message: str = Field(description="one human-readable sentence", examples=["Taj Mahal (99%)"])
    landmark: PlacedLandmark | None = Field(None, description="top[0] with its coordinates when placed, else null")
    guess: Guess | None = Field(None, description="the best candidate (top[0]), placed or not; never with coordinates")
    top: list[Guess] = Field(description="the top-k candidates, most probable first (names and probabilities; no entry has coordinates)")
    rule: str = Field("", description="what decided the status and the placement")
    model: str = Field(description="file name of the model that answered", examples=["transfer_exported.pt"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    model: str = Field(description="file name of the loaded model")
    classes: int = Field(description="number of classes the model knows")
    placement: str = Field(description="when a position is given: the placement point, score and threshold in force (docs/unknown.md)",
                           examples=["strict: probability*reference >= 0.891266 (taught: probability >= 0.994654)"])
    gallery: str | None = Field(None, description="only when taught landmarks are off: why (an unreadable gallery file) "
                                "and how to restore it; the trained landmarks are served meanwhile")


class ErrorResponse(BaseModel):
    detail: str = Field(description="what was wrong with the request", examples=["the upload is not an image"])



def _error(description: str, example: str) -> dict:
    """An error response for the OpenAPI page, with its own example (the model's one would repeat for every status)."""
    return {"model": ErrorResponse, "description": description, "content": {"application/json": {"example": {"detail": example}}}}


_ERRORS = {
    400: _error("not a multipart/form-data body (e.g. no boundary in the Content-Type)", "Missing boundary in multipart."),
    408: _error("the upload stalled (no bytes for the body timeout) or was not complete by the request deadline", f"the upload stalled: no data for {BODY_TIMEOUT_S:g} s"),
    413: _error("upload larger than the byte limit, or too many pixels", "the upload is too large (31.5 MiB; limit 20.0 MiB)"),
    415: _error(f"not an image ({SUPPORTED_FORMATS}, sniffed from the bytes)",
                f"the upload is not an image: expected {SUPPORTED_FORMATS} (checked from its bytes)"),
    422: _error("missing or repeated file field, empty/truncated/corrupt image, bad top_k", "the uploaded file is empty (0 bytes)"),
}



# --------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------


def _env_int(name: str, default: int, scale: float = 1.0) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return int(float(value) * scale)
    except ValueError:
        raise ValueError(f"${name} must be a number, got {value!r}") from None


def create_app(
    model_path: str | Path | None = None,
    *,
    max_upload_bytes: int | None = None,
    max_pixels: int | None = None,
    max_concurrency: int | None = None,
    memory_bytes: int | None = None,
    body_timeout_s: float = BODY_TIMEOUT_S,
    request_deadline_s: float = REQUEST_DEADLINE_S,
    recognizer: Recognizer | None = None,
    runtime: str | None = None,
    precision: str | None = None,
    placement: str | float | None = None,
) -> FastAPI:
    """Build the service. Nothing is loaded here: the model is loaded once, at startup.

    model_path: the exported model; None -> ``$LANDMARK_MODEL`` (read at startup) or the default.
    max_upload_bytes: None -> ``$LANDMARK_MAX_UPLOAD_MB`` or 20 MB.
    max_pixels: None -> ``$LANDMARK_MAX_PIXELS`` or 60 Mpx.
    max_concurrency: recognitions running at once; None -> derived from memory_bytes and max_pixels,
        at most the number of CPU cores.
    memory_bytes: what decoding may use at once; None -> ``$LANDMARK_MEMORY_MB`` or 1024 MB.
    body_timeout_s: a request whose body sends nothing for this long is answered 408.
    request_deadline_s: a request whose body is not complete this long after it began is answered 408.
    recognizer: an already loaded Recognizer to serve (tests, embedding); skips loading.
    runtime, precision: the model's engine (`src.serving.recognizer.runtime`); None -> ``$LANDMARK_RUNTIME`` or "auto".
    placement: when a named landmark's position is given (`Recognizer`); None -> the model's "strict" point.
    """
    max_upload_bytes = max_upload_bytes or _env_int("LANDMARK_MAX_UPLOAD_MB", MAX_UPLOAD_BYTES, 1024 * 1024)
    max_pixels = max_pixels or _env_int("LANDMARK_MAX_PIXELS", MAX_PIXELS)
    memory_bytes = memory_bytes or _env_int("LANDMARK_MEMORY_MB", DEFAULT_MEMORY_BYTES, 2**20)
    max_concurrency = max_concurrency or min(os.cpu_count() or 1, decodes_within(memory_bytes, max_pixels))
    load_lock = threading.Lock()

    def load_recognizer() -> Recognizer:
        with load_lock:
            if app.state.recognizer is None:
                path = Path(model_path) if model_path else default_model_path()
                log.info("loading model %s", path)
                app.state.recognizer = Recognizer(path, runtime=runtime, precision=precision, placement=placement)
            return app.state.recognizer

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.limiter = anyio.CapacityLimiter(max_concurrency)
        await anyio.to_thread.run_sync(load_recognizer)  # fail at startup, not on the first request
        yield

    app = FastAPIOffline(  # FastAPI whose /docs and /redoc load their JS/CSS from this service: they render offline
        title="Landmark Tagger",
        version="1.0",
        summary="Where was this photo taken? Top-k landmarks with location and hashtags.",
        lifespan=lifespan,
    )
    app.state.recognizer = recognizer
    app.state.limiter = None
    app.state.max_upload_bytes = max_upload_bytes
    app.state.max_pixels = max_pixels
    app.state.max_concurrency = max_concurrency
    app.add_middleware(BodyLimit, max_body=max_upload_bytes + MULTIPART_OVERHEAD_BYTES, timeout_s=body_timeout_s,
                       deadline_s=request_deadline_s)
    app.include_router(gallery_router())  # POST/GET /v1/landmarks, DELETE /v1/landmarks/{name}: taught landmarks

    async def get_recognizer() -> Recognizer:
        if app.state.recognizer is None:  # served without its lifespan (mounted, some test clients)
            await anyio.to_thread.run_sync(load_recognizer)
        return app.state.recognizer

    @app.exception_handler(RejectedUpload)
    async def rejected(request: Request, error: RejectedUpload) -> JSONResponse:
        return JSONResponse({"detail": error.detail}, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": describe_validation_errors(error.errors())}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse({"detail": "internal error: the server could not process this request"}, status_code=500)

    @app.get("/healthz", response_model=Health, response_model_exclude_none=True, tags=["service"])
    async def healthz() -> Health:
        """Liveness/readiness: the model is loaded and how many classes it knows (and, only when the
        gallery file is unreadable, why taught landmarks are off)."""
        recognizer = await get_recognizer()
        await anyio.to_thread.run_sync(recognizer.refresh_gallery)  # a stat; reads the file only when it changed
        return Health(model=recognizer.model_path.name, classes=len(recognizer.landmark_indices), placement=recognizer.placement_description,
                      gallery=recognizer.gallery_problem)

    @app.post("/v1/predict", response_model=Prediction, responses=_ERRORS, tags=["predict"])
    async def predict(
        request: Request,
        file: UploadFile = File(..., description=f"the photo ({SUPPORTED_FORMATS}); type is sniffed from its bytes"),
        top_k: int = Query(5, ge=1, le=MAX_TOP_K, description="how many candidates to return"),
    ) -> Prediction:
        """Recognise the landmark in one photo: top-k candidates, or an honest "unknown"."""
        if len((await request.form()).getlist("file")) > 1:  # parsed once already; FastAPI keeps the last
            raise RejectedUpload(422, "send one photo per request: the 'file' field appears more than once")
        data = await _read_limited(file, app.state.max_upload_bytes)
        recognizer = await get_recognizer()
        result = await anyio.to_thread.run_sync(_recognize, recognizer, data, top_k, app.state.max_pixels, limiter=app.state.limiter)
        body = result.to_dict()
        return Prediction(**{key: body[key] for key in ("status", "placed", "position", "message", "landmark", "guess", "top", "rule")},
                          model=recognizer.model_path.name)

    return app


async def _read_limited(file: UploadFile, max_bytes: int) -> bytes:
    """Read an upload in chunks; refuse (413) as soon as it passes ``max_bytes``."""
    chunks, size = [], 0
    while True:
        chunk = await file.read(CHUNK_BYTES)
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise RejectedUpload(413, f"the upload is too large (limit {format_mib(max_bytes)})")
        chunks.append(chunk)
    return b"".join(chunks)


def _recognize(recognizer: Recognizer, data: bytes, top_k: int, max_pixels: int):
    """Worker thread: check the upload, then recognise it (the one shared decision rule)."""
    check_upload(data, max_pixels)
    result = recognizer.recognize(data, top_k=top_k, max_bytes=len(data))
    if result.status == "error":
        raise RejectedUpload(422, result.message)
    return result


app = create_app()


def main(argv: Sequence[str] | None = None) -> int:
    parser = serve_parser()
    args = parser.parse_args(argv)
    if args.model is not None and not args.model.exists():
        parser.error(f"no model at {args.model}")

    import uvicorn

    service = create_app(
        args.model,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024) if args.max_upload_mb else None,
        max_pixels=args.max_pixels,
        max_concurrency=args.max_concurrency,
        memory_bytes=int(args.memory_mb * 2**20) if args.memory_mb else None,
        body_timeout_s=args.body_timeout,
        request_deadline_s=args.request_timeout,
        runtime=args.runtime,
        precision=args.precision,
        placement=args.placement,
    )
    # Idle keep-alive connections are closed after a few seconds; a stalled body is BodyLimit's 408.
    uvicorn.run(service, host=args.host, port=args.port, log_level=args.log_level, timeout_keep_alive=5,
                timeout_graceful_shutdown=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
