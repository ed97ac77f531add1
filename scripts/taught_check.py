"""Landmarks taught from a few photos, through the whole serving path: named right, placed right or wrong.

    python -m scripts.taught_check --taught ../shared/other_landmarks --enrol 5 --draws 3 \
        --known ../shared/indian_monuments/test ../shared/world_landmarks/test --no-landmark ../shared/no_landmark

For each draw, `--enrol` training photos of every landmark under `--taught` (`train/NN.Name/`, landmarks
the model never trained on, with coordinates in src/data/landmarks.json) are taught into a fresh
gallery, as `python -m src gallery add` does; then the landmarks' test photos (`test/NN.Name/`) go
through the shipped `Recognizer` with its placement rule: named right, placed right (at the true
landmark's site, `SITE_RADIUS_KM`), placed wrong. Known landmarks' test photos and the held-out object
photos are measured before and after teaching: teaching may not cost them. Averages over the draws;
prints a table and saves a run record (kind "gallery") in results/runs/.

Choosing the look-alike margin (`src.serving.recognizer.taught_lookalikes`) on training photos only:
`--queries train` asks the taught landmarks' training photos that were not enrolled in that draw instead
of their test photos, and `--lookalike-margin M [M ...]` measures the taught photos at each margin
(known landmarks and objects at the first).
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterable
import tempfile
from pathlib import Path

import numpy as np

from scripts.placement_check import known_rates, photos_by_landmark, recognize_all
from src.data.folders import split_no_landmark
from src.data.images import BadImageError
from src.data.landmarks import SITE_RADIUS_KM, LandmarkInfo, distance_km, lookup
from src.evaluation.placement import site_ids
from src.runs import save_run
from src.serving.gallery.gallery import edit
from src.serving.recognizer.recognize import Recognition, Recognizer
from src.serving.recognizer.taught_lookalikes import LookalikeRule


def same_site(named: LandmarkInfo, truth: LandmarkInfo) -> bool:
    """The named landmark is the true one or stands within `SITE_RADIUS_KM` of it."""
    if named.name == truth.name:
        return True
    return named.has_coordinates and truth.has_coordinates and distance_km(named, truth) <= SITE_RADIUS_KM


def taught_rates(results: list[Recognition], truths: list[LandmarkInfo]) -> dict[str, float]:
    named = [r.status == "landmark" and r.top[0].info.name == t.name for r, t in zip(results, truths)]
    right = [r.placed and same_site(r.top[0].info, t) for r, t in zip(results, truths)]
    wrong = [r.placed and not same_site(r.top[0].info, t) for r, t in zip(results, truths)]
    return {"photos": len(results), "named_right": float(np.mean(named)), "placed_right": float(np.mean(right)),
            "placed_wrong": float(np.mean(wrong))}


def teach(recognizer: Recognizer, folder: Path, landmarks: list[str], enrol: int, seed: int) -> set[Path]:
    """`enrol` random training photos of each landmark into the recognizer's (empty) gallery; -> the photos taught."""
    rng = random.Random(seed)
    taught: set[Path] = set()
    with edit(recognizer.gallery_dir) as gallery:
        for landmark in landmarks:
            photos = sorted((folder / "train" / landmark).iterdir())
            info = lookup(landmark)
            chosen = rng.sample(photos, min(enrol, len(photos)))
            taught.update(chosen)
            gallery.add(info.name, chosen, recognizer.embed, recognizer.model_id,
                        latitude=info.latitude, longitude=info.longitude, trained=recognizer.class_names)
    return taught


def decoded_photos(recognizer: Recognizer, items: Iterable[tuple[Path, str]]) -> dict[Path, tuple]:
    """Photo -> (decoded image, landmark), decoded once for every draw and margin; unreadable photos left out."""
    out = {}
    for path, landmark in items:
        try:
            out[path] = (recognizer.decode(path), landmark)
        except BadImageError as error:
            print(f"left out {path}: {error}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.taught_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="exported model (default: $LANDMARK_MODEL or checkpoints/)")
    parser.add_argument("--taught", type=Path, required=True, help="a data root (train/ and test/) of landmarks the model never trained on")
    parser.add_argument("--enrol", type=int, default=5, help="photos taught per landmark (default %(default)s)")
    parser.add_argument("--draws", type=int, default=3, help="random draws of the taught photos (default %(default)s)")
    parser.add_argument("--known", nargs="*", type=Path, default=[], help="test folders of landmarks the model knows")
    parser.add_argument("--no-landmark", type=Path, default=None, help="object photos; the held-out half of the categories is measured")
    parser.add_argument("--placement", default=None, help="named point or probability (default: the model's default point)")
    parser.add_argument("--runs", type=Path, default=None, help="run record folder (default: results/runs)")
    parser.add_argument("--queries", choices=("test", "train"), default="test",
                        help="the taught landmarks' photos asked: test (reporting) or the training photos not enrolled (choosing)")
    parser.add_argument("--lookalike-margin", nargs="+", type=float, default=[LookalikeRule().margin],
                        help="look-alike margins measured on the taught photos (default: the shipped %(default)s); "
                             "a negative one turns the rule off")
    args = parser.parse_args(argv)

    plain = Recognizer(args.model, placement=args.placement, use_gallery=False)
    landmarks = sorted(p.name for p in (args.taught / "train").iterdir() if p.is_dir())
    clash = sorted(set(landmarks) & set(plain.class_names))
    missing = [name for name in landmarks if not lookup(name).has_coordinates]
    if clash or missing:
        parser.error(f"{args.taught}: " + (f"the model knows {', '.join(clash)}" if clash else f"no coordinates for {', '.join(missing)}"))
    photos = decoded_photos(plain, photos_by_landmark(args.taught / args.queries))
    rules = [LookalikeRule(margin if margin >= 0 else None) for margin in args.lookalike_margin]
    known = {folder.parent.name: photos_by_landmark(folder) for folder in args.known}
    objects = split_no_landmark(args.no_landmark)["held_out"] if args.no_landmark else []
    place_of = dict(zip(plain.class_names, site_ids(plain.class_names).tolist()))

    def others(recognizer: Recognizer, desc: str) -> dict:
        out = {name: known_rates(recognize_all(recognizer, [p for p, _ in items], desc=f"{name} {desc}"),
                                 [lookup(t).class_name for _, t in items], place_of) for name, items in known.items()}
        if objects:
            results = recognize_all(recognizer, objects, desc=f"objects {desc}")
            out["objects"] = {"named": float(np.mean([r.status == "landmark" for r in results])), "placed": float(np.mean([r.placed for r in results]))}
        return out

    before = others(plain, "before")
    draws = []
    for draw in range(args.draws):
        with tempfile.TemporaryDirectory() as home:
            recognizer = Recognizer(args.model, placement=args.placement, gallery_dir=Path(home) / "gallery")
            enrolled = teach(recognizer, args.taught, landmarks, args.enrol, seed=draw)
            queries = [(image, lookup(name)) for path, (image, name) in photos.items() if path not in enrolled]
            by_margin = {}
            for rule in reversed(rules):  # the first rule last: known landmarks and objects are measured with it
                recognizer.lookalike_rule = rule
                by_margin[str(rule.margin)] = taught_rates(recognizer.recognize_images([image for image, _ in queries]), [t for _, t in queries])
            draws.append({"taught": by_margin[str(rules[0].margin)], "by_margin": by_margin, **others(recognizer, f"after, draw {draw}")})
    mean = lambda get: float(np.mean([get(d) for d in draws]))
    metrics = {"placement": {"point": plain.placement_point, "score": plain.placement_score, "threshold": plain.placement_threshold},
               "enrol": args.enrol, "draws": draws, "before": before, "queries": args.queries,
               "lookalike_margin": rules[0].margin,
               "taught": {key: mean(lambda d, k=key: d["taught"][k]) for key in ("named_right", "placed_right", "placed_wrong")},
               "by_margin": {str(r.margin): {key: mean(lambda d, k=key, m=str(r.margin): d["by_margin"][m][k])
                                            for key in ("named_right", "placed_right", "placed_wrong")} for r in rules}}

    print(f"model {plain.model_path.name}, placement {plain.placement_point}: {plain.placement_score} >= {plain.placement_threshold:g}; "
          f"{len(landmarks)} landmarks taught from {args.enrol} photos each, {args.draws} draws")
    for margin, t in metrics["by_margin"].items():
        print(f"taught landmarks' {args.queries} photos ({draws[0]['taught']['photos']} a draw), look-alike margin {margin}: named right "
              f"{100 * t['named_right']:.1f} %, placed right {100 * t['placed_right']:.1f} %, placed wrong {100 * t['placed_wrong']:.2f} %")
    for name in known:
        b = before[name]
        print(f"{name}: placed right {100 * b['placed_right']:.1f} -> {100 * mean(lambda d: d[name]['placed_right']):.1f} %, placed wrong "
              f"{100 * b['placed_wrong']:.2f} -> {100 * mean(lambda d: d[name]['placed_wrong']):.2f} %, not named "
              f"{100 * b['not_named']:.1f} -> {100 * mean(lambda d: d[name]['not_named']):.1f} %")
    if objects:
        print(f"objects ({len(objects)}): named {100 * before['objects']['named']:.2f} -> {100 * mean(lambda d: d['objects']['named']):.2f} %, "
              f"placed {100 * before['objects']['placed']:.2f} -> {100 * mean(lambda d: d['objects']['placed']):.2f} %")
    record = save_run("gallery", f"taught-{plain.placement_point}", {"model": str(plain.model_path), "placement": args.placement,
                      "enrol": args.enrol, "draws": args.draws, "queries": args.queries, "lookalike_margin": args.lookalike_margin},
                      {"taught": str(args.taught), "known": [str(f) for f in args.known],
                       "no_landmark": str(args.no_landmark) if args.no_landmark else None}, metrics, folder=args.runs)
    print(f"run record {record}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
