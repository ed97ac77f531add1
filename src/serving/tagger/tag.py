"""The local batch tagger: photos under the given paths -> one report row each, with the place written
into the photos where asked (`tag_paths`). Decoding runs in threads, the next batch while the model runs
this one; every answer comes from `Recognizer` (the app's and the service's decision rule).

The command line is `src.serving.tagger.cli` (`python -m src tag`); the steps shared with the Ray
engine (checking, decoding, the report row, the write) are in `src.serving.tagger.photo_pipeline`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm.auto import tqdm

from src.serving.locate.evidence import LANDMARK_RADIUS_M
from src.serving.locate.library import ContextConfig
from src.serving.metadata.safe_write import remove_stale_temp_files
from src.serving.recognizer.recognize import Recognizer
from src.serving.tagger.library_context import JsonFiles, PhotoFacts, apply_library_context, read_meta
from src.serving.tagger.photo_files import Found, find_images, relative_destination
from src.serving.tagger.photo_pipeline import DEFAULT_WORKERS, Limits, check_and_decode, row_from, write_place, write_position
from src.serving.tagger.tag_report import TagRow, TagStats

__all__ = ["DEFAULT_WORKERS", "tag_paths", "write_row"]



def tag_paths(
    paths: Sequence[str | Path],
    recognizer: Recognizer,
    *,
    batch_size: int = 32,
    top_k: int = 5,
    write_gps: bool = False,
    out_dir: str | Path | None = None,
    in_place: bool = False,
    sidecar: bool = False,
    workers: int = 1,
    limits: Limits = Limits(),
    progress: bool = True,
    stats: TagStats | None = None,
    on_row: Callable[[TagRow], None] | None = None,
    context: ContextConfig | None = None,
) -> list[TagRow]:
    """Recognise every photo under ``paths``; one TagRow per file, in path order. A position is
    written only where the recognizer placed the photo (its placement point: `Recognizer(placement=...)`).

    write_gps: write the place of confident landmarks into a copy under ``out_dir`` (relative
    paths kept), with ``in_place=True`` into the photo itself, or with ``sidecar=True`` into
    ``photo.jpg.xmp`` next to the photo (or under ``out_dir``). Exactly one of out_dir / in_place,
    or sidecar (optionally with out_dir).
    workers: threads decoding photos (the model itself uses its engine's threads), capped by limits;
    one more thread decodes the next batch while the model runs.
    stats: filled with counts and the decode/model/write time split.
    context: treat the photos as one library (`src.serving.locate`): every photo's time and device are read, and
    after recognition one decision per photo weighs its landmark, the GPS photos around it and the tracks
    (``context.tracks``). None: photo by photo, the landmark alone decides. Positions are written after the
    decision, so with context nothing is written before every photo has been seen.
    Never raises for a bad photo: it becomes an ``error`` row and the rest go on.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if write_gps and not sidecar and (out_dir is None) == (not in_place):
        raise ValueError("write_gps needs exactly one of out_dir=... or in_place=True (or sidecar=True)")
    if sidecar and in_place:
        raise ValueError("sidecar=True never writes the photo: in_place does not apply")
    if not write_gps and (out_dir is not None or in_place or sidecar):
        raise ValueError("out_dir, in_place and sidecar only make sense with write_gps=True")
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and any(Path(p).resolve().is_relative_to(out.resolve()) for p in paths):
        raise ValueError(f"the output folder {out} must not be, or contain, an input path")
    stats = stats if stats is not None else TagStats()
    started = time.perf_counter()

    photos = find_images(paths, exclude=out)
    roots = sorted({item.root for item in photos}, key=str)
    destinations = {item.photo: _destination(item, roots, out) for item in photos} if write_gps else {}
    for folder in sorted({(d or p).parent for p, d in destinations.items()}):
        stats.stale_temp_removed += len(remove_stale_temp_files(folder))
    workers = limits.workers(workers)
    rows: list[TagRow] = []
    bar = tqdm(total=len(photos), unit="photo", desc="tagging", disable=not progress, file=sys.stderr)
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
    # The next batch is decoded while the model runs this one (decoding is about half of a photo's time).
    prefetch = ThreadPoolExecutor(max_workers=1)
    facts: dict[str, PhotoFacts] = {}
    json_files = JsonFiles()  # Takeout sidecars: each folder listed once

    def check(item: Found):
        if context is None:
            return check_and_decode(recognizer, item, limits)
        fact = facts.setdefault(str(item.photo), PhotoFacts())
        json_names = json_files(item.photo.parent)
        return check_and_decode(recognizer, item, limits, on_data=lambda data: setattr(fact, "meta", read_meta(item.photo, data, json_names)))

    decode = lambda batch: list(pool.map(check, batch)) if pool is not None else [check(item) for item in batch]
    batches = [photos[start : start + batch_size] for start in range(0, len(photos), batch_size)]
    pending = prefetch.submit(decode, batches[0]) if batches else None
    try:
        for index, batch in enumerate(batches):
            t0 = time.perf_counter()
            checked = pending.result()
            pending = prefetch.submit(decode, batches[index + 1]) if index + 1 < len(batches) else None
            t1 = time.perf_counter()
            images = [value for kind, value in checked if kind == "image"]
            results = iter(recognizer.recognize_images(images, top_k=top_k, batch_size=batch_size))
            t2 = time.perf_counter()
            stats.decode_s += t1 - t0
            stats.model_s += t2 - t1

            for item, (kind, value) in zip(batch, checked):
                photo = item.photo
                if kind == "has_gps":
                    row = TagRow(
                        file=str(photo), status="has_gps", latitude=value[0], longitude=value[1], source="gps",
                        message="already has a GPS position; its own metadata wins, left unchanged",
                    )
                elif kind == "error":
                    row = TagRow(file=str(photo), status="error", message=value)
                else:
                    result = next(results)
                    row = row_from(str(photo), result)
                    if result.position is not None:
                        row.source, row.radius_m = "landmark", LANDMARK_RADIUS_M
                        facts.setdefault(str(photo), PhotoFacts()).landmark = result.top[0].info
                rows.append(row)
                if on_row is not None and context is None:
                    on_row(row)
            bar.update(len(batch))
    finally:
        bar.close()
        prefetch.shutdown(cancel_futures=True)
        if pool is not None:
            pool.shutdown()

    if context is not None:
        apply_library_context(rows, facts, context)
        if on_row is not None:
            for row in rows:
                on_row(row)
    if write_gps:
        t3 = time.perf_counter()
        for row in rows:
            write_row(row, destinations.get(Path(row.file)), sidecar, facts.get(row.file))
        stats.write_s += time.perf_counter() - t3
    stats.count(rows, time.perf_counter() - started)
    return rows


def write_row(row: TagRow, destination: Path | None, sidecar: bool, fact: PhotoFacts | None) -> None:
    """Write a placed row's position into its photo (copy, in place or sidecar); updates the row. Never raises."""
    if row.placed != "yes" or row.latitude is None or row.status in ("has_gps", "error"):
        return
    photo = Path(row.file)
    if destination is not None and os.path.realpath(destination) == str(photo):
        row.status, row.message = "error", row.message + "; refusing to overwrite the original without --in-place"
    elif row.source == "landmark" and fact is not None and fact.landmark is not None:
        write_place(row, photo, destination, fact.landmark, sidecar)
    else:  # placed by the photos or tracks around it: the place named by an offline reverse geocoder
        write_position(row, photo, destination, sidecar)


def _destination(item: Found, roots: Sequence[Path], out: Path | None) -> Path | None:
    """Where the copy (or the sidecar's photo name) goes; None: in place or next to the photo."""
    return out / relative_destination(item, roots) if out is not None else None
