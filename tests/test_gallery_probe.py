"""Issue 38, the hostile probe and "no position": each test failed before its fix. FIFOs at enrolment,
archive bombs, a full disk, leftovers of kill -9, export and thumbnail-folder mistakes, look-alike names,
a JPEG shorter than its header claims, a body that trickles in for ever, and landmarks taught without a
position (never 0, 0). Everything lives under tmp_path and the temporary $LANDMARK_HOME of the conftest."""

from __future__ import annotations

import errno
import io
import json
import os
import socket
import stat
import threading
import time
import tracemalloc
import unicodedata
import zipfile
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

import src.serving.gallery.gallery as gallery_module
from src.data.synthetic import CLASS_NAMES, make_synthetic_dataset
from src.serving.gallery.archive import read_export
from src.serving.gallery.gallery import GALLERY_FILE, Gallery, GalleryError, edit, thumb_name
from src.serving.gallery.gallery_cli import main as gallery_main
from src.serving.gallery.store_format import MAX_STORE_BYTES, MAX_THUMB_BYTES
from src.serving.gallery.validation import check_not_trained, name_key
from src.serving.metadata import safe_write
from src.serving.recognizer.recognize import Recognizer
from src.serving.web.service import create_app
from src.serving.web.uploads import BodyLimit, RejectedUpload, check_upload
from tests.test_service import serving_in_thread

TOKEN = "s3cret-token"
POSIX = pytest.mark.skipif(os.name != "posix", reason="FIFOs, flock and folder fsync are POSIX")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    """Photos of a generated landmark the tiny model never saw."""
    root = make_synthetic_dataset(tmp_path_factory.mktemp("new"), n_classes=4, n_train=4, n_test=1, with_bad_files=False, seed=7)
    return sorted((root / "train" / CLASS_NAMES[3]).glob("*.jpg"))


@pytest.fixture(scope="module")
def model(tiny_model) -> Recognizer:
    return Recognizer(tiny_model, use_gallery=False)


def _cli(tiny_model, folder: Path, *args: str) -> int:
    return gallery_main(["--gallery", str(folder), "--model", str(tiny_model), *args])


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


def _jpeg(seed: int, size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def _unit(rows: int, dim: int) -> np.ndarray:
    x = np.random.default_rng(0).normal(size=(rows, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _store(landmarks: list[dict], vectors: np.ndarray, model_id: str) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps({"version": 1, "model_id": model_id, "landmarks": landmarks})), vectors=vectors)
    return buffer.getvalue()


def _landmark(name: str, photos: list[str], latitude=10.0, longitude=20.0) -> dict:
    return {"name": name, "latitude": latitude, "longitude": longitude, "country": "", "city": "", "tags": [], "photos": photos}


def _export(path: Path, thumbs: dict[str, bytes], model: Recognizer, name: str = "Far Tower") -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(GALLERY_FILE, _store([_landmark(name, list(thumbs))], _unit(len(thumbs), model.embedding_dim), model.model_id))
        for photo, data in thumbs.items():
            archive.writestr(f"thumbs/{photo}", data)
    return path


# ---- 1. a FIFO among the photos never blocks ------------------------------------------------------------------


def _runs_within(seconds: float, function, *args) -> int:
    outcome: list[int] = []
    worker = threading.Thread(target=lambda: outcome.append(function(*args)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert outcome, f"still running after {seconds} s (blocked on a FIFO?)"
    return outcome[0]


@POSIX
@pytest.mark.parametrize("in_folder", [False, True])
def test_add_with_a_fifo_among_the_photos_skips_it_instead_of_hanging(tiny_model, photos, tmp_path, capsys, in_folder):
    folder = tmp_path / "album"
    folder.mkdir()
    fifo = folder / "fifo.jpg"
    os.mkfifo(fifo)
    good = folder / "good.jpg"
    good.write_bytes(photos[0].read_bytes())
    listed = [str(folder)] if in_folder else [str(fifo), str(good)]
    rc = _runs_within(60, _cli, tiny_model, tmp_path / "gallery", "add", "Pipe Tower", *listed, "--lat", "1", "--lon", "2")
    err = capsys.readouterr().err
    assert rc == 0, err
    assert f"skipped {fifo}: not a photo file: it is a FIFO (named pipe)" in err
    assert len(Gallery.load(tmp_path / "gallery").landmarks["Pipe Tower"].photos) == 1


# ---- 2. archive bombs --------------------------------------------------------------------------------------------


def test_an_export_whose_store_inflates_past_the_cap_is_refused_fast_with_little_memory(model, tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zipped:
        with zipped.open(GALLERY_FILE, "w", force_zip64=True) as member:
            zeros = bytes(2**20)
            for _ in range(MAX_STORE_BYTES // 2**20 + 16):
                member.write(zeros)
    assert archive.stat().st_size < 2 * 2**20
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(GalleryError, match="gallery.npz is too large"):
        read_export(archive, tmp_path / "unpacked")
    seconds, (_, peak) = time.perf_counter() - start, tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seconds < 10 and peak < 16 * 2**20, (seconds, peak)  # unpacking it would take minutes and GBs
    assert not (tmp_path / "unpacked").exists()


def test_a_store_whose_arrays_inflate_past_the_cap_is_unreadable_before_inflating(tmp_path):
    folder = tmp_path / "gallery"
    folder.mkdir()
    with zipfile.ZipFile(folder / GALLERY_FILE, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as npz:
        npz.writestr("meta.npy", bytes(100 * 2**20))  # 100 MiB of zeros, 100 KB on disk
        npz.writestr("vectors.npy", b"")
    tracemalloc.start()
    with pytest.raises(GalleryError, match="meta.npy is too large"):
        Gallery.load(folder)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 16 * 2**20, peak


def test_padded_thumbnails_are_refused_past_the_cap_and_re_encoded_below_it(tiny_model, model, tmp_path, capsys):
    folder = tmp_path / "gallery"
    padded = {thumb_name(data): data for data in (_jpeg(seed) + bytes(16 * 2**20) for seed in range(3))}
    before = _files(tmp_path)
    assert _cli(tiny_model, folder, "import", str(_export(tmp_path / "huge.zip", padded, model))) == 1
    assert "too large" in capsys.readouterr().err
    assert _files(tmp_path).keys() - before.keys() == {"huge.zip"}  # the gallery was not even created
    # Under the cap: imported, but stored at the thumbnail's real size (re-encoded), nothing of the padding.
    small = {thumb_name(data): data for data in (_jpeg(seed) + bytes(MAX_THUMB_BYTES // 2) for seed in range(3))}
    assert _cli(tiny_model, folder, "import", str(_export(tmp_path / "padded.zip", small, model))) == 0, capsys.readouterr().err
    stored = list((folder / "thumbs").iterdir())
    assert len(stored) == 3 and all(p.stat().st_size < 64 * 1024 for p in stored)
    assert sorted(p.name for p in stored) == sorted(Gallery.load(folder).landmarks["Far Tower"].photos)


# ---- 3. a full disk ------------------------------------------------------------------------------------------------


def _disk_full_on_the_store(monkeypatch):
    """Thumbnails are written; gallery.npz then fails with ENOSPC, as on a disk that fills up meanwhile."""
    real = gallery_module.write_atomically

    def write(path, data, *args, **kwargs):
        if Path(path).name == GALLERY_FILE:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data, *args, **kwargs)

    monkeypatch.setattr(gallery_module, "write_atomically", write)


def test_a_full_disk_is_an_error_line_and_leaves_no_orphan_thumbnails(tiny_model, model, photos, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "gallery"
    assert _cli(tiny_model, folder, "add", "Old Tower", str(photos[0])) == 0
    before = _files(folder)
    _disk_full_on_the_store(monkeypatch)
    assert _cli(tiny_model, folder, "add", "New Tower", *map(str, photos[1:])) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write the gallery") and "the disk is full" in err and "Traceback" not in err
    thumbs = {thumb_name(_jpeg(seed)): _jpeg(seed) for seed in range(2)}
    assert _cli(tiny_model, folder, "import", str(_export(tmp_path / "in.zip", thumbs, model))) == 1
    assert "the disk is full" in capsys.readouterr().err
    assert _files(folder) == before  # no orphan thumbnail, the store unchanged


def test_a_full_disk_answers_507_over_http(tiny_model, photos, tmp_path, monkeypatch):
    monkeypatch.setenv("LANDMARK_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("LANDMARK_HOME", str(tmp_path / "home"))
    _disk_full_on_the_store(monkeypatch)
    with serving_in_thread(create_app(tiny_model)) as url:
        files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
        response = requests.post(f"{url}/v1/landmarks", data={"name": "Full Tower"}, files=files,
                                 headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
    assert response.status_code == 507, response.text
    assert "the disk is full" in response.json()["detail"]["message"]
    assert not list((tmp_path / "home" / "gallery" / "thumbs").glob("*.jpg"))


# ---- 4. what kill -9 leaves behind; fsync around the rename ---------------------------------------------------------


@POSIX
def test_save_removes_temporary_files_a_killed_writer_left(tmp_path):
    folder = tmp_path / "gallery"
    (folder / "thumbs").mkdir(parents=True)
    leftovers = [folder / "thumbs" / ".0123456789abcdef01234567.jpg.k3j4h5g6.tmp", folder / ".gallery.npz.a1b2c3d4.tmp",
                 folder / "thumbs" / ".0123456789abcdef01234567.ab12cd34.tmp"]  # the name the earlier writer gave them
    for leftover in leftovers:
        leftover.write_bytes(b"half a file")
    with edit(folder):
        pass
    assert not any(leftover.exists() for leftover in leftovers)


@POSIX
def test_atomic_writes_fsync_the_file_and_then_its_folder(tmp_path, monkeypatch):
    synced: list[bool] = []
    real = os.fsync
    monkeypatch.setattr(safe_write.os, "fsync", lambda fd: (synced.append(stat.S_ISDIR(os.fstat(fd).st_mode)), real(fd)))
    safe_write.write_atomically(tmp_path / "photo.jpg", b"data")
    assert synced == [False, True]


# ---- 5. export and thumbnail-folder mistakes ----------------------------------------------------------------------------


def test_export_mistakes_are_error_lines_and_one_missing_thumbnail_blocks_nothing(tiny_model, photos, tmp_path, capsys):
    folder = tmp_path / "gallery"
    assert _cli(tiny_model, folder, "add", "A Tower", *map(str, photos[:2]), "--lat", "1", "--lon", "2") == 0
    assert _cli(tiny_model, folder, "add", "B Tower", str(photos[2]), "--lat", "3", "--lon", "4") == 0
    capsys.readouterr()
    assert _cli(tiny_model, folder, "export", str(tmp_path)) == 1
    assert capsys.readouterr().err.startswith(f"error: {tmp_path} is a folder")
    gone = Gallery.load(folder).landmarks["A Tower"].photos[0]
    (folder / "thumbs" / gone).unlink()
    archive = tmp_path / "out.zip"
    assert _cli(tiny_model, folder, "export", str(archive)) == 0
    out, err = capsys.readouterr()
    assert "exported 2 landmark(s)" in out and "a photo of 'A Tower' was left out" in err and gone in err
    exported = read_export(archive, tmp_path / "check")
    assert len(exported.landmarks["A Tower"].photos) == 1 and len(exported.landmarks["B Tower"].photos) == 1


def test_a_file_where_the_thumbnail_folder_belongs_is_an_error_line(tiny_model, photos, tmp_path, capsys):
    folder = tmp_path / "gallery"
    folder.mkdir()
    (folder / "thumbs").write_text("not a folder")
    assert _cli(tiny_model, folder, "add", "C Tower", str(photos[0])) == 1
    err = capsys.readouterr().err
    assert err.strip().endswith("nothing was changed") and "thumbs is not a folder" in err and "Traceback" not in err


# ---- 6. names that look alike are one name ---------------------------------------------------------------------------


def test_names_compare_after_nfkc_casefold_and_latin_lookalikes():
    assert name_key(unicodedata.normalize("NFC", "Café Tower")) == name_key(unicodedata.normalize("NFD", "CAFÉ  TOWER"))
    assert name_key("Taj Mah\u0430l") == name_key("taj mahal") and name_key("ＴＡＪ") == name_key("taj")
    assert name_key("Eiffel Tower") != name_key("Eiffel Towers")
    with pytest.raises(GalleryError, match="already knows"):
        check_not_trained("Taj Mah\u0430l", ["22.Taj_Mahal"])


def test_look_alike_names_are_one_landmark_in_every_door(tiny_model, model, photos, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "gallery"
    nfc, nfd = unicodedata.normalize("NFC", "Café Tower"), unicodedata.normalize("NFD", "Café Tower")
    assert _cli(tiny_model, folder, "add", nfc, str(photos[0])) == 0
    assert _cli(tiny_model, folder, "add", nfd, str(photos[1])) == 1
    assert "already has" in capsys.readouterr().err
    trained = model.class_names[0]
    lookalike = trained.split(".", 1)[-1].replace("_", " ").replace("a", "\u0430")  # Cyrillic а for every Latin a
    assert _cli(tiny_model, folder, "add", lookalike, str(photos[1])) == 1
    assert "already knows" in capsys.readouterr().err
    assert Gallery.load(folder).names == [nfc]
    monkeypatch.setenv("LANDMARK_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("LANDMARK_HOME", str(tmp_path / "home"))
    with serving_in_thread(create_app(tiny_model)) as url:
        def teach(name: str) -> requests.Response:
            return requests.post(f"{url}/v1/landmarks", data={"name": name}, files=[("files", ("a.jpg", photos[0].read_bytes(), "image/jpeg"))],
                                 headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
        assert teach(lookalike).status_code == 422
        assert teach(nfc).status_code == 201
        assert teach(nfd).status_code == 409
        deleted = requests.delete(f"{url}/v1/landmarks/{nfd}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert deleted.status_code == 200 and deleted.json()["name"] == nfc


# ---- 7. a JPEG shorter than the picture its header claims --------------------------------------------------------------


def _claims(size: tuple[int, int], data: bytes) -> bytes:
    """The JPEG with its frame header (SOF0) saying `size`: the data stays that of the small picture."""
    frame = data.index(b"\xff\xc0")
    patched = bytearray(data)
    patched[frame + 5 : frame + 9] = size[1].to_bytes(2, "big") + size[0].to_bytes(2, "big")
    return bytes(patched)


def test_a_jpeg_too_short_for_its_header_is_422_not_unknown(tiny_model, monkeypatch, tmp_path):
    short = _claims((7000, 7000), _jpeg(0))
    with pytest.raises(RejectedUpload) as refused:
        check_upload(short, 60_000_000)
    assert refused.value.status_code == 422 and "truncated" in refused.value.detail
    for mode, size, progressive in (("RGB", (4000, 3000), False), ("L", (4000, 3000), True), ("RGB", (7, 9), False)):
        buffer = io.BytesIO()
        Image.new(mode, size).save(buffer, "JPEG", optimize=True, progressive=progressive, quality=5)  # the least data a JPEG can hold
        assert check_upload(buffer.getvalue(), 60_000_000) == "JPEG"
    monkeypatch.setenv("LANDMARK_HOME", str(tmp_path / "home"))
    with serving_in_thread(create_app(tiny_model)) as url:
        response = requests.post(f"{url}/v1/predict", files={"file": ("big.jpg", short, "image/jpeg")}, timeout=60)
    assert response.status_code == 422 and "truncated" in response.json()["detail"]


# ---- 8. a body trickling in for ever ---------------------------------------------------------------------------------------


async def _read_body(request):
    return JSONResponse({"bytes": len(await request.body())})


async def _healthz(request):
    return JSONResponse({"status": "ok"})


def test_a_body_trickling_in_is_cut_off_at_the_overall_deadline():
    app = Starlette(routes=[Route("/healthz", _healthz), Route("/upload", _read_body, methods=["POST"])])
    with serving_in_thread(BodyLimit(app, max_body=2**20, timeout_s=1.0, deadline_s=2.5)) as url:
        host, port = url.removeprefix("http://").split(":")
        start = time.perf_counter()
        with socket.create_connection((host, int(port)), timeout=30) as connection:
            connection.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
            answer = b""
            connection.settimeout(0.5)
            while not answer and time.perf_counter() - start < 20:
                try:
                    connection.sendall(b"x")  # one byte well under every body timeout
                    answer = connection.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    break
        seconds = time.perf_counter() - start
    assert answer.startswith(b"HTTP/1.1 408") and b"not complete after 2.5 s" in answer, answer
    assert seconds < 6


# ---- "no position": never 0, 0 -------------------------------------------------------------------------------------------


def test_a_landmark_can_be_taught_without_a_position_and_is_never_placed(tiny_model, photos, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "gallery"
    assert _cli(tiny_model, folder, "add", "Nowhere Tower", *map(str, photos)) == 0
    assert "without a position" in capsys.readouterr().out
    assert _cli(tiny_model, folder, "add", "Half Tower", str(photos[0]), "--lat", "5") == 1
    assert "both --lat and --lon, or neither" in capsys.readouterr().err
    assert _cli(tiny_model, folder, "add", "Zero Tower", str(photos[0]), "--lat", "0", "--lon", "0") == 0
    gallery = Gallery.load(folder)
    for name in ("Nowhere Tower", "Zero Tower"):
        landmark = gallery.landmarks[name]
        assert (landmark.latitude, landmark.longitude) == (None, None) and not landmark.info.has_coordinates
    with zipfile.ZipFile(folder / GALLERY_FILE) as npz:
        meta = json.loads(str(np.load(io.BytesIO(npz.read("meta.npy")))))
    assert all(item["latitude"] is None and item["longitude"] is None for item in meta["landmarks"])  # never 0, 0 on disk
    assert _cli(tiny_model, folder, "list") == 0
    assert capsys.readouterr().out.count("no position") == 2
    recognizer = Recognizer(tiny_model, gallery_dir=folder)
    for result in recognizer.recognize_many([p.read_bytes() for p in photos]):
        assert not result.placed
    monkeypatch.setenv("LANDMARK_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("LANDMARK_HOME", str(tmp_path / "home"))
    with serving_in_thread(create_app(tiny_model)) as url:
        files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
        response = requests.post(f"{url}/v1/landmarks", data={"name": "Web Tower", "latitude": "", "longitude": ""}, files=files,
                                 headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
        assert response.status_code == 201, response.text
        assert (response.json()["landmark"]["latitude"], response.json()["landmark"]["longitude"]) == (None, None)
        listed = requests.get(f"{url}/v1/landmarks", timeout=30).json()
        assert listed[0]["latitude"] is None


def test_a_store_holding_zero_zero_reads_as_no_position(model, tmp_path):
    folder = tmp_path / "gallery"
    (folder / "thumbs").mkdir(parents=True)
    data = _jpeg(1)
    (folder / "thumbs" / thumb_name(data)).write_bytes(data)
    (folder / GALLERY_FILE).write_bytes(_store([_landmark("Old Zero", [thumb_name(data)], 0, 0)], _unit(1, model.embedding_dim),
                                               model.model_id))
    landmark = Gallery.load(folder).landmarks["Old Zero"]
    assert (landmark.latitude, landmark.longitude) == (None, None) and not landmark.info.has_coordinates


def test_the_service_takes_its_request_deadline_from_the_command_line(tiny_model):
    app = create_app(tiny_model, request_deadline_s=7.0)
    limits = [middleware.kwargs for middleware in app.user_middleware if middleware.cls is BodyLimit]
    assert limits and limits[0]["deadline_s"] == 7.0


def test_an_import_that_fills_the_disk_while_unpacking_says_so(model, tmp_path, monkeypatch):
    def full(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    archive = _export(tmp_path / "in.zip", {thumb_name(_jpeg(seed)): _jpeg(seed) for seed in range(2)}, model)
    monkeypatch.setattr(Path, "write_bytes", full)  # the unpacking writes each thumbnail with write_bytes
    with pytest.raises(GalleryError, match="cannot be unpacked into .*: the disk is full"):
        read_export(archive, tmp_path / "unpacked")
    assert not (tmp_path / "unpacked").exists()
