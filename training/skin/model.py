"""Skin lesion networks: an encoder, a CAM classification head and a mask decoder.

SkinNet is the small from-scratch ResNet-style network of skin_lesion 1.0.0; SkinLiteNet puts
the same heads on EfficientNet-Lite0 with ImageNet weights (training/common/efficientnet_lite.py).

One network, three outputs (one ONNX file, one forward pass per photo):
  logits       (N, 7)            class scores (before temperature)
  mask_logits  (N, 1, H, W)      lesion mask at the model's input size
  cam          (N, 7, h, w)      class activation maps (stride 16 for SkinNet, 32 for
                                 SkinLiteNet); logits == mean(cam) exactly, because the head is a
                                 1x1 conv applied before the pooling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(cin: int, cout: int, stride: int = 1, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.short(x), inplace=True)


class UpBlock(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(conv_bn(cin + cskip, cout), conv_bn(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], dim=1))


class SkinNet(nn.Module):
    def __init__(
        self,
        n_classes: int = 7,
        widths: tuple[int, int, int, int, int] = (24, 32, 64, 128, 192),
        dropout: float = 0.2,
    ):
        super().__init__()
        w0, w1, w2, w3, w4 = widths
        self.stem = conv_bn(3, w0, stride=2)  # /2
        self.layer1 = nn.Sequential(BasicBlock(w0, w1, 2), BasicBlock(w1, w1))  # /4
        self.layer2 = nn.Sequential(BasicBlock(w1, w2, 2), BasicBlock(w2, w2))  # /8
        self.layer3 = nn.Sequential(BasicBlock(w2, w3, 2), BasicBlock(w3, w3))  # /16
        self.layer4 = nn.Sequential(BasicBlock(w3, w4, 1), BasicBlock(w4, w4))  # /16
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.cam_head = nn.Conv2d(w4, n_classes, 1)
        self.up3 = UpBlock(w4, w2, 64)  # /8
        self.up2 = UpBlock(64, w1, 48)  # /4
        self.up1 = UpBlock(48, w0, 32)  # /2
        self.seg_out = nn.Conv2d(32, 1, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)  # residual branches start as identity

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s0 = self.stem(x)
        s1 = self.layer1(s0)
        s2 = self.layer2(s1)
        s3 = self.layer3(s2)
        s4 = self.layer4(s3)
        cam = self.cam_head(self.dropout(s4))
        logits = cam.mean(dim=(2, 3))
        d = self.up3(s4, s2)
        d = self.up2(d, s1)
        d = self.up1(d, s0)
        mask_logits = F.interpolate(
            self.seg_out(d), size=x.shape[-2:], mode="bilinear", align_corners=False
        )
        return logits, mask_logits, cam


class SkinLiteNet(nn.Module):
    """EfficientNet-Lite0 encoder, CAM head on its 1280-channel /32 map, FPN-style mask decoder
    (1x1 lateral projections summed top-down, one 3x3 conv per level, out at /2)."""

    def __init__(self, n_classes: int = 7, dropout: float = 0.3, pretrained: bool = True):
        super().__init__()
        from backend.inference.skin import MEAN, STD
        from training.common.efficientnet_lite import CHANNELS, LiteEncoder

        self.encoder = LiteEncoder(MEAN, STD, pretrained=pretrained)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.cam_head = nn.Conv2d(CHANNELS[-1], n_classes, 1)
        widths = (32, 32, 48, 64, 64)  # decoder channels at strides 2..32
        self.lateral = nn.ModuleList(
            nn.Conv2d(c, w, 1, bias=False) for c, w in zip(CHANNELS, widths)
        )
        self.smooth = nn.ModuleList(conv_bn(widths[i + 1], widths[i]) for i in range(4))
        self.seg_out = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = self.encoder(x)
        cam = self.cam_head(self.dropout(feats[-1]))
        logits = cam.mean(dim=(2, 3))
        d = self.lateral[4](feats[4])
        for i in (3, 2, 1, 0):
            d = F.interpolate(d, size=feats[i].shape[-2:], mode="bilinear", align_corners=False)
            d = self.smooth[i](d) + self.lateral[i](feats[i])
        mask_logits = F.interpolate(
            self.seg_out(d), size=x.shape[-2:], mode="bilinear", align_corners=False
        )
        return logits, mask_logits, cam


ARCHS = ("skinnet", "lite0")


def build_model(arch: str, n_classes: int = 7, pretrained: bool = True) -> nn.Module:
    if arch == "lite0":
        return SkinLiteNet(n_classes, pretrained=pretrained)
    return SkinNet(n_classes)


OUTPUT_NAMES = ("logits", "mask_logits", "cam")
