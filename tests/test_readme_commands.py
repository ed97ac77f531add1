"""The README's own commands are the fast path: `python -m src serve|tag|gallery` run exactly as users
type them, in a fresh process, with the shipped model on OpenVINO, must never load torch (hundreds of MB
resident and seconds of start-up), and the idle service must stay small.

Which modules a command loaded is read from Python's own `-X importtime` report on its stderr, so the
command itself runs unchanged."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from scripts.load_check import _free_port, peak_memory_mb, stop_service, wait_healthy
from src.serving.recognizer.recognize import DEFAULT_MODEL
from src.serving.recognizer.runtime import ir_files

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "timm")  # none of them is needed on the OpenVINO path
SERVICE_IDLE_MB = 350  # issue 30: the service idle, after answering, on the shipped model

pytestmark = pytest.mark.skipif(not all(p.exists() for p in ir_files(DEFAULT_MODEL)),
                                reason="the shipped OpenVINO model is not in checkpoints/")


def imported_modules(importtime_report: str) -> set[str]:
    """Top-level names of every module in a `python -X importtime` report."""
    names = set()
    for line in importtime_report.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":  # the report's header line
                names.add(name.split(".")[0])
    return names


def readme_command(*args: str) -> list[str]:
    """`python -m src ARGS...`, with Python reporting every import on stderr."""
    return [sys.executable, "-X", "importtime", "-m", "src", *args]


@pytest.fixture
def environment(tmp_path) -> dict[str, str]:
    """The user's environment with an empty gallery home, so a taught landmark never leaks out."""
    env = {key: value for key, value in os.environ.items() if key not in ("LANDMARK_MODEL", "LANDMARK_RUNTIME")}
    return {**env, "LANDMARK_HOME": str(tmp_path / "home"), "PYTHONWARNINGS": "default"}


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(readme_command(*args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_python_m_src_tag_loads_no_torch(tiny_data, tmp_path, environment):
    report = tmp_path / "tags.csv"
    done = _run(["tag", str(tiny_data / "test"), "-o", str(report)], environment)
    assert not imported_modules(done.stderr) & set(HEAVY)
    assert "FutureWarning" not in done.stderr
    rows = list(csv.DictReader(report.open()))
    assert rows and {row["status"] for row in rows} <= {"placed", "guess", "unknown", "error"}
    assert any(row["status"] in ("placed", "guess", "unknown") for row in rows)


def test_python_m_src_gallery_add_and_list_load_no_torch(tiny_data, environment):
    photos = sorted((tiny_data / "train").glob("*/*.jpg"))[:3]
    added = _run(["gallery", "add", "Test Gate", *map(str, photos), "--lat", "1.5", "--lon", "2.5"], environment)
    listed = _run(["gallery", "list"], environment)
    assert "Test Gate" in listed.stdout
    for done in (added, listed):
        assert not imported_modules(done.stderr) & set(HEAVY)


def test_python_m_src_serve_idles_small_without_torch(tiny_data, tmp_path, environment):
    port, log = _free_port(), tmp_path / "serve.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(readme_command("serve", "--port", str(port), "--log-level", "warning"),
                                   cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, process=process)
            photo = min((tiny_data / "test").rglob("*.jpg")).read_bytes()
            answer = requests.post(f"{url}/v1/predict", files={"file": ("photo.jpg", photo, "image/jpeg")}, timeout=60)
            assert answer.status_code == 200 and answer.json()["status"] in ("placed", "guess", "unknown")
            idle_mb = peak_memory_mb(process.pid, "VmRSS")
        finally:
            stop_service(process)
    assert not imported_modules(log.read_text()) & set(HEAVY)
    if idle_mb is not None:  # /proc is Linux's
        assert idle_mb <= SERVICE_IDLE_MB, f"python -m src serve holds {idle_mb:.0f} MiB idle"
