"""Load check for the HTTP service: N concurrent clients on loopback for a bounded time.

    # against a running service (make service), with its process id for the memory peak:
    python scripts/load_check.py --url http://127.0.0.1:8000 --clients 4 --seconds 15 --pid <PID>
    # or let the script start the service itself on a free port, check it, and stop it:
    python scripts/load_check.py --spawn --clients 4 --seconds 15 [--model PATH] [--image photo.jpg]

Every client is a thread with its own keep-alive `requests.Session`, posting the same photo to
``/v1/predict`` back to back. Reports requests/s, photos/s, p50/p90/p99 latency, errors (non-200
answers and connection failures) and the server's resident memory (from /proc/PID/status; Linux
only): idle after the warm-up requests (VmRSS) and the peak under load (VmHWM). ``--json`` prints the numbers as one JSON object.
Exit status 0 when no request failed, 1 otherwise, 2 when the service could not be reached.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Sequence

import requests

ROOT = Path(__file__).resolve().parents[1]


def _synthetic_photo() -> bytes:
    """A 1024x768 JPEG of noise: a typical phone-photo decode cost without shipping a file."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (768, 1024, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def peak_memory_mb(pid: int, field: str = "VmHWM") -> Optional[float]:
    """Peak resident set size (VmHWM; VmRSS: now) of a process, in MiB; None where /proc is unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        return None
    return None


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def wait_healthy(url: str, timeout_s: float = 120, process: Optional[subprocess.Popen] = None) -> dict:
    deadline = time.monotonic() + timeout_s
    last_error: object = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the service exited with status {process.returncode}")
        try:
            response = requests.get(f"{url}/healthz", timeout=5)
            if response.status_code == 200:
                return response.json()
            last_error = f"HTTP {response.status_code}"
        except requests.RequestException as error:
            last_error = error
        time.sleep(0.25)
    raise RuntimeError(f"{url}/healthz did not answer in {timeout_s:.0f} s ({last_error})")


def run_load(url: str, image: bytes, clients: int, seconds: float, top_k: int = 5, filename: str = "photo.jpg") -> dict:
    """Hammer ``url``/v1/predict from `clients` threads for `seconds`; latency stats in ms."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start_barrier = threading.Barrier(clients + 1)
    stop_at: list[float] = [0.0]

    def client() -> None:
        session = requests.Session()
        mine, failures = [], []
        start_barrier.wait()
        while time.perf_counter() < stop_at[0]:
            t0 = time.perf_counter()
            try:
                response = session.post(
                    f"{url}/v1/predict", params={"top_k": top_k},
                    files={"file": (filename, image, "application/octet-stream")}, timeout=60,
                )
                ok = response.status_code == 200
                if not ok:
                    failures.append(f"HTTP {response.status_code}: {response.text[:200]}")
            except requests.RequestException as error:
                ok = False
                failures.append(f"{type(error).__name__}: {error}")
            if ok:
                mine.append((time.perf_counter() - t0) * 1000)
        session.close()
        with lock:
            latencies.extend(mine)
            errors.extend(failures)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    start_barrier.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began

    latencies.sort()
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "requests": len(latencies) + len(errors),
        "ok": len(latencies),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:3],
        "requests_per_s": round(len(latencies) / elapsed, 2) if elapsed > 0 else 0.0,
        "latency_ms": {
            "p50": round(_percentile(latencies, 50), 1),
            "p90": round(_percentile(latencies, 90), 1),
            "p99": round(_percentile(latencies, 99), 1),
            "max": round(latencies[-1], 1) if latencies else float("nan"),
        },
        "image_bytes": len(image),
    }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn_service(model: Optional[Path], port: int, runtime: Optional[str] = None) -> subprocess.Popen:
    """`python -m src serve` (the README's command) on 127.0.0.1:port, from the repository root."""
    command = [sys.executable, "-m", "src", "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    if model is not None:
        command += ["--model", str(model)]
    if runtime is not None:
        command += ["--runtime", runtime]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(command, cwd=ROOT, env=env)


def stop_service(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _print_report(result: dict) -> None:
    latency = result["latency_ms"]
    print(f"service   {result['url']}  model {result.get('model', '?')}  image {result['image_bytes'] / 1024:.0f} KiB")
    print(f"clients   {result['clients']} for {result['seconds']} s (after {result['warmup']} warm-up requests)")
    print(f"requests  {result['requests']} ({result['ok']} ok, {result['errors']} errors)")
    print(f"throughput {result['requests_per_s']} photos/s")
    print(f"latency   p50 {latency['p50']} ms, p90 {latency['p90']} ms, p99 {latency['p99']} ms, max {latency['max']} ms")
    if result.get("peak_memory_mb") is not None:
        print(f"memory    server RSS idle after warm-up {result['idle_memory_mb']:.0f} MiB, "
              f"peak (VmHWM) {result['peak_memory_mb']:.0f} MiB (pid {result['pid']}, runtime {result.get('runtime') or 'default'})")
    for example in result["error_examples"]:
        print(f"error     {example}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Concurrent-client load check for the landmark service.")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--url", default="http://127.0.0.1:8000", help="base URL of a running service")
    target.add_argument("--spawn", action="store_true", help="start `python -m src serve` on a free port, check it, stop it")
    parser.add_argument("--model", type=Path, default=None, help="with --spawn: the model (default: $LANDMARK_MODEL or checkpoints/)")
    parser.add_argument("--runtime", choices=("auto", "openvino", "torchscript"), default=None,
                        help="with --spawn: the service's engine (default: $LANDMARK_RUNTIME or auto)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--image", type=Path, default=None, help="photo to send (default: a generated 1024x768 JPEG)")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3, help="requests sent before timing starts")
    parser.add_argument("--pid", type=int, default=None, help="server process id, for its peak memory")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0:
        parser.error("--clients must be >= 1 and --seconds > 0")
    if (args.model is not None or args.runtime is not None) and not args.spawn:
        parser.error("--model and --runtime only apply with --spawn")
    image = args.image.read_bytes() if args.image else _synthetic_photo()
    filename = args.image.name if args.image else "photo.jpg"

    process = None
    url, pid = args.url.rstrip("/"), args.pid
    try:
        if args.spawn:
            port = _free_port()
            process = spawn_service(args.model, port, args.runtime)
            url, pid = f"http://127.0.0.1:{port}", process.pid
        try:
            health = wait_healthy(url, process=process)
        except RuntimeError as error:
            print(f"load_check: {error}", file=sys.stderr)
            return 2
        for _ in range(args.warmup):  # first calls pay for TorchScript's profiling runs
            requests.post(f"{url}/v1/predict", files={"file": (filename, image)}, timeout=120)
        idle_memory_mb = peak_memory_mb(pid, "VmRSS") if pid else None
        result = run_load(url, image, args.clients, args.seconds, args.top_k, filename)
        result.update(url=url, model=health.get("model"), warmup=args.warmup, pid=pid, runtime=args.runtime, idle_memory_mb=idle_memory_mb)
        result["peak_memory_mb"] = peak_memory_mb(pid) if pid else None
    finally:
        if process is not None:
            stop_service(process)

    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_report(result)
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
