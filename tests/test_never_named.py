"""The shipped model never writes an invented place: generated non-photos are never named, and the
40 landmarks it was trained on are the ones its metadata can place."""

from __future__ import annotations

import io

import pytest

from src.data.landmarks import lookup
from src.data.synthetic import DEGENERATE_KINDS, make_degenerate_images
from src.evaluation.openset import GENERATED_EVAL_SEED
from src.serving.recognizer.recognize import DEFAULT_MODEL, Recognizer

N_PER_KIND = 30  # 8 kinds x 30 = 240 generated images, none of them a photo of a landmark


@pytest.fixture(scope="module")
def shipped() -> Recognizer:
    return Recognizer(DEFAULT_MODEL)


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_generated_non_photos_are_never_named(shipped):
    # another seed than the one the model's background class trained on (the recipe's seed)
    images = make_degenerate_images(N_PER_KIND * len(DEGENERATE_KINDS), seed=GENERATED_EVAL_SEED)
    results = shipped.recognize_many([_png(image) for _, image in images])
    named = [(kind, r.top[0].class_name, round(r.confidence, 2)) for (kind, _), r in zip(images, results) if r.status == "landmark"]
    assert len(images) >= 200 and all(r.status in {"unknown", "landmark"} for r in results)
    assert named == []


def test_every_landmark_the_shipped_model_names_has_a_position(shipped):
    names = [shipped.class_names[i] for i in shipped.landmark_indices]
    assert len(names) == 40
    assert all(lookup(name).has_coordinates for name in names)
