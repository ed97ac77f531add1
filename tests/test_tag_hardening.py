"""Regression tests for issue 21: nothing hangs, nothing crashes the run, nothing is left behind.

Each test here failed on main: a FIFO hung the tagger, a symlink loop crashed the run, an alias
replaced the real photo in the report and --in-place turned the link into a file, /dev/zero and a
3 GB sparse file were read whole, temp files of a killed run stayed forever.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from src.data.landmarks import lookup
from src.serving.metadata.exif import read_gps
from src.serving.recognizer.recognize import Recognizer
from src.serving.metadata.safe_write import remove_stale_temp_files
from src.serving.tagger.cli import main
from src.serving.tagger.photo_pipeline import Limits
from src.serving.tagger.tag import tag_paths

GEO_CLASSES = ["22.Taj_Mahal", "16.Eiffel_Tower", "28.Sydney_Harbour_Bridge"]
POSIX = pytest.mark.skipif(os.name != "posix", reason="FIFOs, devices and flock are POSIX")


@pytest.fixture(scope="module")
def geo_recognizer(tiny_model) -> Recognizer:
    """Every answer is a placed landmark with coordinates (fake geography, real code path)."""
    recognizer = Recognizer(tiny_model, threshold=0.0, placement=0.0)
    recognizer.class_names = list(GEO_CLASSES)
    return recognizer


@pytest.fixture
def folder(tiny_data, tmp_path) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    shutil.copyfile(tiny_data / "test" / "01.Green_Square_Gate" / "005.jpg", root / "real.jpg")
    return root


def _rows(paths, recognizer, **kwargs):
    return {Path(row.file).name: row for row in tag_paths(paths, recognizer, progress=False, **kwargs)}


def _ended_within(seconds: float, function, *args, **kwargs):
    started = time.monotonic()
    result = function(*args, **kwargs)
    assert time.monotonic() - started < seconds
    return result


@POSIX
def test_fifo_and_socket_named_like_photos_are_error_rows_not_hangs(folder, geo_recognizer):
    os.mkfifo(folder / "pipe.jpg")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(folder / "sock.jpg"))
    try:
        rows = _ended_within(20, _rows, [folder, folder / "pipe.jpg"], geo_recognizer)
    finally:
        listener.close()
    assert rows["pipe.jpg"].status == "error" and "FIFO" in rows["pipe.jpg"].message
    assert rows["sock.jpg"].status == "error"
    assert rows["real.jpg"].status == "placed"


@POSIX
def test_device_behind_a_symlink_is_an_error_row(folder, geo_recognizer):
    (folder / "zero.jpg").symlink_to("/dev/zero")
    rows = _ended_within(20, _rows, [folder], geo_recognizer)
    assert "zero" in rows and rows["zero"].status == "error" and "character device" in rows["zero"].message


def test_self_looping_and_dangling_symlinks_do_not_stop_the_run(folder, geo_recognizer):
    (folder / "loop.jpg").symlink_to("loop.jpg")
    (folder / "gone.jpg").symlink_to("missing.jpg")
    rows = _ended_within(20, _rows, [folder], geo_recognizer)
    assert rows["loop.jpg"].status == "error" and "symlink loop" in rows["loop.jpg"].message
    assert rows["gone.jpg"].status == "error" and "broken symlink" in rows["gone.jpg"].message
    assert rows["real.jpg"].status == "placed"


def test_an_alias_is_tagged_once_at_its_target_and_stays_a_link(folder, geo_recognizer):
    # "a.jpg" sorts before "real.jpg": on main the alias replaced the real photo in the report.
    (folder / "a.jpg").symlink_to("real.jpg")
    rows = tag_paths([folder], geo_recognizer, write_gps=True, in_place=True, progress=False)
    assert [row.file for row in rows] == [str(folder / "real.jpg")]
    assert rows[0].written == str(folder / "real.jpg")
    assert (folder / "a.jpg").is_symlink() and os.readlink(folder / "a.jpg") == "real.jpg"
    expected = lookup(rows[0].landmark)
    assert read_gps(folder / "real.jpg") == pytest.approx((expected.latitude, expected.longitude), abs=1e-6)


def test_huge_sparse_file_is_refused_without_reading_it(folder, geo_recognizer):
    huge = folder / "huge.jpg"
    with open(huge, "wb") as handle:
        handle.truncate(3 * 2**30)  # 3 GiB of holes: costs no disk, but a read_bytes() costs 3 GiB RAM
    rows = _ended_within(20, _rows, [folder], geo_recognizer)
    assert rows["huge.jpg"].status == "error" and "too large" in rows["huge.jpg"].message
    small = _rows([folder / "real.jpg"], geo_recognizer, limits=Limits(max_file_bytes=100))
    assert small["real.jpg"].status == "error" and "too large" in small["real.jpg"].message
    few_pixels = _rows([folder / "real.jpg"], geo_recognizer, limits=Limits(max_pixels=100))
    assert few_pixels["real.jpg"].status == "error" and "Mpx" in few_pixels["real.jpg"].message


def test_decoding_threads_are_capped_by_the_memory_budget():
    assert Limits(memory_bytes=2**30).workers(64) == Limits(memory_bytes=2**30).workers(1000) >= 1
    assert Limits(memory_bytes=1).workers(8) == 1
    assert Limits(memory_bytes=2**40).workers(3) == 3


@POSIX
def test_no_temp_file_survives_a_kill_9_and_another_run(folder, geo_recognizer, tmp_path):
    # A writer killed -9 while holding its temp file: exactly what a crash mid-write leaves.
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path.cwd())!r})
        from pathlib import Path
        import src.serving.metadata.safe_write as safe_write
        def stall(*args): print("writing", flush=True); time.sleep(60)
        safe_write.os.replace = stall
        safe_write.write_atomically(Path({str(folder / 'real.jpg')!r}), b"half a photo")
    """)
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        live = [p for p in folder.iterdir() if p.name.endswith(".tmp")]
        assert len(live) == 1
        assert remove_stale_temp_files(folder) == []  # its writer is alive: left alone
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert live[0].exists()
    stats_rows = tag_paths([folder], geo_recognizer, write_gps=True, in_place=True, progress=False)
    assert [p.name for p in folder.iterdir()] == ["real.jpg"]
    assert stats_rows[0].written and read_gps(folder / "real.jpg") is not None


def test_sidecar_mode_never_touches_the_photo(folder, geo_recognizer, tiny_model, capsys):
    before = (folder / "real.jpg").read_bytes()
    assert main([str(folder), "--model", str(tiny_model), "--sidecar", "-q"]) == 0  # tiny model: "unknown" is fine
    rows = tag_paths([folder], geo_recognizer, write_gps=True, sidecar=True, progress=False)
    sidecar = folder / "real.jpg.xmp"
    assert rows[0].written == str(sidecar) and sidecar.is_file()
    assert (folder / "real.jpg").read_bytes() == before
    again = tag_paths([folder], geo_recognizer, write_gps=True, sidecar=True, progress=False)
    assert again[0].status == "has_gps" and not again[0].written  # the sidecar's GPS now wins


def test_sidecar_and_in_place_together_is_a_usage_error(folder, tiny_model, capsys):
    assert main([str(folder), "--model", str(tiny_model), "--sidecar", "--in-place"]) == 2
    assert "--sidecar" in capsys.readouterr().err
