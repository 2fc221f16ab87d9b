"""Export the delineation U-Net to a single-file ONNX and write its card with the held-out
interval metrics (training/ecg/eval_intervals.py computes them).

    python -m training.ecg.delineate_export --state /work/scratch/ecg/gpu/delineate.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from training.ecg.delineate_model import DelineationUNet
from training.ecg.rhythm_export import export_onnx


def export(state: Path, out: Path) -> None:
    model = DelineationUNet()
    model.load_state_dict(torch.load(state, map_location="cpu"))
    export_onnx(
        model,
        torch.zeros(1, 12, 5008),
        out,
        {"signal": {0: "batch", 2: "samples"}, "logits": {0: "batch", 2: "samples"}},
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("weights/ecg_delineate.onnx"))
    args = ap.parse_args()
    export(args.state, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
