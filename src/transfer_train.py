"""The transfer recipe: frozen ImageNet backbone -> cached features -> linear head -> export.

    python -m src.transfer_train --data ../shared/indian_monuments --no-landmark ../shared/no_landmark

Optionally a "no landmark" background class is learned from photos that show no landmark; the
decision threshold is chosen on validation photos. Only half of the no-landmark object categories
are used for training and validation: the other half is kept apart to measure, honestly, how often
the model names a landmark in a photo of something it has never seen.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from .data import DataConfig, build_datasets
from .dataset import FolderScan, decode_folder, stratified_split
from .features import cached_features
from .images import is_image_file
from .openset import choose_threshold, is_landmark
from .predictor import Predictor, export
from .transfer import create_backbone, get_backbone_spec, get_model_transfer_learning

BACKGROUND_CLASS = "no_landmark"


@dataclass
class TransferRecipe:
    data_dir: Optional[str] = None
    backbone: str = "tf_efficientnet_lite0"
    train_views: int = 2  # augmented views per training photo, on top of the centre crop
    no_landmark_dir: Optional[str] = None  # photos with no landmark: learned as a background class
    c_grid: tuple[float, ...] = (0.1, 0.3, 1.0)  # inverse L2 strength, chosen on validation
    valid_size: float = 0.2
    seed: int = 42
    limit: int = -1
    export_path: str = "checkpoints/transfer_exported.pt"


def object_category(path: Path) -> str:
    """Caltech-style names: 'Faces_image_0079.jpg' -> 'Faces'."""
    return path.name.rsplit("_image_", 1)[0]


def split_no_landmark(folder: Path, seed: int = 42) -> dict[str, list[Path]]:
    """Split no-landmark photos BY OBJECT CATEGORY: even-numbered categories train/valid the
    background class, odd-numbered ones are held out for measurement only."""
    photos = sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_image_file(p))
    if not photos:
        raise FileNotFoundError(f"no photos found under {folder} (expected images of things that are not landmarks)")
    categories = sorted({object_category(p) for p in photos})
    used = {c for i, c in enumerate(categories) if i % 2 == 0}
    train_pool = [p for p in photos if object_category(p) in used]
    held_out = [p for p in photos if object_category(p) not in used]
    labels = [categories.index(object_category(p)) for p in train_pool]
    train_idx, valid_idx = stratified_split(labels, 0.25, seed)
    return {"train": [train_pool[i] for i in train_idx], "valid": [train_pool[i] for i in valid_idx], "held_out": held_out}


def _decode_paths(paths: list[Path], root: Path, name: str) -> list[torch.Tensor]:
    scan = FolderScan(root=root, classes=[name], samples=[(p, 0) for p in paths])
    return decode_folder(scan).images


@dataclass
class FeatureSplits:
    """Features (and ImageNet logits) per split, with labels."""

    x: dict[str, torch.Tensor]
    y: dict[str, torch.Tensor]
    check_photos: list[tuple[torch.Tensor, int]]  # a few validation photos to verify the export with


def compute_features(recipe: TransferRecipe) -> tuple[FeatureSplits, list[str], dict]:
    spec = get_backbone_spec(recipe.backbone)
    backbone = functools.lru_cache(maxsize=1)(lambda: create_backbone(recipe.backbone)[0])
    datasets = build_datasets(
        DataConfig(data_dir=recipe.data_dir, valid_size=recipe.valid_size, seed=recipe.seed, limit=recipe.limit, preprocessing=spec.preprocessing)
    )
    classes = list(datasets["train"].classes)

    def features_of(images, identity, view, seed=0):
        return cached_features(recipe.backbone, backbone, images, identity, view, spec.preprocessing, seed=seed)[0]

    x, y, raw = {}, {}, {}
    for split, dataset in datasets.items():
        images = [dataset.raw(i)[0] for i in range(len(dataset))]
        identity = "|".join(dataset.decoded.paths[i] for i in dataset.indices)
        raw[split] = (images, torch.tensor(dataset.targets), identity)
        x[split] = features_of(images, identity, "eval")
        y[split] = raw[split][1]
    views = [features_of(raw["train"][0], raw["train"][2], f"aug{k}", seed=k) for k in range(recipe.train_views)]
    x["train"] = torch.cat([x["train"], *views])
    y["train"] = y["train"].repeat(1 + recipe.train_views)

    background_info = {}
    if recipe.no_landmark_dir:
        folder = Path(recipe.no_landmark_dir)
        parts = split_no_landmark(folder, recipe.seed)
        background = len(classes)
        for split, paths in parts.items():
            images = _decode_paths(paths, folder, BACKGROUND_CLASS)
            feats = features_of(images, "|".join(map(str, paths)), "eval")
            key = {"train": "train", "valid": "valid", "held_out": "no_landmark_held_out"}[split]
            labels = torch.full((len(feats),), background)
            if key in x:
                x[key], y[key] = torch.cat([x[key], feats]), torch.cat([y[key], labels])
            else:
                x[key], y[key] = feats, labels
            background_info[split] = len(paths)
        classes = classes + [BACKGROUND_CLASS]
    valid = datasets["valid"]
    check = [valid.raw(i) for i in range(0, len(valid), max(1, len(valid) // 24))][:24]
    return FeatureSplits(x=x, y=y, check_photos=check), classes, background_info


def fit_head(x: torch.Tensor, y: torch.Tensor, c: float, seed: int = 0) -> torch.nn.Linear:
    """Multinomial logistic regression (scikit-learn), folded into one nn.Linear on raw features."""
    scaler = StandardScaler().fit(x.numpy())
    classifier = LogisticRegression(C=c, max_iter=300, random_state=seed).fit(scaler.transform(x.numpy()), y.numpy())
    weight = classifier.coef_ / scaler.scale_  # standardisation folded into the weights
    bias = classifier.intercept_ - weight @ scaler.mean_
    head = torch.nn.Linear(x.shape[1], weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight).float())
        head.bias.copy_(torch.from_numpy(bias).float())
    return head


def train_transfer(recipe: TransferRecipe) -> dict:
    """Features, head (C chosen on validation), threshold (on validation), test metrics, export."""
    start = time.perf_counter()
    splits, classes, background_info = compute_features(recipe)
    feature_seconds = time.perf_counter() - start
    background = [classes.index(BACKGROUND_CLASS)] if BACKGROUND_CLASS in classes else []
    landmark_valid = ~torch.isin(splits.y["valid"], torch.tensor(background, dtype=torch.long))

    @torch.no_grad()
    def closed_set_accuracy(head, split):
        probs = torch.softmax(head(splits.x[split]), dim=1)
        keep = ~torch.isin(splits.y[split], torch.tensor(background, dtype=torch.long))
        landmark_probs = probs[keep].clone()
        landmark_probs[:, background] = -1
        return (landmark_probs.argmax(dim=1) == splits.y[split][keep]).float().mean().item(), probs

    valid_scores, heads = {}, {}
    for c in recipe.c_grid:
        heads[c] = fit_head(splits.x["train"], splits.y["train"], c, recipe.seed)
        valid_scores[c] = closed_set_accuracy(heads[c], "valid")[0]
    best_c = max(valid_scores, key=valid_scores.get)
    head = heads[best_c]
    train_seconds = time.perf_counter() - start

    _, valid_probs = closed_set_accuracy(head, "valid")
    threshold = choose_threshold(valid_probs[landmark_valid], valid_probs[~landmark_valid], background)
    test_accuracy, test_probs = closed_set_accuracy(head, "test")
    landmark_scores = test_probs.clone()
    landmark_scores[:, background] = -1
    k = min(5, len(classes) - len(background))
    top5 = (landmark_scores.topk(k, dim=1).indices == splits.y["test"][:, None]).any(dim=1).float().mean().item()
    report = {
        "backbone": recipe.backbone,
        "train_views": recipe.train_views,
        "C": best_c,
        "valid_accuracy_by_C": {str(k): v for k, v in valid_scores.items()},
        "test_accuracy": test_accuracy,
        "test_top5": top5,
        "test_images": len(splits.y["test"]),
        "threshold": threshold["threshold"],
        "valid_rates": threshold,
        # the test split holds landmark photos only
        "test_landmarks_rejected": 1 - is_landmark(test_probs, background, threshold["threshold"]).float().mean().item(),
        "feature_seconds": feature_seconds,
        "train_seconds_total": train_seconds,
        "background_photos": background_info,
    }
    if "no_landmark_held_out" in splits.x:
        held_out = torch.softmax(head(splits.x["no_landmark_held_out"]), dim=1)
        report["held_out_no_landmark_named"] = is_landmark(held_out, background, threshold["threshold"]).float().mean().item()

    model = get_model_transfer_learning(recipe.backbone, n_classes=len(classes), freeze=True)
    model.head.load_state_dict(head.state_dict())
    spec = get_backbone_spec(recipe.backbone)
    predictor = Predictor(model, classes, preprocessing=spec.preprocessing)
    check = splits.check_photos
    export(
        predictor, recipe.export_path, [image for image, _ in check], [label for _, label in check],
        min_accuracy=0.5, metadata={
            "model": f"{recipe.backbone} + linear head", "threshold": threshold["threshold"],
            "background_classes": [BACKGROUND_CLASS] if background else [], "recipe": asdict(recipe), "report": report,
        },
    )
    report["export_path"] = recipe.export_path
    report["export_megabytes"] = Path(recipe.export_path).stat().st_size / 1e6
    return report


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Train a linear head on frozen ImageNet features and export it.")
    parser.add_argument("--data", default=None, help="folder with train/ and test/")
    parser.add_argument("--backbone", default=TransferRecipe.backbone)
    parser.add_argument("--views", type=int, default=TransferRecipe.train_views, help="augmented views per training photo")
    parser.add_argument("--no-landmark", default=None, help="folder of photos with no landmark (background class)")
    parser.add_argument("--limit", type=int, default=-1)
    parser.add_argument("--export", default=TransferRecipe.export_path)
    parser.add_argument("--report", default="results/transfer.json")
    args = parser.parse_args(argv)
    recipe = TransferRecipe(
        data_dir=args.data, backbone=args.backbone, train_views=args.views, no_landmark_dir=args.no_landmark,
        limit=args.limit, export_path=args.export,
    )
    start = time.perf_counter()
    report = train_transfer(recipe)
    report["wall_seconds_total"] = time.perf_counter() - start
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
