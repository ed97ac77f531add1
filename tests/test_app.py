"""The Voila app: widget logic (no browser) and one real end-to-end run in headless Chromium."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import ipywidgets as widgets
import psutil
import pytest
import torch
from PIL import Image

from src.bench.app_pages import CHROMIUM, CHROMIUM_ARGS, free_port, process_tree, stop
from src.data.landmarks import LandmarkInfo, lookup
from src.serving.web.app import build_app, iter_widgets, render_result_html, thumbnail_bytes
from src.serving.recognizer.recognize import DEFAULT_MODEL, Guess, Recognition, Recognizer
from src.serving.tagger.tag import tag_paths

ROOT = Path(__file__).resolve().parents[1]
EPOCH = datetime.fromtimestamp(0, tz=timezone.utc)
SHARED = ROOT.parent / "shared"  # as in conftest.py


# ---------------------------------------------------------------------------------------------------
# helpers


def _jpeg(tiny_data: Path, class_name: str = "01.Green_Square_Gate", index: int = 0) -> bytes:
    return (tiny_data / "test" / class_name / f"{index:03d}.jpg").read_bytes()


def _upload(app: widgets.Widget, *files: tuple[str, bytes]) -> widgets.FileUpload:
    """Do what the browser does: set FileUpload.value to a tuple of dicts (ipywidgets 8; the frontend's
    last_modified arrives as a datetime, and an int would fail ipywidgets' own serializer)."""
    upload = next(w for w in iter_widgets(app) if isinstance(w, widgets.FileUpload))
    upload.value = tuple(
        {"name": name, "type": "image/jpeg", "size": len(data), "content": memoryview(data), "last_modified": EPOCH}
        for name, data in files
    )
    return upload


def _text(app: widgets.Widget) -> str:
    return "\n".join(w.value for w in iter_widgets(app) if isinstance(w, widgets.HTML))


def _cards(app: widgets.Widget) -> list[widgets.Widget]:
    results = [w for w in iter_widgets(app) if isinstance(w, widgets.VBox)][-1]
    return list(results.children)


def _recognition(status: str, names: list[str], probs: list[float], message: str = "", placed: bool | None = None) -> Recognition:
    """placed: by default a named landmark is placed (sure enough for its position to be shown)."""
    top = [Guess(class_name=n, probability=p, info=lookup(n)) for n, p in zip(names, probs)]
    return Recognition(status=status, message=message or status, top=top, placed=status == "landmark" if placed is None else placed)


@pytest.fixture(scope="module")
def recognizer(tiny_model) -> Recognizer:
    return Recognizer(tiny_model)


# ---------------------------------------------------------------------------------------------------
# render_result_html (pure)

INDIAN = ["22.Taj_Mahal", "20.Qutub_Minar", "14.India_Gate", "06.Charminar", "12.Hawa_Mahal"]


def test_render_landmark_shows_location_tags_and_top5():
    html = render_result_html("taj.jpg", _recognition("landmark", INDIAN, [0.91, 0.04, 0.03, 0.015, 0.005]))
    assert "Taj Mahal" in html and "taj.jpg" in html
    assert "Agra, Uttar Pradesh, India" in html
    assert "27.1751" in html and "78.0421" in html
    assert 'target="_blank"' in html and "openstreetmap.org/?mlat=27.1751" in html
    assert "#TajMahal #Agra #India" in html
    assert html.count('class="lt-guess"') == 5
    assert "91.0%" in html and "0.5%" in html
    assert "does not look like" not in html


def test_render_unknown_names_no_landmark_but_shows_closest_guesses():
    message = "This photo does not look like one of the 24 landmarks I know (best guess Taj Mahal at 31%)."
    html = render_result_html("cat.jpg", _recognition("unknown", INDIAN, [0.31, 0.3, 0.2, 0.1, 0.09], message))
    assert "does not look like one of the 24 landmarks I know" in html
    assert "Closest guesses" in html and html.count('class="lt-guess"') == 5
    assert "lt-location" not in html and "#TajMahal" not in html  # no location or tags for a non-landmark


def test_render_named_but_not_placed_says_looks_like_without_any_place():
    message = "Looks like Taj Mahal (62%), but not sure enough to place it."
    html = render_result_html("taj.jpg", _recognition("landmark", INDIAN, [0.62, 0.2, 0.1, 0.05, 0.03], message, placed=False))
    assert "Looks like Taj Mahal &#8212; not sure enough to place it" in html
    assert html.count('class="lt-guess"') == 5  # names and probabilities, as for any answer
    for place in ("27.1751", "Agra", "#TajMahal", "lt-map", "openstreetmap", "lt-location"):
        assert place not in html, place
    # a guess looks different from a placed answer: not green, no big percentage beside the name
    heading = html.split('class="lt-looks-like"')[1].split("</div>")[0]
    assert "%" not in heading and "#2e7d32" not in html and "#a5d6a7" not in html


def test_render_a_landmark_without_a_position_says_named_never_placed():
    info = LandmarkInfo("Big Ben", "Big Ben", latitude=0.0, longitude=0.0)  # taught with the form's old default
    guess = Recognition(status="landmark", message="Big Ben (99%): named, never placed (no position known).",
                        top=[Guess("Big Ben", 0.99, info)], placed=False)
    html = render_result_html("ben.jpg", guess)
    assert "Big Ben &#8212; named, never placed" in html and "Looks like" not in html
    for place in ("Latitude", "0.0000", "lt-map", "openstreetmap", "lt-location"):
        assert place not in html, place


def test_render_placed_heading_matches_the_bar_s_rounding():
    html = render_result_html("taj.jpg", _recognition("landmark", INDIAN, [0.996, 0.002, 0.001, 0.0005, 0.0005]))
    heading = html.split('class="lt-landmark"')[1].split("</div>")[0]
    assert "99.6%" in heading and "100%" not in heading and ">99.6%</span>" in html.split('class="lt-guess"')[1]


def test_render_no_landmark_when_every_guess_would_read_zero():
    """A pizza: the background class took everything. No "best guess ... at 0%", no rows of 0.0 % bars."""
    message = "This photo does not look like one of the 40 landmarks I know (best guess Golden Temple at 0%)."
    html = render_result_html("pizza.jpg", _recognition("unknown", INDIAN, [0.004, 0.001, 0.0005, 0.0001, 0.0], message))
    assert "No landmark" in html and "best guess" not in html and "lt-guess" not in html and "0.0%" not in html
    some = render_result_html("odd.jpg", _recognition("unknown", INDIAN, [0.31, 0.2, 0.004, 0.001, 0.0], "Not one I know."))
    assert some.count('class="lt-guess"') == 2 and "Closest guesses" in some  # bars under 0.5 % are left out


def test_render_landmark_without_metadata_says_location_unknown():
    html = render_result_html("a.jpg", _recognition("landmark", ["00.Red_Circle_Tower", "01.Green_Square_Gate"], [0.9, 0.1]))
    assert "Red Circle Tower" in html and "No location is known" in html and "Latitude" not in html
    assert "#RedCircleTower" in html and html.count('class="lt-guess"') == 2


def test_render_error_is_escaped_and_friendly():
    html = render_result_html("<script>x</script>.jpg", Recognition(status="error", message="Cannot read this file: <b>bad</b>."))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "could not use this file" in html and "&lt;b&gt;bad&lt;/b&gt;" in html
    assert "Traceback" not in html


def test_thumbnail_applies_exif_orientation_and_shrinks():
    image = Image.new("RGB", (600, 400), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° when shown: the photo is upright in portrait
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    thumb = Image.open(io.BytesIO(thumbnail_bytes(buffer.getvalue())))
    assert thumb.format == "JPEG"
    assert thumb.height == 256 and thumb.width < thumb.height  # portrait, longest side 256
    assert thumbnail_bytes(b"not a photo") is None


# ---------------------------------------------------------------------------------------------------
# build_app: the widget tree and the upload handler


def test_upload_shows_top_guesses_with_probabilities(recognizer, tiny_data):
    app = build_app(recognizer)
    upload = next(w for w in iter_widgets(app) if isinstance(w, widgets.FileUpload))
    assert upload.multiple and "image/*" in upload.accept and ".heic" in upload.accept
    assert "3 landmarks" in _text(app)  # explanation names how many landmarks the model knows

    _upload(app, ("x.jpg", _jpeg(tiny_data)))
    cards = _cards(app)
    assert len(cards) == 1
    text = _text(app)
    assert "x.jpg" in text
    assert text.count('class="lt-guess"') == 3  # the tiny model knows 3 classes: top-5 is capped at 3
    for name in ("Green Square Gate", "Red Circle Tower", "Blue Triangle Temple"):
        assert name in text
    assert "%" in text
    thumbs = [w for w in iter_widgets(app) if isinstance(w, widgets.Image)]
    assert len(thumbs) == 1 and max(Image.open(io.BytesIO(thumbs[0].value)).size) <= 256
    assert upload.value == ()  # reset so that the same file can be uploaded again
    assert "Traceback" not in text


def test_top5_location_and_tags_in_the_card(recognizer, tiny_data, monkeypatch):
    """Seven metadata-known classes (the model's output replaced): exactly 5 bars, location, tags."""
    names = INDIAN + ["16.Eiffel_Tower", "07.Stonehenge"]
    monkeypatch.setattr(recognizer, "class_names", names)
    monkeypatch.setattr(recognizer, "landmark_indices", list(range(len(names))))
    monkeypatch.setattr(recognizer, "background", [])
    fake = torch.tensor([0.86, 0.05, 0.04, 0.02, 0.015, 0.01, 0.005])
    monkeypatch.setattr(recognizer, "_outputs", lambda squares: (fake.repeat(len(squares), 1).numpy(), None))  # the model's part
    app = build_app(recognizer)
    _upload(app, ("taj.jpg", _jpeg(tiny_data)))
    text = _text(app)
    assert text.count('class="lt-guess"') == 5
    assert "86.0%" in text and "Eiffel" not in text  # 6th and 7th guesses are not shown
    assert "Latitude 27.1751, longitude 78.0421" in text and "Agra, Uttar Pradesh, India" in text
    assert "#TajMahal #Agra #India" in text


def test_many_uploads_are_recognized_in_one_batch(recognizer, tiny_data, monkeypatch):
    calls = []
    original = recognizer.recognize_many

    def spy(sources, **kwargs):
        calls.append(len(sources))
        return original(sources, **kwargs)

    monkeypatch.setattr(recognizer, "recognize_many", spy)
    app = build_app(recognizer)
    _upload(app, ("a.jpg", _jpeg(tiny_data, index=0)), ("b.jpg", _jpeg(tiny_data, "00.Red_Circle_Tower", 1)), ("c.jpg", b"nope"))
    assert calls == [3]
    assert len(_cards(app)) == 3
    text = _text(app)
    assert "a.jpg" in text and "b.jpg" in text and "could not use this file" in text


def test_non_image_shows_error_and_next_upload_still_works(recognizer, tiny_data):
    app = build_app(recognizer)
    _upload(app, ("notes.jpg", b"this is a text file, not a photo"))
    text = _text(app)
    assert "could not use this file" in text and "not a readable image" in text
    assert "Traceback" not in text
    _upload(app, ("good.jpg", _jpeg(tiny_data)))
    assert len(_cards(app)) == 2  # newest first, the error card stays below
    assert "good.jpg" in _cards(app)[0].children[-1].value
    assert "Green Square Gate" in _text(app)


def test_unexpected_exception_becomes_a_message_and_app_keeps_working(recognizer, tiny_data, monkeypatch):
    app = build_app(recognizer)
    monkeypatch.setattr(recognizer, "recognize_many", lambda *a, **k: 1 / 0)
    upload = _upload(app, ("x.jpg", _jpeg(tiny_data)))
    text = _text(app)
    assert "Something went wrong" in text and "Traceback" not in text
    assert upload.value == ()
    monkeypatch.undo()
    _upload(app, ("x.jpg", _jpeg(tiny_data)))
    assert "Green Square Gate" in _text(app) and "Something went wrong" not in _text(app)


def test_unknown_says_it_does_not_look_like_a_known_landmark(tiny_model, tiny_data):
    app = build_app(Recognizer(tiny_model, threshold=1.01))  # nothing is ever confident enough
    _upload(app, ("x.jpg", _jpeg(tiny_data)))
    text = _text(app)
    assert "does not look like one of the 3 landmarks I know" in text
    assert "Closest guesses" in text and text.count('class="lt-guess"') == 3


def test_missing_model_gives_a_clear_message(tmp_path, monkeypatch):
    app = build_app(model_path=tmp_path / "missing.pt")
    assert "No trained model yet" in _text(app) and "missing.pt" in _text(app)
    assert not any(isinstance(w, widgets.FileUpload) for w in iter_widgets(app))
    monkeypatch.setenv("LANDMARK_MODEL", str(tmp_path / "also_missing.pt"))
    assert "No trained model yet" in _text(build_app())


def test_broken_model_file_gives_a_clear_message(tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a model")
    text = _text(build_app(model_path=broken))
    assert "Could not load the model" in text and "Traceback" not in text


def test_notebook_is_thin_and_has_no_outputs():
    notebook = json.loads((ROOT / "app.ipynb").read_text())
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert len(code) == 1 and "build_app()" in "".join(code[0]["source"])
    assert all(not cell.get("outputs") and cell.get("execution_count") is None for cell in code)


# ---------------------------------------------------------------------------------------------------
# a real browser against a real Voila server

TAJ_MAHAL = SHARED / "indian_monuments" / "test" / "22.Taj_Mahal"
# The README's screenshot is refreshed only on request (LANDMARK_UPDATE_SCREENSHOT=1 make test): a test
# run must not rewrite tracked files. Otherwise it goes to a temporary folder.
SCREENSHOT = ROOT / "static_images" / "app_screenshot.png"
UPDATE_SCREENSHOT = os.environ.get("LANDMARK_UPDATE_SCREENSHOT") == "1"
# The tiny model's classes renamed to landmarks in the metadata file, so its answers carry locations.
RENAMED = ["22.Taj_Mahal", "16.Eiffel_Tower", "07.Stonehenge"]


def _renamed_copy(model: Path, target: Path) -> Path:
    """The tiny model with metadata class names that the landmark table knows, and no threshold."""
    from src.export import METADATA_FILE, load_exported

    module, metadata = load_exported(model)
    metadata = dict(metadata, class_names=RENAMED[: len(metadata["class_names"])], threshold=0.0)
    torch.jit.save(module, str(target), _extra_files={METADATA_FILE: json.dumps(metadata)})
    return target


@pytest.fixture(scope="module")
def e2e_setup(tiny_model, tiny_data, tmp_path_factory):
    """Which model and photo the browser test uses, and what the page must then show (computed with
    the same Recognizer in this process).

    The project's default model (checkpoints/transfer_exported.pt) with a real Taj Mahal photo from
    ../shared when both exist; else the tiny model, its classes renamed to landmarks the metadata
    knows (so its answers carry a location), with a generated photo.
    """
    folder = tmp_path_factory.mktemp("e2e")
    if DEFAULT_MODEL.exists():
        model, default = DEFAULT_MODEL, True
        photos = sorted(TAJ_MAHAL.glob("*.jpg"))[:20] if TAJ_MAHAL.is_dir() else []
        if not photos:
            print(f"\n[app e2e] {TAJ_MAHAL} is absent: no real photo, the default model gets a generated one")
            (folder / "square.jpg").write_bytes(_jpeg(tiny_data))
            photos = [folder / "square.jpg"]
    else:
        model, default = _renamed_copy(tiny_model, folder / "tiny_renamed.pt"), False
        (folder / "square.jpg").write_bytes(_jpeg(tiny_data))  # a green square: class 1 -> "16.Eiffel_Tower"
        photos = [folder / "square.jpg"]
    recognizer = Recognizer(model)
    expected = list(zip(photos, recognizer.recognize_many([photo.read_bytes() for photo in photos])))
    # Prefer a photo the model places as the landmark (a real Taj Mahal photo: the Taj Mahal), then one it names.
    photo, expect = next(((ph, r) for ph, r in expected if r.placed and "Taj_Mahal" in r.top[0].class_name),
                         next(((ph, r) for ph, r in expected if r.placed),
                              next(((ph, r) for ph, r in expected if r.status == "landmark"), expected[0])))
    named = [photo for photo, r in expected if r.status == "landmark"][:5]  # photos of a landmark it knows, to teach
    known = len([name for name in _classes(model) if name not in recognizer.metadata.get("background_classes", [])])
    return {"model": model, "photo": photo, "default": default, "folder": folder, "expect": expect, "known": known,
            "teach": named or photos[:5], "teach_named": bool(named)}


@pytest.fixture(scope="module")
def voila(e2e_setup):
    """A Voila server on a free port serving app.ipynb; always stopped (with its kernel) at the end."""
    folder, port = e2e_setup["folder"], free_port()
    runtime = folder / "runtime"
    # Landmarks taught in the browser go to this test's own gallery; the notebook is trusted in its own store.
    env = dict(os.environ, LANDMARK_MODEL=str(e2e_setup["model"]), HF_HUB_OFFLINE="1", JUPYTER_RUNTIME_DIR=str(runtime),
               PYTHONUNBUFFERED="1", LANDMARK_HOME=str(folder / "home"), JUPYTER_DATA_DIR=str(folder / "jupyter"),
               JUPYTER_PATH=str(ROOT / "share" / "jupyter"))  # the app's Voila template, as `make app` sets it
    log_path = folder / "voila.log"
    # As `make app` runs it: trusted first (else Voila warns), the settings from voila.json
    subprocess.run([sys.executable, "-m", "jupyter", "trust", "app.ipynb"], cwd=ROOT, env=env, check=True, capture_output=True)
    command = [sys.executable, "-m", "voila", "app.ipynb", f"--port={port}", "--no-browser", "--Voila.ip=127.0.0.1"]
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    root = psutil.Process(process.pid)
    try:
        deadline = started + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"voila exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.perf_counter() > deadline:
                    pytest.fail(f"voila did not answer within 30 s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.1)
        yield {"url": f"http://127.0.0.1:{port}/", "started": started, "listening_s": time.perf_counter() - started, "log": log_path}
    finally:
        stop(process, set(process_tree(root)))  # Voila's process group, then any kernel it left
    log = log_path.read_text()
    assert "tornado_settings" not in log and "is not trusted" not in log, log[-3000:]  # `make app` starts without either warning


NEEDS_CHROMIUM = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (`apt-get install -y chromium`; .ci/run does it)")


def _offline(page) -> None:
    """The page as on a machine without the internet (these machines, many private servers): every
    request that leaves the machine fails, as OpenStreetMap's would."""
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("http://127.0.0.1") else route.abort("internetdisconnected"))


def _open_app(browser, voila: dict, width: int = 1000, height: int = 900):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(40_000)
    _offline(page)
    page.goto(voila["url"], wait_until="domcontentloaded")
    page.wait_for_selector(".widget-upload", state="visible")
    return page


@pytest.mark.slow
@NEEDS_CHROMIUM
def test_browser_upload_shows_result_and_errors(voila, e2e_setup):
    sync_api = pytest.importorskip("playwright.sync_api")
    timings = {"voila listening": voila["listening_s"]}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page.set_default_timeout(40_000)
            _offline(page)
            page.goto(voila["url"], wait_until="domcontentloaded")
            page.wait_for_selector(".widget-upload", state="visible")
            timings["voila start -> usable page"] = time.perf_counter() - voila["started"]

            start = time.perf_counter()
            _choose_file(page, e2e_setup["photo"])
            card = page.locator(".lt-result").first
            card.wait_for()
            timings["upload -> result"] = time.perf_counter() - start
            text = card.inner_text()
            expect: Recognition = e2e_setup["expect"]
            shown = [guess for guess in expect.top if guess.probability >= 0.005]  # bars under 0.5 % are left out
            assert card.locator(".lt-guess").count() == len(shown) <= min(5, len(_classes(e2e_setup["model"])))
            if expect.placed and expect.top[0].info.has_coordinates:
                info = expect.top[0].info
                assert info.name in text and f"Latitude {info.latitude:.4f}, longitude {info.longitude:.4f}" in text, text
                assert "Open in a map" in text and info.location in text and " ".join(info.hashtags) in text, text
                # offline: the map drawn here is shown, never OpenStreetMap's broken frame
                assert card.locator("svg.lt-offline-map").is_visible() and not card.locator("iframe").is_visible()
            elif expect.status == "landmark":
                assert f"Looks like {expect.top[0].info.name}" in text and "Latitude" not in text, text
            else:  # only with the default model and no real photo: a generated one is rightly "unknown"
                assert "does not look like" in text or "No landmark" in text, text
            button = page.locator(".lt-upload")
            assert button.evaluate("b => getComputedStyle(b, '::after').content") == '"Upload photos"'  # not "Upload photos (0)"
            assert button.evaluate("b => getComputedStyle(b).fontSize") == "0px"  # ipywidgets' own "(0)" label is not drawn
            page.wait_for_selector("img.widget-image")  # the thumbnail
            if e2e_setup["default"]:
                target = SCREENSHOT if UPDATE_SCREENSHOT else e2e_setup["folder"] / SCREENSHOT.name
                target.parent.mkdir(exist_ok=True)
                # The evaluation photos are not ours to publish: blur the thumbnail in the README's copy.
                page.add_style_tag(content="img.widget-image { filter: blur(7px); }")
                page.screenshot(path=str(target), full_page=True)
                assert target.stat().st_size > 0

            fake = e2e_setup["folder"] / "notes.jpg"
            fake.write_text("this is a text file with a .jpg name")
            start = time.perf_counter()
            _choose_file(page, fake)
            page.get_by_text("Sorry, I could not use this file.").wait_for()
            timings["upload -> error message"] = time.perf_counter() - start
            assert page.locator(".lt-result").count() == 2
            assert "not a readable image" in page.locator(".lt-result").first.inner_text()
            assert "Traceback" not in page.content()
            assert page.locator("iframe").count() == 0  # no map frame from outside (tests/test_app_serving.py: no request leaves)
        finally:
            browser.close()
    print("\n[app e2e timings] " + ", ".join(f"{k}: {v:.1f} s" for k, v in timings.items())
          + f" (model: {Path(e2e_setup['model']).name})")


def _choose_file(page, path: Path) -> None:
    """Upload like a user: ipywidgets 8 keeps its <input type=file> out of the document (so
    page.set_input_files("input[type=file]") finds nothing); click the button and answer the chooser."""
    with page.expect_file_chooser() as chooser:
        page.click(".widget-upload")
    chooser.value.set_files(str(path))


def _classes(model: Path) -> list[str]:
    from src.export import load_exported

    return load_exported(model)[1]["class_names"]


@pytest.mark.slow
@NEEDS_CHROMIUM
def test_browser_phone_width_shows_the_whole_card(voila, e2e_setup):
    """At a phone's width (390 px) the answer card fits: title, location, bars and percentages inside the
    screen, no sideways scrolling; the upload button's label whole; the names under the known-landmarks
    map readable. The screenshot is kept beside the test's other files."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = _open_app(browser, voila, width=390, height=844)
            _choose_file(page, e2e_setup["photo"])
            card = page.locator(".lt-card").first
            card.locator(".lt-result").wait_for()
            page.wait_for_selector(".lt-card img.widget-image")
            card.screenshot(path=str(e2e_setup["folder"] / "app_phone_card.png"))  # the whole card, however tall
            width = page.evaluate("document.documentElement.clientWidth")
            assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing sticks out sideways
            box = card.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
            parts = [".lt-file", ".lt-landmark, .lt-looks-like, .lt-unknown", ".lt-location", ".lt-guess", ".lt-prob", "img.widget-image"]
            for selector in parts:
                for element in card.locator(selector).all():
                    inner = element.bounding_box()
                    assert inner["x"] >= box["x"] - 0.5 and inner["x"] + inner["width"] <= box["x"] + box["width"] + 0.5, (selector, inner, box)
                    assert element.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), selector  # its own text not cut off
            upload = page.locator(".lt-upload").bounding_box()
            assert upload["x"] + upload["width"] <= width
            page.get_by_text("Landmarks I know").first.click()
            names = page.locator(".lt-names")
            names.wait_for()
            assert float(names.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 11 and names.bounding_box()["height"] > 100
        finally:
            browser.close()


@pytest.mark.slow
@NEEDS_CHROMIUM
def test_browser_teach_then_landmarks_i_know(voila, e2e_setup, tmp_path):
    """Issue 29's afternoon: teach a landmark (photos of one the model knows: the page says so), then the
    counts say one more and "Landmarks I know" draws its map with the new one. Issue 38: it is taught
    without a position (the fields left empty), so its photos are named, never placed: no position in the
    page, none written by the tagger. Last of the browser tests: the taught landmark stays in this server's gallery."""
    sync_api = pytest.importorskip("playwright.sync_api")
    known = e2e_setup["known"]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = _open_app(browser, voila)
            page.get_by_text("Teach a new landmark").click()
            for label in ("Latitude", "Longitude"):  # empty and optional, not 0
                field = page.locator(".widget-text", has=page.locator("label", has_text=label)).locator("input")
                assert field.input_value() == "" and "optional" in field.get_attribute("placeholder")
            field = page.locator(".widget-text", has=page.locator("label", has_text="Name")).locator("input")
            field.fill("Our Monument")
            field.press("Tab")
            with page.expect_file_chooser() as chooser:
                page.locator(".widget-upload:not(.lt-upload)").click()  # the panel's, not the page's upload button
            chooser.value.set_files([str(photo) for photo in e2e_setup["teach"]])
            page.locator(".widget-upload:not(.lt-upload)", has_text=f"Photos ({len(e2e_setup['teach'])})").wait_for()
            page.get_by_role("button", name="Teach it").click()
            learned = page.get_by_text("Learned Our Monument")
            learned.wait_for()
            status = learned.inner_text()
            assert f"from {len(e2e_setup['teach'])} photo" in status and "photo(s)" not in status, status
            assert "named, never placed" in status, status
            if e2e_setup["teach_named"]:  # photos of a landmark the model names: the page says so
                assert "which I already know" in status, status
            # the header and status lines follow in the widgets' next messages: wait for them, then read the page
            page.get_by_text(f"which of the {known + 1} landmarks").first.wait_for()
            page.get_by_text(f"I know {known + 1} landmarks").first.wait_for()
            body = page.inner_text("body")
            assert f"which of the {known + 1} landmarks" in body and f"I know {known + 1} landmarks" in body, body[:500]
            page.get_by_text(f"Landmarks I know ({known + 1})").click()
            page.locator(".lt-names").wait_for()
            image = page.locator(".widget-image").first
            assert image.evaluate("img => img.naturalWidth") > 100  # the map was drawn
            assert "Our Monument" in page.locator(".lt-names").inner_text()
            # one of its own photos: named as it, and no position anywhere on its card
            cards = page.locator(".lt-result").count()
            _choose_file(page, e2e_setup["teach"][0])
            page.locator(".lt-result").nth(cards).wait_for()
            card = page.locator(".lt-card").first.inner_text()
            assert "Our Monument — named, never placed" in card, card
            for place in ("Latitude", "Open in a map", "Suggested tags"):
                assert place not in card, card
            assert "Traceback" not in page.content()
        finally:
            browser.close()
    # the tagger, with this server's gallery: nothing written for it, never a 0,0
    gallery = e2e_setup["folder"] / "home" / "gallery"
    rows = tag_paths(list(e2e_setup["teach"]), Recognizer(e2e_setup["model"], gallery_dir=gallery), write_gps=True,
                     out_dir=tmp_path / "tagged", progress=False)
    ours = [row for row in rows if row.guess == "Our Monument"]
    assert ours and all(row.status == "guess" and not row.written and row.latitude is None for row in ours)


def test_result_card_shows_the_place_on_a_small_map_and_keeps_the_link():
    from src.data.landmarks import lookup
    from src.serving.recognizer.recognize import Guess, Recognition

    info = lookup("22.Taj_Mahal")
    html_text = render_result_html("taj.jpg", Recognition(status="landmark", message="", top=[Guess("22.Taj_Mahal", 0.9, info)], placed=True))
    assert '<svg class="lt-offline-map"' in html_text  # the region drawn here
    assert html_text.count(info.map_url.replace("&", "&amp;")) >= 1  # the plain link: OpenStreetMap only if the user clicks
    # nothing the browser would fetch by itself: no frame, no tile, no image from elsewhere
    for fetched in ("<iframe", "<img", "tile.openstreetmap.org", "export/embed.html"):
        assert fetched not in html_text, fetched


def test_landmarks_i_know_panel_draws_the_world_map_when_opened(tiny_model):
    from src.serving.web.app import KnownLandmarksPanel

    panel = KnownLandmarksPanel(Recognizer(tiny_model)).widget
    assert panel.get_title(0) == "Landmarks I know (3)" and not panel.children[0].children
    panel.selected_index = 0
    image, names = panel.children[0].children
    assert bytes(image.value).startswith(b"\x89PNG")
    assert "Green Square Gate" in names.value  # the names as text under the map


# ---------------------------------------------------------------------------------------------------
# teaching a landmark in the app


def _teach_panel(app: widgets.Widget):
    name = next(w for w in iter_widgets(app) if isinstance(w, widgets.Text) and w.description == "Name")
    button = next(w for w in iter_widgets(app) if isinstance(w, widgets.Button) and w.description == "Teach it")
    photos = [w for w in iter_widgets(app) if isinstance(w, widgets.FileUpload)][1]
    return name, button, photos


def _fill(app: widgets.Widget, landmark: str, photos: list[bytes], latitude: str = "48.85", longitude: str = "2.35") -> widgets.Button:
    name, button, upload = _teach_panel(app)
    name.value = landmark
    next(w for w in iter_widgets(app) if getattr(w, "description", "") == "Latitude").value = latitude
    next(w for w in iter_widgets(app) if getattr(w, "description", "") == "Longitude").value = longitude
    upload.value = tuple({"name": f"{i}.jpg", "type": "image/jpeg", "size": len(data), "content": memoryview(data), "last_modified": EPOCH}
                         for i, data in enumerate(photos))
    return button


def _teach_status(app: widgets.Widget) -> str:
    return next(w.value for w in iter_widgets(app) if isinstance(w, widgets.HTML) and ("Learned" in w.value or "Not added" in w.value
                                                                                          or "already taught" in w.value))


def test_teaching_updates_the_counts_and_the_map_and_clears_the_form(tiny_model, tmp_path):
    app = build_app(Recognizer(tiny_model, gallery_dir=tmp_path / "gallery"))
    accordion = next(w for w in iter_widgets(app) if isinstance(w, widgets.Accordion) and w.get_title(0).startswith("Landmarks I know"))
    accordion.selected_index = 0  # drawn before teaching: redrawn after it
    photos = [_blue_photo(seed) for seed in range(5)]
    _fill(app, "Test Tower", photos).click()
    status = _teach_status(app)
    assert "Learned Test Tower from 5 photos" in status and "photo(s)" not in status
    text = _text(app)
    assert "which of the 4 landmarks" in text and "I know 4 landmarks" in text and accordion.get_title(0) == "Landmarks I know (4)"
    image, names = accordion.children[0].children  # the 4th has an index past the model's classes (issue 29: IndexError)
    assert bytes(image.value).startswith(b"\x89PNG") and "Test Tower" in names.value
    name, _, upload = _teach_panel(app)
    assert name.value == "" and upload.value == ()  # a blank form for the next landmark


def test_teaching_a_name_twice_says_so_in_the_page_s_words(tiny_model, tmp_path):
    app = build_app(Recognizer(tiny_model, gallery_dir=tmp_path / "gallery"))
    photos = [_blue_photo(seed) for seed in range(3)]
    _fill(app, "Test Tower", photos).click()
    _fill(app, "Test Tower", photos).click()
    status = _teach_status(app)
    assert "already taught Test Tower" in status and "--replace" not in status and "replace=True" not in status
    replace = next(w for w in iter_widgets(app) if isinstance(w, widgets.Checkbox))
    assert replace.description in html_unescape(status)
    replace.value = True
    _fill(app, "Test Tower", photos, latitude="10.0").click()
    assert "Learned Test Tower" in _teach_status(app) and "which of the 4 landmarks" in _text(app)


def test_the_teach_form_s_position_is_empty_and_optional(tiny_model, tmp_path):
    app = build_app(Recognizer(tiny_model, gallery_dir=tmp_path / "gallery"))
    fields = [next(w for w in iter_widgets(app) if getattr(w, "description", "") == label) for label in ("Latitude", "Longitude")]
    assert all(field.value == "" and "optional" in field.placeholder for field in fields)  # empty, not 0
    _fill(app, "Half Place", [_blue_photo(seed) for seed in range(3)], latitude="", longitude="2.35").click()
    assert "Not added" in _teach_status(app) and "or leave both empty" in _teach_status(app)
    _fill(app, "Odd Place", [_blue_photo(seed) for seed in range(3)], latitude="north", longitude="2.35").click()
    assert "latitude must be a number" in _teach_status(app)


def test_teaching_without_a_position_names_it_but_never_places_it(tiny_model, tmp_path):
    recognizer = Recognizer(tiny_model, gallery_dir=tmp_path / "gallery", placement=0.0)
    app = build_app(recognizer)
    photos = [_blue_photo(seed) for seed in range(5)]
    _fill(app, "Big Ben", photos, latitude="", longitude="").click()
    status = html_unescape(_teach_status(app))
    assert "Learned Big Ben from 5 photos" in status and "named, never placed" in status, status
    _upload(app, ("ben.jpg", photos[0]))
    card = html_unescape(_cards(app)[0].children[-1].value)
    assert "Big Ben — named, never placed" in card and "Latitude" not in card and "lt-map" not in card
    assert "0 landmarks recognized, 1 guess not placed" in _text(app)


def test_teaching_photos_of_a_known_landmark_warns(tiny_model, tiny_data, tmp_path):
    """Photos the model already names (Green Square Gate) taught under another name: learned, with a note."""
    recognizer = Recognizer(tiny_model, gallery_dir=tmp_path / "gallery")
    photos = [_jpeg(tiny_data, index=i) for i in range(5)]
    assert sum(r.status == "landmark" for r in recognizer.recognize_many(photos)) >= 3  # the premise
    app = build_app(recognizer)
    _fill(app, "Sydney Opera House", photos).click()
    status = html_unescape(_teach_status(app))
    assert "Learned Sydney Opera House" in status and "look like Green Square Gate, which I already know" in status
    nothing_named = Recognizer(tiny_model, gallery_dir=tmp_path / "other", threshold=1.01)  # no photo looks like a known one
    app2 = build_app(nothing_named)
    _fill(app2, "Blue Place", [_blue_photo(seed) for seed in range(5)]).click()
    assert "Learned Blue Place" in _teach_status(app2) and "Note:" not in _teach_status(app2)


def _blue_photo(seed: int) -> bytes:
    """A photo of nothing the tiny model was trained on: a blue field with a little noise."""
    import numpy as np

    pixels = np.clip(np.random.default_rng(seed).normal((40, 60, 200), 12, (96, 96, 3)), 0, 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


def html_unescape(text: str) -> str:
    import html as html_module

    return html_module.unescape(text)
