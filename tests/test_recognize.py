"""Photo bytes -> Recognition: top-5 order, metadata join, threshold, and every kind of bad input."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from src.serving.recognizer.recognize import Recognizer


@pytest.fixture(scope="module")
def recognizer(tiny_model) -> Recognizer:
    return Recognizer(tiny_model)


def _photo_bytes(tiny_data, fmt: str = "JPEG") -> bytes:
    image = Image.open(tiny_data / "test" / "01.Green_Square_Gate" / "000.jpg")
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_recognize_real_photo_gives_sorted_top_k(recognizer, tiny_data, fmt):
    result = recognizer.recognize(_photo_bytes(tiny_data, fmt), top_k=5)
    assert result.status in {"landmark", "unknown"}
    probabilities = [guess.probability for guess in result.top]
    assert probabilities == sorted(probabilities, reverse=True)
    assert len(result.top) == 3  # the tiny model knows 3 classes: top-5 is capped
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
    assert result.top[0].class_name == "01.Green_Square_Gate"
    assert result.top[0].info.name == "Green Square Gate"  # unknown to the metadata file: name only


def test_threshold_turns_low_confidence_into_unknown(recognizer):
    probs = torch.tensor([0.4, 0.35, 0.25])
    assert recognizer.decide(probs).status == "unknown"
    assert "does not look like" in recognizer.decide(probs).message
    confident = recognizer.decide(torch.tensor([0.05, 0.9, 0.05]))
    assert confident.status == "landmark" and confident.landmark.class_name == recognizer.class_names[1]


def test_background_class_wins_means_unknown(tiny_model):
    recognizer = Recognizer(tiny_model, threshold=0.1)
    recognizer.background = [2]
    recognizer.landmark_indices = [0, 1]
    result = recognizer.decide(torch.tensor([0.2, 0.1, 0.7]))
    assert result.status == "unknown" and [g.class_name for g in result.top] == recognizer.class_names[:2]


def test_metadata_is_joined_for_known_landmarks(recognizer):
    recognizer_names = recognizer.class_names
    try:
        recognizer.class_names = ["22.Taj_Mahal", "16.Eiffel_Tower", "99.Nowhere"]
        result = recognizer.decide(torch.tensor([0.9, 0.05, 0.05]))
        assert result.landmark.info.country == "India"
        assert "#TajMahal" in result.landmark.info.hashtags
        assert result.to_dict()["landmark"]["latitude"] == pytest.approx(27.175, abs=0.05)
    finally:
        recognizer.class_names = recognizer_names


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"%PDF-1.4 definitely not a photo", "not a readable image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 100, "not a readable image|corrupt"),
    ],
)
def test_bad_uploads_give_a_clear_error(recognizer, data, reason):
    result = recognizer.recognize(data)
    assert result.status == "error"
    assert result.top == []
    assert pytest.importorskip("re").search(reason, result.message)


def test_truncated_and_oversized_uploads(recognizer, tiny_data):
    good = _photo_bytes(tiny_data)
    assert recognizer.recognize(good[: len(good) // 2]).status == "error"
    too_big = recognizer.recognize(good, max_bytes=100)
    assert too_big.status == "error" and "too large" in too_big.message


def test_huge_dimensions_are_refused(recognizer):
    buffer = io.BytesIO()
    Image.new("L", (12000, 8000)).save(buffer, "PNG")  # 96 Mpx, tiny file: a decompression bomb
    result = recognizer.recognize(buffer.getvalue())
    assert result.status == "error" and "too large" in result.message


def test_recognize_many_keeps_order_and_isolates_errors(recognizer, tiny_data):
    good = _photo_bytes(tiny_data)
    results = recognizer.recognize_many([good, b"junk", good])
    assert [r.status == "error" for r in results] == [False, True, False]
    assert results[0].top[0].probability == pytest.approx(results[2].top[0].probability)


def test_missing_model_file_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="LANDMARK_MODEL"):
        Recognizer(tmp_path / "nope.pt")


def test_every_answer_says_which_rule_decided(recognizer):
    unsure = recognizer.decide(torch.tensor([0.4, 0.35, 0.25]))
    assert unsure.rule == f"probability 0.40 < threshold {recognizer.threshold:.2f}" and unsure.confidence == pytest.approx(0.4)
    sure = recognizer.decide(torch.tensor([0.97, 0.02, 0.01]))
    point, minimum = recognizer.placement_point, recognizer.placement_threshold
    assert sure.status == "landmark" and sure.rule.startswith(f"probability 0.97 >= threshold {recognizer.threshold:.2f}; ")
    # the tiny model's classes have no coordinates: sure, but named, never placed
    assert sure.rule.endswith(f"not placed: probability 0.9700 >= {point} {minimum:.4f}, but it has no position")
    assert not sure.placed and sure.verdict == "guess" and "named, never placed" in sure.message
    assert sure.to_dict()["rule"] == sure.rule


def test_a_named_photo_gets_a_position_only_where_it_is_placed(tiny_model):
    from src.serving.recognizer.recognize import Recognizer

    recognizer = Recognizer(tiny_model, threshold=0.5, placement=0.99)
    recognizer.class_names = ["22.Taj_Mahal", "16.Eiffel_Tower", "28.Sydney_Harbour_Bridge"]  # real coordinates
    guess = recognizer.decide(torch.tensor([0.97, 0.02, 0.01]))
    assert guess.status == "landmark" and not guess.placed and guess.position is None and guess.verdict == "guess"
    assert guess.message.startswith("Looks like Taj Mahal (97%), but not sure enough to place it")
    body = guess.to_dict()
    assert body["status"] == "guess" and body["placed"] is False and body["position"] is None and body["landmark"] is None
    assert body["guess"]["class_name"] == "22.Taj_Mahal"
    assert all("latitude" not in entry and "map_url" not in entry for entry in [body["guess"], *body["top"]])
    placed = recognizer.decide(torch.tensor([0.995, 0.004, 0.001]))
    assert placed.placed and placed.position == pytest.approx((27.1751, 78.0421), abs=0.01) and placed.verdict == "placed"
    body = placed.to_dict()
    assert body["status"] == "placed" and body["position"] == {"latitude": placed.position[0], "longitude": placed.position[1]}
    assert body["landmark"]["latitude"] == placed.position[0] and body["landmark"]["map_url"]
    # coordinates for no candidate: `top` and `guess` never carry them, placed or not
    assert all(not {"latitude", "longitude", "map_url"} & set(entry) for entry in [body["guess"], *body["top"]])
    with pytest.raises(ValueError, match="between 0 and 1"):
        Recognizer(tiny_model, placement=1.5)


@pytest.mark.parametrize("size", [(1, 1), (31, 400), (400, 8)])
def test_images_under_32_pixels_a_side_are_never_named(recognizer, size):
    buffer = io.BytesIO()
    Image.new("RGB", size, (40, 120, 200)).save(buffer, "PNG")
    result = recognizer.recognize(buffer.getvalue())
    assert result.status == "unknown" and "too small" in result.message and result.rule == "image under 32 px a side"
    # the same probabilities on a big enough image would be judged by the threshold alone
    assert recognizer.decide(torch.tensor([0.97, 0.02, 0.01]), size=size).status == "unknown"
    assert recognizer.decide(torch.tensor([0.97, 0.02, 0.01]), size=(32, 32)).status == "landmark"


def test_decode_refuses_images_over_the_pixel_budget(recognizer, tiny_data):
    from src.data.images import BadImageError

    with pytest.raises(BadImageError, match="too large"):
        recognizer.decode(_photo_bytes(tiny_data), max_pixels=100)


def test_verdicts_are_the_doors_vocabulary(recognizer):
    from src.serving.recognizer.recognition import VERDICTS, Recognition

    assert Recognition(status="error", message="x").verdict == "error"
    unknown = recognizer.decide(torch.tensor([0.4, 0.35, 0.25]))
    assert unknown.verdict == "unknown" and unknown.to_dict()["status"] == "unknown" and unknown.to_dict()["landmark"] is None
    assert unknown.to_dict()["guess"]["class_name"] == unknown.top[0].class_name  # the best guess is always given
    assert {unknown.verdict, recognizer.decide(torch.tensor([0.97, 0.02, 0.01])).verdict} <= set(VERDICTS)


def test_an_object_gets_no_best_guess_at_zero_percent(tiny_model):
    recognizer = Recognizer(tiny_model, threshold=0.5)
    recognizer.background = [2]  # the third class stands for "no landmark"
    recognizer.landmark_indices = [0, 1]
    answer = recognizer.decide(torch.tensor([0.001, 0.002, 0.997]))
    assert answer.status == "unknown" and "best guess" not in answer.message and "0%" not in answer.message
    close = recognizer.decide(torch.tensor([0.35, 0.05, 0.6]))
    assert "best guess" in close.message and "35%" in close.message


@pytest.mark.parametrize("latitude, longitude", [(0.0, 0.0), (None, None)])
def test_a_taught_landmark_without_a_position_is_named_never_placed(tiny_model, tiny_data, tmp_path, latitude, longitude):
    from src.serving.gallery.gallery import edit

    recognizer = Recognizer(tiny_model, gallery_dir=tmp_path / "gallery", placement=0.0)
    photos = sorted((tiny_data / "train" / "01.Green_Square_Gate").iterdir())[:3]
    with edit(recognizer.gallery_dir) as gallery:  # 0, 0: what the app's form gave before; None: no position
        gallery.add("Big Ben", photos, recognizer.embed, recognizer.model_id, latitude=latitude, longitude=longitude,
                    trained=recognizer.class_names)
    answers = [r for r in recognizer.recognize_many(photos) if r.status == "landmark" and r.top[0].class_name == "Big Ben"]
    assert answers, "the taught photos are named as the taught landmark"
    for answer in answers:
        assert not answer.placed and answer.position is None and answer.verdict == "guess"
        assert "named, never placed" in answer.message and answer.rule.endswith("but it has no position")
        body = answer.to_dict()
        assert body["position"] is None and body["landmark"] is None and body["guess"]["name"] == "Big Ben"


def test_lookalike_pairs_and_the_margin_a_trained_landmark_must_win_by():
    import numpy as np

    from src.serving.recognizer.taught_lookalikes import LookalikeRule, blocking_lookalike, lookalike_pairs

    # taught 0's enrolled photos: one closest to class 1, one to class 0; taught 1's to class 2 (a "no landmark" class)
    per_class = [np.array([[0.2, 0.8, 0.1], [0.7, 0.1, 0.3]]), np.array([[0.1, 0.2, 0.9]])]
    pairs = lookalike_pairs(per_class, candidates=[0, 1])
    assert pairs == {0: [0], 1: [0, 1]}  # among the classes that can be placed only
    three_of_four = [np.array([[0.9, 0.1, 0.0]] * 3 + [[0.1, 0.9, 0.0]])]
    assert lookalike_pairs(three_of_four, [0, 1, 2], share=0.5) == {0: [0]}  # 1 photo of 4 is not half
    assert lookalike_pairs(three_of_four, [0, 1, 2], share=0.0) == {0: [0], 1: [0]}
    rule = LookalikeRule(margin=0.1)
    # resemblance: trained classes 0..2, then taught 0..1
    close = np.array([0.80, 0.30, 0.1, 0.75, 0.2])
    assert blocking_lookalike(close, 0, 3, pairs, rule) == (0, pytest.approx(0.75))  # 0.80 does not beat 0.75 by 0.1
    clear = np.array([0.90, 0.30, 0.1, 0.75, 0.2])
    assert blocking_lookalike(clear, 0, 3, pairs, rule) is None  # 0.90 beats it clearly
    assert blocking_lookalike(close, 2, 3, pairs, rule) is None  # no taught look-alike of class 2
    assert blocking_lookalike(close, 0, 3, pairs, LookalikeRule(margin=None)) is None  # the rule off


def test_a_photo_a_taught_lookalike_explains_as_well_is_not_placed_as_the_trained_one(tiny_model):
    import numpy as np

    from src.serving.recognizer.taught_lookalikes import LookalikeRule

    recognizer = Recognizer(tiny_model, threshold=0.5, placement=0.5, lookalike_rule=LookalikeRule(margin=0.1))
    recognizer.class_names = ["22.Taj_Mahal", "16.Eiffel_Tower", "28.Sydney_Harbour_Bridge"]  # real coordinates
    probs = torch.tensor([0.97, 0.02, 0.01])
    resemblance = np.array([0.80, 0.3, 0.2])  # no taught landmark: placed as before
    assert recognizer.decide(probs, resemblance=resemblance).placed

    class Taught:  # the gallery's names, as the recognizer reads them
        names = ["Sydney Opera House"]

    recognizer.gallery, recognizer.gallery_index, recognizer.lookalikes = Taught(), object(), {0: [0]}
    blocked = recognizer.decide(probs, resemblance=np.append(resemblance, 0.76))
    assert not blocked.placed and blocked.verdict == "guess" and blocked.position is None
    assert "taught look-alike Sydney Opera House (similarity 0.7600) is within 0.1" in blocked.rule
    assert "Sydney Opera House" in blocked.message and "not sure enough to place it" in blocked.message
    assert recognizer.decide(probs, resemblance=np.append(resemblance, 0.6)).placed  # clearly closer to its own references
