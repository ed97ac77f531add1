"""Memory under load: N clients send huge (few-KB, many-Mpx) PNGs to the service at once.

    python -m src.serving.web.loadtest [--model PATH] [--clients 8] [--megapixels 56] [--memory-mb 1024]

Starts `python -m src.serving.web.service` in a subprocess, measures its resident memory once the model
is loaded, fires the requests together, and prints the peak (Linux ``VmHWM``) against the budget,
the answers' status codes and the wall time. A benchmark, not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import io
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from PIL import Image

from src.serving.recognizer.recognize import default_model_path


def _memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid} (Linux only)")


def big_png(megapixels: float) -> bytes:
    """A flat grey PNG: a few KB on the wire, ``megapixels`` Mpx once decoded."""
    side = int((megapixels * 1e6) ** 0.5)
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (120, 130, 140)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.serving.web.loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="exported model (default: $LANDMARK_MODEL or checkpoints/transfer_exported.pt)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--megapixels", type=float, default=56.0)
    parser.add_argument("--memory-mb", type=float, default=1024.0)
    args = parser.parse_args(argv)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = args.model or default_model_path()
    server = subprocess.Popen(
        [sys.executable, "-m", "src.serving.web.service", "--port", str(port), "--model", str(model),
         "--memory-mb", str(args.memory_mb), "--log-level", "warning"],
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if requests.get(f"{url}/healthz", timeout=5).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        baseline = _memory_kib(server.pid, "VmRSS")
        data = big_png(args.megapixels)

        def send(_: int) -> int:
            return requests.post(f"{url}/v1/predict", files={"file": ("big.png", data, "image/png")}, timeout=600).status_code

        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            codes = list(pool.map(send, range(args.clients)))
        seconds = time.perf_counter() - started
        peak = _memory_kib(server.pid, "VmHWM")
    finally:
        server.terminate()
        server.wait(timeout=30)
    added = (peak - baseline) / 1024
    print(f"model {model.name}; {args.clients} clients x {args.megapixels:g} Mpx PNG ({len(data) / 1024:.0f} KiB each)")
    print(f"status codes {sorted(codes)}; {seconds:.1f} s in all")
    print(f"RSS after loading {baseline / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB: +{added:.0f} MiB for a budget of {args.memory_mb:g} MiB")
    return 0 if added <= args.memory_mb and all(code == 200 for code in codes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
