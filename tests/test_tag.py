"""Batch tagger: reports, exit codes, photos with their own GPS, GPS written into copies or in place.

The tiny model's classes are not in landmarks.json (no coordinates), so the tests that write GPS
use a Recognizer whose class names are patched to real landmarks with coordinates and whose
threshold and placement point are 0 (every photo is "placed"): the geography is fake, the code path real.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from src.data.landmarks import lookup
from src.data.synthetic import CLASS_NAMES
from src.serving.metadata import safe_write
from src.serving.metadata.exif import read_gps, read_keywords, write_location
from src.serving.recognizer.recognize import Recognizer
from src.serving.tagger.cli import main
from src.serving.tagger.photo_files import find_images
from src.serving.tagger.tag import tag_paths
from src.serving.tagger.tag_report import COLUMNS, TagStats, write_report

GEO_CLASSES = ["22.Taj_Mahal", "16.Eiffel_Tower", "28.Sydney_Harbour_Bridge"]
SYDNEY_OPERA_HOUSE = (-33.856784, 151.215297)


@pytest.fixture(scope="module")
def recognizer(tiny_model) -> Recognizer:
    return Recognizer(tiny_model)


@pytest.fixture(scope="module")
def geo_recognizer(tiny_model) -> Recognizer:
    """Every answer is a placed landmark that has coordinates (see the module doc)."""
    return geo(Recognizer(tiny_model, threshold=0.0, placement=0.0))


def geo(recognizer: Recognizer) -> Recognizer:
    """The tiny model's classes renamed to real landmarks with coordinates."""
    assert len(recognizer.class_names) == len(GEO_CLASSES)
    recognizer.class_names = list(GEO_CLASSES)
    assert all(lookup(name).has_coordinates for name in GEO_CLASSES)
    return recognizer


@pytest.fixture
def photos(tiny_data, tmp_path) -> Path:
    """A folder tree of generated photos: 3 classes x 2 JPEGs in sub-folders plus one at the top."""
    root = tmp_path / "photos"
    for class_dir in sorted((tiny_data / "test").iterdir()):
        for source in sorted(class_dir.glob("*.jpg"))[:2]:
            target = root / "trip" / class_dir.name / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    shutil.copyfile(tiny_data / "test" / "01.Green_Square_Gate" / "005.jpg", root / "top.jpg")
    return root


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree_digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): _digest(p) for p in sorted(root.rglob("*")) if p.is_file()}


def test_cli_reports_csv_and_json_with_exit_code_1_for_a_corrupt_photo(photos, tiny_data, tiny_model, tmp_path, capsys):
    bad = tiny_data / "train" / "00.Red_Circle_Tower"
    shutil.copyfile(bad / "truncated.jpg", photos / "trip" / "truncated.jpg")
    shutil.copyfile(bad / "notes.txt", photos / "notes.txt")  # not an image file name: skipped
    (photos / "text.jpg").write_text("a text file named like a photo")
    before = _tree_digests(photos)

    csv_path, json_path = tmp_path / "report.csv", tmp_path / "out" / "report.json"
    assert main([str(photos), "--model", str(tiny_model), "--output", str(csv_path), "-q"]) == 1
    assert main([str(photos), "--model", str(tiny_model), "--output", str(json_path), "-q"]) == 1
    stderr = capsys.readouterr().err
    assert "truncated.jpg" in stderr and "photos/s" in stderr and "decode" in stderr and "model" in stderr

    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == COLUMNS
        rows = {Path(row["file"]).name: row for row in reader}
    files = [Path(row["file"]).relative_to(photos).as_posix() for row in csv.DictReader(open(csv_path, newline=""))]
    assert len(files) == 9 and "notes.txt" not in files  # 7 photos + truncated + text.jpg
    assert rows["truncated.jpg"]["status"] == "error" and "truncated" in rows["truncated.jpg"]["message"]
    assert rows["text.jpg"]["status"] == "error" and "not an image" in rows["text.jpg"]["message"]

    report = json.loads(json_path.read_text())
    assert report["model"] == Path(tiny_model).name
    by_file = {Path(row["file"]).relative_to(photos).as_posix(): row for row in report["files"]}
    assert sorted(by_file) == sorted(files)
    for row in report["files"]:
        assert set(row) == set(COLUMNS)
        # the tiny model's classes have no coordinates: a sure answer is still a guess, never placed
        assert row["status"] in {"guess", "unknown", "error"}
        if row["status"] != "error":
            assert row["guess"] in CLASS_NAMES[:3] and row["landmark"] == row["name"] == "" and row["placed"] == "no"
            assert 0.0 <= row["probability"] <= 1.0
            assert row["latitude"] is None  # the tiny model's classes have no known coordinates
    assert report["summary"]["counts"]["error"] == 2
    assert report["summary"]["files"] == 9
    assert sum(report["summary"]["counts"][s] for s in ("placed", "guess", "unknown", "has_gps", "error")) == 9
    # Photos of each class are recognised as that class (the tiny model is accurate on them).
    class_photos = [(name, row) for name, row in by_file.items() if name.startswith("trip/0")]
    assert len(class_photos) == 6
    assert sum(row["guess"] == name.split("/")[1] for name, row in class_photos) >= 5
    assert _tree_digests(photos) == before  # a report-only run never touches a photo


def test_cli_exit_code_0_when_every_photo_is_processed(photos, tiny_model, tmp_path, capsys):
    assert main([str(photos), "--model", str(tiny_model), "-q", "--output", "-"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ",".join(COLUMNS) and len(out) == 1 + 7


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--write-gps"], "--out-dir"),
        (["--in-place"], "--write-gps"),
        (["--write-gps", "--in-place", "--out-dir", "x"], "not both"),
        (["--output", "report.txt"], ".csv or .json"),
        (["--batch-size", "0"], "batch-size"),
        (["--threshold", "2"], "threshold"),
        (["--model", "/nonexistent/model.pt"], "no exported model"),
        (["--no-such-flag"], "unrecognized"),
        (["--write-gps", "--out-dir", "{photos}"], "must not be, or contain"),
    ],
)
def test_usage_errors_exit_2(photos, tiny_model, extra, message, capsys):
    extra = [arg.format(photos=photos) for arg in extra]
    argv = [str(photos), *extra] if "--model" in extra else [str(photos), "--model", str(tiny_model), *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_missing_input_path_is_a_usage_error(tmp_path, tiny_model, capsys):
    assert main([str(tmp_path / "nope"), "--model", str(tiny_model)]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_write_gps_into_copies_keeps_originals(photos, geo_recognizer, tmp_path):
    before = _tree_digests(photos)
    out = tmp_path / "tagged"
    stats = TagStats()
    rows = tag_paths([photos], geo_recognizer, write_gps=True, out_dir=out, progress=False, stats=stats, batch_size=3)

    assert len(rows) == 7 and {row.status for row in rows} == {"placed"}
    assert _tree_digests(photos) == before  # originals untouched
    for row in rows:
        info = lookup(row.landmark)
        copy = out / Path(row.file).relative_to(photos)  # relative paths kept
        assert row.written == str(copy) and copy.is_file()
        latitude, longitude = read_gps(copy)
        assert latitude == pytest.approx(info.latitude, abs=1e-6)
        assert longitude == pytest.approx(info.longitude, abs=1e-6)
        assert (row.latitude, row.longitude) == (info.latitude, info.longitude)
        # the landmark's hashtags, then what placed it (tag_writer.source_keyword)
        assert read_keywords(copy) == [tag.lstrip("#") for tag in info.hashtags] + ["geotag:landmark"]
        assert row.tags.split() == info.hashtags
        with Image.open(copy) as tagged, Image.open(row.file) as original:
            assert tagged.tobytes() == original.tobytes()  # pixels are not re-encoded
    assert stats.counts == {"placed": 7, "written": 7}
    assert stats.files == 7 and stats.total_s > 0 and stats.model_s > 0 and stats.decode_s > 0
    assert "7 files" in stats.summary() and "photos/s" in stats.summary()


def test_photo_with_own_gps_is_reported_and_left_alone(photos, geo_recognizer, tmp_path):
    original = photos / "top.jpg"
    write_location(original, original, *SYDNEY_OPERA_HOUSE)
    digest = _digest(original)

    rows = tag_paths([original], geo_recognizer, write_gps=True, in_place=True, progress=False)
    assert len(rows) == 1
    row = rows[0]
    assert row.status == "has_gps" and row.written == ""
    assert (row.latitude, row.longitude) == pytest.approx(SYDNEY_OPERA_HOUSE, abs=1e-6)
    assert "metadata wins" in row.message
    assert _digest(original) == digest

    out = tmp_path / "copies"
    rows = tag_paths([photos], geo_recognizer, write_gps=True, out_dir=out, progress=False)
    assert {r.status for r in rows if Path(r.file).name == "top.jpg"} == {"has_gps"}
    assert not (out / "top.jpg").exists() and _digest(original) == digest
    assert sum(r.status == "placed" for r in rows) == 6


def test_unknown_predictions_are_never_written(photos, tiny_model, tmp_path):
    doubtful = Recognizer(tiny_model, threshold=1.01)  # nothing is ever confident enough
    doubtful.class_names = list(GEO_CLASSES)  # even though the guesses have coordinates
    before = _tree_digests(photos)
    out = tmp_path / "tagged"
    rows = tag_paths([photos], doubtful, write_gps=True, out_dir=out, progress=False)
    assert len(rows) == 7 and {row.status for row in rows} == {"unknown"}
    assert all(row.written == "" and row.latitude is None and row.probability is not None for row in rows)
    assert not out.exists() or not any(out.rglob("*"))

    rows = tag_paths([photos], doubtful, write_gps=True, in_place=True, progress=False)
    assert {row.status for row in rows} == {"unknown"}
    assert _tree_digests(photos) == before


def test_in_place_replaces_atomically(photos, geo_recognizer, monkeypatch):
    photo = photos / "top.jpg"
    inode, pixels = photo.stat().st_ino, Image.open(photo).tobytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(safe_write.os, "replace", broken_replace)
        digest = _digest(photo)
        [row] = tag_paths([photo], geo_recognizer, write_gps=True, in_place=True, progress=False)
        assert row.status == "error" and "No space left" in row.message and row.written == ""
        assert _digest(photo) == digest  # the failed write left the original exactly as it was
        assert sorted(p.name for p in photo.parent.iterdir() if p.name.endswith(".tmp")) == []

    [row] = tag_paths([photo], geo_recognizer, write_gps=True, in_place=True, progress=False)
    assert row.status == "placed" and row.written == str(photo)
    assert photo.stat().st_ino != inode  # a new file renamed over the old one, not rewritten in place
    assert read_gps(photo) == pytest.approx((lookup(row.landmark).latitude, lookup(row.landmark).longitude), abs=1e-6)
    assert Image.open(photo).tobytes() == pixels
    assert not [p for p in photo.parent.iterdir() if p.name.endswith(".tmp")]

    # Tagging again: the photo now has its own GPS, so it is left alone.
    [again] = tag_paths([photo], geo_recognizer, write_gps=True, in_place=True, progress=False)
    assert again.status == "has_gps"


def test_unwritable_format_is_reported_not_fatal(photos, geo_recognizer, tmp_path):
    gif = photos / "trip" / "photo.gif"
    Image.open(photos / "top.jpg").save(gif)
    rows = tag_paths([photos], geo_recognizer, write_gps=True, out_dir=tmp_path / "out", progress=False)
    [row] = [r for r in rows if r.file == str(gif)]
    assert row.status == "placed" and row.written == "" and "not written" in row.message
    assert "GIF" in row.message and "--sidecar" in row.message  # says what would work instead
    assert sum(bool(r.written) for r in rows) == 7  # the JPEGs were still tagged


def test_output_folder_inside_the_input_is_not_tagged_again(photos, geo_recognizer):
    out = photos / "tagged"
    first = tag_paths([photos], geo_recognizer, write_gps=True, out_dir=out, progress=False)
    second = tag_paths([photos], geo_recognizer, write_gps=True, out_dir=out, progress=False)
    assert len(first) == len(second) == 7
    assert all(not Path(row.file).is_relative_to(out) for row in second)


def test_find_images_walks_recursively_skipping_hidden_and_non_images(photos):
    (photos / ".hidden").mkdir()
    shutil.copyfile(photos / "top.jpg", photos / ".hidden" / "x.jpg")
    shutil.copyfile(photos / "top.jpg", photos / "._top.jpg")  # macOS resource-fork litter
    (photos / "readme.md").write_text("hi")
    found = [item.photo.relative_to(photos).as_posix() for item in find_images([photos, photos / "top.jpg"])]
    assert found[0] == "top.jpg" and len(found) == 7 and len(set(found)) == 7
    assert all(name.startswith("trip/") for name in found[1:])


def test_write_report_rejects_unknown_extensions(tmp_path):
    with pytest.raises(ValueError, match=r"\.csv or \.json"):
        write_report([], tmp_path / "report.xlsx")


def test_photos_smaller_than_the_model_size_mix_with_others_in_a_batch(photos, recognizer):
    """A photo whose short side is below the model's resize size is not upscaled when decoded;
    batching it with normal photos must still work and give the single-photo answer."""
    small = photos / "small.jpg"
    Image.open(photos / "top.jpg").resize((60, 45)).save(small)
    assert min(recognizer.decode(small).size) < recognizer.resize
    rows = {Path(row.file).relative_to(photos).as_posix(): row for row in tag_paths([photos], recognizer, batch_size=32, progress=False)}
    assert len(rows) == 8 and all(row.status != "error" for row in rows.values())
    alone = recognizer.recognize(small.read_bytes())
    assert (rows["small.jpg"].landmark or rows["small.jpg"].guess) == alone.top[0].class_name
    assert rows["small.jpg"].probability == pytest.approx(alone.top[0].probability, abs=1e-5)
    big = recognizer.recognize((photos / "top.jpg").read_bytes())
    assert rows["top.jpg"].probability == pytest.approx(big.top[0].probability, abs=1e-5)


def test_positions_are_written_only_where_the_photo_is_placed(photos, tiny_model, tmp_path):
    """A landmark named below the placement point is a guess: in `guess` only, no name, no position, in the report or the photo."""
    strict = geo(Recognizer(tiny_model, threshold=0.0, placement=1.0))
    rows = tag_paths([photos], strict, write_gps=True, out_dir=tmp_path / "strict", progress=False)
    assert {row.status for row in rows} == {"guess"} and not any(row.written for row in rows)
    assert all(row.placed == "no" and row.latitude is None and not row.tags and row.guess in GEO_CLASSES for row in rows)
    assert all(row.landmark == row.name == "" for row in rows)  # filtering on the name never returns a guess
    assert all("not sure enough to place it" in row.message and "not placed: probability" in row.rule and "min-confidence 1.0000" in row.rule for row in rows)
    assert not (tmp_path / "strict").exists() or not any((tmp_path / "strict").rglob("*.jpg"))
    lenient = tag_paths([photos], geo(Recognizer(tiny_model, threshold=0.0, placement=0.0)), write_gps=True, out_dir=tmp_path / "lenient", progress=False)
    assert all(row.written and row.placed == "yes" and row.latitude is not None and row.rule.startswith("probability ") for row in lenient)
    assert all(row.status == "placed" and row.name and row.landmark == row.guess for row in lenient)
    assert {"rule", "placed", "guess"} <= set(COLUMNS)


def test_unknown_rows_keep_the_best_guess_out_of_the_landmark_columns(photos, tiny_model):
    rows = tag_paths([photos], Recognizer(tiny_model, threshold=1.0), progress=False)
    assert {row.status for row in rows} == {"unknown"}
    assert all(row.guess and not row.landmark and not row.name and row.latitude is None and row.placed == "no" for row in rows)


def test_the_cli_places_by_a_named_point_or_a_probability(photos, tiny_model, tmp_path, capsys):
    report = tmp_path / "r.csv"
    assert main([str(photos), "--model", str(tiny_model), "-o", str(report), "-q", "--placement", "strict"]) == 0
    assert "placement strict" in capsys.readouterr().err
    assert main([str(photos), "--model", str(tiny_model), "-o", str(report), "-q", "--min-confidence", "0.5"]) == 0
    assert "placement min-confidence: probability >= 0.5" in capsys.readouterr().err
    assert main([str(photos), "--model", str(tiny_model), "-q", "--placement", "loose"]) == 2
    assert "unknown placement point 'loose'" in capsys.readouterr().err
    assert main([str(photos), "--model", str(tiny_model), "-q", "--placement", "strict", "--min-confidence", "0.5"]) == 2


def test_a_landmark_without_a_position_is_named_in_guess_and_never_written(photos, tiny_model, tmp_path):
    """Sure answers for landmarks with no position (the tiny model's classes; a landmark taught without one, or at 0, 0)."""
    sure = Recognizer(tiny_model, threshold=0.0, placement=0.0)
    rows = tag_paths([photos], sure, write_gps=True, out_dir=tmp_path / "out", progress=False)
    assert {row.status for row in rows} == {"guess"} and not any(row.written for row in rows)
    assert all(row.guess and row.name == "" and row.latitude is None and "named, never placed" in row.message for row in rows)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.jpg"))
