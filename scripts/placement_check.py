"""Where does the shipped tagger write a position? The whole serving path (`Recognizer`), per photo set.

    python -m scripts.placement_check --known ../shared/indian_monuments/test ../shared/world_landmarks/test \
        --unknown ../shared/other_landmarks/test --no-landmark ../shared/no_landmark --generated 240 [--placement strict]

For each known set: photos placed at the right place (their landmark's site, `src.data.landmarks.sites`),
placed wrong, named but not placed, unknown. For landmarks the model never saw (`--unknown`, folders
of landmarks outside the model's classes; only a fair measure while no training used them in any role),
objects (the held-out half of `--no-landmark`'s categories) and generated non-photos: the share that
gets a position at all. Then the stream precision of written positions (`src.evaluation.placement`).
Prints a table and saves a run record (kind "evaluate") in results/runs/.

`--tighten-on FOLDERS` first raises each point of the model's rule until the model itself places at
most the point's budget of these photos (landmarks it never trained on, e.g. ../shared/other_landmarks/train;
never the folders measured), and measures with the raised rule; `--write-rule` saves it beside the model.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from tqdm import tqdm

from src.data.folders import split_no_landmark
from src.data.images import is_image_file
from src.data.landmarks import lookup
from src.data.synthetic import make_degenerate_images
from src.evaluation.openset import GENERATED_EVAL_SEED
from src.evaluation.placement import STREAM_SHARES, CurvePoint, save_rule, site_ids, stream_precision, tighten
from src.runs import save_run
from src.serving.recognizer.recognize import Recognition, Recognizer


def photos_by_landmark(folder: Path) -> list[tuple[Path, str]]:
    return [(photo, landmark.name) for landmark in sorted(p for p in folder.iterdir() if p.is_dir())
            for photo in sorted(landmark.iterdir()) if is_image_file(photo)]


def recognize_all(recognizer: Recognizer, sources: list, batch: int = 32, desc: str = "") -> list[Recognition]:
    out: list[Recognition] = []
    for start in tqdm(range(0, len(sources), batch), desc=desc, ncols=90):
        out += recognizer.recognize_many(sources[start : start + batch])
    return out


def same_place(named: str, truth: str, place_of: dict[str, int]) -> bool:
    """The named landmark stands at the true landmark's site (the same landmark, or one beside it)."""
    return named == truth or (named in place_of and truth in place_of and place_of[named] == place_of[truth])


def known_rates(results: list[Recognition], truths: list[str], place_of: dict[str, int]) -> dict[str, float]:
    placed = np.array([r.placed for r in results])
    right = np.array([r.placed and same_place(r.top[0].class_name, t, place_of) for r, t in zip(results, truths)])
    named = np.array([r.status == "landmark" for r in results])
    return {"photos": len(results), "placed_right": float(right.mean()), "placed_wrong": float((placed & ~right).mean()),
            "named_not_placed": float((named & ~placed).mean()), "not_named": float((~named).mean())}


def placed_share(results: list[Recognition]) -> dict[str, float]:
    return {"photos": len(results), "placed": float(np.mean([r.placed for r in results])) if results else 0.0,
            "named": float(np.mean([r.status == "landmark" for r in results])) if results else 0.0}


def never_trained(recognizer: Recognizer, folders: list[Path], parser: argparse.ArgumentParser) -> list[tuple[Path, str]]:
    """Photos of the landmarks in `folders`, refused when the model knows any of them."""
    items = [item for folder in folders for item in photos_by_landmark(folder)]
    clash = sorted({t for _, t in items} & set(recognizer.class_names))
    if clash:
        parser.error(f"{', '.join(map(str, folders))} hold landmarks the model knows ({', '.join(clash)}): not a measure of unknown landmarks")
    return items


def tightened(recognizer: Recognizer, args: argparse.Namespace, parser: argparse.ArgumentParser) -> Recognizer:
    """The Recognizer with its rule raised on the --tighten-on photos (`src.evaluation.placement.tighten`)."""
    items = never_trained(recognizer, args.tighten_on, parser)
    results = recognize_all(recognizer, [p for p, _ in items], desc="tighten-on")
    scores = np.array([r.score if r.score is not None else 0.0 for r in results])
    rule = tighten(recognizer.placement_rule, scores, " ".join(str(f) for f in args.tighten_on))
    for name, threshold in rule.thresholds.items():
        print(f"{name}: {recognizer.placement_rule.thresholds[name]:g} -> {threshold:g} ({int((scores >= threshold).sum())} of {len(scores)} placed)")
    if args.write_rule:
        print(f"placement rule {save_rule(rule, recognizer.model_path)}")
    recognizer.use_placement(rule, args.placement)
    return recognizer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.placement_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="exported model (default: $LANDMARK_MODEL or checkpoints/transfer_exported.pt)")
    parser.add_argument("--known", nargs="+", type=Path, required=True, help="test folders of landmarks the model knows")
    parser.add_argument("--unknown", nargs="*", type=Path, default=[], help="folders of landmarks the model never saw")
    parser.add_argument("--no-landmark", type=Path, default=None, help="object photos; the held-out half of the categories is measured")
    parser.add_argument("--generated", type=int, default=240, help="generated non-photos to measure on")
    parser.add_argument("--placement", default=None, help="named point or probability (default: the model's default point)")
    parser.add_argument("--tighten-on", nargs="*", type=Path, default=[], metavar="FOLDER",
                        help="folders of landmarks the model never trained on: raise the rule's points to their budgets on them first")
    parser.add_argument("--write-rule", action="store_true", help="save the raised rule beside the model (with --tighten-on)")
    parser.add_argument("--runs", type=Path, default=None, help="run record folder (default: results/runs)")
    parser.add_argument("--runtime", default=None)
    parser.add_argument("--precision", default=None)
    args = parser.parse_args(argv)

    recognizer = Recognizer(args.model, placement=args.placement, runtime=args.runtime, precision=args.precision, use_gallery=False)
    if args.write_rule and not args.tighten_on:
        parser.error("--write-rule writes the rule raised by --tighten-on: name its folders")
    if args.tighten_on:
        recognizer = tightened(recognizer, args, parser)
    place_of = dict(zip(recognizer.class_names, site_ids(recognizer.class_names).tolist()))
    metrics: dict = {"placement": {"point": recognizer.placement_point, "score": recognizer.placement_score, "threshold": recognizer.placement_threshold,
                                   "rule": recognizer.placement_rule.record}, "runtime": recognizer.runtime, "known": {}, "unknown": {}}
    known_pooled = {"placed_right": [], "placed_wrong": []}
    for folder in args.known:
        items = photos_by_landmark(folder)
        results = recognize_all(recognizer, [p for p, _ in items], desc=folder.parent.name)
        truths = [lookup(t).class_name for _, t in items]
        metrics["known"][folder.parent.name] = known_rates(results, truths, place_of)
        for key in known_pooled:
            known_pooled[key].append(metrics["known"][folder.parent.name][key] * len(items))
    unknown_results: list[Recognition] = []
    for folder in args.unknown:
        items = never_trained(recognizer, [folder], parser)
        results = recognize_all(recognizer, [p for p, _ in items], desc=folder.parent.name)
        unknown_results += results
        per_landmark = {}
        for (_, truth), result in zip(items, results):
            per_landmark.setdefault(truth, []).append(result)
        metrics["unknown"][folder.parent.name] = {**placed_share(results),
                                                  "per_landmark": {k: placed_share(v)["placed"] for k, v in per_landmark.items()},
                                                  "placed_as": sorted({r.top[0].class_name for r in results if r.placed})}
    if args.no_landmark:
        held_out = split_no_landmark(args.no_landmark)["held_out"]
        metrics["objects"] = placed_share(recognize_all(recognizer, held_out, desc="objects"))
    if args.generated:
        images = [image for _, image in make_degenerate_images(args.generated, seed=GENERATED_EVAL_SEED)]
        data = []
        for image in images:
            buffer = io.BytesIO()
            image.save(buffer, "PNG")
            data.append(buffer.getvalue())
        metrics["generated"] = placed_share(recognize_all(recognizer, data, desc="generated"))

    total = sum(m["photos"] for m in metrics["known"].values())
    unknown_placed = placed_share(unknown_results)["placed"] if unknown_results else 0.0
    pooled = CurvePoint(recognizer.placement_threshold, sum(known_pooled["placed_right"]) / total, sum(known_pooled["placed_wrong"]) / total,
                        unknown_placed, metrics.get("objects", {}).get("placed", 0.0), metrics.get("generated", {}).get("placed", 0.0))
    metrics["stream_precision"] = {f"{share:.0%}": stream_precision(pooled, share) for share in STREAM_SHARES}

    print(f"model {recognizer.model_path.name}, placement {recognizer.placement_description} "
          f"({recognizer.placement_rule.record}), {recognizer.runtime}")
    print("set | photos | placed right | placed wrong | named, not placed | not named")
    for name, m in metrics["known"].items():
        print(f"{name} | {m['photos']} | {100 * m['placed_right']:.1f} % | {100 * m['placed_wrong']:.2f} % | "
              f"{100 * m['named_not_placed']:.1f} % | {100 * m['not_named']:.1f} %")
    for name, m in metrics["unknown"].items():
        print(f"{name} (never seen) | {m['photos']} | placed {100 * m['placed']:.2f} % (named {100 * m['named']:.1f} %) as {m['placed_as']}")
    for key in ("objects", "generated"):
        if key in metrics:
            print(f"{key} | {metrics[key]['photos']} | placed {100 * metrics[key]['placed']:.2f} %")
    print("precision of written positions, by share of known landmarks in the stream: "
          + ", ".join(f"{k} {100 * v:.1f} %" for k, v in metrics["stream_precision"].items()))
    record = save_run("evaluate", f"placement-{recognizer.placement_point}", {"model": str(recognizer.model_path), "placement": args.placement},
                      {"known": [str(f) for f in args.known], "unknown": [str(f) for f in args.unknown], "tighten_on": [str(f) for f in args.tighten_on],
                       "no_landmark": str(args.no_landmark) if args.no_landmark else None, "generated": args.generated}, metrics,
                      folder=args.runs)
    print(f"run record {record}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
