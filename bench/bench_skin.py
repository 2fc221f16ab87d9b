"""Skin check latency for one 12 MP phone JPEG, end to end, ONNX Runtime vs torch eager.

    .venv/bin/python bench/bench_skin.py [--iters 20]

End to end = decode (load_image_rgb) + preprocess + classify + segment + saliency + result JSON
(analyze_skin), 2 intra-op threads for both engines. The torch model is SkinNet with the very
weights of weights/skin_lesion.onnx (read back from the ONNX initialisers, BatchNorm already
folded into the convolutions), so both engines compute the same function.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import torch
from onnx import numpy_helper
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.inference.images import load_image_rgb
from backend.inference.registry import ModelRegistry
from backend.inference.skin import MODEL_NAME, analyze_skin, preprocess_skin
from training.skin.model import OUTPUT_NAMES, SkinNet

FIXTURE = ROOT / "tests" / "fixtures" / "skin" / "mel_ISIC_0024516.jpg"


def torch_model_from_onnx(path: Path) -> SkinNet:
    """SkinNet whose convolutions carry the ONNX file's (BN-folded) weights; BN is identity."""
    graph = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    onnx_convs = [n for n in graph.node if n.op_type == "Conv"]
    model = SkinNet().eval()
    order: list[torch.nn.Conv2d] = []
    hooks = [
        m.register_forward_pre_hook(lambda mod, _inp: order.append(mod))
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    with torch.no_grad():
        model(torch.zeros(1, 3, 144, 192))
    for h in hooks:
        h.remove()
    if len(order) != len(onnx_convs):
        raise RuntimeError(f"{len(order)} torch convs vs {len(onnx_convs)} ONNX convs")
    with torch.no_grad():
        for conv, node in zip(order, onnx_convs):
            w = torch.from_numpy(inits[node.input[1]].copy())
            if tuple(w.shape) != tuple(conv.weight.shape):
                raise RuntimeError(f"shape mismatch at {node.name}")
            conv.weight.copy_(w)
            bias = inits[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
            conv.bias = torch.nn.Parameter(torch.from_numpy(bias.copy()))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.bias.zero_()
                m.running_mean.zero_()
                m.running_var.fill_(1.0 - m.eps)
    return model


class TorchModel:
    """Duck-types registry.LoadedModel so analyze_skin runs unchanged on torch."""

    def __init__(self, model: SkinNet, card: dict[str, Any]):
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
    small = cv2.imread(str(FIXTURE))[:, :, ::-1]
    big = cv2.resize(small, (4000, 3000), interpolation=cv2.INTER_CUBIC)
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def timed(fn, iters: int, warmup: int = 2) -> np.ndarray:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return np.array(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)

    registry = ModelRegistry(ROOT / "weights", threads=args.threads)
    ort_model = registry.get(MODEL_NAME)
    torch_model = TorchModel(torch_model_from_onnx(registry.onnx_path(MODEL_NAME)), ort_model.card)
    torch_registry = TorchRegistry(torch_model)

    data = make_12mp_jpeg()
    image = load_image_rgb(data)
    x = preprocess_skin(image)
    ref, got = torch_model.run(x), ort_model.run(x)
    diff = {n: float(np.abs(ref[n] - got[n]).max()) for n in OUTPUT_NAMES}

    rows = {
        "decode 12 MP JPEG (load_image_rgb)": timed(lambda: load_image_rgb(data), args.iters),
        "preprocess (resize + normalise)": timed(lambda: preprocess_skin(image), args.iters),
        "model only, ONNX Runtime": timed(lambda: ort_model.run(x), args.iters),
        "model only, torch eager fp32": timed(lambda: torch_model.run(x), args.iters),
        "end to end, ONNX Runtime": timed(
            lambda: analyze_skin(load_image_rgb(data), registry), args.iters
        ),
        "end to end, torch eager fp32": timed(
            lambda: analyze_skin(load_image_rgb(data), torch_registry), args.iters
        ),
    }
    size = sum(p.stat().st_size for p in (ROOT / "weights").glob("skin_*.onnx"))

    print(
        f"skin bench: {len(data) / 1e6:.1f} MB JPEG, 4000x3000, {args.threads} threads, "
        f"{args.iters} runs, torch {torch.__version__}"
    )
    print("ORT vs torch max abs diff: " + ", ".join(f"{k} {v:.1e}" for k, v in diff.items()))
    print(f"{'stage':<40} {'p50 ms':>8} {'p95 ms':>8}")
    for name, t in rows.items():
        print(f"{name:<40} {np.percentile(t, 50):8.1f} {np.percentile(t, 95):8.1f}")
    model_ratio = np.median(rows["model only, torch eager fp32"]) / np.median(
        rows["model only, ONNX Runtime"]
    )
    e2e_ratio = np.median(rows["end to end, torch eager fp32"]) / np.median(
        rows["end to end, ONNX Runtime"]
    )
    print(f"torch eager / ORT, model only: {model_ratio:.2f}x   end to end: {e2e_ratio:.2f}x")
    p50 = np.percentile(rows["end to end, ONNX Runtime"], 50)
    print(f"end-to-end ORT p50 {p50:.1f} ms (target <= 150 ms): {'OK' if p50 <= 150 else 'MISS'}")
    print(
        f"skin weights total: {size / 1e6:.2f} MB (target <= 10 MB): "
        f"{'OK' if size <= 10e6 else 'MISS'}"
    )


if __name__ == "__main__":
    main()
