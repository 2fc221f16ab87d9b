"""The delineation network: a small 1-D U-Net over up to 12 leads at 500 Hz that labels every
sample as background, P, QRS or T of the *global* (all-lead) wave extent."""

from __future__ import annotations

import torch
from torch import nn

N_WAVE_CLASSES = 4  # background, P, QRS, T
DOWNSAMPLING = 16  # input length must be a multiple of this


def _block(cin: int, cout: int, kernel: int = 9) -> nn.Sequential:
    pad = kernel // 2
    return nn.Sequential(
        nn.Conv1d(cin, cout, kernel, padding=pad, bias=False),
        nn.BatchNorm1d(cout),
        nn.ReLU(),
        nn.Conv1d(cout, cout, kernel, padding=pad, bias=False),
        nn.BatchNorm1d(cout),
        nn.ReLU(),
    )


class DelineationUNet(nn.Module):
    def __init__(
        self,
        in_leads: int = 12,
        widths: tuple[int, ...] = (16, 32, 48, 64, 96),
        lead_head: bool = False,
    ):
        super().__init__()
        self.in_leads = in_leads
        self.enc = nn.ModuleList()
        cin = in_leads
        for w in widths:
            self.enc.append(_block(cin, w))
            cin = w
        self.pool = nn.MaxPool1d(2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.dec = nn.ModuleList(
            _block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(len(widths) - 1))
        )
        self.drop = nn.Dropout(0.1)
        self.out = nn.Conv1d(widths[0], N_WAVE_CLASSES, 1)
        # Auxiliary training target: each lead's own wave labels (LUDB marks every lead). It is
        # not exported; it only gives the shared layers twelve times the wave boundaries to learn.
        self.lead_out = nn.Conv1d(widths[0], in_leads * N_WAVE_CLASSES, 1) if lead_head else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, 12, samples) -> logits (batch, 4, samples)."""
        return self.out(self.drop(self.features(x)))

    def forward_with_leads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Global logits (batch, 4, samples) and per-lead logits (batch, 4, 12, samples)."""
        assert self.lead_out is not None, "built without lead_head"
        h = self.drop(self.features(x))
        per_lead = self.lead_out(h).unflatten(1, (self.in_leads, N_WAVE_CLASSES)).transpose(1, 2)
        return self.out(h), per_lead

    def features(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.enc):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for block in self.dec:
            x = block(torch.cat([self.up(x), skips.pop()], dim=1))
        return x


class DelineationEnsemble(nn.Module):
    """Several U-Nets as the ensemble ONNX computes them (delineate_export.ensemble): logits are
    the log of the members' mean softmax. The torch twin of that graph for the benchmark."""

    def __init__(self, members: list[DelineationUNet]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([m(x).softmax(dim=1) for m in self.members]).mean(0)
        return probs.log()
