"""`python -m src export-openvino`'s options, apart from `src.export_openvino` so that `--help` loads no torch."""

from __future__ import annotations

import argparse
from pathlib import Path


def export_openvino_parser() -> argparse.ArgumentParser:
    """The options of `src.export_openvino.main`."""
    parser = argparse.ArgumentParser(prog="python -m src export-openvino",
                                     description="Convert exported .pt files into OpenVINO IR (.xml/.bin/.openvino.json) beside them.")
    parser.add_argument("models", nargs="+", type=Path, help="exported TorchScript files")
    return parser
