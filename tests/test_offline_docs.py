"""The service's interactive docs render with the network off (issue 29): Swagger UI and ReDoc load
their JavaScript and CSS from the service itself, never from a CDN. Checked in headless Chromium with
every request that leaves the machine refused."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import requests
import uvicorn

from src.serving.web.service import create_app

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def service_url(tiny_model):
    """The service (tiny model) served by uvicorn in a thread of this process."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(tiny_model), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the service did not start"
            time.sleep(0.1)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_docs_pages_name_no_outside_address(service_url):
    for page in ("/docs", "/redoc"):
        html = requests.get(service_url + page, timeout=10).text
        assert "cdn." not in html and "https://" not in html.replace("https://fastapi.tiangolo.com", ""), html


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (`apt-get install -y chromium`; .ci/run does it)")
def test_docs_render_offline_in_a_browser(service_url):
    sync_api = pytest.importorskip("playwright.sync_api")
    refused: list[str] = []

    def offline(route) -> None:
        if route.request.url.startswith(service_url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("internetdisconnected")

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.route("**/*", offline)
            page.goto(f"{service_url}/docs")
            page.get_by_text("/v1/predict").first.wait_for()  # Swagger UI drew the operations from /openapi.json
            assert "Landmark Tagger" in page.inner_text("body")
            assert not refused, refused  # /docs asked nothing of the outside
            page.goto(f"{service_url}/redoc")
            page.get_by_text("/v1/predict").first.wait_for(state="attached")
            # ReDoc draws everything from the service; only its "API docs by Redocly" badge is an outside image
            assert all(url.startswith("https://cdn.redoc.ly/redoc/logo") for url in refused), refused
        finally:
            browser.close()
