"""HTTP service over real HTTP: started the documented way (uvicorn src.serving.web.service:app with
LANDMARK_MODEL) in a subprocess on a free loopback port, plus an in-process server with small
limits. Every bad input must get a JSON {"detail": "..."} with a 4xx status, never a 500."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
import uvicorn
from PIL import Image

from src.data.images import DECODE_BYTES_PER_PIXEL
from src.serving.recognizer.recognize import Recognizer
from src.serving.web.service import create_app
from src.serving.web.service import main as service_main
from src.data.images import image_format
from src.serving.web.uploads import MULTIPART_OVERHEAD_BYTES

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the service exited with {process.returncode}: {process.stdout.read()}")
        try:
            if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the service at {url} did not become healthy in {STARTUP_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def service(tiny_model) -> str:
    """`uvicorn src.serving.web.service:app` (the `make service` command) with LANDMARK_MODEL=tiny_model."""
    port = _free_port()
    env = {**os.environ, "LANDMARK_MODEL": str(tiny_model), "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "uvicorn", "src.serving.web.service:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process)
        yield url
    finally:
        process.terminate()
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        # Bad input must never have produced a traceback on the server side.
        assert "Traceback" not in output, output


@contextlib.contextmanager
def serving_in_thread(app):
    """`app` served by uvicorn in a thread of this process on a free port; yields its URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def small_limits_service(tiny_model) -> str:
    """An in-process server (uvicorn.Server in a thread) with a 50 KiB upload limit."""
    with serving_in_thread(create_app(tiny_model, max_upload_bytes=50 * 1024, max_pixels=2_000_000, body_timeout_s=1.0)) as url:
        yield url


def _jpeg(tiny_data, name: str = "01.Green_Square_Gate/000.jpg") -> bytes:
    return (tiny_data / "test" / name).read_bytes()


def _noise_jpeg(size=(800, 600)) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def _post(url: str, data: bytes, filename: str = "photo.jpg", content_type: str = "image/jpeg", **params) -> requests.Response:
    response = requests.post(f"{url}/v1/predict", files={"file": (filename, data, content_type)}, params=params, timeout=60)
    assert response.status_code != 500, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response


def _error(response: requests.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str) and body["detail"]
    return body["detail"]


def test_healthz(service, tiny_model):
    response = requests.get(f"{service}/healthz", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "model": Path(tiny_model).name, "classes": 3, "placement": "strict: probability >= 0.5"}  # no rule file, no min_confidence: the naming threshold


def test_predict_real_jpeg_gives_sorted_top_k(service, tiny_data, tiny_model):
    data = _jpeg(tiny_data)
    response = _post(service, data, top_k=2)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] in {"placed", "guess", "unknown"} and body["message"]
    assert body["model"] == Path(tiny_model).name
    assert len(body["top"]) == 2
    probabilities = [guess["probability"] for guess in body["top"]]
    assert probabilities == sorted(probabilities, reverse=True)
    for guess in body["top"] + [body["guess"]]:  # a candidate never carries a place: no entry has coordinates
        assert {"class_name", "name", "probability", "city", "country", "hashtags"} <= set(guess)
        assert not {"latitude", "longitude", "map_url"} & set(guess)
    assert isinstance(body["placed"], bool) and body["rule"] and body["guess"] == body["top"][0]
    # the tiny model's classes have no coordinates: named at best, never placed
    assert body["landmark"] is None and body["placed"] is False and body["position"] is None

    everything = _post(service, data, top_k=10).json()  # the tiny model knows 3 classes: capped
    assert len(everything["top"]) == 3
    assert sum(guess["probability"] for guess in everything["top"]) == pytest.approx(1.0, abs=1e-4)
    assert len(_post(service, data).json()["top"]) == 3  # default top_k=5, capped

    # The same decision rule as everywhere else: the Recognizer gives the same answer.
    local = Recognizer(tiny_model).recognize(data, top_k=2).to_dict()
    assert body["status"] == local["status"] and body["message"] == local["message"] and body["placed"] == local["placed"]
    assert [g["class_name"] for g in body["top"]] == [g["class_name"] for g in local["top"]]
    assert body["top"][0]["class_name"] == "01.Green_Square_Gate"


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_other_image_formats_are_accepted(service, tiny_data, fmt):
    buffer = io.BytesIO()
    Image.open(tiny_data / "test" / "01.Green_Square_Gate" / "000.jpg").save(buffer, fmt)
    response = _post(service, buffer.getvalue(), filename="no-extension", content_type="application/octet-stream")
    assert response.status_code == 200, response.text


def test_text_file_named_jpg_is_415(service):
    detail = _error(_post(service, b"just some text, not a photo\n" * 10, filename="photo.jpg"), 415)
    assert "not an image" in detail


def test_truncated_jpeg_is_422(service, tiny_data):
    data = _jpeg(tiny_data)
    detail = _error(_post(service, data[: len(data) // 3]), 422)
    assert "truncated" in detail


def test_huge_dimensions_are_refused_before_decoding(service):
    buffer = io.BytesIO()
    Image.new("L", (12000, 8000)).save(buffer, "PNG")  # 96 Mpx in ~100 KB
    assert len(buffer.getvalue()) < 1_000_000
    response = _post(service, buffer.getvalue(), filename="bomb.png", content_type="image/png")
    detail = _error(response, 413)
    assert "too many pixels" in detail and "12000x8000" in detail


def test_missing_file_is_422_with_a_clear_message(service):
    detail = _error(requests.post(f"{service}/v1/predict", timeout=10), 422)
    assert "'file'" in detail and "multipart" in detail
    detail = _error(requests.post(f"{service}/v1/predict", files={"photo": ("a.jpg", b"x")}, timeout=10), 422)
    assert "'file'" in detail
    detail = _error(requests.post(f"{service}/v1/predict", data={"file": "not a file"}, timeout=10), 422)
    assert "'file'" in detail


@pytest.mark.parametrize("top_k", [0, 11, "many"])
def test_bad_top_k_is_422(service, tiny_data, top_k):
    assert "top_k" in _error(_post(service, _jpeg(tiny_data), top_k=top_k), 422)


@pytest.mark.parametrize(
    "data, status",
    [
        (b"", 422),
        (b"\x00" * 64, 415),
        (b"%PDF-1.7\n" + b"x" * 100, 415),
        (b"<html><body>hi</body></html>", 415),
        (b"BM and then some prose that is not a bitmap", 415),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 100, 422),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, 422),
        (b"GIF89a" + b"\xff" * 20, 422),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 8, 422),
        (b"II*\x00" + b"\xff" * 40, 422),
        (b"BM" + b"\x00" * 12 + b"\x28\x00\x00\x00" + b"\xff" * 40, 422),
    ],
)
def test_garbage_never_gives_500(service, data, status):
    _error(_post(service, data, filename=f"{uuid.uuid4().hex}.jpg"), status)


def test_concurrent_requests_all_succeed(service, tiny_data):
    data = _jpeg(tiny_data)
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: _post(service, data), range(16)))
    assert [r.status_code for r in responses] == [200] * 16
    assert len({r.json()["top"][0]["class_name"] for r in responses}) == 1


def test_openapi_documents_the_endpoints(service):
    schema = requests.get(f"{service}/openapi.json", timeout=10).json()
    assert "/v1/predict" in schema["paths"] and "/healthz" in schema["paths"]
    predict = schema["paths"]["/v1/predict"]["post"]
    assert {"413", "415", "422"} <= set(predict["responses"])
    assert "Prediction" in schema["components"]["schemas"]
    assert requests.get(f"{service}/docs", timeout=10).status_code == 200


@pytest.mark.parametrize("size", [(800, 600), (300, 250)])
def test_oversize_upload_is_413(small_limits_service, size):
    """Refused from Content-Length (far over) or while reading the file in chunks (a bit over)."""
    big = _noise_jpeg(size)
    assert len(big) > 50 * 1024
    if size == (300, 250):  # under the body limit (file limit + multipart slack): the chunked read refuses it
        assert len(big) < 50 * 1024 + MULTIPART_OVERHEAD_BYTES
    detail = _error(_post(small_limits_service, big), 413)
    assert "too large" in detail and "50 KiB" in detail


def test_oversize_chunked_upload_is_cut_off_with_413(small_limits_service):
    """No Content-Length to trust: the body is counted as it streams in."""
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode()

    def body():
        yield head
        for _ in range(64):  # 4 MiB in total, far above the limit
            yield b"\xff" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    try:
        response = requests.post(
            f"{small_limits_service}/v1/predict", data=body(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}, timeout=60,
        )
    except requests.ConnectionError:
        pytest.skip("the server closed the connection before the client could read the 413")  # OS-dependent race
    assert "too large" in _error(response, 413)


def test_upload_just_under_the_limit_is_accepted(small_limits_service, tiny_data):
    data = _jpeg(tiny_data)
    assert len(data) < 50 * 1024
    assert _post(small_limits_service, data).status_code == 200


def test_small_pixel_limit_is_configurable(small_limits_service):
    buffer = io.BytesIO()
    Image.new("RGB", (2000, 1500)).save(buffer, "JPEG")  # 3 Mpx > 2 Mpx limit, tiny file
    assert "too many pixels" in _error(_post(small_limits_service, buffer.getvalue()), 413)


def test_an_avif_upload_is_checked_like_any_photo():
    """AVIF is sniffed from its bytes and opened by Pillow's own plugin (13.0 has one)."""
    from src.serving.web.uploads import check_upload

    Image.init()
    if "AVIF" not in Image.SAVE:
        pytest.skip("this Pillow has no AVIF encoder to make the test photo")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(buffer, "AVIF")
    assert check_upload(buffer.getvalue(), max_pixels=10_000) == "AVIF"


def test_sniffing_uses_bytes_not_names():
    assert image_format(b"\xff\xd8\xff\xdb") == "JPEG"
    assert image_format(b"\x89PNG\r\n\x1a\n") == "PNG"
    assert image_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "WEBP"
    assert image_format(b"GIF87a") == "GIF"
    assert image_format(b"MM\x00*\x00\x00\x00\x08") == "TIFF"
    assert image_format(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00") == "HEIF"
    assert image_format(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00") == "AVIF"
    assert image_format(b"BM" + b"\x00" * 12 + b"\x7c\x00\x00\x00") == "BMP"
    assert image_format(b"BMW is a car") is None
    assert image_format(b"hello.jpg") is None


def test_cli_refuses_a_missing_model(capsys):
    with pytest.raises(SystemExit) as exit_:
        service_main(["--model", "/nonexistent/model.pt", "--port", "1"])
    assert exit_.value.code == 2 and "no model" in capsys.readouterr().err


def test_heic_upload_is_recognised(service, tiny_data):
    pytest.importorskip("pillow_heif", reason="pillow-heif is not installed")
    buffer = io.BytesIO()
    Image.open(tiny_data / "test" / "01.Green_Square_Gate" / "000.jpg").save(buffer, "HEIF", quality=90)
    response = _post(service, buffer.getvalue(), filename="IMG_0001.HEIC", content_type="image/heic")
    assert response.status_code == 200, response.text
    assert response.json()["top"][0]["class_name"] == "01.Green_Square_Gate"


def test_a_second_file_part_is_422(service, tiny_data):
    data = _jpeg(tiny_data)
    files = [("file", ("a.jpg", data, "image/jpeg")), ("file", ("b.jpg", data, "image/jpeg"))]
    response = requests.post(f"{service}/v1/predict", files=files, timeout=60)
    assert "more than once" in _error(response, 422)


def test_missing_multipart_boundary_is_a_documented_400(service):
    response = requests.post(f"{service}/v1/predict", data=b"--x\r\n", headers={"Content-Type": "multipart/form-data"}, timeout=60)
    assert response.status_code == 400 and response.json()["detail"]
    responses = requests.get(f"{service}/openapi.json", timeout=60).json()["paths"]["/v1/predict"]["post"]["responses"]
    assert {"400", "408", "413", "415", "422"} <= set(responses)


def test_stalled_upload_is_cut_off_with_408(small_limits_service):
    host, port = small_limits_service.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(
            b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 10000\r\n\r\n--b\r\n"  # then nothing more: a stalled client
        )
        answer = b""
        while chunk := connection.recv(65536):  # headers and body may come in separate packets
            answer += chunk
        answer = answer.decode("latin-1")
    assert answer.startswith("HTTP/1.1 408") and "stalled" in answer


def test_concurrency_is_derived_from_the_memory_budget(tiny_model):
    per_image = 60_000_000 * DECODE_BYTES_PER_PIXEL
    assert create_app(tiny_model, memory_bytes=2 * per_image, max_pixels=60_000_000).state.max_concurrency == min(2, os.cpu_count() or 1)
    assert create_app(tiny_model, memory_bytes=1, max_pixels=60_000_000).state.max_concurrency == 1
    assert create_app(tiny_model, max_concurrency=7).state.max_concurrency == 7
