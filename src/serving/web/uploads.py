"""Checks on what clients upload to the service: the image format from its first bytes, the pixel count
before decoding, a JPEG too short for the size it claims, readable validation errors, and hard limits on
the request body (ASGI middleware): its size, a stall, and an overall deadline."""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence

import anyio
from fastapi.responses import JSONResponse
from PIL import Image, UnidentifiedImageError

from src.data.images import image_format
from src.serving.web.service_options import BODY_TIMEOUT_S, REQUEST_DEADLINE_S

# Multipart framing (boundaries, part headers, a field or two) on top of the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
SUPPORTED_FORMATS = "JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC or AVIF"
# Huffman-coded JPEG scans spend at least one bit on every 8x8 block of every component (its DC code).
BLOCK = 8
ARITHMETIC_SOF = {0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # arithmetic-coded JPEGs may spend less: not checked
STANDALONE_MARKERS = {0x01, 0xD8, *range(0xD0, 0xD8)}  # markers without a length field

class RejectedUpload(Exception):
    """Bad input: becomes a JSON ``{"detail": message}`` with ``status_code``."""

    def __init__(self, status_code: int, detail: str):
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


class BodyTooLarge(Exception):
    pass


class BodyStalled(Exception):
    pass



# --------------------------------------------------------------------------------------------
# Upload checks (pure functions, run before the recognizer decodes anything)
# --------------------------------------------------------------------------------------------


def check_upload(data: bytes, max_pixels: int) -> str:
    """Refuse what must not reach the decoder; returns the sniffed format.

    Raises RejectedUpload: 422 empty, 415 not an image / unsupported, 413 too many pixels.
    Only the header is parsed here (no pixel is decoded), so a decompression bomb costs nothing.
    """
    if not data:
        raise RejectedUpload(422, "the uploaded file is empty (0 bytes)")
    fmt = image_format(data[:32])
    if fmt is None:
        raise RejectedUpload(415, f"the upload is not an image: expected {SUPPORTED_FORMATS} (checked from its bytes)")
    if fmt not in Image.OPEN:
        Image.init()  # registers every plugin Pillow has
    if fmt not in Image.OPEN:
        hint = " (install pillow-heif for HEIC photos)" if fmt == "HEIF" else ""
        raise RejectedUpload(415, f"{fmt} images are not supported by this server{hint}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[fmt]) as image:
                width, height = image.size
                layers = getattr(image, "layer", None)  # JPEG: each component's sampling factors
    except Image.DecompressionBombError as error:
        raise RejectedUpload(413, f"the image has too many pixels (a possible decompression bomb): {error}") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        raise RejectedUpload(422, f"corrupt or truncated {fmt} image ({error})") from error
    if width * height > max_pixels:
        raise RejectedUpload(
            413,
            f"the image has too many pixels ({width}x{height} = {width * height / 1e6:.0f} Mpx; "
            f"limit {max_pixels / 1e6:.0f} Mpx)",
        )
    if fmt == "JPEG":
        shortfall = jpeg_shortfall(data, (width, height), layers)
        if shortfall:
            raise RejectedUpload(422, f"corrupt or truncated JPEG image ({shortfall})")
    return fmt


def jpeg_scan_start(data: bytes) -> tuple[int, int] | None:
    """(the frame's SOF marker, where the first scan's coded data starts), walking the header segments;
    None when the header cannot be walked (Pillow has read it already: then nothing more is claimed)."""
    position, frame = 2, None
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in STANDALONE_MARKERS:
            position += 2
            continue
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            frame = marker
        if marker == 0xDA:
            return (frame, position + 2 + length) if frame is not None else None
        position += 2 + length
    return None


def jpeg_shortfall(data: bytes, size: tuple[int, int], layers: Sequence[tuple] | None) -> str | None:
    """Why a JPEG cannot hold the picture its header claims, or None. A decoder fills what is missing
    with grey without an error when the data ends early at an end marker, and grey is then named
    "unknown": a 7000x7000 header over a few kilobytes must be refused instead. Every 8x8 block of
    every component costs at least one bit (its DC code), so fewer coded bytes than blocks / 8 cannot
    be the whole picture. layers: Pillow's (id, h, v, table) sampling factors per component."""
    scan = jpeg_scan_start(data)
    if scan is None or not layers or scan[0] in ARITHMETIC_SOF:
        return None
    width, height = size
    h_max, v_max = max(layer[1] for layer in layers), max(layer[2] for layer in layers)
    blocks = sum(math.ceil(math.ceil(width * layer[1] / h_max) / BLOCK) * math.ceil(math.ceil(height * layer[2] / v_max) / BLOCK)
                 for layer in layers)
    coded = len(data) - scan[1]
    if coded * 8 < blocks:
        return f"{width}x{height} px need at least {math.ceil(blocks / 8)} bytes of image data, the file holds {max(coded, 0)}"
    return None


def describe_validation_errors(errors: Sequence[dict]) -> str:
    parts = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path", "header")]
        field = ".".join(loc) or "request"
        if field == "file" and error.get("type") == "missing":
            parts.append("no photo in the request: send it as the multipart/form-data field 'file'")
        elif field == "file":
            parts.append("the 'file' field must be an uploaded file (multipart/form-data), not a text value")
        else:
            parts.append(f"{field}: {error.get('msg', 'invalid value')}")
    return "; ".join(parts) or "invalid request"


# --------------------------------------------------------------------------------------------
# Body size limit (pure ASGI, so it works before the multipart parser spools anything)
# --------------------------------------------------------------------------------------------


class BodyLimit:
    """Refuse request bodies above ``max_body`` bytes with 413, as early as possible, and stalled or
    endless bodies with 408.

    A declared Content-Length above the limit is refused before one byte of the body is read; a
    chunked or lying client is cut off as soon as the bytes received pass the limit. A client that
    sends nothing for ``timeout_s`` seconds while its body is incomplete is answered 408, and so is one
    whose body is not complete ``deadline_s`` seconds after the request began (one byte just under
    every ``timeout_s`` would otherwise hold the connection for ever).
    """

    def __init__(self, app, max_body: int, timeout_s: float = BODY_TIMEOUT_S, deadline_s: float = REQUEST_DEADLINE_S):
        self.app = app
        self.max_body = max_body
        self.timeout_s = timeout_s if timeout_s and timeout_s > 0 else math.inf
        self.deadline_s = deadline_s if deadline_s and deadline_s > 0 else math.inf

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            return await self._too_large(send, int(declared))

        received = 0
        overflow = stalled = started = False
        body_done = False
        ends_at = anyio.current_time() + self.deadline_s
        stall_reason = ""

        async def limited_receive():
            nonlocal received, overflow, stalled, body_done, stall_reason
            if body_done:  # after the body only a disconnect can come: no timeout on that wait
                return await receive()
            left = ends_at - anyio.current_time()
            wait = min(self.timeout_s, max(left, 0.0))
            with anyio.move_on_after(wait) as deadline:
                message = await receive()
            if deadline.cancelled_caught:
                stalled = True
                stall_reason = (f"the upload stalled: no data for {self.timeout_s:g} s" if wait == self.timeout_s
                                else f"the upload took too long: not complete after {self.deadline_s:g} s")
                raise BodyStalled()
            if message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > self.max_body:
                    overflow = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message):
            nonlocal started
            if overflow or stalled:
                # The app may have turned our exception into some other error response (FastAPI
                # reports any body-parsing failure as 400): answer 413/408 instead, once.
                if not started:
                    started = True
                    await (self._too_large(send, None) if overflow else self._stalled(send, stall_reason))
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except (BodyTooLarge, BodyStalled) as error:
            if started:
                return
            started = True
            await (self._too_large(send, None) if isinstance(error, BodyTooLarge) else self._stalled(send, stall_reason))

    async def _stalled(self, send, reason: str) -> None:
        response = JSONResponse({"detail": reason}, status_code=408, headers={"Connection": "close"})
        await response({"type": "http"}, _no_receive, send)

    async def _too_large(self, send, size: int | None) -> None:
        limit = max(0, self.max_body - MULTIPART_OVERHEAD_BYTES)
        got = f"{format_mib(size)}; " if size is not None else ""
        response = JSONResponse(
            {"detail": f"the upload is too large ({got}limit {format_mib(limit)})"},
            status_code=413,
            headers={"Connection": "close"},
        )
        await response({"type": "http"}, _no_receive, send)


def format_mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 1024:.0f} KiB"


async def _no_receive():  # pragma: no cover - JSONResponse never reads the request
    return {"type": "http.disconnect"}

