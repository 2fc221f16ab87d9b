"""Static int8 quantisation of an image model for CPU ONNX Runtime (shared by training lanes).

QDQ format, per-channel int8 weights, uint8 activations calibrated on real inputs: on convnets
this is usually 2-4x faster on CPU than fp32 and 4x smaller. Callers must compare accuracy
before keeping the int8 file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

METHOD = (
    "onnxruntime quantize_static, QDQ, per-channel int8 weights, uint8 activations, "
    "calibrated on training images"
)


def quantize_int8_static(
    fp32: Path,
    out: Path,
    calib: np.ndarray,
    *,
    input_name: str = "image",
    batch: int = 1,
    pre_process: bool = True,
) -> None:
    """Write `out`, an int8 QDQ copy of `fp32`, calibrated on `calib` (N, ...) float32 inputs.

    pre_process: run ORT's quant_pre_process (shape inference + graph cleanup) first; the ear
    models were quantised without it and keep that to reproduce their committed weights."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(
                [{input_name: calib[i : i + batch]} for i in range(0, len(calib), batch)]
            )

        def get_next(self) -> dict | None:
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        if pre_process:
            quant_pre_process(str(fp32), str(pre))
        quantize_static(
            str(pre if pre_process else fp32),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
