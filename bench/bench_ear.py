"""End-to-end latency of one eardrum check: decode a phone-size JPEG, gate, classify.

    .venv/bin/python bench/bench_ear.py [--runs 40] [--threads 2]

Rows: ONNX Runtime (the shipped path: load_image_rgb -> analyze_ear) and the same pipeline
with both networks in torch eager (same architecture and input; weights do not change the
cost, so torch runs with the exported architecture's fresh weights unless a checkpoint
folder is given). Two photo sizes: 1600x1200 (a client-downscaled upload) and 4032x3024
(a full 12 MP phone photo).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.inference import ear  # noqa: E402
from backend.inference.images import load_image_rgb  # noqa: E402
from backend.inference.registry import ModelRegistry  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "ear"


def phone_jpeg(width: int, height: int) -> bytes:
    """A held-out eardrum placed like a phone-otoscope shot: a circle in a black 4:3 frame."""
    drum = cv2.imread(str(sorted(FIXTURE.glob("eardrum_*.jpg"))[0]))
    side = int(height * 0.8)
    drum = cv2.resize(drum, (side, side), interpolation=cv2.INTER_CUBIC)
    frame = np.zeros((height, width, 3), np.uint8)
    y0, x0 = (height - side) // 2, (width - side) // 2
    frame[y0 : y0 + side, x0 : x0 + side] = drum
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def time_it(fn, runs: int) -> list[float]:  # noqa: ANN001
    for _ in range(3):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--checkpoints", type=Path, default=None, help="train.py output folder (optional)")
    args = ap.parse_args()

    import torch

    from training.ear import model

    torch.set_num_threads(args.threads)
    registry = ModelRegistry(ROOT / "weights", threads=args.threads)
    classes = registry.get(ear.CLASSIFIER_NAME).card["classes"]
    t_cls, t_gate = model.classifier(len(classes)).eval(), model.gate().eval()
    if args.checkpoints:
        ck = sorted(args.checkpoints.glob("ear_classifier_adv*.pt"))[0]
        t_cls.load_state_dict(torch.load(ck, map_location="cpu")["state"])
        t_gate.load_state_dict(torch.load(args.checkpoints / "ear_gate.pt", map_location="cpu")["state"])

    def torch_pipeline(data: bytes) -> None:
        crop = ear.crop_field_of_view(load_image_rgb(data))
        ear.image_quality(crop)
        x = torch.from_numpy(ear.to_model_input(crop))
        with torch.inference_mode():
            t_gate(x)
            t_cls(x)

    print(f"eardrum check, end to end, {args.threads} threads, {args.runs} runs "
          f"(onnxruntime, torch {torch.__version__})")
    print(f"{'photo':>11} | {'engine':<12} | {'p50 ms':>7} | {'p95 ms':>7} | {'mean ms':>7}")
    print("-" * 58)
    for w, h in ((1600, 1200), (4032, 3024)):
        data = phone_jpeg(w, h)
        decode = time_it(lambda: load_image_rgb(data), args.runs)
        onnx = time_it(lambda: ear.analyze_ear(load_image_rgb(data), registry), args.runs)
        eager = time_it(lambda: torch_pipeline(data), args.runs)
        for name, ts in (("decode only", decode), ("onnxruntime", onnx), ("torch eager", eager)):
            print(f"{w}x{h:<6} | {name:<12} | {percentile(ts, 50):7.1f} | {percentile(ts, 95):7.1f} | "
                  f"{statistics.fmean(ts):7.1f}")
        print(f"{'':>11} | torch/ORT p50 ratio: {percentile(eager, 50) / percentile(onnx, 50):.2f}x "
              f"({len(data) // 1024} KB JPEG)")
    result = ear.analyze_ear(load_image_rgb(phone_jpeg(1600, 1200)), registry)
    print(f"sanity: label={result['label']} confidence={result['confidence']} "
          f"p_eardrum={result['eardrum_probability']}")


if __name__ == "__main__":
    main()
