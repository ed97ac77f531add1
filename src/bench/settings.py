"""Where the benchmark looks and how long each measurement runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "indian_monuments"
CHECKPOINTS = REPO / "checkpoints"
RESULTS = REPO / "results"
RUNS = RESULTS / "runs"  # where a full run writes its run record (src.runs)
QUICK_RUNS = RESULTS / "tmp" / "runs"  # --quick is a smoke test: its record stays out of results/runs (git ignores results/tmp)
STARTER_CROP = 224  # the course starter trains at 224 px


@dataclass
class BenchSettings:
    """How long each measurement runs. `quick_settings()` gives the tiny sizes the test suite uses."""

    batch1_min_iterations: int = 20
    batch32_min_iterations: int = 3
    min_seconds: float = 3.0  # each images/s measurement runs at least this long (after warm-up)
    warmup: int = 3  # TorchScript's profiling executor optimises during the first calls
    e2e_runs: int = 50
    memory_recognitions: int = 3
    train_batches: int = 20  # per short epoch of the data-loading comparison
    train_epochs: int = 1
    train_batch_size: int = 32
    train_workers: int | None = None  # DataLoader workers, the same for both recipes; None: ScratchRecipe.num_workers
    train_widths: tuple[int, ...] | None = None  # None: the recipe's MyModel widths
    feature_photos: int = 64  # photos for the frozen-backbone timing (extrapolated to the train split)
    threads: int | None = None  # torch threads for every measurement; None: all usable cores
    runtime: str | None = None  # the Recognizer's engine (src.serving.recognizer.runtime); None: $LANDMARK_RUNTIME or "auto"
    quick: bool = False

    @classmethod
    def quick_settings(cls) -> BenchSettings:
        return cls(
            batch1_min_iterations=3, batch32_min_iterations=1, min_seconds=0.0, warmup=2, e2e_runs=5,
            memory_recognitions=1, train_batches=3, train_epochs=1, train_batch_size=4, train_workers=0,
            train_widths=(16, 32, 32, 64), feature_photos=8, quick=True,
        )

