"""Smaller ONNX files for CPU ONNX Runtime (shared by training lanes): static int8 quantisation
of an image model, and fp16 storage of float32 weights.

QDQ format, per-channel int8 weights, uint8 activations calibrated on real inputs: on convnets
this is usually 2-4x faster on CPU than fp32 and 4x smaller. Callers must compare accuracy
before keeping the int8 file.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

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


def store_weights_fp16(path: Path, min_elements: int = 256) -> None:
    """Keep the large float32 weights as float16 in the file, each followed by a Cast back to
    float32: the file halves and the network still computes in float32 (ONNX Runtime folds the
    Casts once, when the session is created). Rounding the weights to fp16 moves the logits by
    ~1e-3; the evaluate scripts measure the stored model, so the cards hold its true figures.
    (onnxconverter-common's float16 conversion would also run the convolutions in fp16, which
    ONNX Runtime's CPU kernels do slowly or not at all; this keeps the compute fp32.)"""
    from onnx import TensorProto, helper, numpy_helper

    def as_fp16(name: str, w: np.ndarray) -> tuple[list, onnx.NodeProto] | None:
        if w.size < min_elements:
            return None
        half = numpy_helper.from_array(w.astype(np.float16), f"{name}_fp16")
        return [half], helper.make_node("Cast", [half.name], [name], to=TensorProto.FLOAT)

    _store_weights(path, as_fp16)


def store_weights_int8(path: Path, min_elements: int = 256) -> None:
    """Keep the large float32 weights as int8, symmetric per output channel (axis 0), each
    followed by a DequantizeLinear back to float32: the file is ~4x smaller and the network
    still computes in float32 on float activations (ONNX Runtime folds the DequantizeLinears
    once, when the session is created). Unlike quantize_static, activations are not quantised,
    so accuracy moves far less; the evaluate scripts measure the stored model.
    (ONNX Runtime's own weight-only quantisers cover MatMul/Gather, not Conv.)"""
    from onnx import helper, numpy_helper

    def as_int8(name: str, w: np.ndarray) -> tuple[list, onnx.NodeProto] | None:
        if w.ndim < 2 or w.size < min_elements:
            return None
        scale = np.abs(w.reshape(w.shape[0], -1)).max(axis=1) / 127.0
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
        q = np.clip(np.round(w / scale.reshape(-1, *[1] * (w.ndim - 1))), -127, 127)
        tensors = [
            numpy_helper.from_array(q.astype(np.int8), f"{name}_int8"),
            numpy_helper.from_array(scale, f"{name}_scale"),
            numpy_helper.from_array(np.zeros(w.shape[0], np.int8), f"{name}_zero"),
        ]
        node = helper.make_node("DequantizeLinear", [t.name for t in tensors], [name], axis=0)
        return tensors, node

    _store_weights(path, as_int8)


def _store_weights(
    path: Path, encode: Callable[[str, np.ndarray], tuple[list, onnx.NodeProto] | None]
) -> None:
    """Rewrite the file's float32 initializers that `encode` takes: each is replaced by the
    tensors it returns, and the node it returns (put first in the graph) computes the original
    name back from them."""
    from onnx import TensorProto, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    decoders = []
    for init in list(graph.initializer):
        if init.data_type != TensorProto.FLOAT:
            continue
        encoded = encode(init.name, numpy_helper.to_array(init))
        if encoded is None:
            continue
        tensors, node = encoded
        graph.initializer.remove(init)
        graph.initializer.extend(tensors)
        decoders.append(node)
    nodes = decoders + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def weight_reader(graph: onnx.GraphProto) -> Callable[[str], np.ndarray]:
    """name -> the float32 value a node input holds when it is a weight: an initializer, an fp16
    initializer behind a Cast (store_weights_fp16), or an int8 one behind a DequantizeLinear,
    dequantised the way ONNX Runtime does: (q - zero) * scale, per channel along `axis`."""
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producers = {n.output[0]: n for n in graph.node if n.op_type in ("Cast", "DequantizeLinear")}

    def value(name: str) -> np.ndarray:
        if name in inits:
            return inits[name].astype(np.float32)
        node = producers[name]
        if node.op_type == "Cast":
            return inits[node.input[0]].astype(np.float32)
        q = inits[node.input[0]].astype(np.float32)
        scale = inits[node.input[1]].astype(np.float32)
        zero = inits[node.input[2]].astype(np.float32) if len(node.input) > 2 else 0.0
        if np.ndim(scale) == 1 and q.ndim > 1:
            shape = [1] * q.ndim
            shape[next((a.i for a in node.attribute if a.name == "axis"), 1)] = -1
            scale = scale.reshape(shape)
            zero = np.reshape(zero, shape) if np.ndim(zero) else zero
        return ((q - zero) * scale).astype(np.float32)

    return value
