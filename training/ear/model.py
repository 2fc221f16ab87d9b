"""Small from-scratch CNNs for the eardrum classifier and the eardrum/not-eardrum gate.

Both take the serving crop as 1x3x160x160 float RGB in [0, 1]. The classifier's first layer
(`ColourNorm`) masks the otoscope circle and applies grey-world colour constancy, so the
camera's colour cast and vignette are removed inside the exported graph itself.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from backend.inference.ear import INPUT_SIZE

# Fraction of the crop's side used as the radius of the circular field mask.
FIELD_RADIUS = 0.47
TARGET_MEAN = 0.45
TARGET_STD = 0.25


def circle_mask(size: int = INPUT_SIZE, radius: float = FIELD_RADIUS) -> torch.Tensor:
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size - 0.5
    r = torch.sqrt(coords[:, None] ** 2 + coords[None, :] ** 2)
    return (r <= radius).float()[None, None]


class ColourNorm(nn.Module):
    """Circular mask + grey-world: every channel's mean inside the circle becomes TARGET_MEAN."""

    def __init__(self, grey_world: bool = True, size: int = INPUT_SIZE):
        super().__init__()
        self.grey_world = grey_world
        self.register_buffer("mask", circle_mask(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.grey_world:
            m = self.mask
            mean = (x * m).sum(dim=(2, 3), keepdim=True) / m.sum()
            x = torch.clamp(x * (TARGET_MEAN / (mean + 0.005)), 0.0, 2.0)
            return (x - TARGET_MEAN) / TARGET_STD * m
        return (x - TARGET_MEAN) / TARGET_STD


def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class Block(nn.Module):
    """Strided conv + conv with a residual path (1x1 strided projection)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(cin, cout, 2),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, 2, bias=False), nn.BatchNorm2d(cout))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class EarNet(nn.Module):
    def __init__(
        self,
        n_out: int,
        widths: tuple[int, ...] = (32, 48, 96, 160, 256),
        grey_world: bool = True,
        dropout: float = 0.3,
    ):
        super().__init__()
        self.norm = ColourNorm(grey_world)
        layers: list[nn.Module] = [conv_bn(3, widths[0], 2)]
        for cin, cout in pairwise(widths):
            layers.append(Block(cin, cout))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(widths[-1], n_out)
        self.n_features = widths[-1]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.features(self.norm(x))), 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.embed(x)
        return self.head(self.drop(f)), f


class EarLiteNet(nn.Module):
    """The same field mask + grey-world normalisation, then EfficientNet-Lite0 with ImageNet
    weights (training/common/efficientnet_lite.py), global pooling and a linear head."""

    def __init__(self, n_out: int, dropout: float = 0.3, pretrained: bool = True):
        super().__init__()
        from training.common.efficientnet_lite import CHANNELS, LiteEncoder

        self.norm = ColourNorm(grey_world=True)
        mean, std = (TARGET_MEAN,) * 3, (TARGET_STD,) * 3
        self.encoder = LiteEncoder(mean, std, pretrained=pretrained)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(CHANNELS[-1], n_out)
        self.n_features = CHANNELS[-1]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.encoder(self.norm(x))[-1]), 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.embed(x)
        return self.head(self.drop(f)), f


CLASSIFIER_ARCHS = ("earnet", "lite0")


def classifier(n_classes: int, arch: str = "earnet", pretrained: bool = True) -> nn.Module:
    if arch == "lite0":
        return EarLiteNet(n_classes, pretrained=pretrained)
    return EarNet(n_classes, grey_world=True)


def gate() -> EarNet:
    # The gate keeps the raw colours: skin and fingers are told apart from eardrums partly
    # by colour, and it must see the whole crop, corners included.
    return EarNet(1, widths=(24, 32, 64, 96, 160), grey_world=False, dropout=0.2)


class GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: float) -> torch.Tensor:  # type: ignore[override]
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return -ctx.weight * grad, None
