"""The rhythm CNN: a 1-D ResNet over one lead at 250 Hz with a class-activation head.

logits = mean over time of cam, where cam = 1x1 conv of the last feature map: the same numbers
as global average pooling + a linear layer, and the per-time class evidence (CAM) comes out of
the ONNX model for free, which is the saliency trace shown on the result page.
"""

from __future__ import annotations

import torch
from torch import nn


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, kernel: int = 9, dropout: float = 0.1):
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv1d(cin, cout, kernel, stride, pad, bias=False)
        self.bn1 = nn.BatchNorm1d(cout)
        self.conv2 = nn.Conv1d(cout, cout, kernel, 1, pad, bias=False)
        self.bn2 = nn.BatchNorm1d(cout)
        self.drop = nn.Dropout(dropout)
        self.short = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv1d(cin, cout, 1, stride, bias=False), nn.BatchNorm1d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(self.drop(h)))
        return torch.relu(h + self.short(x))


class RhythmNet(nn.Module):
    def __init__(self, n_classes: int = 4, width: int = 32):
        super().__init__()
        w = width
        plan = [
            (w, w, 1),
            (w, 2 * w, 2),
            (2 * w, 2 * w, 1),
            (2 * w, 3 * w, 2),
            (3 * w, 3 * w, 1),
            (3 * w, 4 * w, 2),
            (4 * w, 4 * w, 1),
            (4 * w, 4 * w, 2),
        ]
        self.stem = nn.Sequential(
            nn.Conv1d(1, w, 15, 2, 7, bias=False), nn.BatchNorm1d(w), nn.ReLU()
        )
        self.blocks = nn.Sequential(*[ResBlock(a, b, s) for a, b, s in plan])
        self.drop = nn.Dropout(0.3)
        self.head = nn.Conv1d(4 * w, n_classes, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (batch, 1, samples) -> logits (batch, classes), cam (batch, classes, samples / 32)."""
        cam = self.head(self.drop(self.blocks(self.stem(x))))
        return cam.mean(dim=2), cam


class RhythmEnsemble(nn.Module):
    """Averages the logits and CAMs of several RhythmNets (one ONNX graph)."""

    def __init__(self, members: list[RhythmNet]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs = [m(x) for m in self.members]
        logits = torch.stack([o[0] for o in outs]).mean(0)
        cam = torch.stack([o[1] for o in outs]).mean(0)
        return logits, cam
