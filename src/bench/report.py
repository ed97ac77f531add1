"""The benchmark's Markdown report (what `bench.md` holds and what is printed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MODELS_TABLE_HEADER = (
    "| model | test top-1 (95% CI) | top-5 | train wall time | s/epoch | img/s batch 1 | img/s batch 32 "
    "| ms/photo p50 / p95 | peak RSS (MB) | file (MB) |"
)
TRAINING_TABLE_HEADER = (
    "| recipe | dataset | memory layout | crop | batch | images timed | img/s | waiting for data | setup (s) |"
)

def _fmt(value: Any, spec: str = ".1f", suffix: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:{spec}}{suffix}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _pct(value: float | None) -> str:
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


TAGGER_TABLE_HEADER = (
    "| precision | engine | model alone (img/s) | model step as the tagger calls it (img/s) | decode, 1 core (photos/s) "
    "| decode, N workers (photos/s) | tagger (photos/s) | limit (photos/s) | tagger / limit |"
)


def tagger_section(tagger: dict) -> list[str]:
    """The tagger's rates against the limit, the library context's cost and locate_library by size (src.bench.tagger)."""
    lines = [
        f"`{tagger['model']}` on {tagger['photos']} photos of `{tagger.get('photos_folder', '?')}`, batch {tagger['batch_size']}, "
        f"{tagger['workers']} decoding workers, {tagger['cores']} cores, medians of {tagger['repeats']} interleaved round(s); "
        f"native bfloat16: {'yes' if tagger['bf16_native'] else 'no (bf16 not measured: OpenVINO would only emulate it)'}; "
        f"load average before {tagger['load_average_before']}, after {tagger['load_average_after']}.",
        "", TAGGER_TABLE_HEADER, "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in tagger["precisions"]:
        lines.append(
            f"| {row['precision']} | {row['runtime']} ({row['requests']} request(s)) | {row['model_images_per_second']:.1f} "
            f"| {row['model_step_images_per_second']:.1f} | {row['decode_photos_per_second_one_core']:.1f} "
            f"| {row['decode_photos_per_second_workers']:.1f} | {row['tagger_photos_per_second']:.1f} "
            f"| {row['limit_photos_per_second']:.1f} | **{row['ratio']:.2f}** |"
        )
    context = tagger.get("context")
    if context:
        library, without, with_ = context["library"], context["without"], context["with"]
        lines += [
            "", f"Library context: {library['photos']} generated JPEGs ({library['phone']} phone, {library['with_gps']} with GPS, "
            f"{library['sites']} sites, {'real photos of the sites' if library['from_real_photos'] else 'generated pictures'}), "
            f"tagged in a fresh process each, medians of {context['repeats']} round(s).", "",
            "| context | wall time (s) | photos/s | peak RSS (MB) | sources |", "|---|---:|---:|---:|---|",
        ]
        for name, run in (("none (`context=None`)", without), ("`ContextConfig()`", with_)):
            sources = ", ".join(f"{key} {value}" for key, value in sorted(run["sources"].items()))
            lines.append(f"| {name} | {run['seconds']:.1f} | {run['photos'] / run['seconds']:.1f} | {run['peak_mb']:.0f} | {sources} |")
        per_photo = context["extra_bytes_per_photo"]
        lines += ["", f"Context cost: **{context['cost_percent']:+.1f} %** wall time (target <= 10 %), "
                  f"{context['extra_peak_mb']:+.1f} MB peak ({_fmt(per_photo, '.0f')} bytes per photo)."]
    scaling = tagger.get("locate_library")
    if scaling:
        lines += ["", "| locate_library alone: photos | seconds | µs per photo | placed by the context |", "|---:|---:|---:|---:|"]
        lines += [f"| {row['photos']} | {row['seconds']:.2f} | {row['us_per_photo']:.0f} | {row['placed_by_context']} |" for row in scaling]
    return lines


def to_markdown(result: dict) -> str:
    """The whole report as Markdown (what bench.md holds)."""
    machine = result["machine"]
    lines = [
        "# Landmark Tagger — benchmark",
        "",
        f"Command: `{result['command']}`  ",
        f"Date: {machine['date']}  ",
        f"Data: `{result['data']['display']}` ({result['data']['source']})  ",
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
    if "models" not in result.get("sections", ["models"]):
        lines.append("Not measured (--sections).")
    elif result["models"]:
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
            (f"Ours vs the course starter: **{training['speedup']:.2f}×** the training images/s "
            f"(MyModel widths {tuple(training['widths'])}, {training['optimizer']}, {training['workers']} DataLoader worker(s), "
            f"{training['epochs']} short epoch(s) of up to {training['batches_per_epoch']} batches after one untimed warm-up batch). "
            "The crops differ (224 vs ours), so this is the effect of the whole recipe; 'waiting for data' is the share "
            "of the timed loop spent blocked on the DataLoader, timed as src.training.loop does."),
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
    if "tagger" in result.get("sections", []):
        lines += ["", "## Tagger: against the machine's limit, and the library context's cost", ""]
        lines += tagger_section(result["tagger"]) if result.get("tagger") else ["Not measured: " + result.get("errors", {}).get("tagger", "?")]
    if "app" in result.get("sections", []):
        from src.bench.app_pages import app_section

        lines += ["", "## The app: `make app` and a visitor's page (headless Chromium)", ""]
        lines += app_section(result["app"]) if result.get("app") else ["Not measured: " + result.get("errors", {}).get("app", "?")]
    lines += ["", "## How each number is measured", ""] + [f"- {note}" for note in result["notes"]]
    return "\n".join(lines) + "\n"


NOTES = [
    ("test top-1 / top-5: src.evaluation.evaluate.evaluate_model on <data>/test (every class of the model, the model's own "
    "preprocessing); the interval is Wilson's 95 % score interval."),
    ("train wall time, s/epoch: as the training run recorded them in the exported file (the `report` in its metadata, "
    "src.export.load_exported); n/a when the export carries none: never estimated. Transfer: cached trunk activations + tail "
    "fine-tuning (+ the linear probe with --no-refit); s/epoch is the mean fine-tuning epoch of the report's history."),
    ("img/s: uint8 [B, 3, resize, resize] tensors through the exported TorchScript file (preprocessing included), "
    "after warm-up, torch threads = all usable cores unless --threads says otherwise (see the machine table)."),
    ("ms/photo: the bytes of real test JPEGs through src.serving.recognizer.recognize.Recognizer.recognize (decode at the model's "
    "size, predict, decide), p50 / p95 over the runs."),
    ("peak RSS: the RSS high-water mark (VmHWM) of a fresh Python process (python -m src.bench.memory_worker) that imports "
    "src.serving.recognizer.recognize, loads the model and recognises one photo (the Python + torch import alone is import_rss_mb "
    "in the run record)."),
    "file: the exported file's size (MB = 10^6 bytes).",
    ("tagger: model alone = OpenVINO's own loop (AsyncInferQueue, THROUGHPUT hint, as many requests as the plugin asks for, "
    "pre-made random batches at the tagger's batch size and precision; TorchScript: a plain loop); model step = "
    "Recognizer.recognize_squares (the engine as the tagger compiled it, the reference similarities and the decisions); "
    "decode = the tagger's per-photo step (check_and_decode: bounded read, own-GPS check, load_rgb at the model's size); "
    "tagger = tag_paths(context=None), nothing written. limit = 1 / (1/model + 1/(cores x decode on 1 core)): the "
    "core-seconds a photo needs from the model and the decoder, summed. The ratio is taken per round, then the median."),
    ("library context: the same generated library tagged by python -m src.bench.tagger_worker with context=None and with "
    "ContextConfig(), alternating which goes first; peak RSS is each process's VmHWM; memory per photo = the peak's "
    "difference over the photos. locate_library alone: synthetic LibraryPhotos of the same trip (no files)."),
    ("app: src.bench.app_pages: `make app` started on a free port while headless Chromium asks for the page until the upload "
    "button shows (first usable page); then one visitor after another in one browser (its cache warm after the first visit, "
    "as for a returning visitor), each once the pool of pre-heated kernels is full and idle again."),
    "Timings depend on what else runs on the machine: see the load average above.",
]
