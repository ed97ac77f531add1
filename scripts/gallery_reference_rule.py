"""A second gallery decision, measured beside `GalleryRule`: taught landmarks win by similarity to
reference photos of what the model already knows, not by competing with its probabilities.

    python -m scripts.gallery_features --model OLD24.pt --only world_train world_test indian_test no_landmark --out /tmp/gf/all.npz
    python -m scripts.gallery_features --model OLD24.pt --only no_landmark_train --out /tmp/gf/nl_train.npz
    python -m scripts.gallery_features --model OLD24.pt --only indian_train --per-class 40 --out /tmp/gf/indian_train40.npz
    python -m scripts.gallery_reference_rule --features /tmp/gf/all.npz /tmp/gf/nl_train.npz /tmp/gf/indian_train40.npz

Why: `scripts.gallery_eval` shows that among the taught landmarks alone the nearest enrolled landmark
is right for ~78 % of photos at 5 photos each, whichever embedding, but the softmax rule names only
~40 %: the model is confident on photos of landmarks it does not know, and taught scores rarely beat
it. The rule here ("nearest reference"): g = similarity of the photo to its nearest enrolled photo,
r = similarity to its nearest reference photo (training photos of the trained classes, 40 per class,
and of the background class); the taught landmarks win when g >= r + margin (a softmax over their
similarities, then the model's threshold), otherwise the model decides as before
(`src.evaluation.gallery_rule.combine_by_reference`, what the Recognizer runs).

The margin is chosen on TRAIN photos only, as `gallery_eval.choose_rule` does: 5 photos of half the
world landmarks enrolled, the other world training photos scored; references from the even-numbered
reference photos, the odd-numbered ones scored as "trained photos that must not be taken". Then the
test protocol of `gallery_eval.test` (k = 1, 3, 5, 10, all; world test, Indian test, held-out objects).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from scripts.gallery_eval import KS, TRAINED_WEIGHT, Features, pick
from src.evaluation.gallery_rule import ReferenceRule, combine_by_reference
from src.evaluation.openset_rule import best_landmark, is_landmark
from src.runs import RUNS_DIR, save_run
from src.serving.gallery.gallery_index import GalleryIndex

MARGINS = np.round(np.arange(-0.10, 0.2001, 0.01), 3)


def model_decision(f: Features, split: str, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(top trained landmark, named?) of the model alone: its best landmark and the unknown rule."""
    probs = f.get(split, "probs")
    return best_landmark(probs, f.background), is_landmark(probs, f.background, threshold)


def decide(f: Features, split: str, embedding: str, gallery: tuple[np.ndarray, np.ndarray], references: np.ndarray,
           margin: float, threshold: float, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(taught landmark won?, best landmark in the combined space, named?) per photo, as the Recognizer
    decides with references (`combine_by_reference`, then the model's threshold)."""
    rows = np.arange(len(f.get(split, "labels"))) if rows is None else rows
    vectors, probs = f.get(split, embedding)[rows], f.get(split, "probs")[rows]
    vectors_enrolled, labels = gallery
    similarity = GalleryIndex(vectors_enrolled, labels, int(labels.max()) + 1).landmark_similarity(vectors)
    combined = combine_by_reference(probs, similarity, (vectors @ references.T).max(axis=1), ReferenceRule(margin=float(margin)))
    taught = combined[:, probs.shape[1]:].sum(axis=1) > 0
    return taught, best_landmark(combined, f.background), is_landmark(combined, f.background, threshold)


def reference_vectors(f: Features, embedding: str, every: slice = slice(None)) -> np.ndarray:
    """Reference photos: the trained classes' (per class, `every` of them) and the background's."""
    labels = f.get("indian_train", "labels")
    keep = np.concatenate([np.flatnonzero(labels == name)[every] for name in sorted(set(labels))])
    return np.concatenate([f.get("indian_train", embedding)[keep], f.get("no_landmark_train", embedding)])


def choose_margin(f: Features, embedding: str, threshold: float, seed: int) -> dict:
    names = sorted(set(f.get("world_train", "labels")))
    labels = np.array([names.index(x) for x in f.get("world_train", "labels")])
    rng = np.random.default_rng(seed)
    taught = list(range(0, len(names), 2))
    enrolled = pick(rng, labels, 5, taught)
    queries = np.setdiff1d(np.arange(len(labels)), enrolled)
    gallery = (f.get("world_train", embedding)[enrolled], labels[enrolled])
    references = reference_vectors(f, embedding, slice(0, None, 2))
    indian = f.get("indian_train", "labels")
    held = np.concatenate([np.flatnonzero(indian == name)[1::2] for name in sorted(set(indian))])
    truth = np.array([f.class_names.index(x) for x in indian[held]])
    alone_top, alone_named = model_decision(f, "indian_train", threshold)
    alone_right = (alone_named & (alone_top == [f.class_names.index(x) for x in indian]))[held]
    is_taught = np.isin(labels[queries], taught)
    n = len(f.class_names)
    best = None
    for margin in MARGINS:
        _, landmark, named = decide(f, "world_train", embedding, gallery, references, margin, threshold, queries)
        correct = float((named & (landmark == n + labels[queries]))[is_taught].mean())
        others = float(named[~is_taught].mean())
        _, top_i, named_i = decide(f, "indian_train", embedding, gallery, references, margin, threshold, held)
        taken = float((alone_right & (~named_i | (top_i != truth))).mean())
        score = correct - others - TRAINED_WEIGHT * taken
        if best is None or score > best["score"] + 1e-9:
            best = {"margin": float(margin), "score": score, "taught_named_correctly": correct, "others_named": others, "trained_taken": taken}
    return best


def test(f: Features, embedding: str, margin: float, threshold: float, draws: int, seed: int) -> dict:
    names = sorted(set(f.get("world_train", "labels")))
    train_labels = np.array([names.index(x) for x in f.get("world_train", "labels")])
    world_truth = np.array([names.index(x) for x in f.get("world_test", "labels")])
    indian_truth = np.array([f.class_names.index(x) for x in f.get("indian_test", "labels")])
    references = reference_vectors(f, embedding)
    rng = np.random.default_rng(seed)
    n = len(f.class_names)
    report = {}
    for k in KS:
        rows = []
        for _ in range(1 if k == "all" else draws):
            enrolled = pick(rng, train_labels, k, range(len(names)))
            gallery = (f.get("world_train", embedding)[enrolled], train_labels[enrolled])
            world = decide(f, "world_test", embedding, gallery, references, margin, threshold)
            indian = decide(f, "indian_test", embedding, gallery, references, margin, threshold)
            objects = decide(f, "no_landmark", embedding, gallery, references, margin, threshold)
            rows.append({
                "world_top1": float((world[1] == n + world_truth).mean()),
                "world_named_correctly": float(((world[1] == n + world_truth) & world[2]).mean()),
                "indian_named_correctly": float((indian[2] & (indian[1] == indian_truth)).mean()),
                "no_landmark_named": float(objects[2].mean()),
            })
        report[str(k)] = {key: float(np.mean([r[key] for r in rows])) for key in rows[0]} | {"draws": len(rows)}
    top, named = model_decision(f, "indian_test", threshold)
    report["before"] = {"indian_named_correctly": float((named & (top == indian_truth)).mean()),
                        "no_landmark_named": float(model_decision(f, "no_landmark", threshold)[1].mean())}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=Path, nargs="+", required=True, help="from python -m scripts.gallery_features")
    parser.add_argument("--embedding", default="pooled", choices=("pooled", "gem", "imagenet"))
    parser.add_argument("--threshold", type=float, default=0.56, help="the model's own threshold (its metadata)")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, default=RUNS_DIR)
    args = parser.parse_args()
    f = Features(args.features)
    chosen = choose_margin(f, args.embedding, args.threshold, args.seed)
    report = {"rule": chosen, "test": test(f, args.embedding, chosen["margin"], args.threshold, args.draws, args.seed)}
    settings = {"embedding": args.embedding, "threshold": args.threshold, "draws": args.draws, "seed": args.seed, "rule": "nearest reference"}
    data = {"model": "24-class transfer_exported.pt of cbb47f6 (indian_monuments + no_landmark)", "enrol": "../shared/world_landmarks/train",
            "references": "indian_monuments/train (40 per class) + no_landmark train part",
            "test": ["../shared/world_landmarks/test", "../shared/indian_monuments/test", "../shared/no_landmark (held-out categories)"]}
    path = save_run("gallery", f"reference-rule-{args.embedding}", settings, data, report, folder=args.runs)
    print(json.dumps(report, indent=2))
    print(f"run record {path}")


if __name__ == "__main__":
    main()
