"""Precision by capability: one decision (`src.machine.bf16_is_fast`) for training and inference,
`--precision auto` by it, and the guard that bf16 answers like f32 on the shipped model."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import NEEDS_SHARED, SHARED

from src import machine
from src.serving.recognizer import runtime
from src.serving.recognizer.precision_check import MIN_TOP1_AGREEMENT, agreement, compare_precisions
from src.serving.recognizer.recognize import DEFAULT_MODEL
from src.serving.recognizer.runtime import OpenVINORuntime, ir_files, resolve_precision


@pytest.fixture
def cpu(monkeypatch):
    """Pretend the CPU has the given flags (None: no /proc/cpuinfo) for `bf16_is_fast`."""

    def pretend(flags, openvino_says: bool = False):
        monkeypatch.setattr(machine, "cpu_flags", lambda: None if flags is None else frozenset(flags))
        monkeypatch.setattr(machine, "_openvino_reports_bf16", lambda: openvino_says)
        machine.bf16_is_fast.cache_clear()

    yield pretend
    machine.bf16_is_fast.cache_clear()


@pytest.mark.parametrize("flags, native", [({"avx512f", "avx512_bf16"}, True), ({"amx_bf16", "amx_tile"}, True),
                                           ({"avx512f", "avx512bw", "avx512vl"}, False), ({"avx2"}, False)])
def test_native_bf16_comes_from_the_cpu_flags(cpu, flags, native):
    cpu(flags, openvino_says=not native)  # the flags win where they can be read
    assert machine.bf16_is_fast() is native


def test_without_cpu_flags_openvino_decides(cpu):
    cpu(None, openvino_says=True)
    assert machine.bf16_is_fast() is True
    cpu(None, openvino_says=False)
    assert machine.bf16_is_fast() is False


def test_auto_precision_follows_the_training_decision(monkeypatch):
    monkeypatch.delenv("LANDMARK_PRECISION", raising=False)
    for native, expected in ((True, "bf16"), (False, "f32")):
        monkeypatch.setattr(runtime, "bf16_is_fast", lambda native=native: native)
        assert resolve_precision() == resolve_precision("auto") == expected
        assert resolve_precision("f32") == "f32" and resolve_precision("bf16") == "bf16"  # forced either way
    monkeypatch.setenv("LANDMARK_PRECISION", "f32")
    assert resolve_precision() == "f32"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp8")


def test_the_openvino_runtime_runs_the_resolved_precision(tiny_model):
    # training converts the OpenVINO model beside the exported file
    assert OpenVINORuntime(tiny_model).precision == ("bf16" if machine.bf16_is_fast() else "f32")
    assert OpenVINORuntime(tiny_model, "f32").precision == "f32"


def test_agreement_counts_renamed_photos_and_threshold_crossings():
    f32 = np.array([[0.96, 0.03, 0.01], [0.50, 0.45, 0.05], [0.94, 0.05, 0.01], [0.10, 0.10, 0.80]])
    bf16 = np.array([[0.94, 0.05, 0.01], [0.45, 0.50, 0.05], [0.955, 0.04, 0.005], [0.10, 0.10, 0.80]])
    result = agreement(f32, bf16, background=[2], thresholds=[0.95], truth=[0, 0, 1, -1])
    assert result.photos == 4 and result.top1_agreement == 0.75 and not result.passes
    assert result.max_shift == pytest.approx(0.05)
    [crossing] = result.crossings
    assert (crossing.threshold, crossing.rise, crossing.fall, crossing.wrong) == (0.95, 1, 1, 1)  # photo 2 is named 0, labelled 1
    assert agreement(f32, f32).passes and agreement(f32, f32).max_shift == 0.0
    with pytest.raises(ValueError):
        agreement(f32, bf16[:2])


@NEEDS_SHARED
def test_bf16_answers_like_f32_on_the_shipped_model():
    """The guard behind `auto`: on every fourth test photo of both shipped roots, top-1 agrees on at least
    MIN_TOP1_AGREEMENT of them, no photo crossing a probability threshold is named wrongly, and the
    placement rule places at most 2 % of them at one precision only."""
    if not all(p.exists() for p in ir_files(DEFAULT_MODEL)):
        pytest.skip("the shipped OpenVINO model is not in checkpoints/")
    photos = sorted(p for root in ("indian_monuments", "world_landmarks") for p in (SHARED / root / "test").glob("*/*.jpg"))[::4]
    result, _ = compare_precisions(DEFAULT_MODEL, photos, labels=[p.parent.name for p in photos])
    assert result.photos == len(photos) > 200
    assert result.top1_agreement >= MIN_TOP1_AGREEMENT, result
    assert all(crossing.wrong == 0 for crossing in result.crossings), result
    flips = result.placement.f32_only + result.placement.bf16_only  # a position written at one precision only
    assert result.placement.point == "strict" and flips <= 0.02 * result.photos, result

