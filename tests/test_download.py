"""Tests for src.data.download against a local HTTP server (no network access needed)."""

from __future__ import annotations

import hashlib
import io
import re
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, Optional

import pytest
from PIL import Image

from src.data.download import (
    DataUnavailableError,
    download_and_extract,
    download_file,
    find_data_root,
    safe_extract_zip,
)

# --------------------------------------------------------------------------- local server


class FileServer(ThreadingHTTPServer):
    """Serves in-memory files, with switches that simulate misbehaving servers."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RangeHandler)
        self.files: dict[str, bytes] = {}
        self.ignore_range = False
        self.truncate_after: Optional[int] = None  # body bytes sent before dropping the connection
        self.requests: list[tuple[str, Optional[str]]] = []  # (path, Range header)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"

    def reset(self) -> None:
        self.files.clear()
        self.ignore_range = False
        self.truncate_after = None
        self.requests.clear()


class RangeHandler(BaseHTTPRequestHandler):
    """GET handler that honours `Range: bytes=N-` / `bytes=N-M` with 206 answers."""

    server: FileServer

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        range_header = self.headers.get("Range")
        self.server.requests.append((self.path, range_header))
        data = self.server.files.get(self.path.lstrip("/"))
        if data is None:
            self.send_error(404)
            return
        start, end = 0, len(data) - 1
        status = 200
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header or "")
        if match and not self.server.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            end = min(int(match.group(2)), end) if match.group(2) else end
            status = 206
        body = data[start : end + 1]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if self.server.truncate_after is not None:
            body = body[: self.server.truncate_after]
            self.close_connection = True
        self.wfile.write(body)


@pytest.fixture(scope="module")
def _server() -> Iterator[FileServer]:
    server = FileServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def server(_server: FileServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    # A proxy configured in the environment must not intercept requests to 127.0.0.1.
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    _server.reset()
    yield _server
    _server.reset()


# --------------------------------------------------------------------------- data


def _jpeg(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, "JPEG")
    return buffer.getvalue()


def _zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return buffer.getvalue()


def _dataset_zip() -> bytes:
    return _zip_bytes(
        {
            "landmark_images/train/00.A/x.jpg": _jpeg((200, 10, 10)),
            "landmark_images/test/00.A/y.jpg": _jpeg((10, 10, 200)),
        }
    )


@pytest.fixture
def payload() -> bytes:
    """A few hundred KB of incompressible-ish bytes, several download chunks long."""
    return hashlib.sha256(b"seed").digest() * 10_000


def _all_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*"))


# --------------------------------------------------------------------------- download_file


def test_download_file_streams_to_destination(server: FileServer, payload: bytes, tmp_path: Path) -> None:
    server.files["blob.bin"] = payload
    destination = tmp_path / "sub" / "blob.bin"

    result = download_file(server.url("blob.bin"), destination, chunk_size=4096, progress=False)

    assert result == destination
    assert destination.read_bytes() == payload
    assert not (tmp_path / "sub" / "blob.bin.part").exists()
    assert server.requests == [("/blob.bin", None)]


def test_resume_partial_download_with_range(server: FileServer, payload: bytes, tmp_path: Path) -> None:
    server.files["blob.bin"] = payload
    destination = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(payload[:1000])

    download_file(server.url("blob.bin"), destination, chunk_size=4096, progress=False)

    assert server.requests == [("/blob.bin", "bytes=1000-")]
    assert destination.read_bytes() == payload
    assert not (tmp_path / "blob.bin.part").exists()


def test_server_ignoring_range_restarts_from_zero(server: FileServer, payload: bytes, tmp_path: Path) -> None:
    server.files["blob.bin"] = payload
    server.ignore_range = True
    destination = tmp_path / "blob.bin"
    # Garbage in the partial file: it must be discarded, not prepended to the 200 body.
    (tmp_path / "blob.bin.part").write_bytes(b"\xff" * 777)

    download_file(server.url("blob.bin"), destination, progress=False)

    assert server.requests == [("/blob.bin", "bytes=777-")]
    assert destination.read_bytes() == payload


def test_416_on_complete_part_file_finishes(server: FileServer, payload: bytes, tmp_path: Path) -> None:
    server.files["blob.bin"] = payload
    destination = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(payload)

    download_file(server.url("blob.bin"), destination, sha256=hashlib.sha256(payload).hexdigest(), progress=False)

    assert server.requests == [("/blob.bin", f"bytes={len(payload)}-")]
    assert destination.read_bytes() == payload


def test_truncated_transfer_keeps_part_then_resumes(server: FileServer, payload: bytes, tmp_path: Path) -> None:
    server.files["blob.bin"] = payload
    server.truncate_after = 5000
    destination = tmp_path / "blob.bin"
    part = tmp_path / "blob.bin.part"

    with pytest.raises(DataUnavailableError, match="truncated|interrupted"):
        download_file(server.url("blob.bin"), destination, chunk_size=4096, progress=False)
    assert not destination.exists()
    assert part.read_bytes() == payload[:5000]

    server.truncate_after = None
    download_file(server.url("blob.bin"), destination, chunk_size=4096, progress=False)

    assert server.requests[-1] == ("/blob.bin", "bytes=5000-")
    assert destination.read_bytes() == payload
    assert not part.exists()


def test_sha256_match(server: FileServer, payload: bytes, tmp_path: Path) -> None:
    server.files["blob.bin"] = payload
    digest = hashlib.sha256(payload).hexdigest()

    result = download_file(server.url("blob.bin"), tmp_path / "blob.bin", sha256=digest.upper(), progress=False)

    assert hashlib.sha256(result.read_bytes()).hexdigest() == digest


def test_sha256_mismatch_deletes_part(server: FileServer, payload: bytes, tmp_path: Path) -> None:
    server.files["blob.bin"] = payload
    wrong = "0" * 64
    actual = hashlib.sha256(payload).hexdigest()

    with pytest.raises(ValueError) as excinfo:
        download_file(server.url("blob.bin"), tmp_path / "blob.bin", sha256=wrong, progress=False)

    assert wrong in str(excinfo.value) and actual in str(excinfo.value)
    assert not (tmp_path / "blob.bin").exists()
    assert not (tmp_path / "blob.bin.part").exists()


def test_http_error_raises_data_unavailable(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(DataUnavailableError, match="404") as excinfo:
        download_file(server.url("missing.zip"), tmp_path / "missing.zip", progress=False)
    assert "LANDMARK_DATA" in str(excinfo.value)
    assert list(tmp_path.iterdir()) == []


def test_offline_raises_data_unavailable_with_advice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/landmark_images.zip"

    with pytest.raises(DataUnavailableError) as excinfo:
        download_and_extract(url, tmp_path / "data")

    message = str(excinfo.value)
    assert url in message
    assert "LANDMARK_DATA" in message and "data_dir" in message and "landmark_images" in message


# --------------------------------------------------------------------------- extraction


def test_download_and_extract_returns_data_folder(server: FileServer, tmp_path: Path) -> None:
    archive = _dataset_zip()
    server.files["landmark_images.zip"] = archive
    root = tmp_path / "data"

    data = download_and_extract(
        server.url("landmark_images.zip"), root, sha256=hashlib.sha256(archive).hexdigest()
    )

    assert data == root / "landmark_images"
    assert find_data_root(root) == data
    with Image.open(data / "train" / "00.A" / "x.jpg") as image:
        assert image.size == (8, 8)
    assert (data / "test" / "00.A" / "y.jpg").read_bytes() == _jpeg((10, 10, 200))
    assert (root / "landmark_images.zip").read_bytes() == archive
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []  # no staging leftovers

    # Once extracted, nothing is fetched again.
    assert download_and_extract(server.url("landmark_images.zip"), root) == data
    assert len(server.requests) == 1


def test_download_and_extract_skips_complete_zip(server: FileServer, tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "landmark_images.zip").write_bytes(_dataset_zip())

    data = download_and_extract(server.url("landmark_images.zip"), root)

    assert server.requests == []
    assert (data / "train" / "00.A" / "x.jpg").is_file()


def test_download_and_extract_without_train_test_raises(server: FileServer, tmp_path: Path) -> None:
    server.files["other.zip"] = _zip_bytes({"stuff/readme.txt": b"hello"})

    with pytest.raises(DataUnavailableError, match="train/ and test/"):
        download_and_extract(server.url("other.zip"), tmp_path / "data")


def test_find_data_root(tmp_path: Path) -> None:
    assert find_data_root(tmp_path / "absent") is None
    assert find_data_root(tmp_path) is None
    (tmp_path / "a" / "b" / "train").mkdir(parents=True)
    (tmp_path / "a" / "b" / "test").mkdir()
    assert find_data_root(tmp_path) == tmp_path / "a" / "b"
    assert find_data_root(tmp_path / "a" / "b") == tmp_path / "a" / "b"


@pytest.mark.parametrize("evil_name", ["../evil.txt", "ok/../../evil.txt"])
def test_zip_slip_relative_member_is_refused(tmp_path: Path, evil_name: str) -> None:
    zip_path = tmp_path / "evil.zip"
    zip_path.write_bytes(_zip_bytes({"good/first.txt": b"fine", evil_name: b"pwned"}))
    destination = tmp_path / "out"

    with pytest.raises(ValueError, match=re.escape(evil_name)):
        safe_extract_zip(zip_path, destination)

    assert not (tmp_path / "evil.txt").exists()
    assert _all_files(destination) == []  # not even the harmless member was written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.zip", "out"]


def test_zip_absolute_member_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "abs_evil.txt"
    zip_path = tmp_path / "abs.zip"
    zip_path.write_bytes(_zip_bytes({"good/first.txt": b"fine", str(outside): b"pwned"}))
    destination = tmp_path / "out"

    with pytest.raises(ValueError, match="abs_evil.txt"):
        safe_extract_zip(zip_path, destination)

    assert not outside.exists()
    assert _all_files(destination) == []


def test_zip_symlink_member_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("landmark_images/link")
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "/etc/passwd")
    zip_path = tmp_path / "link.zip"
    zip_path.write_bytes(buffer.getvalue())

    with pytest.raises(ValueError, match="landmark_images/link"):
        safe_extract_zip(zip_path, tmp_path / "out")
    assert _all_files(tmp_path / "out") == []


def test_truncated_zip_gives_clear_error(tmp_path: Path) -> None:
    archive = _dataset_zip()
    zip_path = tmp_path / "landmark_images.zip"
    zip_path.write_bytes(archive[: len(archive) // 2])

    with pytest.raises(ValueError, match="landmark_images.zip") as excinfo:
        safe_extract_zip(zip_path, tmp_path / "out")

    assert isinstance(excinfo.value.__cause__, zipfile.BadZipFile)
    assert _all_files(tmp_path / "out") == []


def test_corrupt_member_leaves_nothing_half_extracted(tmp_path: Path) -> None:
    marker = b"CORRUPT-ME-" * 20
    archive = _zip_bytes({"data/a.txt": b"first member, intact", "data/b.txt": marker}, zipfile.ZIP_STORED)
    assert archive.count(marker) == 1
    zip_path = tmp_path / "broken.zip"
    zip_path.write_bytes(archive.replace(marker, marker[:-1] + b"!"))  # CRC no longer matches
    destination = tmp_path / "out"

    with pytest.raises(ValueError, match="broken.zip"):
        safe_extract_zip(zip_path, destination)

    assert _all_files(destination) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.zip", "out"]


def test_safe_extract_returns_paths_and_merges_into_existing(tmp_path: Path) -> None:
    destination = tmp_path / "out"
    (destination / "landmark_images").mkdir(parents=True)
    (destination / "landmark_images" / "keep.txt").write_text("user file")
    zip_path = tmp_path / "ds.zip"
    zip_path.write_bytes(_dataset_zip())

    paths = safe_extract_zip(zip_path, destination)

    assert destination / "landmark_images" / "train" / "00.A" / "x.jpg" in paths
    assert all(p.exists() for p in paths)
    assert (destination / "landmark_images" / "keep.txt").read_text() == "user file"
