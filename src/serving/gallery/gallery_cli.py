"""`python -m src gallery`: teach the model landmarks from a few photos, list, remove, export, import.

    python -m src gallery add "Sydney Opera House" photos/opera/ --lat -33.8568 --lon 151.2153 \\
        --country Australia --city Sydney --tags "#SydneyOperaHouse #Sydney"
    python -m src gallery add "Grandma's Chapel" photos/chapel/      # no position: named, never placed
    python -m src gallery list
    python -m src gallery remove "Sydney Opera House"
    python -m src gallery export my_landmarks.zip
    python -m src gallery import my_landmarks.zip [--replace]
    python -m src gallery references --data ROOT... --no-landmark DIR   # once per model: its reference photos

The gallery lives in $LANDMARK_HOME/gallery (default ~/.local/share/landmark_tagger/gallery); the app,
the service and `python -m src tag` recognise its landmarks with no extra flag.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from src.data.images import BadImageError, read_photo_file
from src.serving.gallery.archive import prepare_import, read_export, write_export
from src.serving.gallery.gallery import Gallery, GalleryError, default_gallery_dir, edit, enrol
from src.serving.tagger.photo_files import find_images


def photo_paths(paths: Sequence[str]) -> tuple[list[Path], list[str], list[tuple[str, str]]]:
    """Photos named directly or found in folders (recursively, `src.serving.tagger.photo_files.find_images`):
    the files to read, the names to report them by (as given: a symlink is named, not its target), and
    the arguments that gave none, with the reason."""
    photos, names, problems = [], [], []
    for name in paths:
        if not os.path.lexists(name):
            problems.append((name, "no such file or folder"))
            continue
        found = find_images([name])
        if not found:
            problems.append((name, "no photos in this folder"))
        for item in found:
            if item.problem:
                problems.append((str(item.listed), item.problem))
            else:
                photos.append(item.photo)
                names.append(str(item.listed))
    return photos, names, problems


def read_photos(paths: Sequence[Path], names: Sequence[str]) -> tuple[list[bytes], list[str], list[tuple[str, str]]]:
    """Each photo's bytes, read once, bounded and without blocking (`read_photo_file`: a FIFO or a device
    named like a photo is refused, not waited on), for every step after this one (the look-alike check,
    enrolment); the names of those read, and the others with the reason."""
    contents, read, problems = [], [], []
    for path, name in zip(paths, names):
        try:
            contents.append(read_photo_file(path))
            read.append(name)
        except BadImageError as error:
            problems.append((name, str(error)))
        except OSError as error:
            problems.append((name, error.strerror or str(error)))
    return contents, read, problems


def _recognizer(model: Path | None, folder: Path):
    from src.serving.recognizer.recognize import Recognizer

    recognizer = Recognizer(model, gallery_dir=folder)  # also re-embeds a gallery made by another model
    recognizer.require_embeddings()
    return recognizer


def add(args: argparse.Namespace) -> int:
    if (args.lat is None) != (args.lon is None):
        raise GalleryError("give both --lat and --lon, or neither (a landmark without a position is named, never placed)")
    paths, listed, problems = photo_paths(args.photos)
    photos, names, unreadable = read_photos(paths, listed)
    problems += unreadable
    recognizer = _recognizer(args.model, args.gallery)
    from src.serving.recognizer.lookalike import known_lookalike  # with the Recognizer: `gallery list` stays light

    start = time.perf_counter()
    warning = known_lookalike(recognizer, photos, args.name)  # before enrolling: afterwards they are named as the new one
    report = enrol(args.gallery, args.name, photos, recognizer.embed, recognizer.model_id, latitude=args.lat, longitude=args.lon,
                   country=args.country, city=args.city, tags=args.tags, replace=args.replace, trained=recognizer.class_names,
                   names=names)
    skipped = problems + report.skipped
    for source, why in skipped:
        print(f"skipped {source}: {why}", file=sys.stderr)
    if report.landmark is None:
        reasons = "; ".join(f"{source}: {why}" for source, why in skipped[:3]) + ("; ..." if len(skipped) > 3 else "")
        raise GalleryError(f"no usable photo for {args.name!r}: nothing was added ({reasons or 'no photo given'})")
    seconds = time.perf_counter() - start
    count = len(report.landmark.photos)
    where = "" if report.landmark.latitude is not None else " without a position (named, never placed)"
    print(f"added {report.landmark.name!r}{where} from {count} photo{'s' * (count != 1)} ({seconds:.1f} s) to {args.gallery}")
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def make_references(model: Path | None, roots: Sequence[Path], no_landmark: Path | None, per_class: int = 40,
                    out: Path | None = None) -> tuple[Path, int]:
    """Embed reference photos of the model's own classes (`src.serving.gallery.references`): the first `per_class`
    training photos of each class under `roots` and the training part of `no_landmark`; saved to `out`
    (default: beside the model, as training does). Returns the file and the number of photos."""
    from src.data.folders import scan_split, split_no_landmark
    from src.data.images import BadImageError
    from src.evaluation.openset import BACKGROUND_CLASS
    from src.serving.recognizer.recognize import Recognizer
    from src.serving.gallery.references import save_references

    # It only embeds: placement=1.0 keeps the model's own rule out, which may need the very references made here.
    recognizer = Recognizer(model, use_gallery=False, placement=1.0)
    recognizer.require_embeddings()
    scan = scan_split([Path(root) for root in roots], "train")
    chosen: list[tuple[Path, str]] = []
    for index, name in enumerate(scan.classes):
        chosen += [(path, name) for path in sorted(p for p, label in scan.samples if label == index)[:per_class]]
    if no_landmark:
        chosen += [(path, BACKGROUND_CLASS) for path in split_no_landmark(Path(no_landmark))["train"]]
    unknown = sorted({name for _, name in chosen} - set(recognizer.class_names))
    if unknown:
        raise GalleryError(f"{recognizer.model_path.name} was not trained on {', '.join(unknown[:5])}: pass the data it was trained on")
    images, labels = [], []
    for path, name in chosen:
        try:
            images.append(recognizer.decode(path))
            labels.append(name)
        except BadImageError as error:
            print(f"skipped {path}: {error}", file=sys.stderr)
    return save_references(recognizer.model_path, recognizer.model_id, recognizer.embed(images), labels, out), len(labels)


def references(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    from src.serving.gallery.references import user_references_path
    from src.serving.recognizer.recognize import default_model_path

    out = args.out or user_references_path(args.model or default_model_path())  # never the shipped file unless asked
    path, count = make_references(args.model, args.data, args.no_landmark, args.per_class, out)
    print(f"wrote {path}: {count} reference photos ({time.perf_counter() - start:.1f} s)")
    return 0


def list_(args: argparse.Namespace) -> int:
    gallery = Gallery.load(args.gallery)
    if not len(gallery):
        print(f"no taught landmarks in {args.gallery}")
        return 0
    print(f"{len(gallery)} taught landmark(s) in {args.gallery} (model {gallery.model_id}):")
    for landmark in gallery.landmarks.values():
        info = landmark.info
        position = f"({landmark.latitude:g}, {landmark.longitude:g})" if landmark.latitude is not None else "no position"
        print(f"  {landmark.name}: {len(landmark.photos)} photos, {info.location or 'no place given'} {position} {' '.join(info.hashtags)}")
    return 0


def remove(args: argparse.Namespace) -> int:
    with edit(args.gallery) as gallery:
        gallery.remove(args.name)
    print(f"removed {args.name!r} from {args.gallery}")
    return 0


def export(args: argparse.Namespace) -> int:
    gallery = Gallery.load(args.gallery)
    if not len(gallery):
        raise GalleryError(f"nothing to export: no taught landmarks in {args.gallery}")
    report = write_export(gallery, args.file)
    for landmark, why in report.missing:
        print(f"warning: a photo of {landmark!r} was left out: {why}", file=sys.stderr)
    print(f"exported {len(report.landmarks)} landmark(s) to {report.path}")
    return 0


def import_(args: argparse.Namespace) -> int:
    recognizer = _recognizer(args.model, args.gallery)
    with tempfile.TemporaryDirectory() as tmp:
        # Every check and the re-embedding happen before the lock: a refused archive leaves the gallery untouched.
        incoming = read_export(Path(args.file), Path(tmp))
        current = Gallery.load(args.gallery)
        clashes = [name for name in incoming.landmarks if current.find(name) is not None]
        if clashes and not args.replace:
            raise GalleryError(f"the gallery already has {', '.join(map(repr, clashes))}: pass --replace to replace them")
        prepare_import(incoming, recognizer.embed, recognizer.model_id, recognizer.embedding_dim, recognizer.class_names)
        with edit(args.gallery) as gallery:
            names = gallery.merge(incoming, recognizer.embed, recognizer.model_id, replace=args.replace, trained=recognizer.class_names)
    print(f"imported {len(names)} landmark(s) into {args.gallery}: {', '.join(names)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m src gallery", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gallery", type=Path, default=None, help="gallery folder (default: $LANDMARK_HOME/gallery)")
    parser.add_argument("--model", type=Path, default=None, help="exported model (default: $LANDMARK_MODEL or checkpoints/transfer_exported.pt)")
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("add", help="teach a landmark from photos or folders of photos")
    p.add_argument("name", help='the landmark\'s name, e.g. "Sydney Opera House"')
    p.add_argument("photos", nargs="+", help="photos and folders of photos of it")
    p.add_argument("--lat", type=float, default=None, help="latitude in degrees (north positive); without --lat/--lon the landmark "
                   "is named but never placed")
    p.add_argument("--lon", type=float, default=None, help="longitude in degrees (east positive)")
    p.add_argument("--country", default="")
    p.add_argument("--city", default="")
    p.add_argument("--tags", default="", help='hashtags, e.g. "#SydneyOperaHouse #Sydney" (default: its name)')
    p.add_argument("--replace", action="store_true", help="replace a landmark of the same name")
    p.set_defaults(run=add)
    sub.add_parser("list", help="the taught landmarks").set_defaults(run=list_)
    p = sub.add_parser("remove", help="forget a taught landmark")
    p.add_argument("name")
    p.set_defaults(run=remove)
    p = sub.add_parser("export", help="write the gallery (with its photos' thumbnails) to one zip file")
    p.add_argument("file", type=Path)
    p.set_defaults(run=export)
    p = sub.add_parser("import", help="add the landmarks of an exported gallery (re-embedded if another model made it)")
    p.add_argument("file", type=Path)
    p.add_argument("--replace", action="store_true", help="replace landmarks of the same name")
    p.set_defaults(run=import_)
    p = sub.add_parser("references", help="embed the model's own training photos, so taught landmarks win by similarity")
    p.add_argument("--data", nargs="+", required=True, help="the data roots the model was trained on (train/<class>/ photos)")
    p.add_argument("--no-landmark", default=None, help="the no-landmark photos it was trained on (their training part is used)")
    p.add_argument("--per-class", type=int, default=40, help="reference photos per class (default %(default)s)")
    p.add_argument("--out", type=Path, default=None,
                   help="file to write (default: $LANDMARK_HOME/references/MODEL.references.npz, read before the one beside the model; "
                        "the shipped file: checkpoints/transfer_exported.references.npz)")
    p.set_defaults(run=references)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.gallery = args.gallery or default_gallery_dir()
    try:
        return args.run(args)
    except GalleryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # a missing model, a full disk while unpacking an import, ...
        where = f": {error.filename}" if error.filename else ""
        print(f"error: {error.strerror or error}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
