"""The service's own documentation (OpenAPI, shown by Swagger at /docs): each error status has an example
of its own, in the words the service really answers with."""

from __future__ import annotations

from src.serving.web.service import _ERRORS
from src.serving.web.uploads import BODY_TIMEOUT_S, SUPPORTED_FORMATS


def _example(status: int) -> str:
    return _ERRORS[status]["content"]["application/json"]["example"]["detail"]


def test_every_error_status_has_its_own_example():
    examples = {status: _example(status) for status in (400, 408, 413, 415, 422)}
    assert len(set(examples.values())) == len(examples), examples


def test_the_examples_are_what_the_service_answers():
    assert _example(408) == f"the upload stalled: no data for {BODY_TIMEOUT_S:g} s"  # uploads.BodyLimit's answer
    assert _example(413).startswith("the upload is too large (")
    assert _example(415) == f"the upload is not an image: expected {SUPPORTED_FORMATS} (checked from its bytes)"
    assert _example(422) == "the uploaded file is empty (0 bytes)"
