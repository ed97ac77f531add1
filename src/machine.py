"""The machine a figure was measured on: CPU, cores, native bfloat16, memory, versions (a leaf module:
every stage may import it). Speed figures are only comparable with the machine they ran on.

It imports no torch: the service and the tagger read `bf16_is_fast` too, and on their OpenVINO path
torch is never loaded (hundreds of MB resident and seconds of start-up for nothing)."""

from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
from pathlib import Path
from typing import Any, Optional

# CPU flags (as /proc/cpuinfo and lscpu name them) of native bfloat16 arithmetic: AVX512-BF16
# (Cooper Lake, Sapphire Rapids, Zen 4 and later) and AMX (Sapphire Rapids and later). CPUs with plain
# AVX-512 only emulate it, slower than float32.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags() -> Optional[frozenset[str]]:
    """The CPU's feature flags from /proc/cpuinfo; None where there is no such file (not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def _openvino_reports_bf16() -> bool:
    """OpenVINO's CPU plugin lists BF16 among its capabilities only where the CPU computes it natively."""
    try:
        import openvino as ov

        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # noqa: BLE001 - not installed, or no CPU plugin: then no bfloat16
        return False


@functools.lru_cache(maxsize=1)
def bf16_is_fast() -> bool:
    """True when this CPU computes bfloat16 natively. The one decision of float32 vs bfloat16, for
    training's trunk pass and autocast and for inference's `--precision auto` alike."""
    flags = cpu_flags()
    if flags is not None:
        return bool(flags & BF16_CPU_FLAGS)
    return _openvino_reports_bf16()


def cpu_model() -> str:
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
    """CPU, cores, torch threads, RAM, versions, load average and the date (imports torch: the
    commands that write run records train or measure with it)."""
    import torch
    import torchvision

    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
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


