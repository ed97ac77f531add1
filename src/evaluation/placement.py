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

Plain numpy (no torch): the service and the tagger import the rule from here.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from src.data.landmarks import SITE_RADIUS_KM, sites

GROUPS = ("known", "unknown", "objects", "generated", "others")  # others: landmarks outside the data, never trained (optional)
STREAM_SHARES = (0.1, 0.5, 0.9)  # share of a platform's landmark photos that show a known landmark


@dataclass(frozen=True)
class Budget:
    """What a placement point may cost, each a share of its group's photos."""

    unknown: float  # photos of landmarks the model never saw that get a position
    known_wrong: float = 0.005  # known landmarks' photos that get the wrong position
    objects: float = 0.005  # object photos that get a position


POINTS: dict[str, Budget] = {"strict": Budget(unknown=0.01), "balanced": Budget(unknown=0.05)}
DEFAULT_POINT = "strict"


# ---- placement scores: per photo, higher = surer; the best landmark is what would be placed --------


def _best(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best landmark (background excluded: the last column) and its probability, 0 where the
    background class beats it (such a photo is never named, so never placed)."""
    landmark = probs[:, :-1]
    best = landmark.argmax(axis=1)
    probability = landmark[np.arange(len(probs)), best]
    return best, np.where(probs[:, -1] > probability, 0.0, probability)


def score_probability(fold: dict[str, np.ndarray], group: str) -> tuple[np.ndarray, np.ndarray]:
    """The best landmark's calibrated probability (the rule the naming threshold already uses)."""
    return _best(fold[f"{group}_probs"])


def score_mirror(fold: dict[str, np.ndarray], group: str) -> tuple[np.ndarray, np.ndarray]:
    """A second look: the best landmark's probability in the photo AND in its mirror image, the
    smaller of the two (both looks must be sure of the same landmark)."""
    best, probability = _best(fold[f"{group}_probs"])
    mirror = fold[f"{group}_mirror_probs"]
    mirror_probability = np.where(mirror[:, -1] > mirror[np.arange(len(best)), best], 0.0, mirror[np.arange(len(best)), best])
    return best, np.minimum(probability, mirror_probability)


def nearest_own_reference(embedding: np.ndarray, best: np.ndarray, references: np.ndarray, reference_truth: np.ndarray) -> np.ndarray:
    """Per photo, the cosine similarity to the most similar reference photo of its best landmark (-inf
    where that landmark has none); unit-length embeddings."""
    own = np.full(len(best), -np.inf, dtype=np.float32)
    similarity = embedding.astype(np.float32) @ references.astype(np.float32).T
    for landmark in np.unique(best):
        rows = best == landmark
        columns = reference_truth == landmark
        if columns.any():
            own[rows] = similarity[np.ix_(rows, columns)].max(axis=1)
    return own


def nearest_is_other(embedding: np.ndarray, best: np.ndarray, references: np.ndarray, reference_truth: np.ndarray,
                     others: np.ndarray) -> np.ndarray:
    """True where the photo's most similar reference photo of its best landmark is less similar than
    the most similar photo of some other landmark (a distractor): "it looks more like a landmark that
    is not ours"."""
    if len(others) == 0:
        return np.zeros(len(best), dtype=bool)
    other = (embedding.astype(np.float32) @ others.astype(np.float32).T).max(axis=1)
    return other > nearest_own_reference(embedding, best, references, reference_truth)


def score_distractors(fold: dict[str, np.ndarray], group: str) -> tuple[np.ndarray, np.ndarray]:
    """The probability, 0 where the photo is nearer to a distractor (other landmarks' photos) than to
    every reference photo of its best landmark."""
    best, probability = score_probability(fold, group)
    known_classes = fold["known_classes"]
    others = nearest_is_other(fold[f"{group}_embedding"], best, fold["references_embedding"],
                              np.searchsorted(known_classes, fold["references_truth"]), fold["other_embedding"])
    return best, np.where(others, 0.0, probability)


def score_mirror_distractors(fold: dict[str, np.ndarray], group: str) -> tuple[np.ndarray, np.ndarray]:
    """Both the mirror image's second look and the distractor check."""
    best, probability = score_mirror(fold, group)
    _, distractor = score_distractors(fold, group)
    return best, np.where(distractor == 0, 0.0, probability)


RESEMBLANCE_SCORES = ("reference", "probability*reference")  # need the photo's similarity to its landmark's photos
SERVED_SCORES = ("probability", *RESEMBLANCE_SCORES)  # what the Recognizer computes per photo (`placement_score`)


def placement_score(score: str, probability, nearest=None):
    """A served score from the best landmark's probability (0 where the background wins: never placed)
    and, for `RESEMBLANCE_SCORES`, the cosine similarity between the photo and that landmark's nearest
    reference (or taught) photo, mapped to [0, 1]. Scalars or arrays; cross-validation and the
    Recognizer both score through here, so what is measured is what is served.

    "reference": how much the photo looks like a photo of its best landmark. "probability*reference":
    sure of the landmark AND close to a photo of it; a photo of a palace the model never saw can be
    sure of a palace it knows yet lie far from every photo of it."""
    if score == "probability":
        return probability
    if score not in RESEMBLANCE_SCORES:
        raise ValueError(f"placement score {score!r} is not served (only {', '.join(SERVED_SCORES)})")
    if nearest is None:
        raise ValueError(f"placement score {score!r} needs the photo's similarity to its landmark's reference photos")
    closeness = np.where(np.asarray(probability) > 0, np.clip((np.asarray(nearest, dtype=np.float32) + 1) / 2, 0.0, 1.0), 0.0)
    return closeness if score == "reference" else probability * closeness


def _score_by_reference(score: str, fold: dict[str, np.ndarray], group: str) -> tuple[np.ndarray, np.ndarray]:
    best, probability = score_probability(fold, group)
    own = nearest_own_reference(fold[f"{group}_embedding"], best, fold["references_embedding"],
                                np.searchsorted(fold["known_classes"], fold["references_truth"]))
    return best, placement_score(score, probability, own)


def score_reference(fold: dict[str, np.ndarray], group: str) -> tuple[np.ndarray, np.ndarray]:
    """The similarity to the best landmark's nearest reference photo, in [0, 1] (`placement_score`)."""
    return _score_by_reference("reference", fold, group)


def score_probability_times_reference(fold: dict[str, np.ndarray], group: str) -> tuple[np.ndarray, np.ndarray]:
    """The probability times `score_reference` (`placement_score`)."""
    return _score_by_reference("probability*reference", fold, group)


SCORES: dict[str, Callable[[dict[str, np.ndarray], str], tuple[np.ndarray, np.ndarray]]] = {
    "probability": score_probability,
    "mirror": score_mirror,
    "distractors": score_distractors,
    "mirror+distractors": score_mirror_distractors,
    "reference": score_reference,
    "probability*reference": score_probability_times_reference,
}


# ---- the curve ---------------------------------------------------------------------------------


@dataclass
class PooledScores:
    """One score's out-of-fold values per group, and whether each known photo's best landmark is right."""

    scores: dict[str, np.ndarray]
    known_correct: np.ndarray
    known_root: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))  # e.g. "indian_monuments" per known photo


def pool(folds: Sequence[dict[str, np.ndarray]], score: str, class_roots: Optional[Sequence[str]] = None,
         class_sites: Optional[Sequence[int]] = None) -> PooledScores:
    """`score` over every fold's groups. A known photo's position is right when its best landmark
    (the fold's own class index mapped back to the global one) is its true landmark or, given
    `class_sites` (`src.data.landmarks.sites`: a place id per class), one at the same place."""
    function = SCORES[score]
    place = np.asarray(class_sites) if class_sites is not None else None
    values: dict[str, list[np.ndarray]] = {group: [np.zeros(0)] for group in GROUPS}
    correct, roots = [], []
    for fold in folds:
        for group in GROUPS:
            if f"{group}_probs" not in fold or group == "others" and "distractors" in score:  # a distractor is no measure of itself
                continue
            best, value = function(fold, group)
            values[group].append(value)
            if group == "known":
                named, truth = fold["known_classes"][best], fold["known_truth"]
                correct.append(place[named] == place[truth] if place is not None else named == truth)
                if class_roots is not None:
                    roots.append(np.asarray(class_roots, dtype=object)[fold["known_truth"]])
    return PooledScores({g: np.concatenate(v) for g, v in values.items()}, np.concatenate(correct),
                        np.concatenate(roots) if roots else np.empty(0, dtype=object))


@dataclass(frozen=True)
class CurvePoint:
    threshold: float
    known_placed_right: float
    known_placed_wrong: float
    unknown_placed: float  # left-out landmarks' photos
    objects_placed: float
    generated_placed: float
    others_placed: float = 0.0  # photos of landmarks outside the data (when measured)


def rates(pooled: PooledScores, threshold: float, known_rows: Optional[np.ndarray] = None) -> CurvePoint:
    """Each group's share placed at `threshold` (known: right and wrong apart; known_rows: a subset)."""
    known = pooled.scores["known"] >= threshold
    correct = pooled.known_correct
    if known_rows is not None:
        known, correct = known[known_rows], correct[known_rows]

    def share(group: str) -> float:
        values = pooled.scores.get(group, np.zeros(0))
        return float((values >= threshold).mean()) if len(values) else 0.0

    return CurvePoint(threshold, float((known & correct).mean()), float((known & ~correct).mean()),
                      share("unknown"), share("objects"), share("generated"), share("others"))


def candidate_thresholds(pooled: PooledScores, count: int = 400) -> np.ndarray:
    """Thresholds where the curve moves: quantiles of the known and unknown scores above 0, densest
    near 1 where the budgets are met."""
    values = np.concatenate([pooled.scores["known"], pooled.scores["unknown"]])
    values = values[values > 0]
    levels = 1 - np.geomspace(1, 1e-4, count)  # 0 .. 0.9999, ever finer towards the top
    return np.unique(np.concatenate([np.quantile(values, levels), [1.0]]))


def placement_curve(pooled: PooledScores) -> list[CurvePoint]:
    return [rates(pooled, float(t)) for t in candidate_thresholds(pooled)]


def choose_point(curve: Sequence[CurvePoint], budget: Budget) -> Optional[CurvePoint]:
    """The lowest threshold (most photos placed) within every share of the budget (the unknown share
    holds for the left-out landmarks and the other landmarks alike); generated images are never
    placed (None when no threshold qualifies)."""
    ok = [p for p in curve if max(p.unknown_placed, p.others_placed) <= budget.unknown and p.known_placed_wrong <= budget.known_wrong
          and p.objects_placed <= budget.objects and p.generated_placed == 0]
    return min(ok, key=lambda p: p.threshold) if ok else None


def stream_precision(point: CurvePoint, known_share: float) -> float:
    """The share of written positions that are right on a stream where `known_share` of the landmark
    photos show a landmark the model knows and the rest one it never saw."""
    right = known_share * point.known_placed_right
    written = right + known_share * point.known_placed_wrong + (1 - known_share) * max(point.unknown_placed, point.others_placed)
    return right / written if written > 0 else 1.0


# ---- per-landmark thresholds, measured by nested cross-validation --------------------------------


def _pooled_with_classes(folds: Sequence[dict[str, np.ndarray]], score: str, places: np.ndarray) -> dict[str, np.ndarray]:
    """Per photo of the known and unknown groups: score, the named landmark (global index), right or not, fold."""
    out: dict[str, list] = {key: [] for key in ("known_score", "known_class", "known_right", "known_fold", "unknown_score", "unknown_class", "unknown_fold")}
    for k, fold in enumerate(folds):
        for group in ("known", "unknown"):
            best, value = SCORES[score](fold, group)
            named = fold["known_classes"][best]
            out[f"{group}_score"].append(value)
            out[f"{group}_class"].append(named)
            out[f"{group}_fold"].append(np.full(len(value), k))
            if group == "known":
                out["known_right"].append(places[named] == places[fold["known_truth"]])
    return {key: np.concatenate(values) for key, values in out.items()}


def per_landmark_thresholds(known_score: np.ndarray, known_class: np.ndarray, known_right: np.ndarray,
                            unknown_score: np.ndarray, unknown_class: np.ndarray, max_unknown: int, floor: float) -> dict[int, float]:
    """A threshold per named landmark that places the most known photos right for at most
    `max_unknown` unknown photos placed in all. Each landmark starts just above its surest unknown
    photo (or at `floor` when no unknown photo was named as it); then the budget goes, one unknown
    photo at a time, to the landmark whose next unknown photo buys the most right positions. No
    threshold goes below `floor`: below the last unknown photo seen there is no evidence."""
    levels: dict[int, list[float]] = {}  # landmark -> thresholds, each admitting one more unknown photo
    gains: dict[int, list[int]] = {}
    for landmark in np.unique(known_class).tolist():
        unknown = np.sort(unknown_score[unknown_class == landmark])[::-1]
        above = [max(float(np.nextafter(u, 2.0)), floor) for u in unknown] + [floor]
        right = known_score[(known_class == landmark) & known_right]
        levels[landmark] = above
        gains[landmark] = [int(((right >= lower) & (right < upper)).sum()) for upper, lower in zip(above, above[1:])]
    chosen = {landmark: 0 for landmark in levels}
    for _ in range(max_unknown):
        candidates = {c: gains[c][chosen[c]] for c in levels if chosen[c] < len(gains[c])}
        best = max(candidates, key=candidates.get, default=None)
        if best is None or candidates[best] == 0:
            break
        chosen[best] += 1
    return {landmark: levels[landmark][level] for landmark, level in chosen.items()}


def nested_per_landmark(folds: Sequence[dict[str, np.ndarray]], classes: Sequence[str], score: str = "probability",
                        budget: Budget = POINTS[DEFAULT_POINT], floor: float = 0.9) -> dict:
    """Per-landmark thresholds against one threshold, both chosen on the other folds and applied to
    each fold in turn (nested: no fold's photos choose its own thresholds); pooled rates."""
    places = site_ids(classes)
    data = _pooled_with_classes(folds, score, places)
    placed_known = {"one": np.zeros(len(data["known_score"]), bool), "per_landmark": np.zeros(len(data["known_score"]), bool)}
    placed_unknown = {"one": np.zeros(len(data["unknown_score"]), bool), "per_landmark": np.zeros(len(data["unknown_score"]), bool)}
    for k in range(len(folds)):
        fit_k, fit_u = data["known_fold"] != k, data["unknown_fold"] != k
        pooled = PooledScores({"known": data["known_score"][fit_k], "unknown": data["unknown_score"][fit_u],
                               "objects": np.zeros(0), "generated": np.zeros(0)}, data["known_right"][fit_k])
        one = choose_point(placement_curve(pooled), budget)
        global_threshold = one.threshold if one is not None else 1.0
        per = per_landmark_thresholds(data["known_score"][fit_k], data["known_class"][fit_k], data["known_right"][fit_k],
                                      data["unknown_score"][fit_u], data["unknown_class"][fit_u], int(budget.unknown * fit_u.sum()), floor)
        test_k, test_u = ~fit_k, ~fit_u
        placed_known["one"][test_k] = data["known_score"][test_k] >= global_threshold
        placed_unknown["one"][test_u] = data["unknown_score"][test_u] >= global_threshold
        limit = lambda cls: np.array([per.get(int(c), global_threshold) for c in cls])
        placed_known["per_landmark"][test_k] = data["known_score"][test_k] >= limit(data["known_class"][test_k])
        placed_unknown["per_landmark"][test_u] = data["unknown_score"][test_u] >= limit(data["unknown_class"][test_u])
    right = data["known_right"]
    return {name: {"known_placed_right": float((placed_known[name] & right).mean()), "known_placed_wrong": float((placed_known[name] & ~right).mean()),
                   "unknown_placed": float(placed_unknown[name].mean())} for name in placed_known}


# ---- the rule shipped beside a model ----------------------------------------------------------


@dataclass(frozen=True)
class PlacementRule:
    """What the tagger, service and app place by: a score (`SCORES`) and one threshold per named point.
    Stored beside the exported model as `<model>.placement.json` (`save_rule`, `load_rule`)."""

    score: str
    thresholds: dict[str, float]
    default: str = DEFAULT_POINT
    record: str = ""  # the run record the thresholds were read from
    # Probability thresholds per point for photos whose best landmark is taught (empty: `score` and
    # `thresholds` as for the trained ones). A taught landmark's few enrolled photos are never as close
    # to its other photos as a trained landmark's reference photos are to its own, so a score that
    # measures closeness would place almost none of them; its placement was measured on the
    # probability (scripts/whitening_eval.py, docs/gallery.md).
    taught: dict[str, float] = field(default_factory=dict)

    def threshold(self, point: Optional[str] = None) -> float:
        name = point or self.default
        if name not in self.thresholds:
            raise ValueError(f"unknown placement point {name!r}: choose one of {', '.join(self.thresholds)} or give a number")
        return self.thresholds[name]

    def taught_threshold(self, point: Optional[str] = None) -> Optional[float]:
        """The probability threshold for taught landmarks at `point`, or None (the rule's own score applies)."""
        return self.taught.get(point or self.default)


def tighten(rule: PlacementRule, unknown_scores: np.ndarray, source: str) -> PlacementRule:
    """`rule` with each named point (`POINTS`) raised, where needed, until at most its unknown budget of
    `unknown_scores` reaches it: the scores the shipped model itself gives photos of landmarks it never
    trained on (0 for a photo it does not name). Cross-validation's thresholds come from fold models,
    which are less sure of everything than a model trained on every photo."""
    scores = np.sort(np.asarray(unknown_scores, dtype=np.float64))[::-1]
    thresholds = dict(rule.thresholds)
    for name, threshold in rule.thresholds.items():
        allowed = int(POINTS[name].unknown * len(scores)) if name in POINTS else len(scores)
        if allowed < len(scores) and scores[allowed] >= threshold:
            thresholds[name] = math.ceil(scores[allowed] * 1e6 + 1) / 1e6  # just above it, in the rule file's 6 decimals
    return PlacementRule(rule.score, thresholds, rule.default, f"{rule.record}; raised on {source}", dict(rule.taught))


def rule_path(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".placement.json")


def save_rule(rule: PlacementRule, model_path: str | Path) -> Path:
    path = rule_path(model_path)
    path.write_text(json.dumps(asdict(rule), indent=2) + "\n")
    return path


def load_rule(model_path: str | Path) -> Optional[PlacementRule]:
    """The rule beside the model, or None for a model exported before placement rules existed."""
    path = rule_path(model_path)
    if not path.exists():
        return None
    return PlacementRule(**json.loads(path.read_text()))


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


def site_ids(classes: Sequence[str]) -> np.ndarray:
    """A place id per class (`src.data.landmarks.sites`; the background class is a place of its own)."""
    ids = np.zeros(len(classes), dtype=np.int64)
    for k, members in enumerate(sites(classes)):
        ids[members] = k
    return ids


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
