"""The machine a figure was measured on: CPU, cores, native bfloat16, memory, versions (a leaf module:
every stage may import it). Speed figures are only comparable with the machine they ran on."""

from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
from pathlib import Path
from typing import Any

import torch


@functools.lru_cache(maxsize=1)
def bf16_is_fast() -> bool:
    """True when this CPU computes bfloat16 natively (oneDNN says so)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine_info() -> dict[str, Any]:
    """CPU, cores, torch threads, RAM, versions, load average and the date."""
    import torchvision

    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "cpu_bf16_native": bf16_is_fast(),  # decides float32 vs bfloat16 for the trunk activations
        "os_cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "platform": platform.platform(),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    try:
        import psutil

        memory = psutil.virtual_memory()
        info["ram_gb"] = round(memory.total / 1e9, 2)
        info["ram_available_gb"] = round(memory.available / 1e9, 2)
    except ImportError:  # pragma: no cover - psutil is in requirements.txt
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["ram_gb"] = round(pages * page_size / 1e9, 2)
        info["ram_available_gb"] = None
    try:
        info["load_average_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every OS
        info["load_average_start"] = None
    return info


