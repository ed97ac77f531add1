"""Download and unpack the course's landmark data set, safely and resumably.

Only the standard library is used for HTTP (urllib), so fetching the data needs no extra
dependency. Downloads stream into a `.part` file that is resumed with an HTTP Range request
after an interruption, and is renamed into place only once complete (and verified, when a
sha256 is given). Extraction refuses archive members that would land outside the destination.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import socket
import stat
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections import deque
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO, Optional

from tqdm.auto import tqdm

log = logging.getLogger(__name__)

DATA_URL = "https://udacity-dlnfd.s3-us-west-1.amazonaws.com/datasets/landmark_images.zip"

LOCAL_COPY_ADVICE = (
    "To use a local copy of the data set instead: pass data_dir=... , or set the LANDMARK_DATA "
    "environment variable to a folder containing train/ and test/, or place that folder at "
    "./landmark_images."
)

_USER_AGENT = "landmark-classifier-downloader/1.0"
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)", re.IGNORECASE)


class DataUnavailableError(RuntimeError):
    """The data set cannot be obtained (offline, HTTP error, interrupted transfer).

    The message always ends with advice on how to point at a local copy instead.
    """

    def __init__(self, message: str = "the landmark data set is not available") -> None:
        # Callers that already wrote their own local-copy advice should not get it twice.
        if "LANDMARK_DATA" not in message:
            message = f"{message}\n{LOCAL_COPY_ADVICE}"
        super().__init__(message)


# --------------------------------------------------------------------------- download


def _part_path(destination: Path) -> Path:
    """Where an in-progress download of `destination` is kept."""
    return destination.with_suffix(destination.suffix + ".part")


def _parse_content_range(value: Optional[str]) -> tuple[Optional[int], Optional[int]]:
    """(first byte, total size) from a Content-Range header; None for what is unknown."""
    match = _CONTENT_RANGE.match(value.strip()) if value else None
    if match is None:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(3)) if match.group(3) != "*" else None
    return start, total


def _content_length(response: http.client.HTTPResponse) -> Optional[int]:
    """The Content-Length header as an int, or None when absent or malformed."""
    value = response.headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    """GET `url`, asking for bytes from `offset` on when it is positive.

    An HTTP 416 answer is returned as a response (the caller decides what it means); every
    other failure to connect becomes a DataUnavailableError.
    """
    headers = {"User-Agent": _USER_AGENT}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416:
            return error  # type: ignore[return-value]  # HTTPError is a usable response
        raise DataUnavailableError(f"could not download {url}: HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, socket.timeout, ConnectionError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        raise DataUnavailableError(f"could not download {url} (are you offline?): {reason}") from error


def _stream(response: BinaryIO, out: BinaryIO, bar: tqdm, chunk_size: int) -> None:
    """Copy the response body to `out` chunk by chunk, advancing the progress bar."""
    while True:
        chunk = response.read(chunk_size)
        if not chunk:
            return
        out.write(chunk)
        bar.update(len(chunk))


def _sha256_of(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(
    url: str,
    destination: Path,
    sha256: Optional[str] = None,
    timeout: float = 30.0,
    chunk_size: int = 1 << 20,
    progress: bool = True,
) -> Path:
    """Download `url` to `destination`, resuming an earlier partial download.

    The bytes go to `<destination>.part` first; a `.part` left by an interrupted run is resumed
    with an HTTP Range request (and restarted from zero when the server ignores the range).
    When the expected size is known, a short transfer raises DataUnavailableError and keeps the
    `.part` file so the next call resumes it. With `sha256`, a mismatch deletes the `.part` and
    raises ValueError. Only a complete (and verified) file is renamed to `destination`.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = _part_path(destination)
    offset = part.stat().st_size if part.exists() else 0

    # Two attempts at most: the second one only when a resume could not be honoured.
    for _ in range(2):
        response = _open(url, offset, timeout)
        with response:
            status = response.status
            if status == 416:
                _, total = _parse_content_range(response.headers.get("Content-Range"))
                if total is None or total == offset:
                    log.info("%s: already fully downloaded", part)
                    break
                log.warning("%s holds %d bytes but the server has %d: restarting", part, offset, total)
                part.unlink()
                offset = 0
                continue
            if status == 206:
                start, total = _parse_content_range(response.headers.get("Content-Range"))
                if start != offset:
                    log.warning("server resumed %s at byte %s instead of %d: restarting", url, start, offset)
                    part.unlink(missing_ok=True)
                    offset = 0
                    continue
                if total is None:
                    length = _content_length(response)
                    total = offset + length if length is not None else None
            else:
                if offset > 0:
                    log.info("server ignored the Range request for %s: restarting from zero", url)
                offset = 0
                total = _content_length(response)

            mode = "ab" if offset > 0 else "wb"
            bar = tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=destination.name,
                disable=not progress,
            )
            with open(part, mode) as out, bar:
                try:
                    _stream(response, out, bar, chunk_size)
                except (OSError, http.client.HTTPException) as error:
                    raise DataUnavailableError(
                        f"download of {url} was interrupted ({error}); the partial file {part} "
                        "was kept: run again to resume"
                    ) from error
                out.flush()
                os.fsync(out.fileno())
            break
    else:
        raise DataUnavailableError(f"could not resume the download of {url}")

    size = part.stat().st_size
    if total is not None and size < total:
        raise DataUnavailableError(
            f"download of {url} is truncated ({size} of {total} bytes); the partial file {part} "
            "was kept: run again to resume"
        )
    if total is not None and size > total:
        part.unlink()
        raise DataUnavailableError(f"download of {url} is larger than announced ({size} > {total} bytes); deleted it")
    if sha256 is not None:
        actual = _sha256_of(part)
        if actual.lower() != sha256.lower():
            part.unlink()
            raise ValueError(f"sha256 mismatch for {url}: expected {sha256.lower()}, got {actual}")
    os.replace(part, destination)
    return destination


# --------------------------------------------------------------------------- extraction


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    """Whether a zip member was stored as a symbolic link (Unix mode bits in external_attr)."""
    return stat.S_ISLNK(info.external_attr >> 16)


def _check_member(info: zipfile.ZipInfo, root: Path) -> None:
    """Raise ValueError if extracting `info` under `root` could write outside `root`."""
    name = info.filename
    if _is_symlink(info):
        raise ValueError(f"refusing to extract symbolic link member {name!r}")
    # Backslashes are separators on Windows, so a name that is safe on Linux may not be there.
    parts = name.replace("\\", "/").split("/")
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).anchor or name.startswith(("/", "\\")):
        raise ValueError(f"refusing to extract member with an absolute path {name!r}")
    if ".." in parts:
        raise ValueError(f"refusing to extract member {name!r}: it escapes the destination")
    target = (root / name).resolve()
    if target != root and root not in target.parents:
        raise ValueError(f"refusing to extract member {name!r}: it escapes the destination")


def _move_into(source: Path, target: Path) -> None:
    """Move `source` to `target`, merging into (and overwriting files of) an existing folder."""
    if not target.exists():
        os.replace(source, target)
        return
    if source.is_dir() and target.is_dir():
        for child in source.iterdir():
            _move_into(child, target / child.name)
        return
    if target.is_dir():
        shutil.rmtree(target)
    os.replace(source, target)


def safe_extract_zip(zip_path: Path, destination: Path) -> list[Path]:
    """Extract `zip_path` into `destination` and return the extracted paths.

    Every member is checked before anything is written: absolute paths, `..` components and
    symbolic links raise ValueError naming the member. The archive is unpacked into a temporary
    sibling folder and only then moved into place, so a corrupt archive (ValueError naming the
    file) leaves `destination` untouched.
    """
    zip_path, destination = Path(zip_path), Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as error:
        raise ValueError(f"{zip_path.name} is not a valid zip file (corrupt or truncated download?): {error}") from error

    with archive:
        members = archive.infolist()
        for info in members:
            _check_member(info, root)
        staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", suffix=".extracting", dir=root.parent))
        try:
            try:
                for info in tqdm(members, desc=f"extracting {zip_path.name}", unit="file"):
                    archive.extract(info, staging)
            except (zipfile.BadZipFile, zlib.error, EOFError) as error:
                raise ValueError(f"{zip_path.name} is corrupt (truncated download?): {error}") from error
            for child in list(staging.iterdir()):
                _move_into(child, root / child.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return [destination / info.filename.rstrip("/") for info in members]


# --------------------------------------------------------------------------- data set


def find_data_root(folder: Path, max_depth: int = 3) -> Optional[Path]:
    """The first folder at or under `folder` (breadth first) with both `train/` and `test/`.

    Hidden folders (such as leftovers of an extraction) are skipped; returns None when no such
    folder exists within `max_depth` levels.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    queue: deque[tuple[Path, int]] = deque([(folder, 0)])
    while queue:
        current, depth = queue.popleft()
        if (current / "train").is_dir() and (current / "test").is_dir():
            return current
        if depth >= max_depth:
            continue
        try:
            children = sorted(p for p in current.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))
        except OSError:
            continue
        queue.extend((child, depth + 1) for child in children)
    return None


def _zip_name(url: str) -> str:
    """The file name a download of `url` is saved under."""
    name = Path(urllib.parse.urlparse(url).path).name
    return name or "download.zip"


def download_and_extract(url: str, root: Path, sha256: Optional[str] = None) -> Path:
    """Download the zip at `url` into `root`, extract it there and return the data folder.

    The data folder is the one holding `train/` and `test/`. Nothing is downloaded when it is
    already there, and a zip that was completely downloaded before is not fetched again.
    """
    root = Path(root)
    existing = find_data_root(root)
    if existing is not None:
        return existing
    root.mkdir(parents=True, exist_ok=True)
    zip_path = root / _zip_name(url)
    if zip_path.exists() and sha256 is not None and _sha256_of(zip_path).lower() != sha256.lower():
        log.warning("%s does not match the expected sha256: downloading it again", zip_path)
        zip_path.unlink()
    if not zip_path.exists():
        log.info("downloading %s to %s", url, zip_path)
        download_file(url, zip_path, sha256=sha256)
    safe_extract_zip(zip_path, root)
    data = find_data_root(root)
    if data is None:
        raise DataUnavailableError(f"{zip_path} does not contain a folder with train/ and test/ subfolders")
    return data
