"""Export the trained rhythm CNN (one member or an averaging ensemble) to a single-file ONNX.

    python -m training.ecg.rhythm_export --members /work/scratch/ecg/gpu/rhythm_member0.pt \
        --out weights/ecg_rhythm.onnx
    python -m training.ecg.rhythm_export --members NEW.pt --onnx-member weights/ecg_rhythm.onnx \
        --fp16-weights --out weights/ecg_rhythm.onnx   # average a new member with the shipped one
    python -m training.ecg.rhythm_export --members F/rhythm_fold?.pt --int8-weights \
        --out weights/ecg_rhythm.onnx   # the cross-validation fold models, averaged
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import torch

from training.common.onnx_members import mean_outputs, members_metadata, merge_members
from training.common.onnx_quant import store_weights_fp16, store_weights_int8
from training.ecg.rhythm_model import RhythmEnsemble, RhythmNet


def load_model(members: list[Path], width: int = 32) -> torch.nn.Module:
    nets = []
    for path in members:
        net = RhythmNet(width=width)
        net.load_state_dict(torch.load(path, map_location="cpu"))
        nets.append(net.eval())
    return (nets[0] if len(nets) == 1 else RhythmEnsemble(nets)).eval()


def export_onnx(
    model: torch.nn.Module,
    example: torch.Tensor | tuple[torch.Tensor, ...],
    out: Path,
    dynamic_axes: dict[str, dict[int, str]],
    input_names: tuple[str, ...] | list[str] = ("signal",),
) -> None:
    """Single-file ONNX (opset 17, TorchScript exporter: no external .onnx.data side file).

    `example` is one tensor or a tuple of them (one per input name)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model.eval(),
            example if isinstance(example, tuple) else (example,),
            str(out),
            dynamo=False,
            opset_version=17,
            input_names=list(input_names),
            output_names=[k for k in dynamic_axes if k not in input_names],
            dynamic_axes=dynamic_axes,
        )


def export(model: torch.nn.Module, out: Path) -> None:
    export_onnx(
        model,
        torch.zeros(1, 1, 2500),
        out,
        {
            "signal": {0: "batch", 2: "samples"},
            "logits": {0: "batch"},
            "cam": {0: "batch", 2: "frames"},
        },
    )


def ensemble_onnx(members: list[Path], out: Path) -> None:
    """One graph from exported RhythmNets: "logits" and "cam" are the members' means (as
    RhythmEnsemble), so logits stay the time-mean of the CAM. Members trained at different times
    (one kept only as ONNX) can be combined this way; the file records each member's sha256 so
    the card can tell which earlier model it contains."""
    merge_members(
        members,
        out,
        mean_outputs(("logits", "cam")),
        "ecg_rhythm_ensemble",
        metadata=members_metadata(members),
    )


def quantise(fp32: Path, out: Path, calibration: Path, n: int = 200) -> None:
    """Static int8 (QDQ) quantisation, calibrated on 10 s crops of CinC training strips."""
    import numpy as np
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from backend.inference.ecg.preprocess import rhythm_input

    z = np.load(calibration)
    rng = np.random.default_rng(0)
    train = rng.permutation(np.flatnonzero(z["split"] == 0))[:n]
    d = z["delta"]
    crops = []
    for i in train:
        s, length = int(z["start"][i]), int(z["length"][i])
        x = np.cumsum(d[s : s + length].astype(np.int32)).astype(np.float32) / 1000.0
        crops.append(rhythm_input(x[:2500])[None, None, :])

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(crops)

        def get_next(self) -> dict | None:
            x = next(self.it, None)
            return None if x is None else {"signal": x}

    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(pre))
    quantize_static(
        str(pre),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
    )
    pre.unlink()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=Path, nargs="+", required=True, help="trained states")
    ap.add_argument(
        "--onnx-member",
        type=Path,
        action="append",
        default=[],
        help="an already exported member (e.g. the shipped model) to average with --members",
    )
    ap.add_argument(
        "--fp16-weights", action="store_true", help="store the weights as fp16 (compute stays fp32)"
    )
    ap.add_argument(
        "--int8-weights",
        action="store_true",
        help="store the weights as per-channel int8 (compute and activations stay fp32)",
    )
    ap.add_argument("--out", type=Path, default=Path("weights/ecg_rhythm.onnx"))
    ap.add_argument(
        "--quantise-with",
        type=Path,
        default=None,
        help="rhythm_dataset.py arrays: write an int8 model calibrated on training strips",
    )
    args = ap.parse_args()
    if args.quantise_with:
        fp32 = args.out.with_suffix(".fp32.onnx")
        export(load_model(args.members), fp32)
        quantise(fp32, args.out, args.quantise_with)
        fp32.unlink()
    elif args.onnx_member:
        with tempfile.TemporaryDirectory() as tmp:
            trained = Path(tmp) / "trained.onnx"
            export(load_model(args.members), trained)
            members = [p.resolve() for p in args.onnx_member] + [trained]
            staged = Path(tmp) / "ensemble.onnx"  # a member may be the file being replaced
            ensemble_onnx(members, staged)
            args.out.write_bytes(staged.read_bytes())
    else:
        export(load_model(args.members), args.out)
    if args.fp16_weights:
        store_weights_fp16(args.out)
    elif args.int8_weights:
        store_weights_int8(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
