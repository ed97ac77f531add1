"""Benchmarks and a reproducible results report: `python -m src.bench` (or `make bench`).

For every exported model (default: each `checkpoints/*_exported.pt`):

- test top-1 with its Wilson 95 % interval and top-5 (`src.evaluate.evaluate_model` on `<data>/test`);
- training wall time and seconds per epoch, read from what the training run itself recorded (the
  export's metadata, or the matching `results/scratch.json` / `results/transfer*.json`), "n/a" when
  nothing recorded it: never estimated;
- inference images/s at batch 1 and batch 32 (uint8 tensors at the model's resize, after warm-up,
  torch threads = all cores);
- end-to-end milliseconds per photo, p50 and p95: the bytes of a real test JPEG through
  `src.recognize.Recognizer.recognize` (decode + predict + decision);
- peak memory: the RSS high-water mark of a fresh Python process that loads the model and recognises
  one photo (`resource.getrusage`, measured inside that process);
- the size of the exported file.

Then the data-loading question, on MyModel (the from-scratch architecture): a few batches of training
the course starter's way (decode the JPEG every time, contiguous layout, 224 px crop) and ours (decode
cache, channels_last, `ScratchRecipe.train_crop`), with the share of time spent waiting for data, timed
exactly as `src.train._run_epoch` times it. For a transfer model, the feature-cache effect: one pass of
the frozen backbone over the training photos against one head-only epoch on cached features.

The machine (CPU, cores, threads, RAM, versions, load average), the date and the exact command line are
written into both outputs: `<out>/bench.json` and `<out>/bench.md`; the tables are also printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import nn

from src.machine import machine_info, usable_cores

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "indian_monuments"
CHECKPOINTS = REPO / "checkpoints"
RESULTS = REPO / "results"
STARTER_CROP = 224  # the course starter trains at 224 px

MODELS_TABLE_HEADER = (
    "| model | test top-1 (95% CI) | top-5 | train wall time | s/epoch | img/s batch 1 | img/s batch 32 "
    "| ms/photo p50 / p95 | peak RSS (MB) | file (MB) |"
)
TRAINING_TABLE_HEADER = (
    "| recipe | dataset | memory layout | crop | batch | images timed | img/s | waiting for data | setup (s) |"
)

__all__ = [
    "MODELS_TABLE_HEADER",
    "TRAINING_TABLE_HEADER",
    "BenchSettings",
    "machine_info",
    "training_record",
    "measure_inference",
    "measure_end_to_end",
    "measure_peak_memory",
    "measure_training_throughput",
    "measure_feature_cache",
    "benchmark_model",
    "run_benchmark",
    "to_markdown",
    "main",
]


# --------------------------------------------------------------------------- settings


@dataclass
class BenchSettings:
    """How long each measurement runs. `quick()` gives the tiny sizes the test suite uses."""

    batch1_min_iterations: int = 20
    batch32_min_iterations: int = 3
    min_seconds: float = 3.0  # each images/s measurement runs at least this long (after warm-up)
    warmup: int = 3  # TorchScript's profiling executor optimises during the first calls
    e2e_runs: int = 50
    memory_recognitions: int = 3
    train_batches: int = 20  # per short epoch of the data-loading comparison
    train_epochs: int = 1
    train_batch_size: int = 32
    train_workers: Optional[int] = None  # DataLoader workers, the same for both recipes; None: ScratchRecipe.num_workers
    train_widths: Optional[tuple[int, ...]] = None  # None: the recipe's MyModel widths
    feature_photos: int = 64  # photos for the frozen-backbone timing (extrapolated to the train split)
    threads: Optional[int] = None  # torch threads for every measurement; None: all usable cores
    quick: bool = False

    @classmethod
    def quick_settings(cls) -> "BenchSettings":
        return cls(
            batch1_min_iterations=3, batch32_min_iterations=1, min_seconds=0.0, warmup=2, e2e_runs=5,
            memory_recognitions=1, train_batches=3, train_epochs=1, train_batch_size=4, train_workers=0,
            train_widths=(16, 32, 32, 64), feature_photos=8, quick=True,
        )


# --------------------------------------------------------------------------- the machine


# --------------------------------------------------------------------------- training records


def _same_file(a: Any, b: Path) -> bool:
    if not a:
        return False
    candidate = Path(str(a))
    for base in (Path.cwd(), REPO):
        path = candidate if candidate.is_absolute() else base / candidate
        try:
            if path.exists() and path.resolve() == b.resolve():
                return True
        except OSError:
            continue
    return False


def _results_candidates(results_dir: Path) -> list[Path]:
    return sorted(set(results_dir.glob("scratch*.json")) | set(results_dir.glob("transfer*.json")))


def _matches(report: dict, metadata: dict, model_path: Path) -> bool:
    """Whether a results/*.json report was written by the run that exported this model."""
    if _same_file(report.get("export_path"), model_path):
        return True
    embedded = metadata.get("report") or {}
    if embedded and "feature_seconds" in embedded and report.get("feature_seconds") == embedded["feature_seconds"]:
        return True  # a transfer run: the same float, written by the same run
    # A scratch run: the validation accuracies per size and the chosen size are stored in both.
    prep = metadata.get("preprocessing") or {}
    return (
        bool(metadata.get("valid_accuracy_by_size"))
        and report.get("valid_accuracy_by_size") == metadata["valid_accuracy_by_size"]
        and list(report.get("eval_size") or []) == [prep.get("resize"), prep.get("crop")]
    )


def training_record(metadata: dict, model_path: Path, results_dir: Path = RESULTS) -> dict[str, Any]:
    """Training wall time, seconds per epoch and epochs, as recorded by the training run itself.

    Looks in the export's metadata (`report`, or top-level keys) and in the results/*.json report of
    the same run (matched by export path, or by numbers both files carry). Unknown values are None.
    """
    sources: list[tuple[str, dict]] = []
    if isinstance(metadata.get("report"), dict):
        sources.append(("export metadata", metadata["report"]))
    sources.append(("export metadata", metadata))
    for path in _results_candidates(Path(results_dir)):
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(report, dict) and _matches(report, metadata, model_path):
            sources.append((_display_path(path), report))

    def first(*keys: str) -> tuple[Optional[float], Optional[str]]:
        for name, source in sources:
            for key in keys:
                value = source.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    return float(value), name
        return None, None

    train_seconds, train_source = first("train_seconds", "train_seconds_total")
    per_epoch, epoch_source = first("seconds_per_epoch")
    epochs, _ = first("epochs")
    total, total_source = first("wall_seconds_total")
    feature_seconds, _ = first("feature_seconds")
    used = [s for s in (train_source, epoch_source, total_source) if s]
    return {
        "train_wall_seconds": train_seconds,
        "seconds_per_epoch": per_epoch,
        "epochs": int(epochs) if epochs is not None else None,
        "run_wall_seconds_total": total,  # the whole command: training, export and its test pass
        "feature_seconds": feature_seconds,
        "training_source": ", ".join(dict.fromkeys(used)) if used else None,
    }


def _display_path(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- inference


def _timed_loop(step, min_iterations: int, min_seconds: float) -> tuple[int, float]:
    iterations, start = 0, time.perf_counter()
    while True:
        step()
        iterations += 1
        elapsed = time.perf_counter() - start
        if iterations >= min_iterations and elapsed >= min_seconds:
            return iterations, elapsed


def measure_inference(module: nn.Module, resize: int, batch_size: int, settings: BenchSettings, min_iterations: int) -> dict[str, Any]:
    """Images per second of an exported model on uint8 [batch, 3, resize, resize] tensors."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch_size, 3, resize, resize), dtype=torch.uint8, generator=generator)
    with torch.no_grad():
        for _ in range(settings.warmup):
            module(images)
        iterations, seconds = _timed_loop(lambda: module(images), min_iterations, settings.min_seconds)
    return {"images_per_second": batch_size * iterations / seconds, "iterations": iterations, "seconds": seconds}


def _test_photos(data_root: Path, count: int) -> list[Path]:
    """Up to `count` real JPEGs from <data>/test, spread over its classes (a fixed choice)."""
    from src.data.folders import scan_image_folder

    scan = scan_image_folder(data_root / "test")
    jpegs = [path for path, _ in scan.samples if path.suffix.lower() in (".jpg", ".jpeg")]
    if not jpegs:
        raise FileNotFoundError(f"no JPEG photos under {data_root / 'test'}")
    step = max(1, len(jpegs) // count)
    return jpegs[::step][:count]


def measure_end_to_end(model_path: Path, photos: Sequence[Path], settings: BenchSettings) -> dict[str, Any]:
    """Milliseconds per photo from JPEG bytes to a Recognition (decode + predict + decide)."""
    from src.serving.recognize import Recognizer

    recognizer = Recognizer(model_path)
    payloads = [Path(p).read_bytes() for p in photos]
    for data in payloads[: max(1, settings.warmup)]:
        recognizer.recognize(data)
    times, statuses = [], {}
    for i in range(settings.e2e_runs):
        data = payloads[i % len(payloads)]
        start = time.perf_counter()
        result = recognizer.recognize(data)
        times.append(1000 * (time.perf_counter() - start))
        statuses[result.status] = statuses.get(result.status, 0) + 1
    p50, p95 = np.percentile(times, [50, 95])
    return {"p50": float(p50), "p95": float(p95), "runs": len(times), "photos": len(payloads), "statuses": statuses}


_MEMORY_WORKER = r"""
import json, resource, sys
from pathlib import Path

def peak_mb():
    # VmHWM: this process's own RSS high-water mark. getrusage's ru_maxrss is not used on Linux: it
    # survives execve, so a child spawned by a big parent (vfork + exec) reports the parent's peak.
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value / 1e6 if sys.platform == "darwin" else value * 1024 / 1e6  # bytes on macOS, KiB elsewhere

import torch
from src.serving.recognize import Recognizer
after_import = peak_mb()
recognizer = Recognizer(sys.argv[1])
data = Path(sys.argv[2]).read_bytes()
for _ in range(int(sys.argv[3])):
    status = recognizer.recognize(data).status
print(json.dumps({"after_import_mb": after_import, "peak_mb": peak_mb(), "status": status}))
"""


def measure_peak_memory(model_path: Path, photo: Path, recognitions: int = 3, timeout: float = 600) -> dict[str, Any]:
    """RSS high-water mark of a fresh Python process that imports src.serving.recognize, loads the model and
    recognises `photo`, measured inside that process (Linux: VmHWM from /proc/self/status; elsewhere
    getrusage(RUSAGE_SELF).ru_maxrss) and printed as JSON."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    completed = subprocess.run(
        [sys.executable, "-c", _MEMORY_WORKER, str(Path(model_path).resolve()), str(Path(photo).resolve()), str(recognitions)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"memory worker failed ({completed.returncode}): {completed.stderr.strip()[-500:]}")
    values = json.loads(completed.stdout.strip().splitlines()[-1])
    return {"peak_rss_mb": values["peak_mb"], "import_rss_mb": values["after_import_mb"], "status": values["status"]}


# --------------------------------------------------------------------------- one model


def benchmark_model(model_path: Path, data_root: Path, settings: BenchSettings, results_dir: Path = RESULTS) -> dict[str, Any]:
    """One row of the models table. A measurement that fails is None, with its reason in `errors`."""
    from src.evaluation.evaluate import evaluate_model
    from src.export import freeze_for_inference, load_exported

    model_path = Path(model_path)
    unfrozen, metadata = load_exported(model_path, optimize=False)  # keeps its submodules for the feature-cache measure
    module = freeze_for_inference(unfrozen)  # what the app and service run
    prep = metadata.get("preprocessing") or {}
    resize, crop = int(prep.get("resize", 256)), int(prep.get("crop", 224))
    row: dict[str, Any] = {
        "model": model_path.stem,
        "path": _display_path(model_path),
        "description": metadata.get("model"),
        "classes": len(metadata.get("class_names", [])),
        "file_mb": model_path.stat().st_size / 1e6,
        "resize": resize,
        "crop": crop,
        "test_images": None, "top1": None, "top1_ci95": None, "top5": None,
    }
    row.update(training_record(metadata, model_path, results_dir))
    row.update({
        "images_per_second_batch1": None, "images_per_second_batch32": None,
        "e2e_ms_p50": None, "e2e_ms_p95": None, "e2e_runs": None,
        "peak_rss_mb": None, "import_rss_mb": None, "errors": {},
    })

    def attempt(name: str, fn) -> None:
        try:
            fn()
        except Exception as error:  # noqa: BLE001 - one failing measurement must not lose the others
            row["errors"][name] = f"{type(error).__name__}: {error}"
            print(f"  {model_path.name}: {name} failed: {error}", file=sys.stderr)

    def accuracy() -> None:
        report = evaluate_model(model_path, data_root / "test", model_name=model_path.stem)
        row.update(test_images=report.n, top1=report.accuracy, top1_ci95=list(report.accuracy_ci95), top5=report.top5, test_skipped=len(report.skipped))

    def inference() -> None:
        row["images_per_second_batch1"] = measure_inference(module, resize, 1, settings, settings.batch1_min_iterations)["images_per_second"]
        row["images_per_second_batch32"] = measure_inference(module, resize, 32, settings, settings.batch32_min_iterations)["images_per_second"]

    photos: list[Path] = []

    def end_to_end() -> None:
        photos.extend(_test_photos(data_root, 8))
        e2e = measure_end_to_end(model_path, photos, settings)
        row.update(e2e_ms_p50=e2e["p50"], e2e_ms_p95=e2e["p95"], e2e_runs=e2e["runs"], e2e_statuses=e2e["statuses"])

    def memory() -> None:
        photo = photos[0] if photos else _test_photos(data_root, 1)[0]
        result = measure_peak_memory(model_path, photo, max(1, settings.memory_recognitions))
        row.update(peak_rss_mb=result["peak_rss_mb"], import_rss_mb=result["import_rss_mb"])

    print(f"benchmarking {model_path} ...", file=sys.stderr)
    attempt("accuracy", accuracy)
    attempt("inference", inference)
    attempt("end_to_end", end_to_end)
    attempt("memory", memory)
    row["feature_cache"] = None
    if hasattr(unfrozen, "model") and hasattr(unfrozen.model, "backbone") and hasattr(unfrozen.model, "head"):
        def features() -> None:
            row["feature_cache"] = measure_feature_cache(unfrozen, metadata, data_root, settings)
        attempt("feature_cache", features)
    return row


# --------------------------------------------------------------------------- training throughput


def _train_batches(loader, model: nn.Module, loss_fn: nn.Module, optimizer, channels_last: bool, batches: int, epochs: int) -> dict[str, Any]:
    """`src.train._run_epoch`'s loop and timing (data_seconds: time blocked on the loader), capped
    at `batches` per epoch, with a choice of memory layout. One untimed warm-up batch first (worker
    start-up, oneDNN kernel selection)."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=layout).train()

    def step(images: torch.Tensor, labels: torch.Tensor) -> float:
        images = images.to(memory_format=layout)
        logits = model(images)
        loss = loss_fn(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()  # a synchronisation point, as in _run_epoch

    warmup_start = time.perf_counter()
    images, labels = next(iter(loader))
    step(images, labels)
    warmup_seconds = time.perf_counter() - warmup_start

    seen, seconds, data_seconds = 0, 0.0, 0.0
    for _ in range(epochs):
        iterator = iter(loader)
        start = tick = time.perf_counter()
        for _ in range(batches):
            try:
                images, labels = next(iterator)
            except StopIteration:
                break
            data_seconds += time.perf_counter() - tick
            step(images, labels)
            seen += len(labels)
            tick = time.perf_counter()
        seconds += time.perf_counter() - start
        del iterator
    if seen == 0:
        raise ValueError("the training split yielded no batches")
    return {
        "images": seen, "seconds": seconds, "data_seconds": data_seconds, "images_per_second": seen / seconds,
        "data_wait_fraction": data_seconds / seconds, "warmup_batch_seconds": warmup_seconds,
    }


def measure_training_throughput(data_root: Path, settings: BenchSettings) -> dict[str, Any]:
    """MyModel training images/s and data-wait share: the course starter's recipe against ours."""
    from src.data.loaders import DataConfig, make_loaders
    from src.data.transforms import Preprocessing
    from src.models.scratch import MyModel
    from src.training.optimization import get_loss, get_optimizer
    from src.training.recipes import ScratchRecipe

    recipe = ScratchRecipe()
    widths = tuple(settings.train_widths or recipe.widths)
    workers = recipe.num_workers if settings.train_workers is None else settings.train_workers
    ways = {
        "starter": {"label": "course starter", "decode_cache": False, "channels_last": False, "crop": STARTER_CROP},
        "ours": {"label": "ours", "decode_cache": True, "channels_last": True, "crop": recipe.train_crop},
    }
    out: dict[str, Any] = {
        "model": "MyModel", "widths": list(widths), "batch_size": settings.train_batch_size,
        "batches_per_epoch": settings.train_batches, "epochs": settings.train_epochs, "workers": workers,
        "optimizer": f"AdamW lr={recipe.learning_rate} wd={recipe.weight_decay}", "ways": {},
    }
    for key, way in ways.items():
        print(f"training throughput: {way['label']} ...", file=sys.stderr)
        config = DataConfig(
            data_dir=str(data_root), batch_size=settings.train_batch_size, num_workers=workers,
            preprocessing=Preprocessing(),  # mean/std do not change the cost; skips a statistics pass
            train_crop=way["crop"], decode_cache=way["decode_cache"],
        )
        start = time.perf_counter()
        loader = make_loaders(config)["train"]
        setup_seconds = time.perf_counter() - start
        torch.manual_seed(0)
        model = MyModel(num_classes=len(loader.dataset.classes), dropout=recipe.dropout, widths=widths)
        optimizer = get_optimizer(model, "adamw", recipe.learning_rate, weight_decay=recipe.weight_decay)
        result = _train_batches(loader, model, get_loss(recipe.label_smoothing), optimizer, way["channels_last"], settings.train_batches, settings.train_epochs)
        result.update(
            label=way["label"], dataset=type(loader.dataset).__name__, memory_layout="channels_last" if way["channels_last"] else "contiguous",
            crop=way["crop"], setup_seconds=setup_seconds, train_photos=len(loader.dataset),
        )
        out["ways"][key] = result
        del loader
    out["speedup"] = out["ways"]["ours"]["images_per_second"] / out["ways"]["starter"]["images_per_second"]
    return out


# --------------------------------------------------------------------------- feature cache (transfer)


def measure_feature_cache(module: nn.Module, metadata: dict, data_root: Path, settings: BenchSettings) -> dict[str, Any]:
    """Frozen-backbone feature pass vs a head-only epoch on cached features, for an exported transfer
    model (`module.model.backbone` and `module.model.head`).

    The backbone is timed on `settings.feature_photos` training photos (transform + forward, as
    `src.features.extract_features` runs it) and extrapolated per photo to the whole training split;
    the head-only epoch (AdamW, batch 32, over cached [N, D] features) is measured on the full size.
    """
    from src.data.folders import scan_image_folder, stratified_split, stratified_subset
    from src.data.images import load_rgb
    from src.data.transforms import Preprocessing, eval_transform
    from src.training.features import extract_features

    prep = Preprocessing.from_dict(metadata["preprocessing"])
    scan = scan_image_folder(data_root / "train")
    train_idx, _ = stratified_split(scan.targets, 0.2, 42)  # the training split of DataConfig's defaults
    chosen = stratified_subset([scan.targets[i] for i in train_idx], settings.feature_photos, 0)
    images = []
    for i in chosen:
        image = load_rgb(scan.samples[train_idx[i]][0], short_side=prep.resize)
        images.append(torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).contiguous())
    backbone = module.model.backbone
    transform = eval_transform(prep)
    extract_features(backbone, images[:2], transform, desc="backbone warm-up")
    start = time.perf_counter()
    features = extract_features(backbone, images, transform, desc="backbone")  # its default batch, as training runs it
    backbone_seconds = time.perf_counter() - start
    per_photo = backbone_seconds / len(images)

    n_train = len(train_idx)
    cached = features.repeat((n_train + len(features) - 1) // len(features), 1)[:n_train].contiguous()
    labels = torch.randint(0, max(1, int(module.model.head.weight.shape[0])), (n_train,), generator=torch.Generator().manual_seed(0))
    head = nn.Linear(cached.shape[1], int(module.model.head.weight.shape[0]))
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    order = torch.randperm(n_train, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    for begin in range(0, n_train, 32):
        batch = order[begin : begin + 32]
        loss = loss_fn(head(cached[batch]), labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    head_epoch_seconds = time.perf_counter() - start
    pass_seconds = per_photo * n_train
    return {
        "photos_timed": len(images),
        "backbone_ms_per_photo": 1000 * per_photo,
        "train_photos": n_train,
        "feature_pass_seconds_extrapolated": pass_seconds,
        "head_epoch_seconds": head_epoch_seconds,
        "feature_dim": int(cached.shape[1]),
        "ratio": pass_seconds / head_epoch_seconds if head_epoch_seconds > 0 else None,
    }


# --------------------------------------------------------------------------- the report


def _fmt(value: Any, spec: str = ".1f", suffix: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:{spec}}{suffix}"


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _pct(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def models_table(rows: Sequence[dict]) -> str:
    lines = [MODELS_TABLE_HEADER, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        if row.get("top1") is None:
            top1 = "n/a"
        else:
            low, high = row["top1_ci95"]
            top1 = f"{_pct(row['top1'])} ({_pct(low)}–{_pct(high)}, n={row['test_images']})"
        e2e = "n/a" if row.get("e2e_ms_p50") is None else f"{row['e2e_ms_p50']:.1f} / {row['e2e_ms_p95']:.1f}"
        lines.append(
            f"| {row['model']} | {top1} | {_pct(row.get('top5'))} | {_duration(row.get('train_wall_seconds'))} "
            f"| {_fmt(row.get('seconds_per_epoch'), '.1f')} | {_fmt(row.get('images_per_second_batch1'), '.1f')} "
            f"| {_fmt(row.get('images_per_second_batch32'), '.1f')} | {e2e} | {_fmt(row.get('peak_rss_mb'), '.0f')} "
            f"| {_fmt(row.get('file_mb'), '.1f')} |"
        )
    return "\n".join(lines)


def training_table(training: dict) -> str:
    lines = [TRAINING_TABLE_HEADER, "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for way in training["ways"].values():
        lines.append(
            f"| {way['label']} | {way['dataset']} | {way['memory_layout']} | {way['crop']} | {training['batch_size']} "
            f"| {way['images']} | {way['images_per_second']:.1f} | {_pct(way['data_wait_fraction'])} | {way['setup_seconds']:.1f} |"
        )
    return "\n".join(lines)


def to_markdown(result: dict) -> str:
    """The whole report as Markdown (what bench.md holds)."""
    machine = result["machine"]
    lines = [
        "# Landmark Tagger — benchmark",
        "",
        f"Command: `{result['command']}`  ",
        f"Date: {machine['date']}  ",
        f"Data: `{result['data']['path']}` ({result['data']['source']})  ",
        f"Mode: {'quick (tiny sizes: a smoke test, not a measurement)' if result['settings']['quick'] else 'full'}",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {machine['cpu_model']} (native bfloat16: {'yes' if machine['cpu_bf16_native'] else 'no'}) |",
        f"| cores | os.cpu_count() = {machine['os_cpu_count']}, usable = {machine['usable_cores']}, torch threads = {machine['torch_threads']} |",
        f"| RAM | {_fmt(machine.get('ram_gb'), '.1f', ' GB')} (available at start: {_fmt(machine.get('ram_available_gb'), '.1f', ' GB')}) |",
        f"| load average (1/5/15 min) | start {machine.get('load_average_start')}, end {machine.get('load_average_end')} |",
        f"| Python / torch / torchvision | {machine['python']} / {machine['torch']} / {machine['torchvision']} |",
        f"| OS | {machine['platform']} |",
        "",
        "## Models",
        "",
    ]
    if result["models"]:
        lines.append(models_table(result["models"]))
        for row in result["models"]:
            if row.get("training_source"):
                extra = ""
                if row.get("feature_seconds") is not None:
                    extra = f" (of which frozen-backbone features: {_duration(row['feature_seconds'])} as recorded; features already in the on-disk cache cost seconds, a cold pass: see the feature-cache table)"
                epochs = f", {row['epochs']} epochs" if row.get("epochs") else ""
                lines.append(f"\n{row['model']}: training time from {row['training_source']}{epochs}{extra}.")
            for name, error in row.get("errors", {}).items():
                lines.append(f"\n{row['model']}: {name} not measured ({error}).")
    else:
        lines.append("No exported models found (give --models, or export one into checkpoints/).")
    training = result.get("training_throughput")
    lines += ["", "## Training throughput and data loading (MyModel)", ""]
    if training:
        lines += [
            training_table(training),
            "",
            f"Ours vs the course starter: **{training['speedup']:.2f}×** the training images/s "
            f"(MyModel widths {tuple(training['widths'])}, {training['optimizer']}, {training['workers']} DataLoader worker(s), "
            f"{training['epochs']} short epoch(s) of up to {training['batches_per_epoch']} batches after one untimed warm-up batch). "
            "The crops differ (224 vs ours), so this is the effect of the whole recipe; 'waiting for data' is the share "
            "of the timed loop spent blocked on the DataLoader, timed as src.training.loop does.",
        ]
    else:
        lines.append("Not measured" + (f": {result['errors']['training_throughput']}" if result.get("errors", {}).get("training_throughput") else "."))
    caches = [(row["model"], row["feature_cache"]) for row in result["models"] if row.get("feature_cache")]
    if caches:
        lines += [
            "",
            "## Feature cache (transfer)",
            "",
            "| model | backbone ms/photo | one feature pass over the train split | head-only epoch on cached features | ratio |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, cache in caches:
            lines.append(
                f"| {name} | {cache['backbone_ms_per_photo']:.1f} | {_duration(cache['feature_pass_seconds_extrapolated'])} "
                f"({cache['train_photos']} photos, extrapolated from {cache['photos_timed']}) | {_duration(cache['head_epoch_seconds'])} "
                f"| {_fmt(cache['ratio'], '.0f', '×')} |"
            )
    lines += ["", "## How each number is measured", ""] + [f"- {note}" for note in result["notes"]]
    return "\n".join(lines) + "\n"


NOTES = [
    "test top-1 / top-5: src.evaluate.evaluate_model on <data>/test (every class of the model, the model's own "
    "preprocessing); the interval is Wilson's 95 % score interval.",
    "train wall time, s/epoch: as recorded by the training run (export metadata, or its results/*.json); "
    "n/a when nothing recorded it. Transfer: cached trunk activations + tail fine-tuning (+ the linear probe with --no-refit; its epochs are in the report's finetune history).",
    "img/s: uint8 [B, 3, resize, resize] tensors through the exported TorchScript file (preprocessing included), "
    "after warm-up, torch threads = all usable cores unless --threads says otherwise (see the machine table).",
    "ms/photo: the bytes of real test JPEGs through src.recognize.Recognizer.recognize (decode at the model's "
    "size, predict, decide), p50 / p95 over the runs.",
    "peak RSS: the RSS high-water mark (VmHWM) of a fresh Python process that imports src.serving.recognize, loads the model and recognises "
    "one photo (the Python + torch import alone is import_rss_mb in bench.json).",
    "file: the exported file's size (MB = 10^6 bytes).",
    "Timings depend on what else runs on the machine: see the load average above.",
]


# --------------------------------------------------------------------------- entry point


def _default_models() -> list[Path]:
    return sorted(CHECKPOINTS.glob("*_exported.pt"))


def run_benchmark(
    data: Optional[Path],
    models: Optional[Sequence[Path]],
    out: Path,
    settings: BenchSettings,
    command: str,
    results_dir: Path = RESULTS,
    training: bool = True,
) -> dict[str, Any]:
    """Measure everything, write `out/bench.json` and `out/bench.md`, print the Markdown; returns the result."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads or usable_cores())
    try:
        with ExitStack() as stack:
            if data is not None:
                data_root, source = Path(data), "given"
            elif DEFAULT_DATA.is_dir():
                data_root, source = DEFAULT_DATA, "default"
            else:
                from src.data.synthetic import make_synthetic_dataset

                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-data-")))
                data_root, source = make_synthetic_dataset(tmp / "data"), "generated (src.data.synthetic): not real photos"
                print(f"{DEFAULT_DATA} not found: benchmarking on a generated data set", file=sys.stderr)
            model_paths = [Path(m) for m in models] if models else _default_models()
            result: dict[str, Any] = {
                "command": command,
                "cwd": str(Path.cwd()),
                "python_executable": sys.executable,
                "machine": machine_info(),
                "data": {"path": str(data_root), "source": source},
                "settings": asdict(settings),
                "models": [],
                "training_throughput": None,
                "errors": {},
                "notes": list(NOTES),
            }
            for path in model_paths:
                if not path.exists():
                    result["errors"][str(path)] = "model file not found"
                    print(f"skipping {path}: not found", file=sys.stderr)
                    continue
                result["models"].append(benchmark_model(path, data_root, settings, results_dir))
            if training:
                try:
                    result["training_throughput"] = measure_training_throughput(data_root, settings)
                except Exception as error:  # noqa: BLE001 - keep the model rows
                    result["errors"]["training_throughput"] = f"{type(error).__name__}: {error}"
                    print(f"training throughput failed: {error}", file=sys.stderr)
        try:
            result["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        except OSError:  # pragma: no cover
            result["machine"]["load_average_end"] = None
    finally:
        torch.set_num_threads(previous_threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(result)
    _write_atomic(out / "bench.json", json.dumps(result, indent=2, default=str) + "\n")
    _write_atomic(out / "bench.md", markdown)
    print(markdown)
    print(f"wrote {out / 'bench.json'} and {out / 'bench.md'}", file=sys.stderr)
    return result


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Benchmark the exported models and the training data pipeline; writes bench.json and bench.md.")
    parser.add_argument("--data", default=None, help=f"folder with train/ and test/ (default: {DEFAULT_DATA} when present, else a generated set)")
    parser.add_argument("--models", nargs="+", default=None, help="exported TorchScript files (default: every checkpoints/*_exported.pt)")
    parser.add_argument("--out", default="results", help="folder for bench.json and bench.md (default: results/)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test in seconds, not a measurement")
    parser.add_argument("--baseline-epochs", type=int, default=None, help="short epochs per recipe in the data-loading comparison (default 1)")
    parser.add_argument("--batches", type=int, default=None, help="batches per short epoch (default 20; --quick: 3)")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers for both recipes (default: ScratchRecipe.num_workers; --quick: 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all usable cores)")
    parser.add_argument("--results", default=str(RESULTS), help="where training runs wrote their reports (scratch*.json, transfer*.json)")
    parser.add_argument("--no-training", action="store_true", help="skip the training-throughput comparison")
    args = parser.parse_args(argv)
    settings = BenchSettings.quick_settings() if args.quick else BenchSettings()
    if args.baseline_epochs is not None:
        settings.train_epochs = max(1, args.baseline_epochs)
    if args.batches is not None:
        settings.train_batches = max(1, args.batches)
    if args.workers is not None:
        settings.train_workers = max(0, args.workers)
    if args.threads is not None:
        settings.threads = max(1, args.threads)
    raw = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "-m", "src.bench", *raw])
    return run_benchmark(
        Path(args.data) if args.data else None, [Path(m) for m in args.models] if args.models else None, Path(args.out),
        settings, command, results_dir=Path(args.results), training=not args.no_training,
    )


if __name__ == "__main__":
    main()
