"""A small GAP network for the quick profile (trains on 2 CPU cores in about a minute)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

__all__ = ["SmallGAPNet"]


def _block(cin: int, cout: int, pool: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return layers


class SmallGAPNet(nn.Module):
    """conv blocks -> 3x3 conv (``width`` units) + BN + ReLU -> global ``pool`` -> linear.

    The same head as the paper's -GAP networks (section 3.1) at toy scale. With a 64 x 64 input the
    feature map is 16 x 16 (two 2x poolings), so CAMs keep useful resolution.
    ``pool="max"`` gives the GMP variant of section 2 (same parameters, max instead of mean).
    """

    def __init__(
        self,
        num_classes: int,
        pool: Literal["avg", "max"] = "avg",
        channels: tuple[int, ...] = (16, 32, 64),
        width: int = 96,
    ) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        layers: list[nn.Module] = []
        cin = 3
        for i, c in enumerate(channels):
            layers += _block(cin, c, pool=i < len(channels) - 1)
            cin = c
        self.features = nn.Sequential(*layers)
        # the paper's added layer: 3x3 conv, stride 1, pad 1 (+ BN here, for fast CPU training) + ReLU
        self.cam_conv = nn.Sequential(
            nn.Conv2d(cin, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        self.pool_kind = pool
        self.pool = nn.AdaptiveAvgPool2d(1) if pool == "avg" else nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        f = self.cam_conv(self.features(x))
        return self.fc(torch.flatten(self.pool(f), 1))
