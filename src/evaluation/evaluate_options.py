"""`python -m src evaluate`'s options, apart from `src.evaluation.evaluate` so that `--help` and a wrong
option answer at once, without loading torch."""

from __future__ import annotations

import argparse
from pathlib import Path

from src.runs import RUNS_DIR


def evaluate_parser() -> argparse.ArgumentParser:
    """The options of `src.evaluation.evaluate.main`."""
    parser = argparse.ArgumentParser(prog="python -m src evaluate", description="Evaluate exported models on test folders: accuracy (95% CI), top-k, per-class F1, calibration, and how often they name what is not a known landmark.")
    parser.add_argument("models", nargs="+", type=Path, help="exported model files (python -m src train writes them)")
    parser.add_argument("--data", required=True, nargs="+", type=Path, metavar="FOLDER", help="test folders (<folder>/<class>/<photo>), or data roots holding test/")
    parser.add_argument("--no-landmark", type=Path, default=None, metavar="DIR", help="object photos: report how often the held-out categories are named")
    parser.add_argument("--generated", type=int, default=0, metavar="N", help="also report how many of N generated non-photos are named (default: %(default)s)")
    parser.add_argument("--figures", type=Path, default=None, help="save each model's confusion matrix, reliability diagram and per-class F1 here (PNG)")
    parser.add_argument("--report", type=Path, default=None, help="also save every model's full report here (JSON)")
    parser.add_argument("--runs", type=Path, default=RUNS_DIR, help="folder of run records (default: %(default)s)")
    return parser
