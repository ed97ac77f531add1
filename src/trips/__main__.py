"""`python -m src.trips build|evaluate`: simulated photo libraries and their scores (see src/trips/__init__.py)."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from src.trips.pools import HALVES, SHARED_DEFAULT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m src.trips", description="Photo libraries built like real trips, and the tagger scored on them.")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build simulated libraries (JPEG copies with exiftool-written metadata, GPX, truth.csv)")
    build.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="one folder per library is made here (must not hold libraries yet)")
    build.add_argument("--half", choices=HALVES, required=True, help="a: libraries to choose thresholds on; b: to report on")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--libraries", type=int, default=5, help="how many libraries (the 5 trip templates, repeated with new seeds)")
    build.add_argument("--shared", type=Path, default=SHARED_DEFAULT, help="the shared photo sets (default ../shared)")
    evaluate = commands.add_parser("evaluate", help="run the tagger (each mode) and the baselines on libraries and score them")
    evaluate.add_argument("libraries", nargs="+", type=Path, metavar="DIR", help="library folders (each with truth.csv), or folders of them")
    evaluate.add_argument("--record", type=Path, metavar="PATH.json", help="write the JSON run record here (a folder: named like results/runs/ records)")
    evaluate.add_argument("--markdown", type=Path, metavar="PATH.md", help="write the tables here too")
    return parser


def _library_folders(paths: Sequence[Path]) -> list[Path]:
    """Library folders: each path itself when it holds truth.csv, else its subfolders that do."""
    folders = []
    for path in paths:
        if (path / "truth.csv").is_file():
            folders.append(path)
        else:
            folders += sorted(p for p in path.iterdir() if (p / "truth.csv").is_file()) if path.is_dir() else []
    return folders


def _build(args: argparse.Namespace) -> int:
    from src.trips.build import BuildConfig, build_libraries

    if shutil.which("exiftool") is None:
        print("error: exiftool is not installed (it writes the libraries' metadata): apt-get install libimage-exiftool-perl", file=sys.stderr)
        return 1
    try:
        summaries = build_libraries(BuildConfig(args.out_dir, args.half, args.seed, args.libraries, args.shared))
    except (FileNotFoundError, FileExistsError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for s in summaries:
        print(f"{s['library']}: {s['photos']} photos, {s['with_gps']} with GPS, {s['placeable']} placeable, {s['traps']} traps, "
              f"{s['tracks']} GPX", file=sys.stderr)
    print(f"{sum(s['photos'] for s in summaries)} photos in {len(summaries)} libraries under {args.out_dir} (half {args.half})", file=sys.stderr)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from src.trips.evaluate import evaluate_libraries
    from src.trips.report import markdown, run_record, write_record

    libraries = _library_folders(args.libraries)
    if not libraries:
        print("error: no library found (a library is a folder with truth.csv, as `python -m src.trips build` writes)", file=sys.stderr)
        return 2
    try:
        scores, details = evaluate_libraries(libraries, progress=lambda line: print(line, file=sys.stderr))
    except (RuntimeError, OSError, KeyError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    record = run_record(scores, details, libraries)
    count = f"{len(libraries)} simulated librar{'y' if len(libraries) == 1 else 'ies'}"
    text = markdown(scores, f"{count}, half {', '.join(record['data']['halves'])}")
    print(text)
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    if args.record:
        print(f"record: {write_record(record, args.record)}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return _build(args) if args.command == "build" else _evaluate(args)


if __name__ == "__main__":
    raise SystemExit(main())
