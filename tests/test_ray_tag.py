"""The Ray Data engine of the batch tagger gives the local tagger's answers, rows and GPS writes.

One local Ray with 2 CPUs serves the whole module and is shut down after it. Each pipeline run starts
its actors (a model load each), so the tests are few and each checks a lot.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

ray = pytest.importorskip("ray", reason="ray[data] is not installed (pip install 'ray[data]'): the Ray engine is optional")
pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed")

from conftest import NEEDS_SHARED, SHARED

from src.data.synthetic import CLASS_NAMES
from src.serving.tagger.ray_tag import RayTagConfig, _init_ray, tag_paths_ray
from src.serving.recognizer.recognize import DEFAULT_MODEL, Recognizer
from src.serving.tagger.cli import main
from src.serving.tagger.tag import tag_paths
from src.serving.tagger.tag_report import COLUMNS

CONFIG = RayTagConfig(num_cpus=2, actors=1, batch_size=16, decode_batch=8, progress=False)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    started = _init_ray(CONFIG)
    yield
    if started:
        ray.shutdown()
    assert not ray.is_initialized()


@pytest.mark.slow
def test_folders_and_a_listing_give_the_local_rows_with_errors_in_place(tiny_data, tiny_model, tmp_path):
    folder = tiny_data / "test"
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    missing = tmp_path / "gone.jpg"
    truncated = tiny_data / "train" / CLASS_NAMES[0] / "truncated.jpg"
    listed = [*sorted(str(p) for p in (tiny_data / "train").rglob("0*.jpg"))[:5], str(truncated), str(missing), str(broken)]
    listing = tmp_path / "photos.csv"
    with listing.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "note"])
        writer.writerows([[path, "x"] for path in listed])

    small = tmp_path / "small.png"  # too small to show a landmark: never named, on either engine
    Image.new("RGB", (20, 20), (40, 120, 200)).save(small)

    rows = tag_paths_ray([folder, broken, small, listing], tiny_model, config=CONFIG)
    local = tag_paths([folder, broken, small], Recognizer(tiny_model), progress=False)
    local += tag_paths(listed, Recognizer(tiny_model), progress=False)

    assert [row.file for row in rows] == [row.file for row in local]  # the photo list's order is kept
    assert rows == local
    assert {row.file for row in rows if row.status == "error"} == {str(truncated), str(missing), str(broken)}
    assert all(row.status in ("placed", "guess", "unknown") for row in rows if row.file not in (str(truncated), str(missing), str(broken)))
    assert [(row.status, "too small" in row.message) for row in rows if row.file == str(small)] == [("unknown", True)]


@pytest.mark.slow
def test_a_listing_without_a_photo_column_is_a_usage_error(tiny_model, tmp_path, capsys):
    listing = tmp_path / "photos.csv"
    listing.write_text("name,size\na.jpg,1\n")
    assert main([str(listing), "--engine", "ray", "--model", str(tiny_model), "--quiet"]) == 2
    assert "a listing needs a column named one of ('file', 'path')" in capsys.readouterr().err


@pytest.mark.slow
@NEEDS_SHARED
def test_hundred_real_photos_through_the_command_line_match_the_local_tagger(tmp_path):
    photos = sorted((SHARED / "indian_monuments" / "test").rglob("*.jpg"))[::7][:100]
    assert len(photos) == 100
    report = tmp_path / "tags.parquet"
    ray_out, local_out = tmp_path / "ray_copies", tmp_path / "local_copies"
    code = main([*map(str, photos), "--engine", "ray", "--actors", "1", "--ray-batch-size", "16", "-o", str(report),
                 "--write-gps", "--out-dir", str(ray_out), "--quiet", "--model", str(DEFAULT_MODEL)])
    assert code == 0

    table = pq.read_table(report)
    assert tuple(table.column_names) == COLUMNS
    rows = table.to_pylist()
    local = tag_paths(photos, Recognizer(DEFAULT_MODEL), write_gps=True, out_dir=local_out, progress=False)
    assert [row["file"] for row in rows] == [row.file for row in local]
    for got, want in zip(rows, local):
        want = replace(want, written=want.written.replace(str(local_out), str(ray_out)))
        assert (got["status"], got["landmark"], got["tags"], got["written"]) == (want.status, want.landmark, want.tags, want.written)
        assert got["probability"] == pytest.approx(want.probability, abs=1e-5)
    written = [row["written"] for row in rows if row["written"]]
    assert written and all(Path(path).is_file() for path in written)
    assert sum(row.placed == "yes" for row in local) == len(written)  # the placement rule holds some named photos back
