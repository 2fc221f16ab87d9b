"""Export a skin checkpoint (SkinNet or SkinLiteNet) to one ONNX file, check ORT against torch, try int8.

    python -m training.skin.export --ckpt /work/scratch/skin/gpu1/best.pt --out weights/skin_lesion.onnx

    python -m training.skin.export --ckpt NEW/best.pt --try-int8 --fp16-weights  # int8, else fp16-stored
    python -m training.skin.export --ckpt NEW/best.pt --try-int8 --with-member OLD.onnx \
        --out weights/skin_lesion.onnx      # an ensemble: OLD and NEW averaged in one graph

Prints the max abs difference between ONNX Runtime and torch for every output. With
--try-int8, a statically quantised (QDQ, per-channel) copy is calibrated on training images and
compared with fp32 on the validation split; it replaces the fp32 file only if it keeps
balanced accuracy (-0.01), melanoma AUC (-0.005) and Dice (-0.005).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from backend.inference.skin import CLASSES, INPUT_H, INPUT_W, preprocess_skin
from training.common.onnx_members import mean_outputs, members_metadata, merge_members
from training.common.onnx_quant import METHOD, quantize_int8_static, store_weights_fp16
from training.skin.data import SCRATCH, Pack
from training.skin.model import OUTPUT_NAMES, build_model

OPSET = 17
QUANT_REPORT = SCRATCH / "quantisation.json"


def load_model(ckpt: Path) -> torch.nn.Module:
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    state = {k.removeprefix("module."): v for k, v in saved["model"].items() if k != "n_averaged"}
    model = build_model(
        saved.get("args", {}).get("arch", "skinnet"), len(CLASSES), pretrained=False
    )
    model.load_state_dict(state)
    return model.eval()


def export_onnx(model: torch.nn.Module, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, 3, INPUT_H, INPUT_W)
    # The TorchScript exporter writes one self-contained opset-17 file and folds BatchNorm;
    # torch warns that it is the legacy path.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (dummy,),
            str(out),
            dynamo=False,
            opset_version=OPSET,
            input_names=["image"],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={"image": {0: "batch"}, **{n: {0: "batch"} for n in OUTPUT_NAMES}},
        )


def ensemble_onnx(members: list[Path], out: Path) -> None:
    """One graph in which every output is the mean of the members' outputs. The mean of the
    logits (softmax with the ensemble's own temperature), of the mask logits, and of the CAMs,
    so logits stay the spatial mean of the CAM."""
    merge_members(
        members,
        out,
        mean_outputs(OUTPUT_NAMES),
        "skin_lesion_ensemble",
        members_metadata(members),
        input_name="image",
    )


def session(path: Path, threads: int = 2) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def max_abs_diff(model: torch.nn.Module, onnx_path: Path, batch: np.ndarray) -> dict[str, float]:
    with torch.no_grad():
        ref = [t.numpy() for t in model(torch.from_numpy(batch))]
    got = session(onnx_path).run(None, {"image": batch})
    return {n: float(np.abs(a - b).max()) for n, a, b in zip(OUTPUT_NAMES, ref, got)}


def split_inputs(pack: Pack, split: str, limit: int | None = None) -> np.ndarray:
    idx = pack.indices(split)[:limit]
    return np.concatenate([preprocess_skin(pack.images[i]) for i in idx])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--ckpt", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("weights/skin_lesion.onnx"))
    ap.add_argument("--pack", type=Path, default=SCRATCH / "pack.npz")
    ap.add_argument("--try-int8", action="store_true")
    ap.add_argument(
        "--fp16-weights",
        action="store_true",
        help="store the weights of an fp32 result as fp16 (half the file, compute stays fp32)",
    )
    ap.add_argument(
        "--with-member",
        type=Path,
        action="append",
        default=[],
        help="an exported skin ONNX to average with the new model (repeatable; may be --out)",
    )
    args = ap.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        # copied first: a member may be the file --out is about to replace
        members = [
            Path(shutil.copy(m, Path(tmp) / f"member{i}.onnx"))
            for i, m in enumerate(args.with_member)
        ]
        export_checked(args)
        if members:
            new = Path(shutil.copy(args.out, Path(tmp) / "new.onnx"))
            ensemble_onnx([*members, new], args.out)
            size = args.out.stat().st_size / 1e6
            print(f"wrote {args.out}: mean of {len(members) + 1} members ({size:.2f} MB)")


def export_checked(args: argparse.Namespace) -> None:
    """Export --ckpt to --out, check ORT against torch, and with --try-int8 keep int8 if it holds."""
    model = load_model(args.ckpt)
    export_onnx(model, args.out)
    pack = Pack(args.pack)
    check = split_inputs(pack, "val", 8)
    diffs = max_abs_diff(model, args.out, check)
    print("ORT vs torch max abs diff:", {k: f"{v:.2e}" for k, v in diffs.items()})
    if max(diffs.values()) > 1e-3:
        raise SystemExit("ONNX export does not match torch")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    if args.try_int8:
        from training.skin.evaluate import run_split, split_metrics

        int8 = SCRATCH / "skin_lesion.int8.onnx"
        fp32_size = args.out.stat().st_size
        quantize_int8_static(args.out, int8, split_inputs(pack, "train", 128))
        fp = split_metrics(*run_split(args.out, pack, "val"))
        q = split_metrics(*run_split(int8, pack, "val"))
        keys = ("balanced_accuracy", "melanoma_auc", "dice")
        print("val fp32:", {k: fp[k] for k in keys}, f"{args.out.stat().st_size / 1e6:.2f} MB")
        print("val int8:", {k: q[k] for k in keys}, f"{int8.stat().st_size / 1e6:.2f} MB")
        holds = (
            q["balanced_accuracy"] >= fp["balanced_accuracy"] - 0.01
            and q["melanoma_auc"] >= fp["melanoma_auc"] - 0.005
            and q["dice"] >= fp["dice"] - 0.005
        )
        if holds:
            shutil.copyfile(int8, args.out)
            print("int8 keeps accuracy: kept the int8 model")
        else:
            print("int8 loses accuracy: kept fp32")
        report = {
            "method": f"{METHOD} (128 of them)",
            "kept": "int8" if holds else "fp32",
            "val_fp32": {k: fp[k] for k in keys} | {"size_bytes": fp32_size},
            "val_int8": {k: q[k] for k in keys} | {"size_bytes": int8.stat().st_size},
        }
        QUANT_REPORT.write_text(json.dumps(report, indent=1))
        print(f"wrote {QUANT_REPORT}")
    if args.fp16_weights and not is_int8(args.out):
        store_weights_fp16(args.out)
        print(f"stored the weights as fp16: {args.out.stat().st_size / 1e6:.2f} MB")


def is_int8(path: Path) -> bool:
    return any(n.op_type == "QuantizeLinear" for n in onnx.load(str(path)).graph.node)


def has_fp16_weights(path: Path) -> bool:
    model = onnx.load(str(path))
    return any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)


if __name__ == "__main__":
    main()
