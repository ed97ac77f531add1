"""Would a geometric check on local features help? SIFT keypoints matched between two photos and
verified with RANSAC (a fundamental matrix, MAGSAC); the number of inliers says how much of one photo
is the same 3-D scene as the other. Measured two ways, on the features `scripts.gallery_features`
stores for a model trained on indian_monuments only (every world landmark is new to it):

    pip install opencv-python-headless   # not a dependency of the project: only this check uses it
    python -m scripts.local_feature_check --features /tmp/gf/all.npz /tmp/gf/indian_train40.npz

1. "unknown" (the rejection rule): photos the model names with its own threshold, known = 150
   indian_monuments/test photos it names correctly, unknown = world_landmarks/train photos it names
   (landmarks it was never trained on). Score: the most inliers against the `--neighbours` training
   photos of the named landmark nearest in the embedding. Compared with the model's probability at
   the same share of known photos kept. Nothing is chosen from this: it says whether to build it.
2. "re-rank" (the gallery): 5 training photos of each of the 16 world landmarks enrolled, 200 other
   world TRAIN photos queried; the 3 nearest taught landmarks by embedding re-ranked by inliers
   against their enrolled photos (similarity + weight x inliers).
"""

from __future__ import annotations

import argparse
import json
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from scripts.gallery_eval import Features, pick
from src.evaluation.openset_rule import best_landmark, is_landmark, landmark_confidence
from src.runs import RUNS_DIR, save_run
from src.serving.gallery.gallery_index import GalleryIndex

SIDE = 480  # keypoints are found on the photo scaled to this longest side
KEPT = (0.9, 0.8)  # shares of known photos kept at which the scores are compared
WEIGHTS = (0.0, 0.005, 0.01, 0.02, 0.05)


def _cv2():
    try:
        import cv2
    except ImportError as error:
        raise SystemExit("this check needs OpenCV: pip install opencv-python-headless") from error
    cv2.setNumThreads(1)
    return cv2


class Matcher:
    """Inliers between two photos (SIFT, ratio test 0.8, fundamental matrix by MAGSAC), keypoints cached per path."""

    def __init__(self):
        self.cv2 = _cv2()
        self.sift, self.matcher = self.cv2.SIFT_create(nfeatures=800), self.cv2.BFMatcher()
        self.keypoints = lru_cache(maxsize=None)(self._keypoints)

    def _keypoints(self, path: str):
        image = Image.open(path).convert("L")
        image.thumbnail((SIDE, SIDE))
        points, descriptors = self.sift.detectAndCompute(np.asarray(image), None)
        return np.float32([p.pt for p in points]), descriptors

    def inliers(self, a: str, b: str) -> int:
        (points_a, desc_a), (points_b, desc_b) = self.keypoints(a), self.keypoints(b)
        if desc_a is None or desc_b is None or min(len(desc_a), len(desc_b)) < 8:
            return 0
        good = [m[0] for m in self.matcher.knnMatch(desc_a, desc_b, k=2) if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
        if len(good) < 8:
            return 0
        try:
            _, mask = self.cv2.findFundamentalMat(points_a[[m.queryIdx for m in good]], points_b[[m.trainIdx for m in good]],
                                                  self.cv2.USAC_MAGSAC, 3.0, 0.999)
        except self.cv2.error:  # no model found
            return 0
        return 0 if mask is None else int(mask.sum())


def unknown_check(f: Features, matcher: Matcher, threshold: float, neighbours: int, seed: int) -> dict:
    names = np.array(f.class_names)
    ref_paths, ref_labels, ref_vectors = (f.get("indian_train", k) for k in ("paths", "labels", "pooled"))

    def named_rows(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        probs = f.get(split, "probs")
        top = best_landmark(probs, f.background)
        return top, is_landmark(probs, f.background, threshold), landmark_confidence(probs, f.background)[0]

    def most_inliers(split: str, rows: np.ndarray, top: np.ndarray) -> np.ndarray:
        vectors, paths = f.get(split, "pooled"), f.get(split, "paths")
        out = []
        for row in rows:
            own = np.flatnonzero(ref_labels == names[top[row]])
            nearest = own[np.argsort(-(ref_vectors[own] @ vectors[row]))[:neighbours]]
            out.append(max(matcher.inliers(paths[row], ref_paths[j]) for j in nearest))
        return np.array(out)

    top_k, named_k, p_k = named_rows("indian_test")
    right = np.flatnonzero(named_k & (names[top_k] == f.get("indian_test", "labels")))
    known = np.random.default_rng(seed).choice(right, size=min(150, len(right)), replace=False)
    top_u, named_u, p_u = named_rows("world_train")
    unknown = np.flatnonzero(named_u)
    inl_k, inl_u = most_inliers("indian_test", known, top_k), most_inliers("world_train", unknown, top_u)
    scores = {"probability": (p_k[known], p_u[unknown]), "inliers": (inl_k, inl_u)}
    log_odds = lambda p: np.log(p / np.clip(1 - p, 1e-9, None))
    for weight in (1.0, 2.0):
        scores[f"log-odds + {weight} x log(1 + inliers)"] = (log_odds(p_k[known]) + weight * np.log1p(inl_k),
                                                              log_odds(p_u[unknown]) + weight * np.log1p(inl_u))
    table = {name: {f"unknown_kept_at_known_kept_{kept}": float(np.mean(u >= np.quantile(k, 1 - kept))) for kept in KEPT}
             for name, (k, u) in scores.items()}
    return {"known_photos": len(known), "unknown_photos_named": len(unknown), "neighbours": neighbours, "by_score": table}


def rerank_check(f: Features, matcher: Matcher, seed: int, queries: int = 200) -> dict:
    labels_text = f.get("world_train", "labels")
    names = sorted(set(labels_text))
    labels = np.array([names.index(x) for x in labels_text])
    vectors, paths = f.get("world_train", "pooled"), f.get("world_train", "paths")
    rng = np.random.default_rng(seed)
    enrolled = pick(rng, labels, 5, range(len(names)))
    rows = rng.choice(np.setdiff1d(np.arange(len(labels)), enrolled), size=queries, replace=False)
    similarity = GalleryIndex(vectors[enrolled], labels[enrolled], len(names)).landmark_similarity(vectors[rows])
    top3 = np.argsort(-similarity, axis=1)[:, :3]
    inliers = np.array([[max(matcher.inliers(paths[row], paths[j]) for j in enrolled[labels[enrolled] == c]) for c in candidates]
                        for row, candidates in zip(rows, top3)])
    candidate_similarity = np.take_along_axis(similarity, top3, axis=1)
    picked = {str(w): top3[np.arange(len(rows)), (candidate_similarity + w * inliers).argmax(axis=1)] for w in WEIGHTS}
    return {"queries": queries, "in_top3": float(np.mean([labels[r] in c for r, c in zip(rows, top3)])),
            "top1_by_weight": {w: float((p == labels[rows]).mean()) for w, p in picked.items()},
            "top1_by_inliers_alone": float((top3[np.arange(len(rows)), inliers.argmax(axis=1)] == labels[rows]).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=Path, nargs="+", required=True, help="from python -m scripts.gallery_features")
    parser.add_argument("--threshold", type=float, default=0.56, help="the model's own threshold (its metadata)")
    parser.add_argument("--neighbours", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, default=RUNS_DIR)
    args = parser.parse_args()
    f, matcher = Features(args.features), Matcher()
    start = time.perf_counter()
    report = {"unknown": unknown_check(f, matcher, args.threshold, args.neighbours, args.seed),
              "rerank": rerank_check(f, matcher, args.seed + 1)}
    report["seconds"] = time.perf_counter() - start
    settings = {"threshold": args.threshold, "neighbours": args.neighbours, "seed": args.seed, "side": SIDE, "matcher": "SIFT 800 + ratio 0.8 + MAGSAC"}
    data = {"model": "24-class transfer_exported.pt of cbb47f6 (indian_monuments + no_landmark)",
            "photos": ["../shared/indian_monuments/test (known)", "../shared/world_landmarks/train (unknown; gallery)"]}
    path = save_run("gallery", "local-features", settings, data, report, folder=args.runs)
    print(json.dumps(report, indent=2))
    print(f"run record {path}")


if __name__ == "__main__":
    main()
