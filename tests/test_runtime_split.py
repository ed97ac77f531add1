"""The OpenVINO runtime's batch split (`OpenVINORuntime(hint="auto")`): big batches go to the THROUGHPUT compile,
shared out over its streams, small ones to the LATENCY compile; the answers are the same either way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

MODEL = Path(__file__).resolve().parents[1] / "checkpoints" / "transfer_exported.pt"


@pytest.fixture(scope="module")
def runtimes():
    pytest.importorskip("openvino")
    from src.serving.recognizer.runtime import OpenVINORuntime, RuntimeUnavailable

    try:
        return OpenVINORuntime(MODEL, "f32", hint="auto"), OpenVINORuntime(MODEL, "f32", hint="LATENCY")
    except RuntimeUnavailable as error:
        pytest.skip(f"the shipped OpenVINO model is not usable here: {error}")


def test_a_split_batch_answers_like_one_request(runtimes):
    from src.serving.recognizer.runtime import SPLIT_MIN_BATCH

    auto, latency = runtimes
    squares = np.random.default_rng(0).integers(0, 256, (SPLIT_MIN_BATCH + 3, 224, 224, 3), dtype=np.uint8)  # an odd size
    probs, embedding = auto.probabilities_and_embedding(squares)
    expected_probs, expected_embedding = latency.probabilities_and_embedding(squares)
    assert auto._throughput is not None  # the big batch went to the THROUGHPUT compile
    assert probs.shape == expected_probs.shape and embedding.shape == expected_embedding.shape
    np.testing.assert_allclose(probs, expected_probs, atol=1e-5)
    np.testing.assert_allclose(embedding, expected_embedding, atol=1e-4)
    one = auto.probabilities(squares[:1])  # a single photo: the LATENCY compile, as the app and service use it
    np.testing.assert_allclose(one, expected_probs[:1], atol=1e-5)


def test_an_unknown_hint_is_refused():
    from src.serving.recognizer.runtime import OpenVINORuntime

    with pytest.raises(ValueError, match="hint must be one of"):
        OpenVINORuntime(MODEL, "f32", hint="FAST")
