"""The files that ship in checkpoints/ name no machine's paths, and the files that name the model by its
content hash (OpenVINO metadata, reference photos) name the model as it is."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
MODELS = sorted(CHECKPOINTS.glob("*_exported.pt"))
ABSOLUTE = re.compile(r"(^|[\s'\"(=])(/(tmp|home|root|work|var|Users|private)/|[A-Za-z]:\\\\)")


def _strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


@pytest.mark.skipif(not MODELS, reason="no exported model in checkpoints/ (a checkout without the shipped models)")
@pytest.mark.parametrize("model", MODELS, ids=lambda path: path.name)
def test_shipped_metadata_names_no_absolute_path(model):
    with zipfile.ZipFile(model) as archive:
        (entry,) = [name for name in archive.namelist() if name.endswith("/extra/metadata.json")]
        metadata = json.loads(archive.read(entry))
    assert not [text for text in _strings(metadata) if ABSOLUTE.search(text)]
    export_path = metadata.get("recipe", {}).get("export_path")
    assert export_path in (None, f"checkpoints/{model.name}")


@pytest.mark.skipif(not MODELS, reason="no exported model in checkpoints/ (a checkout without the shipped models)")
@pytest.mark.parametrize("model", MODELS, ids=lambda path: path.name)
def test_files_beside_a_model_name_its_current_content(model):
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    openvino = model.with_suffix(".openvino.json")
    if openvino.exists():
        assert json.loads(openvino.read_text())["source_sha256"] == digest
    references = model.with_name(model.stem + ".references.npz")
    if references.exists():
        with np.load(references) as data:
            assert str(data["model_id"]) == f"{model.name}:{digest[:16]}"
