"""Where the benchmark looks and writes, how long each measurement runs, and its options (torch-free:
`python -m src bench --help` answers at once)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from src.home import user_output
from src.runs import portable_path
from src.serving.recognizer.runtime import RUNTIMES

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "indian_monuments"
CHECKPOINTS = REPO / "checkpoints"
RESULTS = REPO / "results"  # the repository's measurements: written only when given (make bench: --out results --runs results/runs)
RUNS = RESULTS / "runs"
STARTER_CROP = 224  # the course starter trains at 224 px
SECTIONS = ("models", "training", "tagger", "app")


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
    tagger_repeats: int = 3  # interleaved rounds of model alone, decoder alone and tagger (medians reported)
    tagger_max_photos: int | None = None  # None: every photo under the tag photos
    library_photos: int = 10_000  # the generated library the context's cost is measured on
    context_repeats: int = 2  # rounds of (without, with) context, alternating which runs first
    locate_sizes: tuple[int, ...] = (10_000, 100_000)  # synthetic libraries for locate_library alone
    quick: bool = False

    @classmethod
    def quick_settings(cls) -> BenchSettings:
        return cls(
            batch1_min_iterations=3, batch32_min_iterations=1, min_seconds=0.0, warmup=2, e2e_runs=5,
            memory_recognitions=1, train_batches=3, train_epochs=1, train_batch_size=4, train_workers=0,
            train_widths=(16, 32, 32, 64), feature_photos=8, tagger_repeats=1, tagger_max_photos=12, library_photos=60,
            context_repeats=1, locate_sizes=(100, 400), quick=True,
        )



def default_bench_folder(quick: bool) -> Path:
    """Where bench.md and its run record go when no --out is given: $LANDMARK_HOME/bench (--quick: .../bench/quick)."""
    return user_output("bench", "quick") if quick else user_output("bench")


def bench_parser() -> argparse.ArgumentParser:
    """The options of `python -m src bench` (`src.bench.run.main`)."""
    parser = argparse.ArgumentParser(
        prog="python -m src bench",
        description="Benchmark the exported models and the training data pipeline; writes a run record and bench.md.",
    )
    parser.add_argument("--data", default=None, help=f"folder with train/ and test/ (default: {portable_path(DEFAULT_DATA)} when present, else a generated set)")
    parser.add_argument("--models", nargs="+", default=None, help="exported TorchScript files (default: every checkpoints/*_exported.pt)")
    parser.add_argument("--out", default=None, help="folder for bench.md (default: $LANDMARK_HOME/bench, --quick: $LANDMARK_HOME/bench/quick; "
                        "make bench passes results)")
    parser.add_argument("--runs", default=None, help="folder for the run record (default: runs/ inside --out; make bench passes results/runs)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test in seconds, not a measurement")
    parser.add_argument("--baseline-epochs", type=int, default=None, help="short epochs per recipe in the data-loading comparison (default 1)")
    parser.add_argument("--batches", type=int, default=None, help="batches per short epoch (default 20; --quick: 3)")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers for both recipes (default: ScratchRecipe.num_workers; --quick: 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all usable cores)")
    parser.add_argument("--no-training", action="store_true", help="skip the training-throughput comparison")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="what to measure (default: all): models, training (the data-loading comparison), tagger "
                        "(the tagger against the machine's limit, the library context's cost), app (`make app` and a "
                        "visitor's page in headless Chromium)")
    parser.add_argument("--tag-photos", default=None, help="photos for the tagger section (default: <data>/test, i.e. "
                        f"{portable_path(DEFAULT_DATA / 'test')} when present, else the generated set's)")
    parser.add_argument("--library-photos", type=int, default=None, help="photos in the generated library of the context's cost (default 10000)")
    parser.add_argument("--context-repeats", type=int, default=None, help="rounds of (without, with) the library context (default 2)")
    parser.add_argument("--locate-sizes", type=int, nargs="+", default=None, help="synthetic library sizes for locate_library alone (default 10000 100000)")
    parser.add_argument("--app-visits", type=int, default=5, help="app section: visitors per start, one after another (default 5)")
    parser.add_argument("--app-starts", type=int, default=1, help="app section: times `make app` is started (default 1)")
    parser.add_argument("--runtime", choices=RUNTIMES, default=None, help="engine of the end-to-end and memory measures (default: $LANDMARK_RUNTIME or auto)")
    return parser
