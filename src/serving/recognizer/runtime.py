"""Which engine runs the exported model: OpenVINO (the IR beside the `.pt`) or TorchScript (the `.pt`).

Both take the photos' centre squares at the model's resize size as one uint8 NHWC numpy batch
[N, S, S, 3] (`src.data.images.centre_square`) and return numpy arrays, so the Recognizer above does
not care which one runs, and on the OpenVINO path nothing imports torch (a smaller, faster-starting
service and tagger). The TorchScript file stays the source of truth: an IR that is missing, corrupt or
older than its `.pt` is not used, and "auto" then falls back to TorchScript with one warning.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from src.machine import bf16_is_fast

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "openvino", "torchscript")
PRECISIONS = ("auto", "f32", "bf16")
# auto: bf16 where the CPU computes bfloat16 natively (`src.machine.bf16_is_fast`, the decision training
# uses too), f32 elsewhere, where a bf16 hint only costs time. On a bf16 CPU it is several times faster
# and agrees with f32 on top-1 within the check in docs/openvino.md; f32 answers exactly like TorchScript.
DEFAULT_PRECISION = "auto"
# Mirrors src.export_openvino (not imported: it imports torch).
PROBABILITIES, EMBEDDING, INPUT, IR_FORMAT = "probabilities", "embedding", "photos", 1
HINTS = ("auto", "LATENCY", "THROUGHPUT")
# From this many photos a call goes to the THROUGHPUT compile (the tagger's batches of 32: 1.26-1.68x its photos/s on
# a shared 2-core EPYC, scripts/tagger_levers.py, docs/openvino.md); below, the LATENCY one, whose single request
# uses every core (the app's and the service's single photos).
SPLIT_MIN_BATCH = 8


def resolve_precision(precision: str | None = None) -> str:
    """"f32" or "bf16" for OpenVINO: `precision`, else $LANDMARK_PRECISION, else auto (by the CPU)."""
    precision = precision or os.environ.get("LANDMARK_PRECISION") or DEFAULT_PRECISION
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if bf16_is_fast() else "f32"
    return precision


class RuntimeUnavailable(RuntimeError):
    """The OpenVINO model cannot be used (missing, corrupt, stale or OpenVINO not installed)."""


class Runtime(Protocol):
    name: str
    metadata: dict
    can_embed: bool

    def probabilities(self, squares: np.ndarray) -> np.ndarray: ...

    def probabilities_and_embedding(self, squares: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class TorchScriptRuntime:
    """The exported `.pt` through TorchScript (imports torch)."""

    name = "torchscript"

    def __init__(self, model_path: Path):
        from src.export import load_exported

        self.module, self.metadata = load_exported(model_path)
        self.can_embed = hasattr(self.module, "probabilities_and_embedding")  # files exported before embeddings lack it

    @staticmethod
    def _tensor(squares: np.ndarray):
        import torch

        return torch.from_numpy(np.ascontiguousarray(squares)).permute(0, 3, 1, 2)

    def probabilities(self, squares: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.module(self._tensor(squares)).numpy()

    def probabilities_and_embedding(self, squares: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.no_grad():
            probs, embedding = self.module.probabilities_and_embedding(self._tensor(squares))
        return probs.numpy(), embedding.numpy()


def ir_files(model_path: Path) -> tuple[Path, Path, Path]:
    """(.xml, .bin, .openvino.json) beside an exported `.pt` (as `src.export_openvino.ir_paths`)."""
    return model_path.with_suffix(".xml"), model_path.with_suffix(".bin"), model_path.with_suffix(".openvino.json")


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def compile_ir(xml: Path, precision: str, hint: str = "LATENCY", threads: int | None = None):
    """The IR compiled for OpenVINO's CPU plugin: `precision` "f32"/"bf16", PERFORMANCE_HINT `hint`. The
    runtime and the benchmark's model-alone loop (`src.bench.tagger`) compile through here, so they agree."""
    import openvino as ov

    config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": hint}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return ov.Core().compile_model(str(xml), "CPU", config)


class OpenVINORuntime:
    """The IR beside the `.pt` on OpenVINO's CPU plugin; one infer request per calling thread."""

    name = "openvino"

    def __init__(self, model_path: Path, precision: str | None = None, threads: int | None = None, hint: str = "auto"):
        """hint: "auto" (default): small batches (the app, the service) on the LATENCY compile, batches of at least
        `SPLIT_MIN_BATCH` (the tagger) on a THROUGHPUT compile made on the first one, the batch split over as many
        requests as it has streams, run at once; "LATENCY" or "THROUGHPUT": always that compile."""
        if hint not in HINTS:
            raise ValueError(f"hint must be one of {HINTS}, got {hint!r}")
        precision = resolve_precision(precision)
        xml, bin_, sidecar = ir_files(model_path)
        missing = [p.name for p in (xml, bin_, sidecar) if not p.exists()]
        if missing:
            raise RuntimeUnavailable(f"no OpenVINO model beside {model_path.name} ({', '.join(missing)} missing)")
        try:
            self.metadata = json.loads(sidecar.read_text())
        except (OSError, ValueError) as error:
            raise RuntimeUnavailable(f"unreadable {sidecar.name}: {error}") from error
        if self.metadata.get("ir_format") != IR_FORMAT:
            raise RuntimeUnavailable(f"{xml.name} has format {self.metadata.get('ir_format')!r}, this version reads {IR_FORMAT}")
        if model_path.exists() and self.metadata.get("source_sha256") != _sha256(model_path):
            raise RuntimeUnavailable(f"{xml.name} was converted from another version of {model_path.name} (re-exported since)")
        try:
            import openvino  # noqa: F401 - installed at all? (compile_ir imports it again)
        except ImportError as error:
            raise RuntimeUnavailable(f"OpenVINO is not installed ({error})") from error
        try:
            self.compiled = compile_ir(xml, precision, "THROUGHPUT" if hint == "THROUGHPUT" else "LATENCY", threads)
        except Exception as error:  # OpenVINO raises plain RuntimeErrors for unreadable or truncated files
            raise RuntimeUnavailable(f"OpenVINO cannot load {xml.name}: {str(error).strip().splitlines()[-1] if str(error).strip() else error}") from error
        self.precision, self.xml, self.hint, self.threads = precision, xml, hint, threads
        self._throughput = self.compiled if hint == "THROUGHPUT" else None  # auto: compiled on the first big batch
        self._compile_lock = threading.Lock()
        self.can_embed = bool(self.metadata.get("embeds")) and any(EMBEDDING in o.get_names() for o in self.compiled.outputs)
        prep = self.metadata["preprocessing"]
        self.resize, self.crop = int(prep["resize"]), int(prep["crop"])
        self._local = threading.local()

    def _throughput_model(self):
        with self._compile_lock:
            if self._throughput is None:
                self._throughput = compile_ir(self.xml, self.precision, "THROUGHPUT", self.threads)
        return self._throughput

    def _requests(self, big: bool) -> list:
        """This thread's requests: one on the LATENCY compile, or one per stream of the THROUGHPUT compile."""
        key = "throughput_requests" if big else "latency_requests"
        requests = getattr(self._local, key, None)
        if requests is None:
            compiled = self._throughput_model() if big else self.compiled
            count = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")) if big else 1
            requests = [compiled.create_infer_request() for _ in range(count)]
            setattr(self._local, key, requests)
        return requests

    def _infer(self, squares: np.ndarray) -> dict:
        side = squares.shape[1]
        top = round((side - self.crop) / 2.0)  # the exported model's centre crop (a view)
        crops = squares if side == self.crop else squares[:, top : top + self.crop, top : top + self.crop]
        names = (PROBABILITIES, EMBEDDING) if self.can_embed else (PROBABILITIES,)
        big = self.hint == "THROUGHPUT" or (self.hint == "auto" and len(crops) >= SPLIT_MIN_BATCH)
        requests = self._requests(big)
        if len(requests) == 1 or len(crops) < 2:
            requests[0].infer({INPUT: np.ascontiguousarray(crops)})
            return {name: requests[0].get_tensor(name).data.copy() for name in names}
        # Each stream takes a slice of the batch, all at once: one whole-batch request keeps the cores in lock-step
        # layer by layer (a stall on one, e.g. a decoding thread, stalls all), and one request per stream leaves none idle.
        parts = np.array_split(np.arange(len(crops)), min(len(requests), len(crops)))
        used = requests[: len(parts)]
        for request, part in zip(used, parts):
            request.start_async({INPUT: np.ascontiguousarray(crops[part[0] : part[-1] + 1])})
        for request in used:
            request.wait()
        return {name: np.concatenate([request.get_tensor(name).data for request in used]) for name in names}

    def probabilities(self, squares: np.ndarray) -> np.ndarray:
        return self._infer(squares)[PROBABILITIES]

    def probabilities_and_embedding(self, squares: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs = self._infer(squares)
        return outputs[PROBABILITIES], outputs[EMBEDDING]


def default_runtime() -> str:
    """$LANDMARK_RUNTIME, else "auto" (OpenVINO when its model is there, else TorchScript)."""
    return os.environ.get("LANDMARK_RUNTIME") or "auto"


def load_runtime(model_path: str | Path, runtime: str | None = None, precision: str | None = None,
                 threads: int | None = None) -> Runtime:
    """The engine for an exported `.pt`: "openvino" or "auto" use the IR beside it when it is usable and
    fall back to TorchScript with one warning saying why; "torchscript" never touches OpenVINO."""
    runtime = runtime or default_runtime()
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    model_path = Path(model_path)
    if runtime != "torchscript":
        try:
            return OpenVINORuntime(model_path, precision, threads)
        except RuntimeUnavailable as error:
            log.warning("running %s through TorchScript (slower): %s; convert it with "
                        "`python -m src export-openvino %s`", model_path.name, error, model_path)
    return TorchScriptRuntime(model_path)
