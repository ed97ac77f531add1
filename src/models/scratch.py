"""MyModel: a CNN designed to be trained from scratch on two CPU cores.

Design, in short:
- a ResNet-style net (He et al. 2016): residual basic blocks with batch norm train reliably from
  scratch without careful initialisation;
- early, aggressive down-sampling (a stride-2 stem and a stride-2 first stage) because on a CPU the
  cost of a 3x3 convolution scales with the pixels it sees; channels grow as resolution falls;
- plain 3x3 convolutions rather than depthwise-separable ones: on CPUs (oneDNN) dense 3x3 convolutions
  in channels_last layout reach far more FLOP/s, so they are faster per unit of accuracy here;
- global average pooling, so the same weights work at any input size (we train a little below the
  test resolution, which is faster and, by the FixRes effect, slightly more accurate), then dropout
  and one linear layer.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn(in_channels: int, out_channels: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(conv_bn(in_channels, out_channels, stride), conv_bn(out_channels, out_channels, relu=False))
        # Zero-init the last BN scale so each block starts as the identity (Goyal et al. 2017).
        nn.init.zeros_(self.body[-1][1].weight)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class MyModel(nn.Module):
    """Logits [B, num_classes] for images [B, 3, H, W] (any H, W >= 32)."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.7, widths: tuple[int, ...] = (64, 128, 256, 384)):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 32, stride=2), conv_bn(32, widths[0], stride=2))
        stages = []
        in_channels = widths[0]
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            stages += [BasicBlock(in_channels, width, stride), BasicBlock(width, width)]
            in_channels = width
        self.features = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(in_channels, num_classes))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(self.stem(x))))

    @torch.jit.export
    def logits_and_embedding(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, the pooled features the classifier reads) from one pass: the features embed the photo."""
        pooled = self.pool(self.features(self.stem(x))).flatten(1)
        return self.head(pooled), pooled
