"""Skin check latency for one 12 MP phone JPEG, end to end, ONNX Runtime vs torch eager.

    .venv/bin/python bench/bench_skin.py [--iters 20]

End to end = decode (load_image_rgb) + preprocess + classify + segment + saliency + result JSON
(analyze_skin), 2 intra-op threads for both engines. The torch model is the card's architecture
(training/skin/model.py) in fp32 with the weights of weights/skin_lesion.onnx read back from the
file (BatchNorm already folded into the convolutions; int8 weights dequantised, fp16-stored
weights cast), so both engines run the same network; ORT runs the graph as shipped.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.inference.images import decode_photo, load_image_rgb
from backend.inference.registry import ModelRegistry
from backend.inference.skin import (
    MODEL_NAME,
    PHOTO_MIN_SIDE,
    analyze_skin,
    preprocess_skin,
    run_with_flips,
)
from bench.timing import time_calls
from training.common.onnx_quant import weight_reader
from training.common.shared_data import SHARED_DATA
from training.skin.model import OUTPUT_NAMES, build_model

MELANOMA = SHARED_DATA / "skin" / "images" / "ISIC_0024516.jpg"  # test split, 200x150


def module_path(node_name: str) -> str:
    """'/layer1/layer1.0/short/short.0/Conv' (TorchScript export scopes) -> 'layer1.0.short.0'."""
    path, last = "", ""
    for part in node_name.strip("/").split("/")[:-1]:
        if last and part.startswith(last + "."):
            path += part[len(last) :]
        else:
            path = f"{path}.{part}" if path else part
        last = part
    return path


def torch_model_from_onnx(path: Path, arch: str) -> torch.nn.Module:
    """The network `arch` with the ONNX file's (BN-folded) conv weights; BN is identity.
    For an ensemble file, the mean of one such network per member."""
    graph = onnx.load(str(path)).graph
    value = weight_reader(graph)
    convs = [n for n in graph.node if n.op_type == "Conv"]
    # An ensemble (training/skin/export.py ensemble_onnx) prefixes each member's node names
    # with m<k>_ ("m0_/encoder/..."); a single model's names start with "/".
    prefixes = sorted({n.name.split("/", 1)[0] for n in convs})
    members = [
        member_from_convs(arch, [n for n in convs if n.name.startswith(p + "/")], p, value)
        for p in prefixes
    ]
    return members[0] if len(members) == 1 else MeanOfMembers(members).eval()


def member_from_convs(
    arch: str, convs: list[onnx.NodeProto], prefix: str, value: Callable[[str], np.ndarray]
) -> torch.nn.Module:
    model = build_model(arch, pretrained=False).eval()
    modules = dict(model.named_modules())
    if len(convs) != sum(isinstance(m, torch.nn.Conv2d) for m in modules.values()):
        raise RuntimeError(f"the ONNX file does not hold the convolutions of {arch}")
    with torch.no_grad():
        for node in convs:
            conv = modules[module_path(node.name[len(prefix) :])]
            w = torch.from_numpy(value(node.input[1]))
            if tuple(w.shape) != tuple(conv.weight.shape):
                raise RuntimeError(f"shape mismatch at {node.name}")
            conv.weight.copy_(w)
            bias = value(node.input[2]) if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
            conv.bias = torch.nn.Parameter(torch.from_numpy(bias.copy()))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.bias.zero_()
                m.running_mean.zero_()
                m.running_var.fill_(1.0 - m.eps)
    return model


class MeanOfMembers(torch.nn.Module):
    """What the ensemble graph computes: every output averaged over the members."""

    def __init__(self, members: list[torch.nn.Module]):
        super().__init__()
        self.members = torch.nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = [m(x) for m in self.members]
        return tuple(torch.stack(o).mean(0) for o in zip(*outs))


class TorchModel:
    """Duck-types registry.LoadedModel so analyze_skin runs unchanged on torch."""

    def __init__(self, model: torch.nn.Module, card: dict[str, Any]):
        self.model = model
        self.card = card

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out = self.model(torch.from_numpy(x))
        return {n: t.numpy() for n, t in zip(OUTPUT_NAMES, out)}

    def model_ref(self) -> dict[str, str]:
        return {"name": MODEL_NAME + "-torch", "version": "bench", "sha256": self.card["sha256"]}


class TorchRegistry:
    def __init__(self, model: TorchModel):
        self.model = model

    def get(self, name: str) -> TorchModel:
        return self.model


def make_12mp_jpeg() -> bytes:
    small = cv2.imread(str(MELANOMA))[:, :, ::-1]
    big = cv2.resize(small, (4000, 3000), interpolation=cv2.INTER_CUBIC)
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def shipped_decode(data: bytes) -> tuple[np.ndarray, tuple[int, int]]:
    """The serving path's decode (backend.inference.dispatch): JPEG at reduced scale, true size."""
    photo = decode_photo(data, min_side=PHOTO_MIN_SIDE)
    return photo.pixels, photo.original_hw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)

    registry = ModelRegistry(ROOT / "weights", threads=args.threads)
    ort_model = registry.get(MODEL_NAME)
    arch = ort_model.card.get("architecture", "skinnet")
    torch_model = TorchModel(
        torch_model_from_onnx(registry.onnx_path(MODEL_NAME), arch), ort_model.card
    )
    torch_registry = TorchRegistry(torch_model)

    data = make_12mp_jpeg()
    image = load_image_rgb(data)
    x = preprocess_skin(image)
    ref, got = torch_model.run(x), ort_model.run(x)
    diff = {n: float(np.abs(ref[n] - got[n]).max()) for n in OUTPUT_NAMES}

    def draft_e2e(reg: Any) -> dict:
        pixels, hw = shipped_decode(data)
        return analyze_skin(pixels, reg, input_hw=hw)

    n = args.iters
    rows = {
        "decode 12 MP JPEG (load_image_rgb)": time_calls(lambda: load_image_rgb(data), n, warmup=2),
        "decode 12 MP JPEG, reduced (as shipped)": time_calls(
            lambda: shipped_decode(data), n, warmup=2
        ),
        "preprocess (resize + normalise)": time_calls(lambda: preprocess_skin(image), n, warmup=2),
        "model only, one view, ONNX Runtime": time_calls(lambda: ort_model.run(x), n, warmup=2),
        "model only, one view, torch eager fp32": time_calls(
            lambda: torch_model.run(x), n, warmup=2
        ),
        "model as served (4 flip views), ONNX Runtime": time_calls(
            lambda: run_with_flips(ort_model.run, x), n, warmup=2
        ),
        "model as served (4 flip views), torch eager": time_calls(
            lambda: run_with_flips(torch_model.run, x), n, warmup=2
        ),
        "end to end, full decode + ONNX Runtime": time_calls(
            lambda: analyze_skin(load_image_rgb(data), registry), n, warmup=2
        ),
        "end to end, full decode + torch eager": time_calls(
            lambda: analyze_skin(load_image_rgb(data), torch_registry), n, warmup=2
        ),
        "end to end, as shipped, ONNX Runtime": time_calls(
            lambda: draft_e2e(registry), n, warmup=2
        ),
        "end to end, as shipped, torch eager": time_calls(
            lambda: draft_e2e(torch_registry), n, warmup=2
        ),
    }
    size = sum(p.stat().st_size for p in (ROOT / "weights").glob("skin_*.onnx"))

    print(
        f"skin bench: {len(data) / 1e6:.1f} MB JPEG, 4000x3000, {args.threads} threads, "
        f"{n} runs, torch {torch.__version__}, load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    print(
        "ORT (as shipped) vs torch fp32 max abs diff: "
        + ", ".join(f"{k} {v:.1e}" for k, v in diff.items())
    )
    print(f"{'stage':<46} {'wall p50':>9} {'wall p95':>9} {'cpu p50':>8}   (ms)")
    for name, (wall, cpu) in rows.items():
        print(
            f"{name:<46} {np.percentile(wall, 50):9.1f} {np.percentile(wall, 95):9.1f} "
            f"{np.percentile(cpu, 50):8.1f}"
        )

    def ratio(slow: str, fast: str) -> str:
        return f"{np.median(rows[slow][0]) / np.median(rows[fast][0]):.2f}x"

    # The decode, resize, mask, PNG and JSON stages are the same code for both engines, so the
    # end-to-end ratios are diluted by them; the model rows compare the engines themselves.
    print(
        "torch eager / ORT (wall p50): model only, one view "
        f"{ratio('model only, one view, torch eager fp32', 'model only, one view, ONNX Runtime')}"
        ", model as served "
        f"{ratio('model as served (4 flip views), torch eager', 'model as served (4 flip views), ONNX Runtime')}"
        ", end to end as shipped "
        f"{ratio('end to end, as shipped, torch eager', 'end to end, as shipped, ONNX Runtime')}"
        ", end to end with a full decode "
        f"{ratio('end to end, full decode + torch eager', 'end to end, full decode + ONNX Runtime')}"
    )
    for name in ("end to end, full decode + ONNX Runtime", "end to end, as shipped, ONNX Runtime"):
        p50 = np.percentile(rows[name][0], 50)
        print(f"{name}: p50 {p50:.1f} ms (target <= 150 ms): {'OK' if p50 <= 150 else 'MISS'}")
    verdict = "OK" if size <= 10e6 else "MISS"
    print(f"skin weights total: {size / 1e6:.2f} MB (target <= 10 MB): {verdict}")


if __name__ == "__main__":
    main()
