"""The data pipeline on a generated data set: loaders, split, cache, bad files, visualisation."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from src.data.folders import (
    decode_folder,
    default_cache_dir,
    scan_image_folder,
    stratified_split,
)
from src.data.images import BadImageError, load_rgb
from src.data.loaders import (
    DataConfig,
    build_datasets,
    get_data_loaders,
    visualize_one_batch,
)
from src.data.location import compute_mean_and_std, get_data_location


def test_loader_keys_batch_shape_and_size(tiny_data):
    loaders = get_data_loaders(batch_size=4, num_workers=0, data_dir=tiny_data)
    assert set(loaders) == {"train", "valid", "test"}
    images, labels = next(iter(loaders["train"]))
    assert images.shape[-1] == 224 and images.shape[-2] == 224
    assert len(images) == len(labels) == 4
    assert images.dtype == torch.float32


def test_valid_split_is_stratified_and_disjoint(tiny_data):
    datasets = build_datasets(DataConfig(data_dir=str(tiny_data)))
    train, valid = datasets["train"], datasets["valid"]
    assert set(train.indices).isdisjoint(valid.indices)
    assert set(train.targets) == set(valid.targets) == {0, 1, 2}
    assert datasets["test"].classes == train.classes  # class index comes from the training folders


def test_split_is_seeded():
    labels = [i % 4 for i in range(40)]
    assert stratified_split(labels, 0.25, seed=1) == stratified_split(labels, 0.25, seed=1)
    assert stratified_split(labels, 0.25, seed=1) != stratified_split(labels, 0.25, seed=2)
    with pytest.raises(ValueError):
        stratified_split(labels, 1.5)


def test_limit_restricts_every_split(tiny_data):
    loaders = get_data_loaders(batch_size=2, num_workers=0, limit=6, data_dir=tiny_data)
    assert all(len(loader.dataset) <= 6 for loader in loaders.values())
    assert len(set(loaders["train"].dataset.targets)) == 3


def test_bad_files_are_reported_and_skipped(tiny_data):
    scan = scan_image_folder(tiny_data / "train")
    reasons = {Path(path).name: reason for path, reason in scan.problems}
    assert "notes.txt" in reasons and "99.Empty_Folder" in reasons
    assert "99.Empty_Folder" not in scan.classes
    decoded = decode_folder(scan, use_cache=False)
    decode_problems = {Path(path).name: reason for path, reason in decoded.problems}
    assert "truncated" in decode_problems["truncated.jpg"]
    assert len(decoded.images) == len(scan.samples) - 1
    assert all(image.shape[0] == 3 and image.dtype == torch.uint8 for image in decoded.images)


def test_decode_cache_is_reused_and_keyed_by_content(tiny_data, tmp_path):
    copy = shutil.copytree(tiny_data / "train", tmp_path / "train")
    first = decode_folder(scan_image_folder(copy))
    cached = list(default_cache_dir().glob("decoded-*.pt"))
    assert cached
    again = decode_folder(scan_image_folder(copy))
    assert len(again.images) == len(first.images) and torch.equal(again.images[0], first.images[0])
    # a changed data set must not reuse the stale cache
    Image.new("RGB", (300, 200), "white").save(copy / "01.Green_Square_Gate" / "new.jpg")
    changed = decode_folder(scan_image_folder(copy))
    assert len(changed.images) == len(first.images) + 1


def test_mean_and_std_use_training_split_and_are_cached(tiny_data, tmp_path):
    data = shutil.copytree(tiny_data, tmp_path / "data")
    mean, std = compute_mean_and_std(data)
    assert mean.shape == std.shape == (3,)
    assert torch.all((mean > 0) & (mean < 1)) and torch.all(std > 0)
    # the test split is never used: changing it leaves the statistics unchanged
    for path in (data / "test").rglob("*.jpg"):
        Image.new("RGB", (64, 64), "white").save(path)
    mean2, _ = compute_mean_and_std(data)
    assert torch.allclose(mean, mean2)
    # a different training set gets different statistics (the cache is keyed by identity)
    for path in list((data / "train" / "00.Red_Circle_Tower").glob("0*.jpg")):
        Image.new("RGB", (64, 64), "white").save(path)
    mean3, _ = compute_mean_and_std(data)
    assert not torch.allclose(mean, mean3)


def test_visualize_one_batch_headless(tiny_data):
    loaders = get_data_loaders(batch_size=4, num_workers=0, data_dir=tiny_data)
    figure = visualize_one_batch(loaders, max_n=3)
    titles = [axis.get_title() for axis in figure.axes if axis.get_title()]
    assert len(titles) == 3
    assert all(title in {"Red Circle Tower", "Green Square Gate", "Blue Triangle Temple"} for title in titles)
    assert matplotlib.get_backend().lower() in {"agg", "module://matplotlib_inline.backend_inline"}


def test_data_location_order(tiny_data, monkeypatch, tmp_path):
    assert get_data_location(tiny_data) == tiny_data
    monkeypatch.setenv("LANDMARK_DATA", str(tiny_data))
    assert get_data_location() == tiny_data
    with pytest.raises(FileNotFoundError, match="train/ and test/"):
        get_data_location(tmp_path)


def _jpeg_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def test_load_rgb_converts_modes_and_applies_exif_orientation():
    wide = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW" : the upright photo is 20 x 40
    assert load_rgb(_jpeg_bytes(wide, exif=exif)).size == (20, 40)
    for mode in ("L", "RGBA", "CMYK", "P", "I;16"):
        image = Image.new(mode, (10, 10))
        buffer = io.BytesIO()
        image.save(buffer, "TIFF" if mode in ("CMYK", "I;16") else "PNG")
        assert load_rgb(buffer.getvalue()).mode == "RGB"


def test_load_rgb_draft_mode_shrinks_large_jpegs():
    big = Image.fromarray(np.random.default_rng(0).integers(0, 255, (1600, 2400, 3), dtype=np.uint8))
    image = load_rgb(_jpeg_bytes(big), short_side=256)
    assert min(image.size) == 256 and image.size[0] > image.size[1]


@pytest.mark.parametrize(
    "data, reason",
    [(b"", "empty"), (b"hello, not an image", "not a readable image"), (_jpeg_bytes(Image.new("RGB", (64, 64)))[:200], "truncated")],
)
def test_load_rgb_rejects_bad_input_with_a_reason(data, reason):
    with pytest.raises(BadImageError, match=reason):
        load_rgb(data)


def test_load_rgb_refuses_decompression_bombs():
    with pytest.raises(BadImageError, match="too large"):
        load_rgb(_jpeg_bytes(Image.new("RGB", (4000, 4000))), max_pixels=1_000_000)


def test_several_data_roots_combine_their_classes_in_root_order(tmp_path):
    from src.data.folders import scan_split
    from src.data.location import data_roots
    from src.data.synthetic import make_synthetic_dataset

    first = make_synthetic_dataset(tmp_path / "first", n_classes=2, n_train=3, n_test=1, with_bad_files=False)
    second = tmp_path / "second"
    for split in ("train", "test"):
        for name in ("00.Alhambra", "01.Petra"):
            source = next((first / split / "00.Red_Circle_Tower").glob("*.jpg"))
            (second / split / name).mkdir(parents=True)
            (second / split / name / "a.jpg").write_bytes(source.read_bytes())
    roots = data_roots([str(first), str(second)])
    train = scan_split(roots, "train")
    assert train.classes == ["00.Red_Circle_Tower", "01.Green_Square_Gate", "00.Alhambra", "01.Petra"]
    assert sorted(set(train.targets)) == [0, 1, 2, 3] and len(train.samples) == 2 * 3 + 2
    test = scan_split(roots, "test", classes=train.classes)
    assert sorted(label for _, label in test.samples) == [0, 1, 2, 3]


def test_two_roots_with_the_same_landmark_name_both_folders(tmp_path):
    from src.data.folders import scan_split
    from src.data.synthetic import make_synthetic_dataset

    a = make_synthetic_dataset(tmp_path / "a", n_classes=2, n_train=2, n_test=1, with_bad_files=False)
    b = make_synthetic_dataset(tmp_path / "b", n_classes=1, n_train=2, n_test=1, with_bad_files=False)
    (b / "train" / "00.Red_Circle_Tower").rename(b / "train" / "07.red circle tower")  # same landmark, another number
    with pytest.raises(ValueError, match="same landmark") as error:
        scan_split([a, b], "train")
    assert str(a / "train") in str(error.value) and str(b / "train") in str(error.value)


def test_a_missing_or_empty_data_root_is_a_clear_error(tmp_path):
    from src.data.folders import scan_split
    from src.data.location import data_roots
    from src.data.synthetic import make_synthetic_dataset

    good = make_synthetic_dataset(tmp_path / "good", n_classes=2, n_train=2, n_test=1, with_bad_files=False)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        data_roots([str(good), str(tmp_path / "nowhere")])
    (tmp_path / "empty" / "train").mkdir(parents=True)
    (tmp_path / "empty" / "test").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        scan_split([good, tmp_path / "empty"], "train")
    with pytest.raises(ValueError, match="given twice"):
        data_roots([str(good), str(good)])
