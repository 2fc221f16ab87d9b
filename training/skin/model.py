"""SkinNet: one small ResNet-style encoder, a CAM classification head and a U-Net decoder.

One network, three outputs (one ONNX file, one forward pass per photo):
  logits       (N, 7)            class scores (before temperature)
  mask_logits  (N, 1, H, W)      lesion mask at the model's input size
  cam          (N, 7, H/16, W/16) class activation maps; logits == mean(cam) + bias exactly,
                                 because the head is a 1x1 conv applied before the pooling.
Trained from scratch (no pretrained weights are available offline).
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


OUTPUT_NAMES = ("logits", "mask_logits", "cam")
