"""Issue 28: nothing that comes from a file is trusted. One test (or parametrised family) per row of the
issue's table: hostile exports, damaged stores, enrolment under the lock, auth before the body, concurrent
taggers, refused names and photos, and CLI messages that name each skipped file with its reason.
Everything lives under tmp_path and the temporary $LANDMARK_HOME the conftest sets."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import threading
import time
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import requests
from filelock import FileLock
from PIL import Image

from src.data.landmarks import lookup
from src.data.synthetic import CLASS_NAMES, make_synthetic_dataset
from src.serving.metadata import exif
from src.serving.gallery.gallery import GALLERY_FILE, Gallery, GalleryError, GalleryUnreadable, edit, thumb_name
from src.serving.gallery.gallery_cli import main as gallery_main
from src.serving.recognizer.recognize import Recognizer
from src.serving.web.service import create_app
from src.serving.tagger.cli import main as tag_main
from src.serving.tagger.photo_pipeline import write_place
from src.serving.tagger.tag_report import TagRow
from src.serving.gallery.validation import bearer_token
from tests.test_service import serving_in_thread

TOKEN = "s3cret-token"
TAJ = lookup("22.Taj_Mahal")
POSIX = pytest.mark.skipif(os.name != "posix", reason="FIFOs, /dev/zero and flock are POSIX")


# ---- helpers -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    """Photos of a generated landmark the tiny model never saw."""
    root = make_synthetic_dataset(tmp_path_factory.mktemp("new"), n_classes=4, n_train=4, n_test=1, with_bad_files=False, seed=5)
    return sorted((root / "train" / CLASS_NAMES[3]).glob("*.jpg"))


@pytest.fixture(scope="module")
def model(tiny_model) -> Recognizer:
    """The tiny model alone: its identity, embedding width and embeddings for crafted archives."""
    return Recognizer(tiny_model, use_gallery=False)


def _snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every entry under root: relative path -> (mode, bytes), to compare a store byte for byte."""
    return {str(p.relative_to(root)): (p.lstat().st_mode, p.read_bytes() if p.is_file() else b"") for p in sorted(root.rglob("*"))}


def _thumb(seed: int) -> tuple[str, bytes]:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return thumb_name(buffer.getvalue()), buffer.getvalue()


def _unit(rows: int, dim: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(rows, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _landmark(name: str = "Far Tower", photos: list[str] | None = None, **fields) -> dict:
    record = {"name": name, "latitude": 10.0, "longitude": 20.0, "country": "", "city": "", "tags": [], "photos": photos or []}
    return {**record, **fields}


def _store_bytes(landmarks: list[dict], vectors, model_id: str | None, **extra_arrays) -> bytes:
    buffer = io.BytesIO()
    meta = {"version": 1, "model_id": model_id, "landmarks": landmarks}
    np.savez(buffer, meta=np.array(json.dumps(meta)), vectors=np.asarray(vectors), **extra_arrays)
    return buffer.getvalue()


def _export(path: Path, landmarks: list[dict], vectors, model_id: str, thumbs: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(GALLERY_FILE, _store_bytes(landmarks, vectors, model_id))
        for name, data in thumbs.items():
            archive.writestr(f"thumbs/{name}", data)
    return path


def _valid_parts(model: Recognizer, photos: int = 3) -> tuple[list[str], dict[str, bytes], np.ndarray]:
    thumbs = dict(_thumb(seed) for seed in range(photos))
    return list(thumbs), thumbs, _unit(photos, model.embedding_dim)


@pytest.fixture()
def taught(tiny_model, photos, tmp_path) -> Path:
    """A gallery folder holding one landmark taught with the tiny model."""
    folder = tmp_path / "home" / "gallery"
    assert gallery_main(["--gallery", str(folder), "--model", str(tiny_model), "add", "Old Tower", *map(str, photos[:2]),
                         "--lat", "1", "--lon", "2"]) == 0
    return folder


def _import(tiny_model, folder: Path, archive: Path, capsys) -> tuple[int, str, float]:
    start = time.perf_counter()
    rc = gallery_main(["--gallery", str(folder), "--model", str(tiny_model), "import", str(archive)])
    return rc, capsys.readouterr().err, time.perf_counter() - start


# ---- high: photo names inside an export are paths ----------------------------------------------------


@POSIX
@pytest.mark.parametrize("listed", ["../gallery.npz", "SECRET", "thumbs/../../secret.jpg", "FIFO", "/dev/zero"])
def test_import_refuses_photo_names_that_are_paths_before_writing_anything(tiny_model, model, taught, tmp_path, capsys, listed):
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    os.chmod(secret, 0o444)
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    listed = {"SECRET": str(secret), "FIFO": str(fifo)}.get(listed, listed)
    names, thumbs, vectors = _valid_parts(model, 2)
    archive = _export(tmp_path / "hostile.zip", [_landmark(photos=[names[0], listed])], vectors, model.model_id, thumbs)
    before = _snapshot(taught.parent)
    rc, err, seconds = _import(tiny_model, taught, archive, capsys)
    assert rc == 1 and "not a gallery thumbnail name" in err and seconds < 10  # a FIFO or /dev/zero is never opened
    assert _snapshot(taught.parent) == before and secret.read_text() == "private"
    assert Gallery.load(taught).names == ["Old Tower"]


def test_a_store_listing_a_path_is_unreadable_and_never_exported(tiny_model, tmp_path, capsys):
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    folder = tmp_path / "gallery"
    folder.mkdir()
    (folder / GALLERY_FILE).write_bytes(_store_bytes([_landmark(photos=[str(secret)])], _unit(1, 8), "m"))
    with pytest.raises(GalleryUnreadable, match="not a gallery thumbnail name"):
        Gallery.load(folder)
    out = tmp_path / "out.zip"
    assert gallery_main(["--gallery", str(folder), "export", str(out)]) == 1
    assert "cannot be read" in capsys.readouterr().err and not out.exists()


def test_a_locked_gallery_is_a_clear_error_not_a_timeout_traceback(tmp_path):
    folder = tmp_path / "gallery"
    folder.mkdir()
    with FileLock(str(folder / ".lock")):
        with pytest.raises(GalleryError, match="locked by another writer"):
            with edit(folder, timeout=0.2):
                pass


# ---- high / medium: embeddings ------------------------------------------------------------------------


@pytest.mark.parametrize("defect, message", [
    ("dim10", "10-dimensional"),
    ("int", "floating point"),
    ("nan", "NaN or infinite"),
    ("all_nan", "NaN or infinite"),
    ("inf", "NaN or infinite"),
    ("count", "1 embeddings for 3 photos"),
    ("long", "unit length"),
])
def test_import_refuses_embeddings_the_model_cannot_use(tiny_model, model, taught, tmp_path, capsys, defect, message):
    names, thumbs, vectors = _valid_parts(model, 3)
    vectors = {
        "dim10": _unit(3, 10), "int": np.ones((3, model.embedding_dim), np.int64), "count": vectors[:1], "long": vectors * 1000,
        "nan": np.where(np.arange(vectors.size).reshape(vectors.shape) == 0, np.nan, vectors),
        "all_nan": np.full_like(vectors, np.nan), "inf": np.where(vectors > 0, np.inf, vectors),
    }[defect]
    archive = _export(tmp_path / f"{defect}.zip", [_landmark(photos=names)], vectors, model.model_id, thumbs)
    before = _snapshot(taught.parent)
    rc, err, _ = _import(tiny_model, taught, archive, capsys)
    assert rc == 1 and message in err, err
    assert _snapshot(taught.parent) == before


def test_a_valid_export_still_imports(tiny_model, model, tmp_path, capsys):
    names, thumbs, vectors = _valid_parts(model, 3)
    archive = _export(tmp_path / "good.zip", [_landmark(photos=names, tags=["Far"])], vectors, model.model_id, thumbs)
    folder = tmp_path / "gallery"
    rc, err, _ = _import(tiny_model, folder, archive, capsys)
    assert rc == 0, err
    gallery = Gallery.load(folder)
    assert gallery.names == ["Far Tower"] and gallery.landmarks["Far Tower"].tags == ("Far",)
    # stored re-encoded (an export's thumbnails never reach the store byte for byte), one file per photo
    assert sorted(p.name for p in (folder / "thumbs").iterdir()) == sorted(gallery.landmarks["Far Tower"].photos)
    assert len(gallery.landmarks["Far Tower"].photos) == len(names)


# ---- medium: the same validation as the API, in one function ---------------------------------------------


@pytest.fixture()
def server(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("LANDMARK_HOME", str(tmp_path / "served"))
    monkeypatch.setenv("LANDMARK_ADMIN_TOKEN", TOKEN)
    with serving_in_thread(create_app(tiny_model)) as url:
        yield url


def _teach(url: str, photos: list[tuple[str, bytes]], name: str = "Test Tower", headers: dict | None = None, **fields) -> requests.Response:
    files = [("files", (filename, data, "image/jpeg")) for filename, data in photos]
    data = {"name": name, "latitude": "1.5", "longitude": "2.5", **fields}
    return requests.post(f"{url}/v1/landmarks", data=data, files=files, timeout=120,
                         headers={"Authorization": f"Bearer {TOKEN}"} if headers is None else headers)


@pytest.mark.parametrize("fields, message", [
    ({"name": "../../x/.."}, "without '/'"),
    ({"latitude": 1e9}, "latitude must be a number within +-90"),
    ({"longitude": float("nan")}, "longitude must be"),
    ({"name": "Red Circle Tower"}, "the model already knows (00.Red_Circle_Tower)"),
    ({"name": "00.Red_Circle_Tower"}, "the model already knows (00.Red_Circle_Tower)"),
])
def test_api_command_line_and_import_refuse_the_same_fields(tiny_model, model, server, photos, tmp_path, capsys, fields, message):
    landmark = {"name": "Far Tower", "latitude": 10.0, "longitude": 20.0, **fields}
    response = _teach(server, [(p.name, p.read_bytes()) for p in photos[:2]],
                      **{key: str(value) for key, value in landmark.items()})
    assert response.status_code == 422 and message in response.json()["detail"]["message"], response.text
    folder = tmp_path / "gallery"
    rc = gallery_main(["--gallery", str(folder), "--model", str(tiny_model), "add", landmark["name"], str(photos[0]),
                       "--lat", str(landmark["latitude"]), "--lon", str(landmark["longitude"])])
    assert rc == 1 and message in capsys.readouterr().err
    names, thumbs, vectors = _valid_parts(model, 1)
    archive = _export(tmp_path / "bad.zip", [_landmark(photos=names, **landmark)], vectors, model.model_id, thumbs)
    rc, err, _ = _import(tiny_model, folder, archive, capsys)
    assert rc == 1 and message in err
    assert not folder.exists()  # nothing was created by any of the three


@pytest.mark.parametrize("change", ["extra_field", "missing_field", "duplicate_name", "tags_text", "no_model_id"])
def test_import_refuses_malformed_metadata(tiny_model, model, tmp_path, capsys, change):
    names, thumbs, vectors = _valid_parts(model, 2)
    landmarks = [_landmark(photos=names[:1]), _landmark("Near Tower", photos=names[1:])]
    model_id = model.model_id
    if change == "extra_field":
        landmarks[0]["owner"] = "x"
    elif change == "missing_field":
        del landmarks[0]["city"]
    elif change == "duplicate_name":
        landmarks[1]["name"] = "Far Tower"
    elif change == "tags_text":
        landmarks[0]["tags"] = "#a #b"
    else:
        model_id = None
    archive = _export(tmp_path / "bad.zip", landmarks, vectors, model_id, thumbs)
    rc, err, _ = _import(tiny_model, tmp_path / "gallery", archive, capsys)
    assert rc == 1 and "error:" in err and "Traceback" not in err
    assert not (tmp_path / "gallery").exists()


def test_import_refuses_thumbnails_that_do_not_match_their_names(tiny_model, model, tmp_path, capsys):
    names, thumbs, vectors = _valid_parts(model, 1)
    thumbs[names[0]] = b"\xff\xd8\xff" + b"x" * 100  # listed name, other content
    archive = _export(tmp_path / "bad.zip", [_landmark(photos=names)], vectors, model.model_id, thumbs)
    rc, err, _ = _import(tiny_model, tmp_path / "gallery", archive, capsys)
    assert rc == 1 and "does not match its name" in err


# ---- medium: a damaged gallery.npz -----------------------------------------------------------------------


def _damaged(kind: str, good: bytes, model: Recognizer) -> bytes:
    names = [_thumb(0)[0]]
    return {
        "extra_array": lambda: _store_bytes([_landmark(photos=names)], _unit(1, model.embedding_dim), model.model_id, extra=np.zeros(3)),
        "extra_field": lambda: _store_bytes([_landmark(photos=names, owner="x")], _unit(1, model.embedding_dim), model.model_id),
        "truncated": lambda: good[: len(good) // 2],
        "empty": lambda: b"",
        "dim10": lambda: _store_bytes([_landmark(photos=names)], _unit(1, 10), model.model_id),
    }[kind]()


DAMAGES = ["extra_array", "extra_field", "truncated", "empty", "dim10"]


def test_a_damaged_gallery_file_keeps_the_service_serving_and_says_so_once(server, model, photos, tmp_path, caplog):
    image = photos[0].read_bytes()
    assert _teach(server, [(p.name, p.read_bytes()) for p in photos]).status_code == 201
    store = tmp_path / "served" / "gallery" / GALLERY_FILE
    good = store.read_bytes()
    for kind in DAMAGES:
        caplog.clear()
        store.write_bytes(_damaged(kind, good, model))
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                predicted = requests.post(f"{server}/v1/predict", files={"file": ("a.jpg", image, "image/jpeg")}, timeout=60)
                assert predicted.status_code == 200, (kind, predicted.text)
                assert all(guess["class_name"] != "Test Tower" for guess in predicted.json()["top"])  # trained landmarks only
            listed = requests.get(f"{server}/v1/landmarks", timeout=30)
            health = requests.get(f"{server}/healthz", timeout=30).json()
        assert listed.status_code == 503 and "python -m src gallery import" in listed.json()["detail"], (kind, listed.text)
        assert "cannot be read" in health["gallery"] and "python -m src gallery import" in health["gallery"], kind
        assert sum("cannot be read" in record.getMessage() for record in caplog.records) == 1, kind
    store.write_bytes(good)  # restored: taught landmarks are back, /healthz says nothing more
    assert "gallery" not in requests.get(f"{server}/healthz", timeout=30).json()
    predicted = requests.post(f"{server}/v1/predict", files={"file": ("a.jpg", image, "image/jpeg")}, timeout=60).json()
    assert predicted["top"][0]["class_name"] == "Test Tower"


@pytest.mark.parametrize("kind", ["extra_field", "truncated", "empty"])
def test_command_lines_print_the_restore_sentence_for_a_damaged_gallery(tiny_model, model, taught, photos, capsys, monkeypatch, kind):
    monkeypatch.setenv("LANDMARK_HOME", str(taught.parent))
    store = taught / GALLERY_FILE
    store.write_bytes(_damaged(kind, store.read_bytes(), model))
    assert gallery_main(["--gallery", str(taught), "list"]) == 1
    err = capsys.readouterr().err
    assert f"the gallery file {store} cannot be read" in err and "python -m src gallery import" in err and "Traceback" not in err
    assert tag_main([str(photos[0]), "--model", str(tiny_model), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"the gallery file {store} cannot be read" in err and "Traceback" not in err


# ---- medium: enrolment decodes before the lock, within the service's budget ----------------------------------


def test_enrolment_decodes_and_embeds_before_the_lock_within_the_service_budget(tiny_model, photos, tmp_path, monkeypatch):
    monkeypatch.setenv("LANDMARK_ADMIN_TOKEN", TOKEN)
    recognizer = Recognizer(tiny_model, gallery_dir=tmp_path / "gallery")
    app = create_app(tiny_model, recognizer=recognizer, max_concurrency=1)
    entered, release, tokens = threading.Event(), threading.Event(), []
    embed = recognizer.embed

    def slow_embed(images):
        if len(images) > 1:  # the enrolment below (the first one enrols a single photo)
            tokens.append(app.state.limiter.borrowed_tokens)
            entered.set()
            release.wait(30)
        return embed(images)

    with serving_in_thread(app) as url:
        assert _teach(url, [(photos[0].name, photos[0].read_bytes())], name="Old Tower").status_code == 201
        monkeypatch.setattr(recognizer, "embed", slow_embed)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(_teach, url, [(p.name, p.read_bytes()) for p in photos[1:]], "New Tower")
            assert entered.wait(60)
            start = time.perf_counter()
            try:
                deleted = requests.delete(f"{url}/v1/landmarks/Old%20Tower", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
            finally:
                took = time.perf_counter() - start
                release.set()
            assert pending.result().status_code == 201
    assert deleted.status_code == 200 and took < 5  # the DELETE never waited for the decoding
    assert tokens == [1]  # decoding held the service's decode budget, as a predict does
    assert Gallery.load(tmp_path / "gallery").names == ["New Tower"]


# ---- low: auth before the body; strict bearer -----------------------------------------------------------------


@pytest.mark.parametrize("authorization, status", [(None, 401), ("Bearer wrong", 403), (f"Bearer   {TOKEN}  ", 401)])
def test_auth_is_answered_before_the_body_is_read(server, authorization, status):
    parsed = urlparse(server)
    head = (f"POST /v1/landmarks HTTP/1.1\r\nHost: {parsed.hostname}\r\nContent-Type: multipart/form-data; boundary=xyz\r\n"
            f"Content-Length: {10 * 2**20}\r\n" + (f"Authorization: {authorization}\r\n" if authorization else "") + "\r\n")
    with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as sock:
        sock.sendall(head.encode() + b"--xyz\r\n" + b"x" * 1024)  # 1 KiB of a declared 10 MiB body
        start = time.perf_counter()
        answer = sock.recv(4096)
    assert answer.split(b" ")[1] == str(status).encode() and time.perf_counter() - start < 5


def test_bearer_token_is_exactly_one_space_and_the_token():
    assert bearer_token(f"Bearer {TOKEN}") == TOKEN and bearer_token(f"bearer {TOKEN}") == TOKEN
    for bad in (None, "", "Bearer", "Bearer ", f"Bearer  {TOKEN}", f"Bearer {TOKEN} ", f" Bearer {TOKEN}", f"Bearer\t{TOKEN}",
                f"Basic {TOKEN}", f"Bearer {TOKEN} extra"):
        assert bearer_token(bad) is None, bad


# ---- low: trained names, tiny photos ---------------------------------------------------------------------------


def test_tiny_photos_are_refused_at_enrolment_as_predict_refuses_them(server, photos):
    tiny = io.BytesIO()
    Image.new("RGB", (1, 1), (200, 10, 10)).save(tiny, "PNG")
    response = _teach(server, [("dot.png", tiny.getvalue()), (photos[0].name, photos[0].read_bytes())])
    assert response.status_code == 201, response.text
    assert response.json()["skipped"] == [{"photo": "dot.png", "reason": "the photo is too small to show a landmark (1x1 px; at least 32 px a side)"}]
    response = _teach(server, [("dot.png", tiny.getvalue())], name="Dot")
    assert response.status_code == 422 and "too small" in response.json()["detail"]["skipped"][0]["reason"]


# ---- low: concurrent in-place taggers -------------------------------------------------------------------------


@POSIX
def test_two_taggers_writing_one_photo_take_turns_and_one_reports_already_tagged(tmp_path, monkeypatch):
    photo = tmp_path / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(photo, "JPEG")
    inside, go, calls = threading.Event(), threading.Event(), []
    replace = exif.write_atomically

    def paused(destination, data, mode_source=None):  # the first writer stops between reading and replacing
        calls.append(destination)
        if len(calls) == 1:
            inside.set()
            go.wait(10)
        return replace(destination, data, mode_source)

    monkeypatch.setattr(exif, "write_atomically", paused)
    rows = [TagRow(file=str(photo), status="landmark") for _ in range(2)]
    first = threading.Thread(target=write_place, args=(rows[0], photo, None, TAJ, False))
    second = threading.Thread(target=write_place, args=(rows[1], photo, None, TAJ, False))
    first.start()
    assert inside.wait(10)
    second.start()
    second.join(0.5)
    go.set()
    first.join(10)
    second.join(10)
    assert rows[0].written == str(photo) and not rows[1].written
    assert rows[1].status == "has_gps" and rows[1].message.startswith("already tagged")
    assert exif.read_gps(photo) == pytest.approx((TAJ.latitude, TAJ.longitude), abs=1e-6)


# ---- low: each skipped file named with its reason -----------------------------------------------------------------


@POSIX
def test_cli_names_each_skipped_file_with_its_reason(tiny_model, photos, tmp_path, capsys):
    folder = tmp_path / "gallery"
    base = ["--gallery", str(folder), "--model", str(tiny_model)]
    assert gallery_main([*base, "add", "X Tower", "/nonexistent", "--lat", "1", "--lon", "2"]) == 1
    err = capsys.readouterr().err
    assert "skipped /nonexistent: no such file or folder" in err and "nothing was added (/nonexistent: no such file or folder)" in err
    zero = tmp_path / "zero.jpg"
    zero.symlink_to("/dev/zero")
    twin = tmp_path / "twin.jpg"
    twin.write_bytes(photos[0].read_bytes())
    assert gallery_main([*base, "add", "X Tower", str(zero), str(photos[0]), str(twin), "--lat", "1", "--lon", "2"]) == 0
    err = capsys.readouterr().err
    assert f"skipped {zero}: not a photo file: it is a character device" in err
    assert f"skipped {twin}: the same photo as {photos[0]}" in err
    # One photo enrolled under two landmarks: exported once, without zipfile's "Duplicate name" warning.
    assert gallery_main([*base, "add", "Y Tower", str(photos[0]), "--lat", "1", "--lon", "2"]) == 0
    archive = tmp_path / "out.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gallery_main([*base, "export", str(archive)]) == 0
    with zipfile.ZipFile(archive) as zipped:
        assert len(zipped.namelist()) == len(set(zipped.namelist())) == 2  # gallery.npz and the one thumbnail


def test_api_names_each_skipped_upload_by_its_file_name(server, photos):
    data = photos[1].read_bytes()
    truncated = data[: len(data) // 2]  # its header passes the upload check; decoding it fails
    response = _teach(server, [(photos[0].name, photos[0].read_bytes()), ("broken.jpg", truncated)])
    assert response.status_code == 201, response.text
    assert [item["photo"] for item in response.json()["skipped"]] == ["broken.jpg"]

