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
import os
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.inference import ear
from backend.inference.images import load_image_rgb
from backend.inference.registry import ModelRegistry
from bench.timing import time_calls
from training.common.shared_data import SHARED_DATA

EARDRUM = SHARED_DATA / "ear" / "images" / "chl_aea4a6e3266e.jpg"  # a test-split earwax photo


def decode(data: bytes) -> np.ndarray:
    """The upload's decode as the app does it (reduced-scale JPEG decode)."""
    return load_image_rgb(data, min_side=ear.PHOTO_MIN_SIDE)


def phone_jpeg(width: int, height: int) -> bytes:
    """A held-out eardrum placed like a phone-otoscope shot: a circle in a black 4:3 frame."""
    drum = cv2.imread(str(EARDRUM))
    side = int(height * 0.8)
    drum = cv2.resize(drum, (side, side), interpolation=cv2.INTER_CUBIC)
    frame = np.zeros((height, width, 3), np.uint8)
    y0, x0 = (height - side) // 2, (width - side) // 2
    frame[y0 : y0 + side, x0 : x0 + side] = drum
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def no_spin_registry(threads: int) -> ModelRegistry:
    """The registry with ORT's idle thread spinning off (session.intra_op.allow_spinning=0).

    By default ORT's pool threads busy-wait after every run; on a small shared server that
    burns the cores the JPEG decode and the crop need next. This row shows what the setting
    buys; the registry itself decides (backend/inference/registry.py).
    """
    import onnxruntime as ort

    reg = ModelRegistry(ROOT / "weights", threads=threads)
    for name in (ear.GATE_NAME, ear.CLASSIFIER_NAME):
        loaded = reg.get(name)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        loaded.session = ort.InferenceSession(
            str(reg.onnx_path(name)), sess_options=opts, providers=["CPUExecutionProvider"]
        )
    return reg


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--checkpoints", type=Path, default=None, help="train.py output folder (optional)"
    )
    args = ap.parse_args()

    import torch

    from training.ear import model

    torch.set_num_threads(args.threads)
    registry = ModelRegistry(ROOT / "weights", threads=args.threads)
    classes = registry.get(ear.CLASSIFIER_NAME).card["classes"]
    t_cls, t_gate = model.classifier(len(classes)).eval(), model.gate().eval()
    if args.checkpoints:
        ck = min(args.checkpoints.glob("ear_classifier_adv*.pt"))
        t_cls.load_state_dict(torch.load(ck, map_location="cpu")["state"])
        t_gate.load_state_dict(
            torch.load(args.checkpoints / "ear_gate.pt", map_location="cpu")["state"]
        )
    views = registry.get(ear.CLASSIFIER_NAME).card.get("test_time_views", {}).get("views")
    if views and len(views) > 1:
        # The shipped graph averages mirrored/rotated views; torch runs the same views.
        from training.ear.evaluate import AveragedViews

        t_cls = AveragedViews(t_cls, tuple(views)).eval()

    def torch_pipeline(data: bytes) -> None:
        crop = ear.crop_field_of_view(decode(data))
        ear.image_quality(crop)
        x = torch.from_numpy(ear.to_model_input(crop))
        with torch.inference_mode():
            t_gate(x)
            t_cls(x)

    print(
        f"eardrum check, end to end, {args.threads} threads, {args.runs} runs "
        f"(onnxruntime, torch {torch.__version__}); load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores"
    )
    head = f"{'photo':>11} | {'engine':<16} | {'p50 ms':>7} | {'p95 ms':>7} | {'cpu p50 ms':>10}"
    print(head)
    print("-" * len(head))
    gate, classifier = registry.get(ear.GATE_NAME), registry.get(ear.CLASSIFIER_NAME)
    quiet = no_spin_registry(args.threads)
    for w, h in ((1600, 1200), (4032, 3024)):
        data = phone_jpeg(w, h)
        image = decode(data)
        x = ear.to_model_input(ear.crop_field_of_view(image))
        rows = {
            "decode full size": time_calls(lambda data=data: load_image_rgb(data), args.runs, warmup=3),
            "decode as served": time_calls(lambda data=data: decode(data), args.runs, warmup=3),
            "crop + quality": time_calls(
                lambda image=image: ear.image_quality(ear.crop_field_of_view(image)), args.runs
            ),
            "gate (ORT)": time_calls(lambda x=x: gate.run(x), args.runs, warmup=3),
            "classifier (ORT)": time_calls(lambda x=x: classifier.run(x), args.runs, warmup=3),
            "onnxruntime e2e": time_calls(
                lambda data=data: ear.analyze_ear(decode(data), registry), args.runs
            ),
            "ORT e2e no-spin": time_calls(
                lambda data=data: ear.analyze_ear(decode(data), quiet), args.runs
            ),
            "torch eager e2e": time_calls(lambda data=data: torch_pipeline(data), args.runs, warmup=3),
        }
        for name, (wall, cpu) in rows.items():
            print(
                f"{w}x{h:<6} | {name:<16} | {percentile(wall, 50):7.1f} | "
                f"{percentile(wall, 95):7.1f} | {percentile(cpu, 50):10.1f}"
            )
        (o_wall, o_cpu), (e_wall, e_cpu) = rows["onnxruntime e2e"], rows["torch eager e2e"]
        print(
            f"{'':>11} | torch/ORT p50 ratio: wall "
            f"{percentile(e_wall, 50) / percentile(o_wall, 50):.2f}x, cpu "
            f"{percentile(e_cpu, 50) / percentile(o_cpu, 50):.2f}x ({len(data) // 1024} KB JPEG)"
        )
    result = ear.analyze_ear(load_image_rgb(phone_jpeg(1600, 1200)), registry)
    print(
        f"sanity: label={result['label']} confidence={result['confidence']} "
        f"p_eardrum={result['eardrum_probability']}"
    )


if __name__ == "__main__":
    main()
