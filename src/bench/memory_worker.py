"""Peak memory of serving one model, measured in a fresh process (run by `measure_peak_memory`):

    python -m src.bench.memory_worker MODEL PHOTO [RECOGNITIONS]

imports src.serving.recognizer.recognize, loads MODEL, recognises PHOTO RECOGNITIONS times and prints one JSON
line: {"after_import_mb", "peak_mb", "status"}. The peak is this process's own RSS high-water mark.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path


def peak_mb() -> float:
    """VmHWM from /proc/self/status. getrusage's ru_maxrss is the fallback only: on Linux it survives
    execve, so a child spawned by a big parent (vfork + exec) would report the parent's peak."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value / 1e6 if sys.platform == "darwin" else value * 1024 / 1e6  # bytes on macOS, KiB elsewhere


def main(argv: list[str]) -> None:
    model, photo = argv[0], argv[1]
    recognitions = int(argv[2]) if len(argv) > 2 else 3
    runtime = argv[3] if len(argv) > 3 else None
    from src.serving.recognizer.recognize import (
        Recognizer,  # (torch is imported by the TorchScript runtime only, as in the service)
    )

    after_import = peak_mb()
    recognizer = Recognizer(model, runtime=runtime)
    data = Path(photo).read_bytes()
    status = None
    for _ in range(max(1, recognitions)):
        status = recognizer.recognize(data).status
    print(json.dumps({"after_import_mb": after_import, "peak_mb": peak_mb(), "status": status}))


if __name__ == "__main__":
    main(sys.argv[1:])
