"""Teaching landmarks over HTTP (POST/GET/DELETE /v1/landmarks) and in the app's panel, on the tiny model
with a generated class it never saw. The gallery lives in a temporary $LANDMARK_HOME."""

from __future__ import annotations

import datetime
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from src.data.synthetic import CLASS_NAMES, make_synthetic_dataset
from src.serving.web.app_teach import TeachPanel
from src.serving.gallery.gallery import Gallery
from src.serving.recognizer.recognize import Recognizer
from src.serving.web.service import create_app
from tests.test_service import serving_in_thread

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[bytes]:
    root = make_synthetic_dataset(tmp_path_factory.mktemp("new"), n_classes=4, n_train=4, n_test=1, with_bad_files=False, seed=3)
    return [p.read_bytes() for p in sorted((root / "train" / CLASS_NAMES[3]).glob("*.jpg"))]


@pytest.fixture()
def server(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("LANDMARK_HOME", str(tmp_path / "home"))
    with serving_in_thread(create_app(tiny_model)) as url:
        yield url


def _teach(url: str, photos: list[bytes], name: str = "Test Tower", token: str | None = TOKEN, **fields) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    files = [("files", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)]
    return requests.post(f"{url}/v1/landmarks", data={"name": name, "latitude": 1.5, "longitude": 2.5, **fields}, files=files,
                         headers=headers, timeout=120)


def test_writes_need_the_admin_token(server, photos, monkeypatch):
    monkeypatch.delenv("LANDMARK_ADMIN_TOKEN", raising=False)
    assert _teach(server, photos).status_code == 403  # unset: writes are off
    monkeypatch.setenv("LANDMARK_ADMIN_TOKEN", TOKEN)
    assert _teach(server, photos, token=None).status_code == 401
    assert _teach(server, photos, token="wrong").status_code == 403
    assert requests.delete(f"{server}/v1/landmarks/Test%20Tower", headers={"Authorization": "Bearer wrong"}, timeout=30).status_code == 403
    assert requests.get(f"{server}/v1/landmarks", timeout=30).json() == []


def test_teach_predict_list_and_delete(server, photos, monkeypatch):
    monkeypatch.setenv("LANDMARK_ADMIN_TOKEN", TOKEN)
    response = _teach(server, [*photos, b"not an image"], country="Testland", tags="#TT")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["landmark"]["photos"] == len(photos) and body["landmark"]["hashtags"] == ["#TT"]
    assert [item["photo"] for item in body["skipped"]] == [f"{len(photos)}.jpg"]
    predicted = requests.post(f"{server}/v1/predict", files={"file": ("a.jpg", photos[0], "image/jpeg")}, timeout=60).json()
    assert predicted["status"] == "placed" and predicted["landmark"]["class_name"] == "Test Tower"
    assert predicted["landmark"]["latitude"] == 1.5
    assert _teach(server, photos).status_code == 409  # the same name again
    assert _teach(server, [b"junk"], name="Nothing").status_code == 422
    assert [item["name"] for item in requests.get(f"{server}/v1/landmarks", timeout=30).json()] == ["Test Tower"]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.delete(f"{server}/v1/landmarks/Test%20Tower", headers=headers, timeout=30).status_code == 200
    assert requests.delete(f"{server}/v1/landmarks/Test%20Tower", headers=headers, timeout=30).status_code == 404
    predicted = requests.post(f"{server}/v1/predict", files={"file": ("a.jpg", photos[0], "image/jpeg")}, timeout=60).json()
    assert all(guess["class_name"] != "Test Tower" for guess in predicted["top"])


def test_teaching_photos_of_a_known_landmark_answers_with_a_warning(server, tiny_data, monkeypatch):
    """Photos the model already names (Green Square Gate) taught as another landmark: taught (201), with a warning."""
    monkeypatch.setenv("LANDMARK_ADMIN_TOKEN", TOKEN)
    photos = [p.read_bytes() for p in sorted((tiny_data / "test" / "01.Green_Square_Gate").glob("*.jpg"))[:5]]
    response = _teach(server, photos, name="Sydney Opera House")
    assert response.status_code == 201, response.text
    assert "like Green Square Gate, which I already know" in response.json()["warning"]


def test_concurrent_writes_lose_nothing(server, photos, monkeypatch):
    monkeypatch.setenv("LANDMARK_ADMIN_TOKEN", TOKEN)
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda i: _teach(server, photos[:2], name=f"Tower {i}").status_code, range(4)))
    assert statuses == [201] * 4
    assert sorted(item["name"] for item in requests.get(f"{server}/v1/landmarks", timeout=30).json()) == [f"Tower {i}" for i in range(4)]


def test_the_app_panel_teaches_a_landmark(tiny_model, tmp_path, photos):
    recognizer = Recognizer(tiny_model, gallery_dir=tmp_path / "gallery")
    panel = TeachPanel(recognizer)
    assert not panel.teach() and "photos" in panel.status.value
    panel.name.value, panel.latitude.value, panel.longitude.value = "Test Tower", "10.0", "20.0"  # text fields: optional
    panel.photos.value = tuple({"name": f"{i}.jpg", "type": "image/jpeg", "size": len(data), "content": memoryview(data),
                                "last_modified": datetime.datetime.now(datetime.UTC)}
                               for i, data in enumerate(photos))
    assert panel.teach() and "Learned Test Tower" in panel.status.value
    assert Gallery.load(tmp_path / "gallery").names == ["Test Tower"]
    assert recognizer.recognize(photos[0]).landmark.class_name == "Test Tower"
    recognizer.can_embed = False
    assert TeachPanel(recognizer).button.disabled
