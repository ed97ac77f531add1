"""`python -m src bench`: measure every model, then the training pipeline; write the run record
(`results/runs/bench-<mode>-<hash>.json`, src.runs' format) and the Markdown report (`bench.md`)."""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from src.bench.measure import benchmark_model
from src.bench.report import NOTES, to_markdown
from src.bench.settings import CHECKPOINTS, DEFAULT_DATA, SECTIONS, BenchSettings, bench_parser, default_bench_folder
from src.bench.training import measure_training_throughput
from src.machine import machine_info, usable_cores
from src.runs import portable, portable_path, run_id, write_json_atomically


def _default_models() -> list[Path]:
    return sorted(CHECKPOINTS.glob("*_exported.pt"))


def run_record(result: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The benchmark's result as a run record (kind "bench", recipe_name "full" or "quick") and its id.

    Written here rather than by `src.runs.save_run` so that the machine is the one read when the
    measurements began (with its load average then; the load average at the end goes in the metrics).
    """
    machine = dict(result["machine"])
    load_average_end = machine.pop("load_average_end", None)
    recipe_name = "quick" if result["settings"]["quick"] else "full"
    recipe = {"settings": result["settings"], "models": [row["path"] for row in result["models"]], "sections": result.get("sections")}
    data = {"roots": [result["data"]["display"]]}
    record = {
        "kind": "bench",
        "recipe_name": recipe_name,
        "recipe": recipe,
        "data": data,
        "machine": machine,
        "command": result["command"],
        "date": machine.get("date"),
        "metrics": {
            "models": result["models"],
            "training_throughput": result["training_throughput"],
            "tagger": result.get("tagger"),
            "app": result.get("app"),
            "errors": result["errors"],
            "notes": result["notes"],
            "load_average_end": load_average_end,
            "data_source": result["data"]["source"],
        },
    }
    return run_id(f"bench-{recipe_name}", recipe, data, machine), portable(record)


def run_benchmark(
    data: Path | None,
    models: Sequence[Path] | None,
    out: Path,
    settings: BenchSettings,
    command: str,
    runs: Path | None = None,
    training: bool = True,
    sections: Sequence[str] = SECTIONS,
    tag_photos: Path | None = None,
    app_visits: int = 5,
    app_starts: int = 1,
) -> dict[str, Any]:
    """Measure the `sections` asked for ("models", "training", "tagger", "app"), write the run record into `runs` and
    `out/bench.md`, print the Markdown. tag_photos: the tagger section's photos (default <data root>/test).

    Returns the result, with `record_path` (the run record) and `markdown_path`.
    """
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
                "machine": machine_info(),
                "data": {"path": str(data_root), "display": portable_path(data_root), "source": source},
                "settings": asdict(settings),
                "models": [],
                "training_throughput": None,
                "tagger": None,
                "app": None,
                "sections": list(sections),
                "errors": {},
                "notes": list(NOTES),
            }
            for path in model_paths if "models" in sections else []:
                if not path.exists():
                    result["errors"][str(path)] = "model file not found"
                    print(f"skipping {path}: not found", file=sys.stderr)
                    continue
                result["models"].append(benchmark_model(path, data_root, settings))
            if training and "training" in sections:
                try:
                    result["training_throughput"] = measure_training_throughput(data_root, settings)
                except Exception as error:  # noqa: BLE001 - keep the model rows
                    result["errors"]["training_throughput"] = f"{type(error).__name__}: {error}"
                    print(f"training throughput failed: {error}", file=sys.stderr)
            if "tagger" in sections:
                _tagger_section(result, list(models or []), Path(tag_photos) if tag_photos else data_root / "test", settings)
            if "app" in sections:
                _app_section(result, app_visits, app_starts)
        try:
            result["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        except OSError:  # pragma: no cover
            result["machine"]["load_average_end"] = None
    finally:
        torch.set_num_threads(previous_threads)
    markdown = to_markdown(result)
    name, record = run_record(result)
    runs = Path(runs) if runs is not None else Path(out) / "runs"  # beside bench.md: results/runs/ only when asked (make bench)
    result["record_path"] = str(write_json_atomically(runs / f"{name}.json", record))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result["markdown_path"] = str(out / "bench.md")
    tmp = out / "bench.md.tmp"
    tmp.write_text(markdown)
    tmp.replace(out / "bench.md")
    print(markdown)
    print(f"wrote {result['record_path']} and {result['markdown_path']}", file=sys.stderr)
    return result


def _tagger_section(result: dict[str, Any], model_paths: Sequence[Path], photos: Path, settings: BenchSettings) -> None:
    """The tagger against the machine's limit and the library context's cost (`src.bench.tagger`), on the
    tagger's default model (the first of --models when given); a failure is an error entry, the rest is kept."""
    from src.bench.tagger import measure_tagger_section
    from src.serving.recognizer.recognize import default_model_path

    model = model_paths[0] if model_paths else default_model_path()
    try:
        result["tagger"] = measure_tagger_section(model, photos, settings, settings.runtime)
        result["tagger"]["photos_folder"] = portable_path(photos)
    except Exception as error:  # noqa: BLE001 - keep the other sections
        result["errors"]["tagger"] = f"{type(error).__name__}: {error}"
        print(f"tagger section failed: {error}", file=sys.stderr)


def _app_section(result: dict[str, Any], visits: int, starts: int) -> None:
    """`make app` and a visitor's page in headless Chromium (`src.bench.app_pages`); a failure (no
    Chromium, a server that never answered) is an error entry, the rest is kept."""
    from src.bench.app_pages import measure_app_pages

    try:
        result["app"] = measure_app_pages(visits=max(2, visits), starts=max(1, starts))
    except Exception as error:  # noqa: BLE001 - keep the other sections
        result["errors"]["app"] = f"{type(error).__name__}: {error}"
        print(f"app section failed: {error}", file=sys.stderr)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = bench_parser()
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
    settings.runtime = args.runtime
    if args.library_photos is not None:
        settings.library_photos = max(1, args.library_photos)
    if args.context_repeats is not None:
        settings.context_repeats = max(1, args.context_repeats)
    if args.locate_sizes is not None:
        settings.locate_sizes = tuple(max(1, size) for size in args.locate_sizes)
    raw = sys.argv[1:] if argv is None else list(argv)
    command = portable(shlex.join(["python", "-m", "src", "bench", *raw]))  # bench.md and the record: no machine paths
    out = Path(args.out) if args.out else default_bench_folder(args.quick)
    return run_benchmark(
        Path(args.data) if args.data else None, [Path(m) for m in args.models] if args.models else None, out,
        settings, command, runs=Path(args.runs) if args.runs else None, training=not args.no_training,
        sections=args.sections, tag_photos=Path(args.tag_photos) if args.tag_photos else None,
        app_visits=args.app_visits, app_starts=args.app_starts,
    )
