"""Batch tagger: infer where photos were taken and optionally write the GPS position into them.

    python -m src tag PATH... [--output report.csv|report.json]
                      [--write-gps (--out-dir DIR | --in-place | --sidecar [--out-dir DIR])]
                      [--model PATH] [--batch-size 32] [--threshold X] [--top-k 5] [--workers N]
                      [--max-file-mb 200] [--max-pixels N] [--memory-mb 1024]

* PATHs are photos or folders; folders are walked recursively for image files (by extension; hidden
  files and folders are skipped). A photo named explicitly is always tried. Symlinks are followed:
  the real file is reported and tagged once (`src.serving.tagger.photo_files`).
* Every file is read bounded and without blocking: FIFOs, devices, sockets, files over
  ``--max-file-mb`` and images over ``--max-pixels`` become ``error`` rows within milliseconds.
  Decoding threads are capped so that ``--memory-mb`` holds for the largest allowed image.
* Every prediction goes through `src.serving.recognizer.recognize.Recognizer` (decode -> probabilities -> decide), the
  decision rule the app and the HTTP service use, in batches, with a progress bar.
* A photo that already carries a GPS position is reported as ``has_gps`` and left alone: the
  photo's own metadata wins over any inference.
* ``--write-gps`` writes the landmark's position, a description ("Taj Mahal, Agra, Uttar Pradesh,
  India"), keywords (the hashtags without ``#``) and city/region/country as EXIF and XMP into a copy
  under ``--out-dir`` (relative paths kept), or into the original with ``--in-place`` (atomic
  replace), or only into an XMP sidecar ``photo.jpg.xmp`` with ``--sidecar`` (the photo is never
  written; implies ``--write-gps``). All through `src.serving.tagger.tag_writer.write_landmark`.
  Only ``placed`` answers are written: a landmark with a position that the placement rule is sure
  of (``--placement``, default the model's "strict" point: at most 1 % of photos of landmarks it
  never saw get a position, docs/unknown.md), never a ``guess`` and never an ``unknown`` one.
  Formats that cannot hold the tags (HEIC, GIF, BMP) are reported in the row's message, not fatal.
* Temp files a killed earlier run left in the folders written to are removed first.
* The report (``--output``, ``.csv`` or ``.json``; ``-`` for CSV on stdout) has one row per file:
  file, status, landmark, name, probability, latitude, longitude, tags, message, written, rule, placed,
  guess. status is ``placed``, ``guess`` (looks like a landmark, not sure enough to place it, or one
  without a position), ``unknown``, ``has_gps`` or ``error`` (unreadable file, failed write).
  landmark/name are filled only for a placed photo; the best landmark is always in ``guess``.
  latitude/longitude/tags only where ``placed`` is ``yes``; ``rule`` says what decided.
* ``--engine local`` (default) runs `src.serving.tagger.tag.tag_paths` in this process; ``--engine ray``
  runs `src.serving.tagger.ray_tag` (Ray is imported only then). Both tag each photo with the same steps
  (`src.serving.tagger.photo_pipeline`).
* Exit status: 0 every file processed, 1 some files failed (``error`` rows), 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from typing import TYPE_CHECKING

from src.data.images import MAX_FILE_BYTES, MAX_PIXELS
from src.serving.locate.clocks import parse_camera_offsets
from src.serving.recognizer.runtime import PRECISIONS, RUNTIMES
from src.serving.tagger.photo_pipeline import DEFAULT_MEMORY_BYTES, DEFAULT_WORKERS, Limits
from src.serving.tagger.tag_report import TagStats, csv_text, write_report

if TYPE_CHECKING:  # the model, the tagger and the library context load after the arguments are checked (--help stays fast)
    from src.serving.locate.library import ContextConfig

__all__ = ["main"]

# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m src tag",
        description="Infer where photos were taken from the landmark in them; report it and optionally write the GPS into them.",
        epilog="exit status: 0 all files processed, 1 some files could not be processed, 2 usage error",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="photos or folders (walked recursively)")
    parser.add_argument("--output", "-o", metavar="REPORT", help="write a report: .csv, .json or .parquet ('-' = CSV on stdout)")
    parser.add_argument("--write-gps", action="store_true", help="write the inferred position, description and keywords into the photos")
    parser.add_argument("--out-dir", type=Path, help="with --write-gps: write tagged copies here (relative paths kept)")
    parser.add_argument("--in-place", action="store_true", help="with --write-gps: modify the original photos (atomic replace)")
    parser.add_argument("--sidecar", action="store_true", help="write photo.jpg.xmp sidecars (next to the photos, or under --out-dir); never touch a photo; implies --write-gps")
    parser.add_argument("--model", type=Path, default=None, help="exported model (default: $LANDMARK_MODEL or checkpoints/transfer_exported.pt)")
    parser.add_argument("--batch-size", type=int, default=32, help="photos the model sees at once (default: %(default)s)")
    parser.add_argument("--threshold", type=float, default=None, help="confidence below which a photo is 'unknown' (default: the model's)")
    parser.add_argument("--placement", default=None, metavar="POINT",
                        help="when a position is placed (reported, and written with --write-gps): 'strict' (default: at most 1 %% of photos "
                             "of landmarks the model never saw get one, by leave-landmarks-out cross-validation; docs/unknown.md) or 'balanced' "
                             "(more known photos placed, about 5 %% of unknown ones)")
    parser.add_argument("--min-confidence", type=float, default=None, metavar="P",
                        help="instead of --placement: place at this probability or more (0-1)")
    parser.add_argument("--top-k", type=int, default=5, help="candidates considered per photo (default 5)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="decoding threads (default: up to 4)")
    parser.add_argument("--max-file-mb", type=float, default=MAX_FILE_BYTES / 2**20, help="larger files are error rows, never read (default %(default)g)")
    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS, help="larger images are error rows, never decoded (default %(default)d)")
    parser.add_argument("--memory-mb", type=float, default=DEFAULT_MEMORY_BYTES / 2**20, help="memory for decoding at once; caps --workers (default %(default)g)")
    parser.add_argument("--runtime", choices=RUNTIMES, default=None,
                        help="engine: openvino (the .xml beside the model; no torch), torchscript, or auto (default: $LANDMARK_RUNTIME or auto)")
    parser.add_argument("--precision", choices=PRECISIONS, default=None, help="OpenVINO inference precision (default auto: bf16 where the CPU computes bfloat16 natively, else f32; docs/openvino.md)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    context = parser.add_argument_group(
        "library context (on by default): the photos of one run are one library; a photo without GPS may be placed by the "
        "GPS photos taken shortly before and after it, by a track, or by its landmark, and gets no position where they conflict")
    context.add_argument("--no-context", action="store_true", help="tag photo by photo: only the landmark in each photo decides")
    context.add_argument("--track", action="append", default=[], metavar="FILE",
                         help="a GPS log: GPX 1.0/1.1, KML gx:Track, NMEA, IGC or Google Takeout location history (Records.json, "
                              "Semantic Location History, semanticSegments); repeatable")
    context.add_argument("--camera-offset", action="append", default=[], metavar='"MAKE MODEL=+HH:MM"',
                         help="a device's clock minus UTC, when you know it (a camera left on home time: \"Canon EOS 80D=+01:00\"); "
                              "otherwise it is estimated from the library; repeatable")
    context.add_argument("--map", type=Path, default=None, metavar="PNG", help="draw the run: positions by source, the tracks, the conflicts")
    scale = parser.add_argument_group("Ray engine (src.serving.tagger.ray_tag): PATHs may also be .csv/.parquet listings with a 'file' or 'path' column")
    scale.add_argument("--engine", choices=("local", "ray"), default="local", help="local: this process (default); ray: Ray Data tasks and actors")
    scale.add_argument("--address", default=None, help="Ray cluster to join (e.g. 'auto' or host:6379); default: start a local Ray")
    scale.add_argument("--actors", type=int, default=1, help="model replicas, one exported model per Ray actor (default 1)")
    scale.add_argument("--ray-batch-size", type=int, default=32, help="photos per model call in a Ray actor (default 32)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on usage errors, 0 for --help
        return int(exit_.code or 0)

    def usage(message: str) -> int:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 2

    if args.output and args.output != "-" and Path(args.output).suffix.lower() not in (".csv", ".json", ".parquet"):
        return usage(f"--output must end in .csv or .json (or .parquet), got {args.output!r}")
    if args.engine != "ray" and (args.address or args.actors != 1 or args.ray_batch_size != 32):
        return usage("--address, --actors and --ray-batch-size apply with --engine ray")
    if args.engine == "ray" and args.sidecar:
        return usage("--sidecar is not available with --engine ray yet: use --out-dir or --in-place")
    args.write_gps = args.write_gps or args.sidecar
    if args.write_gps and not (args.out_dir or args.in_place or args.sidecar):
        return usage("--write-gps needs --out-dir DIR (tagged copies), --in-place (modify the originals) or --sidecar")
    if args.out_dir and args.in_place:
        return usage("give either --out-dir or --in-place, not both")
    if args.sidecar and args.in_place:
        return usage("--sidecar never writes the photos: --in-place does not apply")
    if (args.out_dir or args.in_place) and not args.write_gps:
        return usage("--out-dir and --in-place only apply with --write-gps")
    if args.max_file_mb <= 0 or args.max_pixels < 1 or args.memory_mb <= 0:
        return usage("--max-file-mb, --max-pixels and --memory-mb must be positive")
    if args.batch_size < 1:
        return usage("--batch-size must be at least 1")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        return usage("--threshold must be between 0 and 1")
    if args.workers < 1:
        return usage("--workers must be at least 1")
    if args.out_dir and any(Path(p).resolve().is_relative_to(args.out_dir.resolve()) for p in args.paths):
        return usage("--out-dir must not be, or contain, an input path (copies would mix with the originals)")
    if args.placement is not None and args.min_confidence is not None:
        return usage("give either --placement or --min-confidence, not both")
    if args.no_context and (args.track or args.camera_offset):
        return usage("--track and --camera-offset are library context: they do not apply with --no-context")
    if args.map is not None and args.map.suffix.lower() != ".png":
        return usage(f"--map must end in .png, got {str(args.map)!r}")
    try:
        camera_offsets = parse_camera_offsets(args.camera_offset)
    except ValueError as error:
        return usage(str(error))
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        return usage("no such file or folder: " + ", ".join(missing))
    placement = args.min_confidence if args.min_confidence is not None else args.placement
    from src.serving.recognizer.recognize import Recognizer
    from src.serving.tagger.library_context import apply_library_context, read_facts
    from src.serving.tagger.tag import tag_paths, write_row

    try:
        recognizer = Recognizer(args.model, threshold=args.threshold, runtime=args.runtime, precision=args.precision, placement=placement)
    except (FileNotFoundError, ValueError) as error:
        return usage(str(error))
    if recognizer.gallery_problem:  # tagging without the taught landmarks would name their photos wrongly
        print(f"error: {recognizer.gallery_problem}", file=sys.stderr)
        return 1

    context, failed_tracks = None, []
    if not args.no_context:
        context, failed_tracks = _context(args.track, camera_offsets)

    stats = TagStats()
    if args.engine == "ray":
        from src.serving.tagger.ray_tag import RayTagConfig, tag_paths_ray

        try:
            config = RayTagConfig(address=args.address, actors=args.actors, batch_size=args.ray_batch_size, progress=not args.quiet)
            config.check()
        except ValueError as error:
            return usage(str(error))
        try:
            # With the library context the actors only recognise; positions are written here, after the decision.
            writes_in_actors = args.write_gps and context is None
            rows = tag_paths_ray(
                args.paths, recognizer.model_path, threshold=args.threshold, top_k=args.top_k, write_gps=writes_in_actors,
                out_dir=args.out_dir if writes_in_actors else None, in_place=args.in_place and writes_in_actors,
                config=config, stats=stats, placement=placement,
            )
        except ValueError as error:  # a listing without a photo column (bad photos are rows, never raised)
            return usage(str(error))
        if context is not None:  # recognition ran in parallel; the context is one pass over the whole library
            facts = read_facts([row.file for row in rows])
            apply_library_context(rows, facts, context)
            if args.write_gps:
                from src.serving.tagger.ray_tag import destinations

                where = destinations(args.paths, args.out_dir, args.in_place)
                infos = {info.class_name: info for info in recognizer.landmark_infos()}
                for row in rows:
                    facts[row.file].landmark = infos.get(row.landmark)
                    destination = None if args.in_place else where.get(row.file)  # None: into the photo itself
                    write_row(row, Path(destination) if destination else None, False, facts[row.file])
            stats.recount(rows)
    else:
        rows = tag_paths(
            args.paths, recognizer, batch_size=args.batch_size, top_k=args.top_k, write_gps=args.write_gps,
            out_dir=args.out_dir, in_place=args.in_place, sidecar=args.sidecar, workers=args.workers,
            limits=Limits(int(args.max_file_mb * 2**20), args.max_pixels, int(args.memory_mb * 2**20)),
            progress=not args.quiet, stats=stats, context=context,
        )
    if args.output == "-":
        sys.stdout.write(csv_text(rows))
    elif args.output and Path(args.output).suffix.lower() == ".parquet":
        from src.serving.tagger.ray_tag import write_parquet_report

        write_parquet_report(rows, args.output)
    elif args.output:
        write_report(rows, args.output, stats=stats, model=recognizer.model_path.name)

    errors = [row for row in rows if row.status == "error"]
    for row in errors:
        print(f"error: {row.file}: {row.message}", file=sys.stderr)
    if not rows:
        print("no image files found", file=sys.stderr)
    if args.map is not None and rows:
        from src.serving.tagger.trip_map import draw_trip

        draw_trip(rows, context.tracks if context is not None else (), args.map)
        print(f"map: {args.map}", file=sys.stderr)
    print(f"model {recognizer.model_path.name} (threshold {recognizer.threshold:g}, placement {recognizer.placement_description}, "
          f"{recognizer.runtime})", file=sys.stderr)
    print(stats.summary(), file=sys.stderr)
    if args.output and args.output != "-":
        print(f"report: {args.output}", file=sys.stderr)
    return 1 if errors or failed_tracks else 0


def _context(track_files: Sequence[str], camera_offsets: dict[str, float]) -> tuple[ContextConfig, list[str]]:
    """The library context's configuration; every track file's problems on stderr. Returns the files that gave
    no usable fix at all (they count as failed files for the exit status)."""
    from src.serving.locate.library import ContextConfig
    from src.serving.locate.tracks import read_track

    tracks, failed = [], []
    for file in track_files:
        read = read_track(file)
        for problem in read.problems:
            print(f"track: {problem}", file=sys.stderr)
        if not read.tracks:
            print(f"error: {file}: no usable fix in this track file", file=sys.stderr)
            failed.append(file)
        tracks.extend(read.tracks)
    return ContextConfig(tracks=tuple(tracks), camera_offsets=camera_offsets), failed


if __name__ == "__main__":
    raise SystemExit(main())
