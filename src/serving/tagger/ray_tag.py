"""Batch tagging on Ray Data: the local tagger's answers, with decoding and the model spread over a cluster.

    python -m src tag --engine ray [--address ADDR] [--actors N] [--ray-batch-size B] PATHS... -o report.parquet

The pipeline is the local tagger's (`src.serving.tagger.tag`), cut into Ray Data stages (the steps both
engines share are `src.serving.tagger.photo_pipeline`'s):

1. the photo list: PATHS walked on the driver (`photo_files.find_images`), or a listing file (``.csv`` or
   ``.parquet`` with a ``file`` or ``path`` column) read by Ray Data itself, so a listing of millions
   of photos is never held by the driver;
2. decoding, in parallel Ray tasks: the GPS check and decode of `photo_pipeline.check_and_decode`, then the
   model's centre square (`src.data.images.centre_square`), as raw uint8 pixels;
3. recognition, in an actor pool: one exported model per actor (`Recognizer`, the decision rule of the
   app, the service and the local tagger), rows built by `photo_pipeline.row_from`, GPS written by `photo_pipeline.write_place`
   (the same safe, atomic writer; only confident landmarks with coordinates).

A bad photo becomes an ``error`` row and the job goes on, as in the local tagger. The photos must be
readable at the same path on every node (a shared file system), and the project importable there (the
same checkout path: it is put on the workers' PYTHONPATH). Ray is imported only when this engine runs.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from src.serving.tagger.photo_files import Found, find_images, relative_destination
from src.serving.tagger.photo_pipeline import Limits, check_and_decode, row_from, write_place
from src.serving.tagger.tag_report import COLUMNS, TagRow, TagStats

PROJECT_ROOT = Path(__file__).resolve().parents[3]
LISTING_SUFFIXES = (".csv", ".parquet")
LISTING_COLUMNS = ("file", "path")  # the column of a listing file that names the photos, in this order


@dataclass(frozen=True)
class RayTagConfig:
    """How the work is spread over Ray (what is computed is the local tagger's)."""

    address: str | None = None  # a running cluster ("auto", "ray://host:10001", "host:6379"); None: start a local Ray
    num_cpus: int | None = None  # local Ray only: CPUs it may use (None: all of this machine's)
    actors: int = 1  # model replicas: one exported model per actor
    actor_cpus: float = 1.0  # CPUs reserved per actor; its torch threads follow it
    batch_size: int = 32  # photos per model call in an actor
    decode_batch: int = 16  # photos per decoding task
    decode_cpus: float = 0.5  # CPUs reserved per decoding task (decoding waits on disk as well as the CPU)
    preserve_order: bool = True  # report rows in the order of the photo list (as the local tagger does)
    progress: bool = True  # Ray Data's progress bars

    def check(self) -> None:
        if self.actors < 1:
            raise ValueError("actors must be at least 1")
        if self.batch_size < 1 or self.decode_batch < 1:
            raise ValueError("batch sizes must be at least 1")
        if self.actor_cpus <= 0 or self.decode_cpus <= 0:
            raise ValueError("actor_cpus and decode_cpus must be positive")


def is_listing(path: str | Path) -> bool:
    """A CSV or Parquet file listing photos (rather than a photo or a folder)."""
    return Path(path).suffix.lower() in LISTING_SUFFIXES and Path(path).is_file()


def _listing_destination(photo: str, out_dir: Path) -> str:
    # A listing has no root folder to keep paths below: the whole absolute path is kept under out_dir,
    # so two photos never collide.
    absolute = Path(os.path.abspath(photo))
    return str(out_dir / absolute.relative_to(absolute.anchor))


class _Decoder:
    """What `photo_pipeline.check_and_decode` needs of a Recognizer (its decode), without loading the model."""

    def __init__(self, resize: int):
        self.resize = resize

    def decode(self, source):
        from src.data.images import load_rgb

        return load_rgb(source, short_side=self.resize)


def decode_batch(batch: dict[str, np.ndarray], resize: int, out_dir: str | None, in_place: bool) -> dict[str, list]:
    """Ray task: GPS check and decode of each photo; the model's centre square as raw uint8 bytes and the
    decoded size (a photo too small to show a landmark is never named)."""
    from src.data.images import centre_square

    decoder = _Decoder(resize)
    out: dict[str, list] = {key: [] for key in ("file", "destination", "kind", "message", "latitude", "longitude", "pixels", "width", "height")}
    destinations = batch.get("destination")
    for index, file in enumerate(batch["file"]):
        file = str(file)
        destination = str(destinations[index]) if destinations is not None else ""
        if not destination and (out_dir or in_place):
            destination = file if in_place else _listing_destination(file, Path(out_dir))
        kind, value = check_and_decode(decoder, Found(photo=Path(file), root=Path(file).parent, listed=Path(file)), Limits())
        pixels, message, latitude, longitude, width, height = b"", "", None, None, 0, 0
        if kind == "image":
            try:
                pixels = np.ascontiguousarray(centre_square(value, resize)).tobytes()
                width, height = value.size
            except Exception as error:  # noqa: BLE001 - one odd photo must not fail the job
                kind, message = "error", f"Cannot read this file: unexpected {type(error).__name__}: {error}."
        elif kind == "has_gps":
            latitude, longitude = value
        else:
            message = value
        for key, item in (("file", file), ("destination", destination), ("kind", kind), ("message", message),
                          ("latitude", latitude), ("longitude", longitude), ("pixels", pixels), ("width", width), ("height", height)):
            out[key].append(item)
    return out


class RecognizeActor:
    """Ray actor: one exported model; decoded squares in, report rows out (GPS written on the way)."""

    def __init__(self, model_path: str, threshold: float | None, top_k: int, batch_size: int, write_gps: bool, in_place: bool, threads: int,
                 placement: str | float | None = None):
        import torch

        from src.serving.recognizer.recognize import Recognizer

        torch.set_num_threads(max(1, threads))
        self.recognizer = Recognizer(model_path, threshold=threshold, placement=placement)
        self.top_k, self.batch_size, self.write_gps, self.in_place = top_k, batch_size, write_gps, in_place

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        side = self.recognizer.resize
        kinds = [str(kind) for kind in batch["kind"]]
        images = [i for i, kind in enumerate(kinds) if kind == "image"]
        squares = [np.frombuffer(batch["pixels"][i], dtype=np.uint8).reshape(side, side, 3) for i in images]
        results = {}
        for start in range(0, len(squares), self.batch_size):
            chosen = images[start : start + self.batch_size]
            sizes = [(int(batch["width"][i]), int(batch["height"][i])) for i in chosen]
            recognitions = self.recognizer.recognize_squares(np.stack(squares[start : start + self.batch_size]), top_k=self.top_k, sizes=sizes)
            results.update(zip(chosen, recognitions))
        rows = [self._row(batch, i, kind, results.get(i)) for i, kind in enumerate(kinds)]
        return {column: [getattr(row, column) for row in rows] for column in COLUMNS}

    def _row(self, batch: dict[str, np.ndarray], i: int, kind: str, result) -> TagRow:
        file = str(batch["file"][i])
        if kind == "has_gps":
            return TagRow(
                file=file, status="has_gps", latitude=float(batch["latitude"][i]), longitude=float(batch["longitude"][i]),
                message="already has a GPS position; its own metadata wins, left unchanged",
            )
        if kind == "error":
            return TagRow(file=file, status="error", message=str(batch["message"][i]))
        row = row_from(file, result)
        if self.write_gps and result.position is not None:
            photo, destination = Path(file), Path(str(batch["destination"][i]))
            if not self.in_place and destination.resolve() == photo.resolve():
                row.status, row.message = "error", row.message + "; refusing to overwrite the original without --in-place"
            else:
                write_place(row, photo, destination, result.top[0].info, sidecar=False)
        return row


def _init_ray(config: RayTagConfig) -> bool:
    """Start or join Ray unless it already runs in this process; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    # The workers import `src` from the same checkout path (a shared or identical tree on every node).
    runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}}
    if config.address:
        ray.init(address=config.address, runtime_env=runtime_env, log_to_driver=False)
        return True
    for attempt in (1, 2):
        try:
            ray.init(num_cpus=config.num_cpus, include_dashboard=False, runtime_env=runtime_env, log_to_driver=False)
            return True
        except Exception as error:  # Ray raises a bare Exception when its node starts too slowly
            # A local node must register within a fixed 30 s; a busy machine can miss that once.
            if attempt == 2 or "timed out during startup" not in str(error):
                raise
            ray.shutdown()
    return True


def _groups(paths: Sequence[str | Path]) -> list[list[str | Path]]:
    """Runs of photo/folder paths and single listings, in command-line order: one pipeline each, since
    a Ray Data union does not keep its inputs' order."""
    groups: list[list[str | Path]] = []
    for path in paths:
        if is_listing(path) or not groups or is_listing(groups[-1][0]):
            groups.append([path])
        else:
            groups[-1].append(path)
    return groups


def listing_column(listing: str | Path) -> str:
    """The column of a listing file that names the photos (read from its header or schema, not its rows)."""
    listing = Path(listing)
    if listing.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        columns = pq.read_schema(listing).names
    else:
        import csv

        with listing.open(newline="", encoding="utf-8") as handle:
            columns = next(csv.reader(handle), [])
    column = next((c for c in LISTING_COLUMNS if c in columns), None)
    if column is None:
        raise ValueError(f"{listing}: a listing needs a column named one of {LISTING_COLUMNS}; it has {columns}")
    return column


def _photo_dataset(group: Sequence[str | Path], out_dir: Path | None, in_place: bool):
    """One group (`_groups`) as a Ray Dataset with a ``file`` column (and ``destination`` for PATHS);
    None when it holds no photos."""
    import ray

    if is_listing(group[0]):
        listing = group[0]
        column = listing_column(listing)
        reader = ray.data.read_parquet if Path(listing).suffix.lower() == ".parquet" else ray.data.read_csv
        dataset = reader(str(listing)).select_columns([column])
        return dataset.rename_columns({column: "file"}) if column != "file" else dataset
    items = _folder_items(group, out_dir, in_place)
    return ray.data.from_items(items) if items else None


def _folder_items(group: Sequence[str | Path], out_dir: Path | None, in_place: bool) -> list[dict[str, str]]:
    """The photos of a group of photo/folder paths, each with where its tagged copy goes ("" when nothing is written)."""
    photos = find_images(group, exclude=out_dir)
    roots = sorted({item.root for item in photos}, key=str)
    return [{"file": str(item.photo),
             "destination": str(item.photo) if in_place else str(out_dir / relative_destination(item, roots)) if out_dir is not None else ""}
            for item in photos]


def destinations(paths: Sequence[str | Path], out_dir: str | Path | None, in_place: bool) -> dict[str, str]:
    """Where each photo's tagged copy goes, as the Ray pipeline computes it (for writing after the library context)."""
    out = Path(out_dir).resolve() if out_dir is not None else None
    found: dict[str, str] = {}
    for group in _groups(paths):
        if is_listing(group[0]):
            column = listing_column(group[0])
            if Path(group[0]).suffix.lower() == ".parquet":
                import pyarrow.parquet as pq

                files = [str(f) for f in pq.read_table(group[0], columns=[column]).column(column).to_pylist()]
            else:
                import csv

                with Path(group[0]).open(newline="", encoding="utf-8") as handle:
                    files = [row[column] for row in csv.DictReader(handle)]
            for file in files:
                found[file] = file if in_place else _listing_destination(file, out) if out is not None else ""
        else:
            found.update((item["file"], item["destination"]) for item in _folder_items(group, out, in_place))
    return found


def tag_paths_ray(
    paths: Sequence[str | Path],
    model_path: str | Path,
    *,
    threshold: float | None = None,
    top_k: int = 5,
    write_gps: bool = False,
    out_dir: str | Path | None = None,
    in_place: bool = False,
    config: RayTagConfig = RayTagConfig(),
    stats: TagStats | None = None,
    on_row: Callable[[TagRow], None] | None = None,
    placement: str | float | None = None,
) -> list[TagRow]:
    """`tag.tag_paths` on Ray: one TagRow per photo (photos and folders, or CSV/Parquet listings).

    on_row: called with each row as it arrives from the cluster (e.g. to stream a report).
    Starts a local Ray (or joins ``config.address``) unless Ray already runs in this process, and
    shuts down only a Ray it started. Never raises for a bad photo: it becomes an ``error`` row.
    """
    config.check()
    if write_gps and (out_dir is None) == (not in_place):
        raise ValueError("write_gps needs exactly one of out_dir=... or in_place=True")
    if not write_gps and (out_dir is not None or in_place):
        raise ValueError("out_dir and in_place only make sense with write_gps=True")
    out = Path(out_dir).resolve() if out_dir is not None else None
    for listing in filter(is_listing, paths):
        listing_column(listing)  # a listing without a photo column fails before any work starts
    from src.export import load_exported

    _, metadata = load_exported(model_path)  # the model size the decoders cut squares at; a bad file fails here, once
    resize = int(metadata.get("preprocessing", {}).get("resize", 256))
    stats = stats if stats is not None else TagStats()
    started = time.perf_counter()

    import ray

    started_ray = _init_ray(config)
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = config.preserve_order
        context.enable_progress_bars = config.progress
        rows: list[TagRow] = []
        for group in _groups(paths):
            photos = _photo_dataset(group, out, in_place)
            if photos is None:
                continue
            decoded = photos.map_batches(
                decode_batch, batch_size=config.decode_batch, num_cpus=config.decode_cpus,
                fn_kwargs={"resize": resize, "out_dir": str(out) if out else None, "in_place": in_place},
            )
            tagged = decoded.map_batches(
                RecognizeActor, batch_size=config.batch_size, compute=ray.data.ActorPoolStrategy(size=config.actors),
                num_cpus=config.actor_cpus,
                fn_constructor_kwargs={
                    "model_path": str(Path(model_path).resolve()), "threshold": threshold, "top_k": top_k,
                    "batch_size": config.batch_size, "write_gps": write_gps, "in_place": in_place, "placement": placement,
                    "threads": max(1, round(config.actor_cpus)),
                },
            )
            for batch in tagged.iter_batches(batch_format="pyarrow", batch_size=None):
                for record in batch.to_pylist():
                    rows.append(_tag_row(record))
                    if on_row is not None:
                        on_row(rows[-1])
    finally:
        if started_ray:
            ray.shutdown()

    stats.count(rows, time.perf_counter() - started)
    return rows


_FIELD_TYPES = {f.name: f.type for f in fields(TagRow)}


def _tag_row(record: dict[str, Any]) -> TagRow:
    """A report row back from Arrow: empty strings stay strings, missing numbers stay None."""
    values = {}
    for column in COLUMNS:
        value = record.get(column)
        if value is None and "None" not in str(_FIELD_TYPES[column]):  # `float | None` fields keep None
            value = ""
        elif isinstance(value, float) and math.isnan(value):  # NaN from a numeric column: no value
            value = None
        values[column] = value
    return TagRow(**values)


def write_parquet_report(rows: Sequence[TagRow], path: str | Path) -> Path:
    """The report's columns (`tag_report.COLUMNS`) as one Parquet file, written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([
        (column, pa.float64() if column in ("probability", "latitude", "longitude") else pa.string()) for column in COLUMNS
    ])
    table = pa.Table.from_pylist([asdict(row) for row in rows], schema=schema)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, temp)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path
