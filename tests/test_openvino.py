"""The OpenVINO model beside an exported file: equal answers, fallback to TorchScript (serving without torch: test_readme_commands.py)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import NEEDS_SHARED, SHARED

from src.export_openvino import export_openvino, ir_paths
from src.serving.recognizer.recognize import Recognizer

REPO = Path(__file__).resolve().parents[1]


def _photos(data: Path, count: int) -> list[bytes]:
    files = sorted(p for p in (data / "test").rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    step = max(1, len(files) // count)
    return [p.read_bytes() for p in files[::step][:count]]


@pytest.fixture(scope="module")
def converted(tiny_model, tmp_path_factory) -> Path:
    """A copy of the tiny exported model with its OpenVINO model converted beside it."""
    path = tmp_path_factory.mktemp("ov") / "model.pt"
    shutil.copy(tiny_model, path)
    export_openvino(path)
    return path


def _same_answers(path: Path, photos: list[bytes]) -> float:
    """Asserts OpenVINO f32 and TorchScript agree (top-1 and probabilities to 1e-3); returns the largest difference."""
    ov = Recognizer(path, runtime="openvino", precision="f32", use_gallery=False)  # f32 equals TorchScript; bf16: test_precision
    ts = Recognizer(path, runtime="torchscript", use_gallery=False)
    assert (ov.runtime, ts.runtime) == ("openvino", "torchscript")
    images = [ov.decode(data) for data in photos]
    p_ov, p_ts = ov.probabilities(images), ts.probabilities(images)
    assert p_ov.shape == p_ts.shape == (len(photos), len(ov.class_names))
    assert (p_ov.argmax(1) == p_ts.argmax(1)).all()
    assert np.abs(p_ov - p_ts).max() < 1e-3
    assert ov.can_embed
    if ts.can_embed:  # (files exported before embeddings existed embed through OpenVINO only)
        assert np.abs(ov.embed(images[:4]) - ts.embed(images[:4])).max() < 1e-3
    return float(np.abs(p_ov - p_ts).max())


def test_openvino_answers_equal_torchscript(converted, tiny_data):
    _same_answers(converted, _photos(tiny_data, 18))
    sidecar = json.loads(ir_paths(converted)[2].read_text())
    assert sidecar["class_names"] == Recognizer(converted, runtime="torchscript", use_gallery=False).class_names


def test_training_exports_the_openvino_model_beside_the_file(tiny_model):
    assert all(p.exists() for p in ir_paths(tiny_model))
    assert Recognizer(tiny_model, use_gallery=False).runtime == "openvino"  # auto picks it


@pytest.mark.parametrize("damage", ["missing", "corrupt", "stale"])
def test_a_broken_openvino_model_falls_back_with_one_warning(converted, tmp_path, tiny_data, caplog, damage):
    path = tmp_path / "model.pt"
    for source, target in zip((converted, *ir_paths(converted)), (path, *ir_paths(path))):
        shutil.copy(source, target)
    xml = ir_paths(path)[0]
    if damage == "missing":
        xml.unlink()
    elif damage == "corrupt":
        xml.write_text(xml.read_text()[:500])
    else:  # converted from another version of the .pt
        sidecar = ir_paths(path)[2]
        sidecar.write_text(json.dumps(dict(json.loads(sidecar.read_text()), source_sha256="0" * 64)))
    with caplog.at_level(logging.WARNING, logger="src.serving.recognizer.runtime"):
        recognizer = Recognizer(path, runtime="openvino", use_gallery=False)
    warnings = [r for r in caplog.records if r.name == "src.serving.recognizer.runtime"]
    assert recognizer.runtime == "torchscript" and len(warnings) == 1
    assert "TorchScript" in warnings[0].getMessage() and "export-openvino" in warnings[0].getMessage()
    assert recognizer.recognize(_photos(tiny_data, 1)[0]).status in ("landmark", "unknown")


@pytest.mark.slow
@NEEDS_SHARED
def test_the_shipped_model_answers_the_same_through_openvino(tmp_path):
    shipped = REPO / "checkpoints" / "transfer_exported.pt"
    if not shipped.exists():
        pytest.skip("checkpoints/transfer_exported.pt is not present")
    path = tmp_path / shipped.name
    shutil.copy(shipped, path)
    export_openvino(path)
    _same_answers(path, _photos(SHARED / "indian_monuments", 50))
