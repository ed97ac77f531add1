"""`python -m src serve`'s options, without FastAPI or the model: `--help` and a wrong option answer at once
(`src.cli` parses these first; `src.serving.web.service.main` parses the same)."""

from __future__ import annotations

import argparse
from pathlib import Path

from src.data.images import MAX_PIXELS
from src.serving.recognizer.runtime import PRECISIONS, RUNTIMES

__all__ = ["BODY_TIMEOUT_S", "REQUEST_DEADLINE_S", "serve_parser"]

# A client that sends no byte of its body for this long is cut off (uvicorn itself never times out a body).
BODY_TIMEOUT_S = 30.0
# However it trickles in (one byte every few seconds resets no clock), a body must be complete this many
# seconds after the request started: a 20 MB photo at 2 Mbit/s takes 80 s.
REQUEST_DEADLINE_S = 120.0


def serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m src serve", description="Serve the landmark recogniser over HTTP.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port to listen on (default: %(default)s)")
    parser.add_argument("--model", type=Path, default=None, help="exported model (default: $LANDMARK_MODEL or checkpoints/transfer_exported.pt)")
    parser.add_argument("--max-upload-mb", type=float, default=None, help="largest accepted upload (default 20)")
    parser.add_argument("--max-pixels", type=int, default=None, help=f"largest accepted image (default {MAX_PIXELS})")
    parser.add_argument("--max-concurrency", type=int, default=None, help="recognitions at once (default: from --memory-mb, at most the CPU cores)")
    parser.add_argument("--memory-mb", type=float, default=None, help="memory for decoding at once (default $LANDMARK_MEMORY_MB or 1024)")
    parser.add_argument("--body-timeout", type=float, default=BODY_TIMEOUT_S, help="seconds a stalled upload may send nothing (default %(default)g)")
    parser.add_argument("--request-timeout", type=float, default=REQUEST_DEADLINE_S,
                        help="seconds an upload may take in all, however it trickles in (default %(default)g)")
    parser.add_argument("--runtime", choices=RUNTIMES, default=None,
                        help="engine: openvino (the .xml beside the model; no torch), torchscript, or auto (default: $LANDMARK_RUNTIME or auto)")
    parser.add_argument("--precision", choices=PRECISIONS, default=None, help="OpenVINO inference precision (default auto: bf16 where the CPU computes bfloat16 natively, else f32; docs/openvino.md)")
    parser.add_argument("--placement", default=None, metavar="POINT_OR_P",
                        help="when a position is given: 'strict' (default: at most 1 %% of photos of landmarks the model never saw get one), "
                             "'balanced', or a probability (docs/unknown.md)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug", "trace"],
                        help="uvicorn's log level (default: %(default)s)")
    return parser
