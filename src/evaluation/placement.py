"""Where a position may be written: the placement rule, measured on landmarks the model never saw.

A position written into a photo is right only when the photo shows a landmark the model knows and
names right. Naming (`src.evaluation.openset_rule.is_landmark`) answers "is it one of ours?";
placing asks more: "sure enough to write a place that maps, search and photo libraries will copy?".
A placement score (`SCORES`) must reach the rule's threshold. A position is right when it is the
true landmark's or another's at the same place (`src.data.landmarks.sites`: the Iron Pillar stands
in the Qutub Minar's courtyard), so cross-validation leaves whole places out.

The threshold is read off leave-landmarks-out cross-validation (`python -m src crossval
--leave-landmarks-out`, which saves every fold's per-photo outputs): the `placement_curve` pairs, for
every threshold, the share of photos of landmarks the model never saw that would get a (necessarily
wrong) position with the share of known landmarks' photos that would get the right one. The named
points (`POINTS`) are the thresholds that keep the unknown share under a budget; "strict", the
default, keeps it under 1 %. `stream_precision` turns a point into what a photo platform sees: the
share of written positions that are right when a given share of its landmark photos are of known
landmarks.

    python -m src.evaluation.placement OUTPUTS.npz [--figure static_images/placement_curve.png]

Plain numpy (no torch): the service and the tagger import the rule from here. The parts: the scores
(`src.evaluation.placement_scores`), the curve and its points (`placement_curve`), the rule shipped
beside a model (`placement_rule`); this module: the fold outputs' file, the report, its figure and
the command line.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import numpy as np

from src.data.landmarks import SITE_RADIUS_KM
# The parts, by responsibility; their names are imported from here too (callers and scripts always have).
from src.evaluation.placement_curve import (  # noqa: F401
    CurvePoint,
    PooledScores,
    candidate_thresholds,
    choose_point,
    nested_per_landmark,
    per_landmark_thresholds,
    placement_curve,
    pool,
    rates,
    site_ids,
    stream_precision,
)
from src.evaluation.placement_rule import DEFAULT_POINT, POINTS, Budget, PlacementRule, load_rule, rule_path, save_rule, tighten  # noqa: F401
from src.evaluation.placement_scores import (  # noqa: F401
    GROUPS,
    RESEMBLANCE_SCORES,
    SCORES,
    SERVED_SCORES,
    nearest_is_other,
    nearest_own_reference,
    placement_score,
    score_distractors,
    score_mirror,
    score_mirror_distractors,
    score_probability,
    score_probability_times_reference,
    score_reference,
)

STREAM_SHARES = (0.1, 0.5, 0.9)  # share of a platform's landmark photos that show a known landmark


def save_fold_outputs(path: Path, folds: list[dict[str, np.ndarray]], classes: list[str]) -> None:
    """Every fold's `fold_placement_outputs` in one .npz (keys "<fold>/<name>"), with the class names."""
    arrays = {f"{k}/{name}": value for k, fold in enumerate(folds) for name, value in fold.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, classes=np.asarray(classes), folds=np.int64(len(folds)), **arrays)


def load_fold_outputs(path: Path) -> tuple[list[dict[str, np.ndarray]], list[str]]:
    """What `save_fold_outputs` wrote: the folds' arrays and the class names."""
    with np.load(path) as data:
        folds = [{key.split("/", 1)[1]: data[key] for key in data.files if key.startswith(f"{k}/")} for k in range(int(data["folds"]))]
        return folds, data["classes"].tolist()


# ---- the report and its figure ----------------------------------------------------------------


def placement_report(folds: Sequence[dict[str, np.ndarray]], classes: Sequence[str], class_roots: Optional[Sequence[str]] = None,
                     scores: Sequence[str] = tuple(SCORES)) -> dict:
    """Per score: its curve, the named points, each point's rates per data root and stream precision.
    A known photo placed at its own landmark's place (`SITE_RADIUS_KM`) counts as placed right."""
    report: dict = {"points": {name: asdict(budget) for name, budget in POINTS.items()}, "site_radius_km": SITE_RADIUS_KM, "scores": {}}
    usable = [s for s in scores if all(len(folds[0].get(key, ())) for key in _needs(s))]
    places = site_ids(classes)
    for score in usable:
        pooled = pool(folds, score, class_roots, places)
        curve = placement_curve(pooled)
        chosen = {}
        for name, budget in POINTS.items():
            point = choose_point(curve, budget)
            if point is None:
                chosen[name] = None
                continue
            per_root = {str(root): asdict(rates(pooled, point.threshold, pooled.known_root == root)) for root in np.unique(pooled.known_root)}
            chosen[name] = {**asdict(point), "per_root": per_root,
                            "stream_precision": {f"{share:.0%}": stream_precision(point, share) for share in STREAM_SHARES}}
        report["scores"][score] = {"points": chosen, "curve": [asdict(p) for p in curve]}
    report["photos"] = {group: int(sum(len(f.get(f"{group}_truth", ())) for f in folds)) for group in GROUPS}
    return report


def _needs(score: str) -> tuple[str, ...]:
    keys = {"mirror": ("known_mirror_probs",), "distractors": ("other_embedding",), "reference": ("references_embedding",)}
    return tuple(k for part in score.replace("*", "+").split("+") for k in keys.get(part, ()))


def plot_curves(report: dict, path: str | Path, chosen_score: str, title: str = "") -> Path:
    """Known photos placed right against unknown landmarks placed, per score; the points marked."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.6), dpi=110)
    for score, data in report["scores"].items():
        curve = data["curve"]
        x = [100 * max(p["unknown_placed"], p.get("others_placed", 0.0)) for p in curve]
        y = [100 * p["known_placed_right"] for p in curve]
        label = score + (" (shipped)" if score == chosen_score else "") + (": left-out landmarks only" if "distractors" in score else "")
        ax.plot(x, y, lw=2.4 if score == chosen_score else 1.2, ls="--" if "distractors" in score else "-", label=label)
    for name, point in report["scores"][chosen_score]["points"].items():
        if point:
            unknown = 100 * max(point["unknown_placed"], point.get("others_placed", 0.0))
            ax.plot(unknown, 100 * point["known_placed_right"], "o", color="black")
            ax.annotate(f"{name}: threshold {point['threshold']:.4f}\n{100 * point['known_placed_right']:.1f} % right, "
                        f"{unknown:.1f} % unknown", (unknown, 100 * point["known_placed_right"]),
                        textcoords="offset points", xytext=(10, -28), fontsize=8)
    ax.axvline(1.0, color="grey", ls=":", lw=1)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(0, 100)
    ax.set_xticks([0, 0.5, 1, 2, 5, 10, 20, 50, 100])
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.set_xlabel("photos of landmarks it never saw that get a position (%; left-out or other landmarks, the worse)")
    ax.set_ylabel("known landmarks' photos placed right (%)")
    ax.set_title(title or "Placement: leave-landmarks-out cross-validation", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def class_roots_of(classes: Sequence[str], roots: Sequence[str | Path]) -> list[str]:
    """Each class's data root name (e.g. "world_landmarks"), read off the roots' train/ folders."""
    where = {}
    for root in roots:
        train = Path(root) / "train"
        for folder in train.iterdir() if train.is_dir() else []:
            where.setdefault(folder.name, Path(root).name)
    return [where.get(name, "") for name in classes]


def thinned(curve: Sequence[dict], points: int = 120) -> list[dict]:
    """Every k-th point of a curve (and its last), for a run record a person can read."""
    step = max(1, len(curve) // points)
    return list(curve[::step]) + ([curve[-1]] if (len(curve) - 1) % step else [])


def for_record(report: dict) -> dict:
    """The report with thinned curves, for a run record."""
    return {**report, "scores": {name: {**data, "curve": thinned(data["curve"])} for name, data in report["scores"].items()}}


def first_references(fold: dict[str, np.ndarray], per_class: int) -> dict[str, np.ndarray]:
    """The fold with only each landmark's first `per_class` reference photos, as `python -m src gallery
    references` keeps for a shipped model."""
    truth = fold["references_truth"]
    keep = np.zeros(len(truth), dtype=bool)
    for landmark in np.unique(truth):
        keep[np.flatnonzero(truth == landmark)[:per_class]] = True
    return {**fold, "references_embedding": fold["references_embedding"][keep], "references_truth": truth[keep]}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.evaluation.placement", description=__doc__.split("\n\n")[0])
    parser.add_argument("outputs", type=Path, help="per-photo fold outputs saved by `python -m src crossval --leave-landmarks-out`")
    parser.add_argument("--roots", nargs="*", default=[], help="the data roots of that run, to report known photos per root")
    parser.add_argument("--figure", type=Path, default=None, help="draw the curves into this PNG")
    parser.add_argument("--shipped", default="probability", choices=list(SCORES), help="the score drawn bold and written by --write-rule (default: %(default)s)")
    parser.add_argument("--record", type=Path, default=None, help="the run record of that crossval: the report is added to its metrics as 'placement'")
    parser.add_argument("--per-landmark", action="store_true", help="also measure per-landmark thresholds against one threshold (nested CV)")
    parser.add_argument("--references-per-class", type=int, default=None, metavar="N",
                        help="keep only each landmark's first N reference photos (the shipped model keeps 40; the outputs every training photo)")
    parser.add_argument("--write-rule", type=Path, default=None, metavar="MODEL",
                        help="write the --shipped score's named points beside this exported model (MODEL.placement.json)")
    args = parser.parse_args(argv)
    folds, classes = load_fold_outputs(args.outputs)
    if args.references_per_class:
        folds = [first_references(fold, args.references_per_class) for fold in folds]
    report = placement_report(folds, classes, class_roots_of(classes, args.roots) if args.roots else None)
    print(format_report(report))
    if args.figure:
        print(f"figure {plot_curves(report, args.figure, args.shipped)}")
    if args.per_landmark:
        report["per_landmark"] = {f"floor {floor}": nested_per_landmark(folds, classes, args.shipped, floor=floor) for floor in (0.9, 0.97, 0.99)}
        for name, result in report["per_landmark"].items():
            print(f"nested CV, {name}: " + "; ".join(f"{how}: {100 * r['known_placed_right']:.1f} % known placed right, "
                                                     f"{100 * r['unknown_placed']:.2f} % unknown placed" for how, r in result.items()))
    if args.record:
        record = json.loads(args.record.read_text())
        record["metrics"]["placement"] = for_record(report)
        args.record.write_text(json.dumps(record, indent=2) + "\n")
        print(f"run record {args.record}")
    if args.write_rule:
        points = report["scores"][args.shipped]["points"]
        missing = [name for name, point in points.items() if point is None]
        if missing:
            parser.error(f"no threshold of {args.shipped} keeps {', '.join(missing)} within budget: nothing written")
        probability = report["scores"]["probability"]["points"]  # taught landmarks are placed by the probability (PlacementRule.taught)
        taught = {name: round(point["threshold"], 6) for name, point in probability.items() if point} if args.shipped != "probability" else {}
        rule = PlacementRule(score=args.shipped, thresholds={name: round(point["threshold"], 6) for name, point in points.items()},
                             record=args.record.name if args.record else str(args.outputs.name), taught=taught)
        print(f"placement rule {save_rule(rule, args.write_rule)}")
    return 0


def format_report(report: dict) -> str:
    lines = [f"photos: {report['photos']}"]
    header = "score | point | threshold | known right | known wrong | unknown | others | objects | generated | per root right | precision 10/50/90 %"
    lines += [header, "-" * len(header)]
    for score, data in report["scores"].items():
        for name, p in data["points"].items():
            if p is None:
                lines.append(f"{score} | {name} | none within budget")
                continue
            roots = ", ".join(f"{r} {100 * v['known_placed_right']:.1f}" for r, v in p["per_root"].items())
            precision = "/".join(f"{100 * v:.1f}" for v in p["stream_precision"].values())
            lines.append(f"{score} | {name} | {p['threshold']:.4f} | {100 * p['known_placed_right']:.1f} | {100 * p['known_placed_wrong']:.2f} | "
                         f"{100 * p['unknown_placed']:.2f} | {100 * p['others_placed']:.2f} | {100 * p['objects_placed']:.2f} | "
                         f"{100 * p['generated_placed']:.2f} | {roots} | {precision}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
