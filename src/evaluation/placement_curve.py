"""The placement curve: for every threshold of a score, the share of known landmarks' photos placed right
against the share of unknown landmarks' photos placed (pooled over the folds), the points chosen on it
within a budget, and per-landmark thresholds measured by nested cross-validation. Plain numpy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from src.data.landmarks import sites
from src.evaluation.placement_rule import DEFAULT_POINT, POINTS, Budget
from src.evaluation.placement_scores import GROUPS, SCORES


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


def site_ids(classes: Sequence[str]) -> np.ndarray:
    """A place id per class (`src.data.landmarks.sites`; the background class is a place of its own)."""
    ids = np.zeros(len(classes), dtype=np.int64)
    for k, members in enumerate(sites(classes)):
        ids[members] = k
    return ids



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
