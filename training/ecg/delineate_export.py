"""Export the delineation U-Net to a single-file ONNX; several members (trained states or ONNX
files) become one ensemble ONNX whose "logits" are the log of the members' mean softmax, so the
runtime (argmax per sample) is the same for one model or several. The card, with the held-out
interval metrics, is written by training/ecg/eval_intervals.py.

    python -m training.ecg.delineate_export --state /work/scratch/ecg/gpu/delineate.pt
    python -m training.ecg.delineate_export --member weights/ecg_delineate.onnx --state run2/delineate.pt

A --member that is itself an ensemble is taken apart into its models (each then weighs the same
as a new one); the file records the original members' sha256 and the ensemble it extended, so
eval_intervals.py can carry the earlier members' training record onto the card.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import onnx
import torch
from onnx import helper

from training.common.onnx_members import flatten_members, members_metadata, merge_members
from training.ecg.delineate_model import DelineationUNet
from training.ecg.rhythm_export import export_onnx


def export(state: Path, out: Path) -> None:
    weights = torch.load(state, map_location="cpu")
    # a run with --lead-loss-weight has the auxiliary per-lead head; the graph leaves it out
    model = DelineationUNet(lead_head="lead_out.weight" in weights)
    model.load_state_dict(weights)
    export_onnx(
        model,
        torch.zeros(1, 12, 5008),
        out,
        {"signal": {0: "batch", 2: "samples"}, "logits": {0: "batch", 2: "samples"}},
    )


def ensemble(members: list[Path], out: Path, metadata: dict[str, str] | None = None) -> None:
    """One graph: every member reads "signal"; "logits" = log(mean of the members' softmax).
    `metadata` defaults to the members' sha256 (flatten_members gives it for taken-apart
    ensembles)."""

    def log_mean_softmax(prefixes: list[str]) -> list[onnx.NodeProto]:
        probs = [f"{p}prob" for p in prefixes]
        return [
            *(
                helper.make_node("Softmax", [f"{p}logits"], [prob], axis=1)
                for p, prob in zip(prefixes, probs)
            ),
            helper.make_node("Mean", probs, ["mean_prob"]),
            helper.make_node("Log", ["mean_prob"], ["logits"]),
        ]

    merge_members(
        members,
        out,
        log_mean_softmax,
        "ecg_delineate_ensemble",
        metadata or members_metadata(members),
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", type=Path, action="append", default=[], help="trained state(s)")
    ap.add_argument("--member", type=Path, action="append", default=[], help="ONNX member(s)")
    ap.add_argument("--out", type=Path, default=Path("weights/ecg_delineate.onnx"))
    args = ap.parse_args()
    if len(args.state) == 1 and not args.member:
        export(args.state[0], args.out)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            members = [p.resolve() for p in args.member]
            for i, state in enumerate(args.state):
                members.append(Path(tmp) / f"state{i}.onnx")
                export(state, members[-1])
            # an ensemble given as --member contributes each of its models, not one average
            members, metadata = flatten_members(members, Path(tmp))
            if len(members) < 2:
                ap.error("give one --state, or two or more members")
            staged = Path(tmp) / "ensemble.onnx"  # a member may be the file being replaced
            ensemble(members, staged, metadata)
            args.out.write_bytes(staged.read_bytes())
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
