"""Scale benchmark: the Ray tagger against the local tagger, and DDP training against one process.

    python scripts/scale_bench.py                      # both parts, default data, a run record in results/runs
    python scripts/scale_bench.py --skip-ddp --limit 300 --runs /tmp/runs

Tagging (same photos, same model, same machine, one after the other):
* local: `tag.tag_paths` (the model on torch's threads, decoding threads), the model already loaded;
* ray job: `ray_tag.tag_paths_ray` end to end with Ray already started: actors start and load the model;
* ray steady: photos/s from the first tenth of the report rows to the last, i.e. once actors are up and
  the pipeline is full (the per-job start left out: it is paid once per job, not per photo).
photos/s per core = steady photos/s / the cores Ray was given: the figure to size a cluster with.
Agreement with the local tagger: the same status and landmark, and the largest probability difference
(batches of another size may round the last digits differently).

Training: `python -m src train --recipe scratch` on a generated set (`src.data.synthetic`) for a few
epochs, once as 1 process x 2 threads and once under torchrun as 2 processes x 1 thread (gloo), the same
global batch; seconds per epoch (the first epoch, which warms caches, left out) from the run's history.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.machine import machine_info
from src.runs import RUNS_DIR, save_run


def bench_tagging(photos: list[Path], model: Path, cpus: int, pools: list[tuple[int, float]], batch: int) -> dict:
    """The local tagger, then the Ray tagger for each (actors, CPUs per actor) pool, on the same photos."""
    import ray

    from src.serving.tagger.ray_tag import RayTagConfig, _init_ray, tag_paths_ray
    from src.serving.recognizer.recognize import Recognizer
    from src.serving.tagger.tag import tag_paths

    recognizer = Recognizer(model)
    tag_paths(photos[:batch], recognizer, progress=False)  # warm the model's first calls
    start = time.perf_counter()
    local = tag_paths(photos, recognizer, batch_size=batch, workers=cpus, progress=False)
    local_s = time.perf_counter() - start

    n = len(photos)
    local_rate = n / local_s
    result: dict = {"photos": n, "cpus": cpus, "batch_size": batch, "local_s": local_s, "local_photos_per_s": local_rate, "ray": []}
    start = time.perf_counter()
    _init_ray(RayTagConfig(num_cpus=cpus))
    result["ray_startup_s"] = time.perf_counter() - start
    try:
        for actors, actor_cpus in pools:
            config = RayTagConfig(num_cpus=cpus, actors=actors, actor_cpus=actor_cpus, batch_size=batch, progress=False)
            arrivals: list[float] = []
            start = time.perf_counter()
            rows = tag_paths_ray(photos, model, config=config, on_row=lambda _row, times=arrivals: times.append(time.perf_counter()))
            job_s = time.perf_counter() - start
            tenth = n // 10  # the steady rate starts after the first tenth of the rows: actors up, pipeline full
            steady_rate = (n - 1 - tenth) / max(1e-9, arrivals[-1] - arrivals[tenth])
            answers = [(a.status, a.landmark) == (b.status, b.landmark) for a, b in zip(rows, local)]
            probability_gap = max(abs((a.probability or 0) - (b.probability or 0)) for a, b in zip(rows, local))
            result["ray"].append({
                "actors": actors,
                "actor_cpus": actor_cpus,
                "job_s": job_s,
                "job_photos_per_s": n / job_s,
                "first_row_s": arrivals[0] - start,
                "steady_photos_per_s": steady_rate,
                "steady_photos_per_s_per_core": steady_rate / cpus,
                "overhead_job": local_rate / (n / job_s),
                "overhead_steady": local_rate / steady_rate,
                "same_answers_as_local": sum(answers),
                "largest_probability_difference": probability_gap,
            })
            print(json.dumps(result["ray"][-1]), flush=True)
    finally:
        ray.shutdown()
    return result


def _train(data: Path, folder: Path, processes: int, threads: int, epochs: int) -> dict:
    options = [
        "-m", "src", "train", "--recipe", "scratch", "--data", str(data), "--epochs", str(epochs), "--time-budget-minutes", "0",
        "--batch-size", "32", "--num-workers", "0", "--no-resume", "--no-evaluate", "--checkpoint", str(folder / "best.pt"),
        "--export", str(folder / "model.pt"), "--runs", str(folder / "runs"),
    ]
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] if processes > 1 else []
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *launcher, *options], cwd=ROOT, env=env, check=False, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"training failed ({processes} x {threads}):\n{done.stderr[-3000:]}")
    import torch

    history = torch.load(folder / "best.resume.pt", weights_only=True)["history"]
    steady = history["epoch_seconds"][1:] or history["epoch_seconds"]
    return {
        "processes": processes,
        "threads": threads,
        "seconds_per_epoch": statistics.median(steady),
        "wall_s": wall,
        "train_loss": history["train_loss"],
        "valid_accuracy": history["valid_accuracy"],
    }


def bench_ddp(folder: Path, epochs: int, per_class: int) -> dict:
    from src.data.synthetic import make_synthetic_dataset

    data = make_synthetic_dataset(folder / "data", n_classes=4, n_train=per_class, n_test=4, size=(256, 192), with_bad_files=False)
    one = _train(data, folder / "1x2", processes=1, threads=2, epochs=epochs)
    two = _train(data, folder / "2x1", processes=2, threads=1, epochs=epochs)
    return {
        "data": f"generated: 4 classes x {per_class} train photos, 256x192",
        "one_process_two_threads": one,
        "two_processes_one_thread": two,
        "speedup_ddp": one["seconds_per_epoch"] / two["seconds_per_epoch"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "indian_monuments" / "test", help="folder of photos to tag")
    parser.add_argument("--limit", type=int, default=0, help="tag at most this many photos (0: all)")
    parser.add_argument("--model", type=Path, default=ROOT / "checkpoints" / "transfer_exported.pt")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs given to Ray, and decoding threads of the local tagger")
    parser.add_argument("--pools", nargs="+", default=["1x1", "2x0.75"], metavar="ACTORSxCPUS",
                        help="Ray actor pools to measure: actors x CPUs each (decoding tasks take 0.5 CPU each)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3, help="DDP part: epochs per configuration")
    parser.add_argument("--per-class", type=int, default=120, help="DDP part: generated training photos per class")
    parser.add_argument("--skip-tagging", action="store_true")
    parser.add_argument("--skip-ddp", action="store_true")
    parser.add_argument("--runs", type=Path, default=RUNS_DIR, help="folder of run records (default: %(default)s)")
    args = parser.parse_args()

    from src.data.images import is_image_file

    report: dict = {"machine": machine_info()}
    with tempfile.TemporaryDirectory(prefix="scale_bench_") as temp:
        if not args.skip_tagging:
            photos = sorted(p for p in args.photos.rglob("*") if is_image_file(p))
            photos = photos[: args.limit] if args.limit > 0 else photos
            if not photos:
                parser.error(f"no photos under {args.photos}")
            pools = [(int(a), float(c)) for a, c in (pool.split("x") for pool in args.pools)]
            report["tagging"] = bench_tagging(photos, args.model, args.cpus, pools, args.batch_size)
            print(json.dumps(report["tagging"], indent=2), flush=True)
        if not args.skip_ddp:
            report["ddp"] = bench_ddp(Path(temp), args.epochs, args.per_class)
            print(json.dumps(report["ddp"], indent=2), flush=True)
    settings = {k: str(v) for k, v in vars(args).items()}
    path = save_run("bench", "scale", settings, {"photos": str(args.photos), "model": str(args.model)},
                    {k: v for k, v in report.items() if k != "machine"}, folder=args.runs)
    print(f"run record {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
