"""Choosing the look-alike rule (`src.serving.recognizer.taught_lookalikes.LookalikeRule`) on TRAINING photos only.

    python -m scripts.lookalike_margin --taught ../shared/other_landmarks \
        --known ../shared/indian_monuments/train ../shared/world_landmarks/train

For each draw, `--enrol` training photos of every landmark under `--taught` are taught (as
`scripts/taught_check` does) and, for every (share, margin) of the grid, two numbers are measured:
the taught landmarks' other training photos placed wrong (and right), and the known landmarks' training
photos placed (`--per-class` of each, leaving out the model's own reference photos, which are nearest to
themselves). The model runs once per draw; each rule only re-decides. Test photos are left for reporting
(`scripts/taught_check`). Prints a table and saves a run record (kind "gallery") in results/runs/.
"""

from __future__ import annotations

import argparse
import itertools
import random
import tempfile
from pathlib import Path

import numpy as np

from scripts.placement_check import photos_by_landmark
from scripts.taught_check import decoded_photos, same_site, teach
from src.data.landmarks import lookup
from src.runs import save_run
from src.serving.recognizer.recognize import Recognizer
from src.serving.recognizer.taught_lookalikes import LookalikeRule

SHARES = (0.0, 0.4, 0.5)
MARGINS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4)


def sample_known(folders: list[Path], per_class: int, seed: int = 0) -> list[tuple[Path, str]]:
    """Up to `per_class` random training photos of every known landmark."""
    rng, chosen = random.Random(seed), []
    for folder in folders:
        by_landmark: dict[str, list[tuple[Path, str]]] = {}
        for item in photos_by_landmark(folder):
            by_landmark.setdefault(item[1], []).append(item)
        for items in by_landmark.values():
            chosen += rng.sample(items, min(per_class, len(items)))
    return chosen


def rates(recognizer: Recognizer, outputs: tuple, queries: list) -> dict[str, float]:
    """Placed, placed right and placed wrong among `queries` ((image, true LandmarkInfo)) under the recognizer's rule."""
    probs, resemblance = outputs
    answers = [recognizer.decide(p, resemblance=r, size=image.size) for p, r, (image, _) in zip(probs, resemblance, queries)]
    right = [a.placed and same_site(a.top[0].info, truth) for a, (_, truth) in zip(answers, queries)]
    wrong = [a.placed and not ok for a, ok in zip(answers, right)]
    return {"placed": float(np.mean([a.placed for a in answers])), "placed_right": float(np.mean(right)), "placed_wrong": float(np.mean(wrong))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.lookalike_margin", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="exported model (default: $LANDMARK_MODEL or checkpoints/)")
    parser.add_argument("--taught", type=Path, required=True, help="a data root (train/) of landmarks the model never trained on")
    parser.add_argument("--known", nargs="+", type=Path, required=True, help="TRAINING folders of landmarks the model knows")
    parser.add_argument("--per-class", type=int, default=25, help="known training photos sampled per landmark (default %(default)s)")
    parser.add_argument("--enrol", type=int, default=5, help="photos taught per landmark (default %(default)s)")
    parser.add_argument("--draws", type=int, default=3, help="random draws of the taught photos (default %(default)s)")
    parser.add_argument("--runs", type=Path, default=None, help="run record folder (default: results/runs)")
    args = parser.parse_args(argv)

    plain = Recognizer(args.model, use_gallery=False)
    known = decoded_photos(plain, sample_known(args.known, args.per_class))
    nearest, _ = plain.references.nearest(plain.embed([image for image, _ in known.values()]), plain.class_names)
    known = {path: value for (path, value), similarity in zip(known.items(), nearest) if similarity < 0.999}
    taught = decoded_photos(plain, photos_by_landmark(args.taught / "train"))
    landmarks = sorted(p.name for p in (args.taught / "train").iterdir() if p.is_dir())
    rules = [LookalikeRule(None)] + [LookalikeRule(margin, share) for share, margin in itertools.product(SHARES, MARGINS)]
    measured: dict[str, list] = {f"{rule.share} {rule.margin}": [] for rule in rules}
    for draw in range(args.draws):
        with tempfile.TemporaryDirectory() as home:
            recognizer = Recognizer(args.model, gallery_dir=Path(home) / "gallery")
            enrolled = teach(recognizer, args.taught, landmarks, args.enrol, seed=draw)
            known_queries = [(image, lookup(name)) for image, name in known.values()]
            taught_queries = [(image, lookup(name)) for path, (image, name) in taught.items() if path not in enrolled]
            with recognizer._gallery_lock:  # one gallery for the outputs and every decision
                recognizer.refresh_gallery()
                known_out = recognizer._outputs(recognizer._squares([image for image, _ in known_queries]))
                taught_out = recognizer._outputs(recognizer._squares([image for image, _ in taught_queries]))
                for rule in rules:
                    recognizer.lookalike_rule = rule
                    recognizer.set_gallery(recognizer.gallery)  # the look-alike pairs depend on the rule's share
                    measured[f"{rule.share} {rule.margin}"].append(
                        {"taught": rates(recognizer, taught_out, taught_queries), "known": rates(recognizer, known_out, known_queries)})
    mean = {key: {kind: {k: float(np.mean([d[kind][k] for d in draws])) for k in draws[0][kind]} for kind in ("taught", "known")}
            for key, draws in measured.items()}
    print(f"{len(taught_queries)} taught training photos a draw, {len(known_queries)} known training photos (not references), "
          f"{args.draws} draws")
    print("share margin | taught placed wrong, right | known placed")
    for key, m in mean.items():
        print(f"{key:>10} | {100 * m['taught']['placed_wrong']:5.2f} %, {100 * m['taught']['placed_right']:5.1f} % | "
              f"{100 * m['known']['placed']:5.1f} %")
    record = save_run("gallery", "lookalike-margin", {"model": str(plain.model_path), "enrol": args.enrol, "draws": args.draws,
                      "per_class": args.per_class, "shares": list(SHARES), "margins": list(MARGINS)},
                      {"taught": str(args.taught), "known": [str(f) for f in args.known]},
                      {"by_rule": mean, "draws": measured}, folder=args.runs)
    print(f"run record {record}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
