"""Does bfloat16 answer like float32? The guard behind `--precision auto` choosing bf16 on CPUs that
compute it natively (`src.serving.recognizer.runtime.resolve_precision`).

The same photos go through the OpenVINO model at both precisions; what matters to a user is whether
the named landmark changes (top-1 agreement, at least `MIN_TOP1_AGREEMENT`), whether a photo's
probability crosses a threshold that decides something (naming, writing a position), counted on each
side, and how many photos the model's placement rule places at one precision only. On a
CPU without native bfloat16 OpenVINO runs f32 for a bf16 hint, so the two agree exactly there.

    python -m src.serving.recognizer.precision_check ../shared/indian_monuments/test ../shared/world_landmarks/test
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from src.evaluation.openset_rule import best_landmark, landmark_confidence

MIN_TOP1_AGREEMENT = 0.995  # bf16 may rename at most 1 photo in 200
CHECK_THRESHOLDS = (0.95, 0.999)  # the shipped model's minimum confidence for writing, and a stricter one


@dataclass(frozen=True)
class Crossing:
    """Photos whose best-landmark probability is on different sides of `threshold` at the two precisions."""

    threshold: float
    rise: int  # under it in f32, at or over it in bf16
    fall: int  # at or over it in f32, under it in bf16
    wrong: int = 0  # of those, photos whose best landmark is not their labelled one (0 without labels)


@dataclass(frozen=True)
class PlacementFlips:
    """Photos given a position at one precision and not at the other, by the model's placement rule."""

    point: str
    score: str
    threshold: float
    f32_only: int
    bf16_only: int


@dataclass(frozen=True)
class PrecisionAgreement:
    photos: int
    top1_agreement: float  # share of photos with the same most probable class
    max_shift: float  # largest |p_bf16 - p_f32| over every photo and class
    mean_top1_shift: float  # mean |p_bf16 - p_f32| of each photo's f32 top-1 class
    crossings: list[Crossing] = field(default_factory=list)
    placement: PlacementFlips | None = None

    @property
    def passes(self) -> bool:
        return self.top1_agreement >= MIN_TOP1_AGREEMENT


def agreement(f32: np.ndarray, bf16: np.ndarray, background: Sequence[int] = (),
              thresholds: Sequence[float] = CHECK_THRESHOLDS, truth: Sequence[int] | None = None) -> PrecisionAgreement:
    """Compare two [photos, classes] probability arrays of the same photos; `truth`: each photo's class
    index (-1: not one of the model's), to say whether the photos that cross a threshold are named right."""
    f32, bf16 = np.asarray(f32, dtype=np.float64), np.asarray(bf16, dtype=np.float64)
    if f32.shape != bf16.shape or f32.ndim != 2 or not len(f32):
        raise ValueError(f"two [photos, classes] arrays of the same shape expected, got {f32.shape} and {bf16.shape}")
    top = f32.argmax(axis=1)
    rows = np.arange(len(f32))
    best_f32, _ = landmark_confidence(f32, background)
    best_bf16, _ = landmark_confidence(bf16, background)
    wrong = np.zeros(len(f32), dtype=bool) if truth is None else best_landmark(f32, background) != np.asarray(truth)
    crossings = []
    for t in thresholds:
        rise, fall = (best_f32 < t) & (best_bf16 >= t), (best_f32 >= t) & (best_bf16 < t)
        crossings.append(Crossing(float(t), int(rise.sum()), int(fall.sum()), int((wrong & (rise | fall)).sum())))
    return PrecisionAgreement(
        photos=len(f32),
        top1_agreement=float((top == bf16.argmax(axis=1)).mean()),
        max_shift=float(np.abs(f32 - bf16).max()),
        mean_top1_shift=float(np.abs(f32[rows, top] - bf16[rows, top]).mean()),
        crossings=crossings,
    )


def compare_precisions(model_path: str | Path, photos: Sequence[str | Path], thresholds: Sequence[float] = CHECK_THRESHOLDS,
                       batch_size: int = 32, labels: Sequence[str] | None = None) -> tuple[PrecisionAgreement, dict[str, float]]:
    """The OpenVINO model beside `model_path` at f32 and bf16 on the same decoded `photos` (`labels`:
    their class names, if known); also the seconds each precision took for the model alone."""
    from src.serving.recognizer.recognize import Recognizer

    recognizers = {precision: Recognizer(model_path, runtime="openvino", precision=precision, use_gallery=False)
                   for precision in ("f32", "bf16")}
    if any(r.runtime != "openvino" for r in recognizers.values()):
        raise RuntimeError(f"no usable OpenVINO model beside {model_path}: convert it with `python -m src export-openvino {model_path}`")
    images = [recognizers["f32"].decode(Path(photo)) for photo in photos]
    probabilities, seconds = {}, {}
    for precision, recognizer in recognizers.items():
        recognizer.probabilities(images[:batch_size], batch_size)  # compile and warm up outside the timing
        start = time.perf_counter()
        probabilities[precision] = recognizer.probabilities(images, batch_size)
        seconds[precision] = time.perf_counter() - start
    names = recognizers["f32"].class_names
    truth = None if labels is None else [names.index(label) if label in names else -1 for label in labels]
    result = agreement(probabilities["f32"], probabilities["bf16"], recognizers["f32"].background, thresholds, truth)
    placed = {precision: np.array([r.placed for r in recognizer.recognize_images(images, batch_size=batch_size)])
              for precision, recognizer in recognizers.items()}
    f32 = recognizers["f32"]
    flips = PlacementFlips(f32.placement_point, f32.placement_score, f32.placement_threshold,
                           int((placed["f32"] & ~placed["bf16"]).sum()), int((placed["bf16"] & ~placed["f32"]).sum()))
    return replace(result, placement=flips), seconds


def main(argv: Sequence[str] | None = None) -> int:
    from src.data.images import is_image_file
    from src.machine import bf16_is_fast, cpu_model, usable_cores
    from src.runs import portable_path, write_json_atomically
    from src.serving.recognizer.recognize import DEFAULT_MODEL

    parser = argparse.ArgumentParser(prog="python -m src.serving.recognizer.precision_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path,
                        help="folders of photos, each measured on its own; a photo's parent folder is its label where it names a class")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="exported model with its OpenVINO model beside it")
    parser.add_argument("--thresholds", type=float, nargs="+", default=list(CHECK_THRESHOLDS))
    parser.add_argument("--record", action="store_true",
                        help="keep the results in the OpenVINO model's metadata (MODEL.openvino.json, key 'bf16_check')")
    args = parser.parse_args(argv)
    machine = {"cpu": cpu_model(), "cores": usable_cores(), "bf16_native": bf16_is_fast(), "load_average": os.getloadavg()}
    print(json.dumps(machine))
    failed, results = False, []
    for folder in args.folders:
        photos = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))
        result, seconds = compare_precisions(args.model, photos, args.thresholds, labels=[p.parent.name for p in photos])
        failed |= not result.passes
        results.append({"folder": portable_path(folder), **asdict(result), "passes": result.passes,
                        "model_seconds": {k: round(v, 3) for k, v in seconds.items()}})
        print(json.dumps(results[-1]))
    if args.record:
        metadata_path = args.model.with_suffix(".openvino.json")
        metadata = json.loads(metadata_path.read_text())
        metadata["bf16_check"] = {"machine": machine, "date": time.strftime("%Y-%m-%d"), "folders": results}
        print(f"recorded in {write_json_atomically(metadata_path, metadata)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
