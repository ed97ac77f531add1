"""The landmark gallery: the index, the combined decision, the store, the command line and the
Recognizer, on the tiny model with landmarks it was never trained on (generated classes 3 and 4)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from src.data.synthetic import CLASS_NAMES, make_synthetic_dataset
from src.evaluation.gallery_rule import ReferenceRule, combine_by_reference
from src.serving.gallery.archive import read_export
from src.serving.gallery.gallery import Gallery, GalleryError, edit
from src.serving.gallery.gallery_cli import main as gallery_main
from src.serving.gallery.gallery_index import MISSING, GalleryIndex, IndexConfig
from src.serving.recognizer.recognize import GalleryRule, Recognizer, combine


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def new_landmarks(tmp_path_factory) -> dict[str, list[Path]]:
    """Photos of a generated class the tiny model never saw: name -> train photos, plus test photos."""
    root = make_synthetic_dataset(tmp_path_factory.mktemp("new"), n_classes=4, n_train=5, n_test=3, with_bad_files=False, seed=7)
    photos = {}
    for name, split in [(CLASS_NAMES[3], "train"), (CLASS_NAMES[3], "test")]:
        photos[f"{name}/{split}"] = sorted((root / split / name).glob("*.jpg"))
    return photos


def test_exact_ivf_and_hnsw_agree_on_the_nearest_landmark():
    rng = np.random.default_rng(0)
    centres = _unit(rng.normal(size=(20, 32)))
    labels = np.repeat(np.arange(20), 30)
    vectors = _unit(centres[labels] + 0.05 * rng.normal(size=(600, 32)))
    queries = _unit(centres[[3, 11, 17]] + 0.05 * rng.normal(size=(3, 32)))
    exact = GalleryIndex(vectors, labels, 20)
    ivf = GalleryIndex(vectors, labels, 20, IndexConfig(exact_limit=100, ivf_lists_per_sqrt=0.5))
    hnsw = GalleryIndex(vectors, labels, 20, IndexConfig(exact_limit=100, approximate="hnsw"))
    assert (exact.kind, ivf.kind, hnsw.kind) == ("exact", "ivf", "hnsw")
    best = exact.landmark_similarity(queries)
    assert best.argmax(axis=1).tolist() == [3, 11, 17]
    for approximate in (ivf, hnsw):
        assert approximate.landmark_similarity(queries).argmax(axis=1).tolist() == [3, 11, 17]
    assert np.allclose(best.max(axis=1), (queries @ vectors.T).max(axis=1), atol=1e-6)  # the maximum over every photo
    sims, ids = exact.search(queries, 5)
    assert sims.shape == (3, 5) and (np.diff(sims, axis=1) <= 1e-7).all() and (exact.labels[ids[:, 0]] == [3, 11, 17]).all()


def test_a_landmark_without_photos_scores_missing():
    index = GalleryIndex(_unit(np.ones((2, 4))), np.array([0, 0]), n_landmarks=2)
    assert index.landmark_similarity(_unit(np.ones((1, 4))))[0, 1] == MISSING
    with pytest.raises(ValueError, match="labels"):
        GalleryIndex(_unit(np.ones((2, 4))), np.array([0, 5]), n_landmarks=2)


def test_combine_is_one_distribution_where_a_close_match_wins():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.98, 0.01, 0.01]])
    similarity = torch.tensor([[0.95, 0.1], [0.2, MISSING]])
    combined = combine(probs, similarity, GalleryRule(bias=0.75, temperature=0.03))
    assert combined.shape == (2, 5) and torch.allclose(combined.sum(dim=1), torch.ones(2))
    assert combined[0].argmax() == 3  # the taught landmark's photo is far closer than the bias
    assert combined[1].argmax() == 0 and combined[1, 3:].sum() < 1e-6  # a dissimilar photo leaves the model's answer alone


def _fake_embed(images):
    """Deterministic 'embedding' of a photo: its mean colour, normalised (enough to tell photos apart)."""
    return _unit(np.stack([np.asarray(image, dtype=np.float32).reshape(-1, 3).mean(axis=0) + 1 for image in images]))


def test_gallery_saves_atomically_and_reports_bad_photos(tmp_path, new_landmarks):
    folder = tmp_path / "gallery"
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    photos = new_landmarks[f"{CLASS_NAMES[3]}/train"]
    with edit(folder) as gallery:
        report = gallery.add("Test Tower", [*photos, bad], _fake_embed, "m1", latitude=1.5, longitude=-2.0, country="Nowhere", tags="#a #b")
    assert report.landmark is not None and len(report.landmark.photos) == len(photos)
    assert [source for source, _ in report.skipped] == [str(bad)]
    assert sorted(p.name for p in folder.iterdir()) == [".lock", "gallery.npz", "thumbs"]  # no temporary file left
    loaded = Gallery.load(folder)
    assert loaded.model_id == "m1" and loaded.names == ["Test Tower"] and loaded.landmarks["Test Tower"].tags == ("a", "b")
    assert np.allclose(loaded.embeddings["Test Tower"], _fake_embed([__import__("PIL.Image").Image.open(p).convert("RGB") for p in photos]), atol=0.05)
    with pytest.raises(GalleryError, match="--replace"):
        loaded.add("Test Tower", photos, _fake_embed, "m1", latitude=0, longitude=0)
    assert loaded.add("Nothing Here", [bad], _fake_embed, "m1", latitude=0, longitude=0).landmark is None
    assert "Nothing Here" not in loaded.landmarks
    with pytest.raises(GalleryError, match="latitude"):
        loaded.add("Off The Globe", photos, _fake_embed, "m1", latitude=91, longitude=0)
    with pytest.raises(GalleryError, match="embedded by model m1"):
        loaded.add("Other Model", photos, _fake_embed, "m2", latitude=0, longitude=0)


def test_a_broken_gallery_file_gets_a_clear_error(tmp_path):
    (tmp_path / "gallery.npz").write_bytes(b"garbage")
    with pytest.raises(GalleryError, match="cannot be read"):
        Gallery.load(tmp_path)


def test_recognizer_recognises_a_taught_landmark_at_once(tiny_model, tmp_path, new_landmarks):
    folder = tmp_path / "gallery"
    recognizer = Recognizer(tiny_model, gallery_dir=folder)
    n = len(recognizer.class_names)
    photos = new_landmarks[f"{CLASS_NAMES[3]}/train"]
    before = recognizer.recognize(photos[0].read_bytes())
    assert all(guess.class_name != "Test Tower" for guess in before.top)
    with edit(folder) as gallery:
        gallery.add("Test Tower", photos, recognizer.embed, recognizer.model_id, latitude=48.85, longitude=2.29, city="Paris")
    result = recognizer.recognize(photos[0].read_bytes())  # an enrolled photo: similarity 1
    assert result.status == "landmark" and result.landmark.class_name == "Test Tower"
    assert result.landmark.info.latitude == 48.85 and result.landmark.info.hashtags == ["#TestTower"]
    assert recognizer.probabilities([recognizer.decode(photos[0])]).shape == (1, n + 1)
    assert recognizer.landmark_indices[-1] == n and recognizer.gallery_names == ["Test Tower"]  # taught landmarks follow the classes
    with edit(folder) as gallery:
        gallery.remove("Test Tower")
    assert recognizer.recognize(photos[0].read_bytes()).top[0].class_name != "Test Tower"
    assert Recognizer(tiny_model, gallery_dir=folder, use_gallery=False).gallery_dir is None


def test_a_gallery_from_another_model_is_re_embedded(tiny_model, tmp_path, new_landmarks):
    folder = tmp_path / "gallery"
    with edit(folder) as gallery:
        gallery.add("Test Tower", new_landmarks[f"{CLASS_NAMES[3]}/train"], _fake_embed, "another-model", latitude=0, longitude=0)
    recognizer = Recognizer(tiny_model, gallery_dir=folder)
    assert Gallery.load(folder).model_id == recognizer.model_id and recognizer.gallery_names == ["Test Tower"]
    width = recognizer.embed([recognizer.decode(new_landmarks[f"{CLASS_NAMES[3]}/train"][0])]).shape[1]
    assert Gallery.load(folder).embeddings["Test Tower"].shape[1] == width


def test_a_model_without_embeddings_turns_the_gallery_off_with_one_warning(tiny_model, tmp_path, new_landmarks, caplog):
    folder = tmp_path / "gallery"
    recognizer = Recognizer(tiny_model, gallery_dir=folder)
    with edit(folder) as gallery:
        gallery.add("Test Tower", new_landmarks[f"{CLASS_NAMES[3]}/train"], recognizer.embed, recognizer.model_id, latitude=0, longitude=0)
    recognizer.can_embed = False  # as a file exported before probabilities_and_embedding existed
    recognizer._gallery_stamp = None
    with caplog.at_level(logging.WARNING):
        recognizer.refresh_gallery()
        recognizer._gallery_stamp = None
        recognizer.refresh_gallery()
    assert recognizer.gallery_names == [] and sum("exported before embeddings" in r.message for r in caplog.records) == 1
    with pytest.raises(GalleryError, match="re-export"):
        recognizer.embed([recognizer.decode(new_landmarks[f"{CLASS_NAMES[3]}/train"][0])])


def test_command_line_add_list_remove_export_import(tiny_model, tmp_path, new_landmarks, capsys):
    folder, photos = tmp_path / "gallery", new_landmarks[f"{CLASS_NAMES[3]}/train"]
    base = ["--gallery", str(folder), "--model", str(tiny_model)]
    assert gallery_main([*base, "add", "Test Tower", str(photos[0].parent), str(tmp_path / "missing.jpg"), "--lat", "1", "--lon", "2",
                         "--country", "Testland", "--tags", "#TT #Tower"]) == 0
    out = capsys.readouterr()
    assert f"from {len(photos)} photos" in out.out and "missing.jpg: no such file" in out.err
    assert gallery_main([*base, "add", "Test Tower", str(photos[0]), "--lat", "1", "--lon", "2"]) == 1
    assert "--replace" in capsys.readouterr().err
    assert gallery_main([*base, "add", "Test Tower", str(photos[0]), "--lat", "1", "--lon", "2", "--replace"]) == 0
    assert gallery_main([*base, "list"]) == 0 and "Test Tower: 1 photos" in capsys.readouterr().out
    archive = tmp_path / "out" / "mine.zip"
    assert gallery_main([*base, "export", str(archive)]) == 0 and archive.is_file()
    assert gallery_main([*base, "remove", "Test Tower"]) == 0 and Gallery.load(folder).names == []
    assert gallery_main([*base, "remove", "Test Tower"]) == 1 and "no landmark 'Test Tower'" in capsys.readouterr().err
    assert gallery_main([*base, "import", str(archive)]) == 0 and Gallery.load(folder).names == ["Test Tower"]
    assert gallery_main([*base, "import", str(archive)]) == 1 and "--replace" in capsys.readouterr().err
    assert read_export(archive, tmp_path / "unpacked").names == ["Test Tower"]
    assert gallery_main([*base, "add", "Empty", str(tmp_path / "missing.jpg"), "--lat", "1", "--lon", "2"]) == 1
    assert "nothing was added" in capsys.readouterr().err and "Empty" not in Gallery.load(folder).names


def test_command_line_add_warns_when_the_photos_look_like_a_known_landmark(tiny_model, tiny_data, tmp_path, capsys):
    """Photos of a trained landmark (Green Square Gate) taught under another name: added, with a warning on stderr."""
    folder, photos = tmp_path / "gallery", sorted((tiny_data / "test" / "01.Green_Square_Gate").glob("*.jpg"))[:5]
    assert gallery_main(["--gallery", str(folder), "--model", str(tiny_model), "add", "Sydney Opera House", *map(str, photos),
                         "--lat", "-33.86", "--lon", "151.21"]) == 0
    out = capsys.readouterr()
    assert "added 'Sydney Opera House'" in out.out
    assert "warning:" in out.err and "like Green Square Gate, which I already know" in out.err
    assert Gallery.load(folder).names == ["Sydney Opera House"]


def test_combine_by_reference_lets_a_taught_landmark_win_only_when_closer_than_every_reference():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    similarity = np.array([[0.95, 0.5], [0.80, 0.5], [0.6, 0.99]], dtype=np.float32)  # two taught landmarks
    nearest_reference = np.array([0.70, 0.79, 0.90], dtype=np.float32)
    combined = combine_by_reference(probs, similarity, nearest_reference, ReferenceRule(margin=0.03, temperature=0.03))
    assert combined.shape == (3, 4) and np.allclose(combined.sum(axis=1), 1)
    assert combined[0, 2] > 0.99 and combined[0, :2].sum() == 0  # 0.95 >= 0.70 + 0.03: the taught landmark
    assert np.allclose(combined[1], [0.9, 0.1, 0, 0])  # 0.80 < 0.79 + 0.03: the model decides, as without a gallery
    assert combined[2, 3] > 0.99
    assert np.allclose(combine_by_reference(probs, np.zeros((3, 0)), nearest_reference), probs)


def test_references_are_made_for_one_model_and_used_by_the_recognizer(tiny_model, tiny_data, tmp_path, new_landmarks, capsys, caplog):
    model = tmp_path / "model.pt"
    model.write_bytes(tiny_model.read_bytes())  # the references are written beside the model
    assert gallery_main(["--model", str(model), "references", "--data", str(tiny_data), "--per-class", "3"]) == 0
    assert "reference photos" in capsys.readouterr().out
    folder = tmp_path / "gallery"
    recognizer = Recognizer(model, gallery_dir=folder)
    assert recognizer.references is not None and recognizer.references.vectors.shape[0] == 3 * len(recognizer.class_names)
    photos = new_landmarks[f"{CLASS_NAMES[3]}/train"]
    with edit(folder) as gallery:
        gallery.add("Test Tower", photos, recognizer.embed, recognizer.model_id, latitude=48.85, longitude=2.29)
    assert recognizer.recognize(photos[0].read_bytes()).landmark.class_name == "Test Tower"  # its own photo: similarity 1
    trained = sorted((Path(tiny_data) / "train" / CLASS_NAMES[0]).glob("*.jpg"))[0]  # a reference itself: similarity 1
    alone = Recognizer(model, use_gallery=False).recognize(trained.read_bytes())
    assert recognizer.recognize(trained.read_bytes()).top[0].class_name == alone.top[0].class_name
    with open(model, "ab") as handle:
        handle.write(b"\0")  # another version of the file: its references no longer apply
    with caplog.at_level(logging.WARNING):
        assert Recognizer(model, gallery_dir=folder).references is None
    assert "made by" in caplog.text


def test_a_reference_placement_rule_scores_each_photo_by_its_landmarks_nearest_photo(tiny_model, tiny_data, tmp_path, new_landmarks):
    """probability*reference as served: the best landmark's probability times the photo's similarity to
    that landmark's nearest reference photo (trained) or enrolled photo (taught), mapped to [0, 1]."""
    from src.evaluation.placement import PlacementRule, placement_score, save_rule

    model = tmp_path / "model.pt"
    model.write_bytes(tiny_model.read_bytes())
    save_rule(PlacementRule(score="probability*reference", thresholds={"strict": 0.5}), model)
    with pytest.raises(ValueError, match="gallery references"):  # the rule needs reference photos beside the model
        Recognizer(model, use_gallery=False)
    assert Recognizer(model, use_gallery=False, placement=0.9).placement_score == "probability"  # a number is a probability
    assert gallery_main(["--model", str(model), "references", "--data", str(tiny_data), "--per-class", "3"]) == 0
    folder = tmp_path / "gallery"
    recognizer = Recognizer(model, gallery_dir=folder)
    photo = sorted((Path(tiny_data) / "test" / CLASS_NAMES[1]).glob("*.jpg"))[0]
    result = recognizer.recognize(photo.read_bytes())
    embedding = recognizer.embed([recognizer.decode(photo)])[0]
    best = result.top[0].class_name
    labels = np.asarray(recognizer.references.labels)
    nearest = float((recognizer.references.vectors[labels == best] @ embedding).max())
    expected = placement_score("probability*reference", result.top[0].probability, nearest)
    assert expected < result.top[0].probability  # not a reference photo itself: the similarity costs something
    if result.status == "landmark":
        assert f"probability*reference {expected:.4f} " in result.rule and result.placed == (expected >= 0.5)
    with pytest.raises(ValueError, match="needs the photo's similarity"):
        recognizer.decide(np.array([0.05, 0.9, 0.05, 0.0][: len(recognizer.class_names)]))
    taught = new_landmarks[f"{CLASS_NAMES[3]}/train"]
    with edit(folder) as gallery:
        gallery.add("Test Tower", taught, recognizer.embed, recognizer.model_id, latitude=48.85, longitude=2.29)
    own = recognizer.recognize(taught[0].read_bytes())  # an enrolled photo: its own nearest, from the gallery
    assert own.landmark.class_name == "Test Tower" and own.placed and own.position == pytest.approx((48.85, 2.29))
    enrolled = float(recognizer.gallery_index.landmark_similarity(recognizer.embed([recognizer.decode(taught[0])]))[0, 0])
    assert enrolled > 0.99 and f"probability*reference {placement_score('probability*reference', own.top[0].probability, enrolled):.4f} >= strict" in own.rule
    # a rule with probability thresholds for taught landmarks places them by the probability alone
    save_rule(PlacementRule(score="probability*reference", thresholds={"strict": 0.5}, taught={"strict": 0.25}), model)
    recognizer = Recognizer(model, gallery_dir=folder)
    own = recognizer.recognize(taught[0].read_bytes())
    assert own.placed and own.rule.endswith(f"placed: probability {own.top[0].probability:.4f} >= strict (taught) 0.2500")
    assert recognizer.recognize(photo.read_bytes()).rule == result.rule  # a trained landmark: the score, as before


def test_taught_check_counts_a_position_at_the_same_site_as_right():
    from scripts.taught_check import same_site, taught_rates
    from src.data.landmarks import LandmarkInfo
    from src.serving.recognizer.recognize import Guess, Recognition

    clerigos = LandmarkInfo(class_name="a", name="Clérigos Tower", latitude=41.1457, longitude=-8.6146)
    city_hall = LandmarkInfo(class_name="b", name="Porto City Hall", latitude=41.1496, longitude=-8.6106)  # 0.55 km away
    bridge = LandmarkInfo(class_name="c", name="Ponte da Arrábida", latitude=41.1474, longitude=-8.6403)  # 2.2 km away
    assert same_site(clerigos, clerigos) and same_site(city_hall, clerigos) and not same_site(bridge, clerigos)

    def answer(info: LandmarkInfo, placed: bool, status: str = "landmark") -> Recognition:
        return Recognition(status=status, message="", top=[Guess(info.name, 0.99, info)], placed=placed)

    results = [answer(clerigos, True), answer(city_hall, True), answer(bridge, True), answer(clerigos, False), answer(clerigos, False, "unknown")]
    rates = taught_rates(results, [clerigos] * 5)
    assert rates == {"photos": 5, "named_right": 0.4, "placed_right": 0.4, "placed_wrong": 0.2}


def test_taught_check_refuses_known_landmarks_and_ones_without_coordinates(tiny_model, tmp_path, new_landmarks, capsys):
    from scripts.taught_check import main as taught_check

    import shutil

    mixed = new_landmarks[f"{CLASS_NAMES[3]}/train"][0].parents[2]  # classes the tiny model has, and one it lacks
    with pytest.raises(SystemExit):
        taught_check(["--model", str(tiny_model), "--taught", str(mixed), "--draws", "1", "--runs", str(tmp_path)])
    assert "the model knows" in capsys.readouterr().err
    new = tmp_path / "new"
    for split in ("train", "test"):
        shutil.copytree(mixed / split / CLASS_NAMES[3], new / split / CLASS_NAMES[3])
    with pytest.raises(SystemExit):  # a taught landmark needs a position to be placed at all
        taught_check(["--model", str(tiny_model), "--taught", str(new), "--draws", "1", "--runs", str(tmp_path)])
    assert f"no coordinates for {CLASS_NAMES[3]}" in capsys.readouterr().err


def test_references_give_each_class_its_nearest_photo():
    from src.serving.gallery.references import References

    vectors = _unit(np.array([[1, 0, 0], [0, 1, 0], [0.8, 0.6, 0], [0, 0, 1]], dtype=np.float32))
    references = References(vectors, ["b", "a", "b", "no_landmark"])  # labels in any order
    photo = _unit(np.array([[1, 0.1, 0]], dtype=np.float32))
    nearest, per_class = references.nearest(photo, ["a", "b", "c"])  # "c" has no reference photo
    similarity = (photo @ vectors.T)[0]
    assert nearest[0] == pytest.approx(similarity.max())
    assert per_class[0].tolist() == pytest.approx([similarity[1], max(similarity[0], similarity[2]), -1.0])
