"""Data-light retrieval levers for taught landmarks and placement, on saved leave-landmarks-out outputs.

    python -m scripts.whitening_eval --outputs /tmp/cv/sites-refs.npz [--seeds 0 10 20 30 40]

No training: every number comes from the per-photo outputs `python -m src crossval --leave-landmarks-out
... --outputs FILE` saved (`src.evaluation.placement.load_fold_outputs`). In each fold the left-out
landmarks are taught from 5 photos each (drawn as `src.training.openset_cv.teach_fold` draws them, one
draw per seed) and their other photos scored with the reference rule (`combine_by_reference`, 40
reference photos per trained class), beside the fold's known, object and generated photos. Levers:

  whitening   PCA-whitening fitted on the fold's own training photos ("references") or on the other
              landmarks' photos ("others"), d dimensions, eigenvalues shrunk towards their mean by s
              (s = 0: full whitening; s = 1: a PCA rotation only), then L2-normalised;
  dba / qe    database-side augmentation (each enrolled and reference photo replaced by the weighted
              mean of its k nearest in that database, weights similarity^3) and alpha-query expansion
              (the photo plus its k nearest database photos, weights similarity^3);
  placement   the similarity to the nearest reference photo of the best landmark, whitened or not,
              against the calibrated probability as a placement score (`src.evaluation.placement`).

The rule's margin and temperature are chosen per fold on the OTHER folds (nested): the most taught photos
named right such that known photos named right drop at most 0.5 points and objects named rise at most
0.5 points against the model alone. Mirror-image enrolment is not possible here (the outputs hold the
mirror images' probabilities, not their embeddings). The CV's reference set also held the background
class's training photos; the outputs do not, so half of the held-out object categories stand in for them
(categories alternately, `--objects-per-category` photos each in the saved order) and only the other half
is scored as objects.
Prints a table and saves a run record (kind "gallery") in results/runs/.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from src.evaluation.gallery_rule import ReferenceRule, combine_by_reference
from src.evaluation.placement import (Budget, PooledScores, choose_point, load_fold_outputs, nearest_own_reference, placement_curve,
                                      pool, rates, site_ids)
from src.runs import save_run
from src.training.openset_cv import GALLERY_SHOTS, REFERENCES_PER_CLASS, taught_rates

MARGINS = np.round(np.arange(-0.10, 0.2001, 0.01), 3)
TEMPERATURES = (0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05)
MAX_KNOWN_DROP, MAX_OBJECTS_RISE = 0.005, 0.005
SCORED = ("known", "objects", "generated")


# ---- the levers: plain functions on L2-normalised rows ---------------------------------------------


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Whitening:
    mean: np.ndarray
    projection: np.ndarray  # [features, dims]: eigenvectors scaled by 1 / sqrt(shrunk eigenvalue)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return normalize((np.asarray(x, dtype=np.float32) - self.mean) @ self.projection)


_EIGEN: dict = {}  # one eigendecomposition per fitted array, shared by every dims and shrink


def fit_whitening(x: np.ndarray, dims: int, shrink: float) -> Whitening:
    """PCA-whitening of `x`'s rows to `dims` dimensions; eigenvalues shrunk towards their mean by `shrink`."""
    key = (id(x), x.shape)
    if key not in _EIGEN:
        x64 = np.asarray(x, dtype=np.float64)
        mean = x64.mean(axis=0)
        _EIGEN[key] = (mean, *np.linalg.eigh(np.cov(x64 - mean, rowvar=False)))
    mean, values, vectors = _EIGEN[key]
    order = np.argsort(values)[::-1][:dims]
    values, vectors = np.maximum(values[order], 0.0), vectors[:, order]
    shrunk = (1 - shrink) * values + shrink * values.mean()
    shrunk = np.maximum(shrunk, 1e-6 * values.mean())  # rank-deficient fits: no division by zero
    return Whitening(mean.astype(np.float32), (vectors / np.sqrt(shrunk)).astype(np.float32))


def augment(x: np.ndarray, database: np.ndarray, k: int, alpha: float = 3.0, include_self: bool = False) -> np.ndarray:
    """Each row of `x` plus its k nearest rows of `database`, weighted similarity^alpha, renormalised
    (alpha-QE; database-side augmentation when x is the database and include_self: the row is its own
    nearest, weight 1)."""
    if k == 0 or len(database) == 0:
        return x
    similarity = x @ database.T
    nearest = np.argsort(-similarity, axis=1)[:, :k]
    weights = np.maximum(np.take_along_axis(similarity, nearest, axis=1), 0.0) ** alpha
    expanded = np.einsum("nk,nkd->nd", weights, database[nearest])
    return normalize(expanded if include_self else x + expanded)


# ---- one fold, one draw ----------------------------------------------------------------------------


def shot_rows(unknown_truth: np.ndarray, shots: int, seed: int) -> np.ndarray:
    """The enrolled photos `teach_fold` draws for `seed` (checked against it by `check_against_teach_fold`)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.permutation(np.flatnonzero(unknown_truth == c))[:shots] for c in sorted(set(unknown_truth.tolist()))])


def with_background(fold: dict, per_category: int) -> dict:
    """The fold with its object photos split by category: even categories become background references
    ("background_embedding"), odd ones stay scored as objects. Outputs that kept the background class's
    own reference rows (`fold_placement_outputs` since they do) are returned as they are."""
    if "background_embedding" in fold:
        return fold
    category = np.arange(len(fold["objects_truth"])) // per_category
    out = {key: value for key, value in fold.items() if not key.startswith("objects_")}
    out["background_embedding"] = fold["objects_embedding"][category % 2 == 0]
    out.update({key: value[category % 2 == 1] for key, value in fold.items() if key.startswith("objects_")})
    return out


def reference_rows(truth: np.ndarray) -> np.ndarray:
    """The first REFERENCES_PER_CLASS training photos of each class, as the CV and `gallery references` keep."""
    return np.concatenate([np.flatnonzero(truth == c)[:REFERENCES_PER_CLASS] for c in np.unique(truth)])


@dataclass(frozen=True)
class Lever:
    name: str
    fit: Optional[str] = None  # "references" | "others": whitening fitted on those photos
    dims: int = 0
    shrink: float = 0.0
    dba: int = 0  # k of database-side augmentation
    qe: int = 0  # k of alpha-query expansion
    mirror_enrol: bool = False  # each enrolled photo's mirror image enrolled beside it


def similarities(fold: dict, lever: Lever, seed: int) -> dict:
    """Per scored group: its probabilities, each taught landmark's best similarity and the best reference's."""
    fit = {"references": fold["references_embedding"], "others": fold["other_embedding"]}.get(lever.fit)
    embed = fit_whitening(fit, lever.dims, lever.shrink) if fit is not None else normalize
    truth = fold["unknown_truth"]
    shots = shot_rows(truth, GALLERY_SHOTS, seed)
    queries = np.setdiff1d(np.arange(len(truth)), shots)
    landmarks = sorted(set(truth.tolist()))
    shot_landmark = np.array([landmarks.index(c) for c in truth[shots]])
    enrolled = embed(fold["unknown_embedding"][shots])
    if lever.mirror_enrol:
        enrolled = np.concatenate([enrolled, embed(fold["unknown_mirror_embedding"][shots])])
        shot_landmark = np.concatenate([shot_landmark, shot_landmark])
    references = embed(np.concatenate([fold["references_embedding"][reference_rows(fold["references_truth"])], fold["background_embedding"]]))
    if lever.dba:
        database = augment(np.concatenate([enrolled, references]), np.concatenate([enrolled, references]), lever.dba, include_self=True)
        enrolled, references = database[: len(enrolled)], database[len(enrolled):]
    database = np.concatenate([enrolled, references])
    out = {"taught_truth": fold["unknown_probs"].shape[1] + np.array([landmarks.index(c) for c in truth[queries]])}
    for group, rows in [("taught", queries)] + [(g, slice(None)) for g in SCORED]:
        source = "unknown" if group == "taught" else group
        x = augment(embed(fold[f"{source}_embedding"][rows]), database, lever.qe)
        similarity = x @ enrolled.T
        per_landmark = np.stack([similarity[:, shot_landmark == t].max(axis=1) for t in range(len(landmarks))], axis=1)
        out[group] = (fold[f"{source}_probs"][rows], per_landmark, (x @ references.T).max(axis=1))
    return out


def placed(probs: np.ndarray, background: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The best column other than the background and whether its probability reaches the placement threshold."""
    scores = np.delete(probs, background, axis=1)
    best = scores.argmax(axis=1)
    best = best + (best >= background)
    return best, probs[np.arange(len(best)), best] >= threshold


def rule_rates(sims: dict, known_truth: np.ndarray, rule: ReferenceRule, threshold: float, place_at: Optional[float] = None) -> dict:
    """`taught_rates` of one fold under `rule`; with `place_at` (a placement threshold on the
    probability) also the taught photos placed right and wrong, and the known and object photos placed
    wrong (at another landmark, or at all) before and after teaching."""
    import torch

    fold = {"taught_truth": sims["taught_truth"], "taught": combine_by_reference(*sims["taught"], rule)}
    for group in SCORED:
        fold[group], fold[f"{group}_alone"] = combine_by_reference(*sims[group], rule), sims[group][0]
    out = taught_rates([fold], [torch.as_tensor(known_truth)], threshold)
    if place_at is not None:
        background = sims["known"][0].shape[1] - 1
        best, where = placed(fold["taught"], background, place_at)
        out["taught_placed_right"] = float(np.mean(where & (best == fold["taught_truth"])))
        out["taught_placed_wrong"] = float(np.mean(where & (best != fold["taught_truth"])))
        for when, key in (("before", "known_alone"), ("after", "known")):
            best, where = placed(fold[key], background, place_at)
            out[f"known_placed_wrong_{when}"] = float(np.mean(where & (best != known_truth)))
            out[f"objects_placed_{when}"] = float(np.mean(placed(fold[key.replace("known", "objects")], background, place_at)[1]))
    return out


def naming_threshold(folds: list[dict], max_rejected: float = 0.03) -> float:
    """The max-probability threshold that rejects `max_rejected` of the pooled known photos (as the CV)."""
    best = []
    for fold in folds:
        probs = fold["known_probs"]
        p = probs[:, :-1].max(axis=1)
        best.append(p[probs[:, -1] <= p])
    return float(np.quantile(np.concatenate(best), max_rejected))


# ---- nested choice of the rule, and the table -------------------------------------------------------


def pooled(per_fold: list[dict], counts: list[dict], keys: tuple[str, ...]) -> dict:
    return {key: sum(r[key] * c[key] for r, c in zip(per_fold, counts)) / sum(c[key] for c in counts) for key in keys}


KEYS = ("taught_named_correctly", "taught_top1", "known_named_correctly_before", "known_named_correctly_after", "objects_named_before", "objects_named_after")
PLACE_KEYS = ("taught_placed_right", "taught_placed_wrong", "known_placed_wrong_before", "known_placed_wrong_after", "objects_placed_before",
              "objects_placed_after")
MAX_TAUGHT_PLACED_WRONG, MAX_PLACED_WRONG_RISE = 0.01, 0.001


def nested(grid: list[dict], counts: list[dict]) -> tuple[list[dict], list[tuple]]:
    """grid[fold][(margin, temperature)] -> rates. Per fold the rule that is best on the other folds."""
    chosen, results = [], []
    rules = list(grid[0])
    for k in range(len(grid)):
        others = [j for j in range(len(grid)) if j != k]

        def value(rule):
            keys = tuple(key for key in KEYS + PLACE_KEYS if key in grid[0][rule])
            p = pooled([grid[j][rule] for j in others], [counts[j] for j in others], keys)
            ok = (p["known_named_correctly_after"] >= p["known_named_correctly_before"] - MAX_KNOWN_DROP
                  and p["objects_named_after"] <= p["objects_named_before"] + MAX_OBJECTS_RISE)
            if "taught_placed_wrong" in p:  # never write a wrong place: teaching may not add wrong positions
                ok = ok and (p["taught_placed_wrong"] <= MAX_TAUGHT_PLACED_WRONG
                             and p["known_placed_wrong_after"] <= p["known_placed_wrong_before"] + MAX_PLACED_WRONG_RISE
                             and p["objects_placed_after"] <= p["objects_placed_before"] + MAX_PLACED_WRONG_RISE)
            return (ok, p["taught_named_correctly"] if ok else rule[0])

        best = max(rules, key=value)
        chosen.append(best)
        results.append(grid[k][best])
    return results, chosen


def counts_of(fold: dict, sims: dict) -> dict:
    n = {"taught": len(sims["taught_truth"]), "known": len(fold["known_truth"]), "objects": len(fold["objects_truth"])}
    return {key: n[key.split("_")[0]] for key in KEYS + PLACE_KEYS}


def evaluate_lever(folds: list[dict], lever: Lever, seeds: list[int], threshold: float, fixed: Optional[ReferenceRule] = None,
                   place_at: Optional[float] = None) -> dict:
    """Per seed: pooled rates with the nested rule (or the shipped one with `fixed`), and per fold;
    with `place_at` also the placement rates (`rule_rates`), which then constrain the nested choice."""
    keys = KEYS + (PLACE_KEYS if place_at is not None else ())
    per_seed, per_fold_taught, chosen_rules = [], [], []
    rules = [fixed] if fixed else [ReferenceRule(float(m), t) for m in MARGINS for t in TEMPERATURES]
    for seed in seeds:
        grid, counts = [], []
        for k, fold in enumerate(folds):
            sims = similarities(fold, lever, seed + k)
            truth = np.searchsorted(fold["known_classes"], fold["known_truth"])
            grid.append({(r.margin, r.temperature): rule_rates(sims, truth, r, threshold, place_at) for r in rules})
            counts.append(counts_of(fold, sims))
        results, chosen = ([g[(fixed.margin, fixed.temperature)] for g in grid], [None] * len(grid)) if fixed else nested(grid, counts)
        per_seed.append(pooled(results, counts, keys))
        per_fold_taught.append([r["taught_named_correctly"] for r in results])
        chosen_rules.append(chosen)
    folds_mean = np.mean(per_fold_taught, axis=0)
    return {"lever": lever.__dict__, "fixed_rule": vars(fixed) if fixed else None,
            "mean": {key: float(np.mean([s[key] for s in per_seed])) for key in keys},
            "sd_over_seeds": {key: float(np.std([s[key] for s in per_seed])) for key in keys},
            "taught_per_fold": folds_mean.tolist(), "sd_over_folds": float(np.std(folds_mean)),
            "per_seed": per_seed, "rules_chosen": [[list(c) if c else None for c in seed] for seed in chosen_rules]}


LEVERS = [Lever("raw")] + [Lever(f"white-ref-{d}-s{s:g}", "references", d, s) for d in (128, 256, 512) for s in (0.0, 0.5)] \
    + [Lever(f"white-oth-{d}-s0.5", "others", d, 0.5) for d in (128, 256)] \
    + [Lever("pca-ref-256 (rotation only)", "references", 256, 1.0), Lever("dba2", dba=2), Lever("qe2", qe=2),
       Lever("dba2+qe2", dba=2, qe=2), Lever("qe5", qe=5)]


# ---- placement ------------------------------------------------------------------------------------


def nearest_reference_score(fold: dict, group: str, embed) -> tuple[np.ndarray, np.ndarray]:
    """The best landmark (as `_best`) and the similarity to its nearest training photo; 0 where the
    background beats the best landmark (never named, never placed)."""
    probs = fold[f"{group}_probs"]
    best = probs[:, :-1].argmax(axis=1)
    background = probs[:, -1] > probs[np.arange(len(best)), best]
    own = nearest_own_reference(embed(fold[f"{group}_embedding"]), best, embed(fold["references_embedding"]),
                                np.searchsorted(fold["known_classes"], fold["references_truth"]))
    return best, np.where(background, 0.0, np.clip((own + 1) / 2, 0.0, 1.0))  # in [0, 1], as the curve's thresholds expect


def placement(folds: list[dict], classes: list[str], budget: Budget) -> dict:
    places = site_ids(classes)
    out = {"probability": pool(folds, "probability", class_sites=places)}
    groups = [g for g in ("known", "unknown", "objects", "generated", "others") if f"{g}_probs" in folds[0]]
    for name, fit in [("nearest reference (raw)", None)] + [(f"nearest reference (whitened ref {d})", d) for d in (128, 256, 512)]:
        scores = {g: [] for g in groups}
        correct = []
        for fold in folds:
            embed = fit_whitening(fold["references_embedding"], fit, 0.0) if fit else normalize
            for g in groups:
                best, value = nearest_reference_score(fold, g, embed)
                scores[g].append(value)
                if g == "known":
                    correct.append(places[fold["known_classes"][best]] == places[fold["known_truth"]])
        out[name] = PooledScores({g: np.concatenate(v) for g, v in scores.items()}, np.concatenate(correct))
    report = {}
    for name, pooled_scores in out.items():
        point = choose_point(placement_curve(pooled_scores), budget)
        report[name] = point.__dict__ if point else None
    return report


# ---- checks and the command line ---------------------------------------------------------------------


def check_against_teach_fold(fold: dict, seed: int, threshold: float) -> dict:
    """The raw lever at the shipped rule equals `teach_fold` fed the same arrays (log-probabilities at
    temperature 1 give back the probabilities; no background references)."""
    import torch

    from src.training.openset_cv import teach_fold

    def tensors(group: str) -> tuple:
        return torch.log(torch.as_tensor(fold[f"{group}_probs"]).clamp_min(1e-30)), torch.as_tensor(fold[f"{group}_embedding"].astype(np.float32))

    outputs = {g: tensors(g) for g in ("unknown",) + SCORED}
    taught = teach_fold(outputs, 1.0, torch.as_tensor(fold["references_embedding"].astype(np.float32)), torch.as_tensor(fold["references_truth"]),
                        torch.as_tensor(fold["background_embedding"].astype(np.float32)), torch.as_tensor(fold["unknown_truth"]), GALLERY_SHOTS, seed)
    truth = torch.as_tensor(np.searchsorted(fold["known_classes"], fold["known_truth"]))
    theirs = taught_rates([taught], [truth], threshold)
    ours = rule_rates(similarities(fold, Lever("raw"), seed), truth.numpy(), ReferenceRule(), threshold)
    for key in KEYS:
        assert abs(theirs[key] - ours[key]) < 1e-9, (key, theirs[key], ours[key])
    return theirs


def rules_seen(result: dict) -> str:
    from collections import Counter

    seen = Counter(tuple(rule) for seed in result["rules_chosen"] for rule in seed if rule)
    return ", ".join(f"{m:g}/{t:g}: {n}" for (m, t), n in seen.most_common(3)) or "0.03/0.03 (shipped)"


BEFORE = ReferenceRule(0.03, 0.03)  # the rule chosen on world TRAIN photos with the 24-class model, shipped until issue 31


def rule_to_ship(folds: list[dict], seeds: list[int], threshold: float, place_at: float) -> tuple[ReferenceRule, dict, dict]:
    """The rule best on every fold pooled (every seed's draw), under the limits `nested` applies: what ships;
    its rates, and every rule's (in-sample: nested CV, `evaluate_lever`, says what such a choice is worth
    on folds it was not chosen on)."""
    rules = [ReferenceRule(float(m), t) for m in MARGINS for t in TEMPERATURES]
    grid, counts = [], []
    for seed in seeds:
        for k, fold in enumerate(folds):
            sims = similarities(fold, Lever("raw"), seed + k)
            truth = np.searchsorted(fold["known_classes"], fold["known_truth"])
            grid.append({(r.margin, r.temperature): rule_rates(sims, truth, r, threshold, place_at) for r in rules})
            counts.append(counts_of(fold, sims))
    _, chosen = nested(grid + [grid[0]], counts + [counts[0]])  # the last "fold" is chosen on all the others: every fold and draw
    every = {rule: pooled([g[rule] for g in grid], counts, KEYS + PLACE_KEYS) for rule in grid[0]}
    return ReferenceRule(*chosen[-1]), every[chosen[-1]], every


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.whitening_eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--outputs", type=Path, required=True, help="per-photo fold outputs of `python -m src crossval --leave-landmarks-out`")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 10, 20, 30, 40], help="draws of the enrolled photos (fold k uses seed + k; 0 is the CV's own draw)")
    parser.add_argument("--levers", nargs="*", default=None, help="only these levers (names as printed)")
    parser.add_argument("--objects-per-category", type=int, default=10, help="held-out object photos per category, in the saved order, "
                        "for outputs without the background's reference rows (default: %(default)s)")
    parser.add_argument("--no-placement", action="store_true", help="leave out the placement score comparison")
    parser.add_argument("--grid", type=float, nargs=2, metavar=("MIN_MARGIN", "MAX_MARGIN"),
                        help="print every rule with a margin in this range, pooled over every fold and draw (in-sample)")
    parser.add_argument("--no-record", action="store_true", help="print only, save no run record")
    args = parser.parse_args(argv)
    folds, classes = load_fold_outputs(args.outputs)
    threshold = naming_threshold(folds)
    budget = Budget(unknown=0.01)
    strict = choose_point(placement_curve(pool(folds, "probability", class_sites=site_ids(classes))), budget)
    place_at = strict.threshold
    real_background = "background_embedding" in folds[0]
    taught_folds = [with_background(fold, args.objects_per_category) for fold in folds]
    check = check_against_teach_fold(taught_folds[0], args.seeds[0], threshold)
    source = "the CV's own" if real_background else "half the object categories"
    print(f"{args.outputs}: {len(folds)} folds, naming threshold {threshold:.4f}, strict placement point {place_at:.4f}; background references: "
          f"{source}; teach_fold agrees on fold 0 "
          f"(taught named right {100 * check['taught_named_correctly']:.1f} %)")
    levers = [lever for lever in LEVERS if args.levers is None or lever.name in args.levers]
    if "unknown_mirror_embedding" in folds[0] and (args.levers is None or "mirror-enrol" in args.levers):
        levers.append(Lever("mirror-enrol", mirror_enrol=True))
    header = ("lever (rule nested) | taught named right ± sd seeds | per fold | Δ vs raw per fold (min..max) | taught top-1 | "
              "known named right before → after | objects named before → after | taught placed right / wrong | "
              "known placed wrong before → after | objects placed before → after | rules chosen (margin/T: folds x seeds)")
    print(header + "\n" + "-" * len(header))
    rows: list[tuple[str, dict]] = []
    fixed_rows = [(f"rule {BEFORE.margin:g}/{BEFORE.temperature:g} (before)", BEFORE)]
    if ReferenceRule() != BEFORE:
        fixed_rows.append((f"rule {ReferenceRule().margin:g}/{ReferenceRule().temperature:g} (shipped)", ReferenceRule()))
    for name, lever, fixed in [(name, Lever("raw"), rule) for name, rule in fixed_rows] + [(lever.name, lever, None) for lever in levers]:
        r = evaluate_lever(taught_folds, lever, args.seeds, threshold, fixed=fixed, place_at=place_at)
        rows.append((name, r))
        base = next((row for n, row in rows if n == "raw"), rows[0][1])
        m, sd = r["mean"], r["sd_over_seeds"]
        delta = np.array(r["taught_per_fold"]) - np.array(base["taught_per_fold"])
        print(f"{name} | {100 * m['taught_named_correctly']:.1f} ± {100 * sd['taught_named_correctly']:.1f} | "
              f"{' '.join(f'{100 * v:.1f}' for v in r['taught_per_fold'])} | {100 * delta.mean():+.1f} ({100 * delta.min():+.1f}..{100 * delta.max():+.1f}) | "
              f"{100 * m['taught_top1']:.1f} | {100 * m['known_named_correctly_before']:.1f} → {100 * m['known_named_correctly_after']:.1f} | "
              f"{100 * m['objects_named_before']:.2f} → {100 * m['objects_named_after']:.2f} | "
              f"{100 * m['taught_placed_right']:.1f} / {100 * m['taught_placed_wrong']:.2f} | "
              f"{100 * m['known_placed_wrong_before']:.2f} → {100 * m['known_placed_wrong_after']:.2f} | "
              f"{100 * m['objects_placed_before']:.2f} → {100 * m['objects_placed_after']:.2f} | {rules_seen(r)}", flush=True)
    ship, ship_rates, every_rule = rule_to_ship(taught_folds, args.seeds, threshold, place_at)
    if args.grid:
        print("\nmargin | T | taught named right | taught placed right / wrong | known named right | known placed wrong | objects named | objects placed")
        for (margin, temperature), r in every_rule.items():
            if args.grid[0] - 1e-9 <= margin <= args.grid[1] + 1e-9:
                print(f"{margin:+.2f} | {temperature:g} | {100 * r['taught_named_correctly']:.1f} | {100 * r['taught_placed_right']:.1f} / "
                      f"{100 * r['taught_placed_wrong']:.2f} | {100 * r['known_named_correctly_after']:.2f} | {100 * r['known_placed_wrong_after']:.2f} | "
                      f"{100 * r['objects_named_after']:.2f} | {100 * r['objects_placed_after']:.2f}")
    print(f"\nrule chosen on every fold and draw: margin {ship.margin:g}, temperature {ship.temperature:g}: taught named right "
          f"{100 * ship_rates['taught_named_correctly']:.1f} %, placed right / wrong {100 * ship_rates['taught_placed_right']:.1f} / "
          f"{100 * ship_rates['taught_placed_wrong']:.2f} % (in-sample; the nested rows above are the honest figures)")
    places = {} if args.no_placement else placement(folds, classes, budget)
    if places:
        print("\nplacement score | threshold | known placed right | unknown placed | others placed | objects placed (at <= 1 % unknown)")
    for name, p in places.items():
        print(f"{name} | none within budget" if p is None else
              f"{name} | {p['threshold']:.4f} | {100 * p['known_placed_right']:.1f} | {100 * p['unknown_placed']:.2f} | "
              f"{100 * p['others_placed']:.2f} | {100 * p['objects_placed']:.2f}")
    if not args.no_record:
        path = save_run("gallery", f"whitening-{args.outputs.stem}", {"levers": [l.__dict__ for l in levers], "margins": MARGINS.tolist(),
                        "temperatures": list(TEMPERATURES), "max_known_drop": MAX_KNOWN_DROP, "max_objects_rise": MAX_OBJECTS_RISE,
                        "max_taught_placed_wrong": MAX_TAUGHT_PLACED_WRONG, "max_placed_wrong_rise": MAX_PLACED_WRONG_RISE,
                        "shots": GALLERY_SHOTS, "references_per_class": REFERENCES_PER_CLASS, "seeds": args.seeds},
                        {"outputs": str(args.outputs), "folds": len(folds), "classes": len(classes), "background_references": "cv" if real_background
                         else f"half the object categories ({args.objects_per_category} photos each)"},
                        {"naming_threshold": threshold, "placement_threshold": place_at, "taught": {name: r for name, r in rows},
                         "rule_to_ship": {**vars(ship), **ship_rates}, "every_rule_in_sample": [{"margin": m, "temperature": t, **r}
                                                                                 for (m, t), r in every_rule.items()], "placement": places, "placement_budget": budget.__dict__})
        print(f"run record {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
