"""Warm start: rebuild an EarNet state dict from an exported (fp32 or int8 QDQ) ONNX graph.

The exporter folds each BatchNorm into the convolution before it, and the int8 file keeps
per-channel int8 weights. `state_from_onnx` dequantises the weights and writes them back
into the EarNet layout; `recalibrate_bn` then sets every BatchNorm so that, on real training
images, training-mode batch statistics reproduce the folded function (gamma = std of the
convolution output, beta = its mean + folded bias). Fine-tuning then starts from the shipped
model's function instead of from scratch, which makes CPU-only retraining affordable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


def _dequantised_initialisers(path: Path) -> tuple[dict[str, np.ndarray], Any]:
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    init = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    values = dict(init)
    for node in m.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in init:
            q = init[node.input[0]].astype(np.float32)
            scale = init[node.input[1]].astype(np.float32)
            zp = init[node.input[2]].astype(np.float32) if len(node.input) > 2 else 0.0
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            if np.ndim(scale) == 1 and q.ndim > 1:
                shape = [1] * q.ndim
                shape[axis] = -1
                scale = scale.reshape(shape)
                zp = np.reshape(zp, shape) if np.ndim(zp) == 1 else zp
            values[node.output[0]] = (q - zp) * scale
    return values, m


def module_name(node_name: str) -> str:
    """ONNX node scope -> module name: "/features/features.1/body/body.0/Conv" -> "features.1.body.0"."""
    parts = node_name.strip("/").split("/")[:-1]
    name = prev = parts[0]
    for part in parts[1:]:
        name += part[len(prev) :] if part.startswith(prev + ".") else "." + part
        prev = part
    return name


def state_from_onnx(net: nn.Module, path: Path) -> dict[str, torch.Tensor]:
    """Folded conv weights/biases and the head from `path`, keyed by EarNet module names.

    Returns {conv module name: folded bias} for `recalibrate_bn`; the weights are loaded
    into `net` in place (BatchNorms left as identity until recalibrated).
    """
    values, m = _dequantised_initialisers(path)
    modules = dict(net.named_modules())
    biases: dict[str, torch.Tensor] = {}
    for node in m.graph.node:
        if node.op_type == "Conv":
            name = module_name(node.name)
            conv = modules[name]
            w = torch.from_numpy(np.array(values[node.input[1]], np.float32))
            assert conv.weight.shape == w.shape, (name, conv.weight.shape, w.shape)
            conv.weight.data.copy_(w)
            biases[name] = torch.from_numpy(np.array(values[node.input[2]], np.float32))
        elif node.op_type == "Gemm":
            net.head.weight.data.copy_(
                torch.from_numpy(np.array(values[node.input[1]], np.float32))
            )
            net.head.bias.data.copy_(torch.from_numpy(np.array(values[node.input[2]], np.float32)))
    return biases


def bn_after(name: str) -> str:
    """The BatchNorm that follows conv `name` in EarNet ("a.b.0" -> "a.b.1")."""
    head, last = name.rsplit(".", 1)
    return f"{head}.{int(last) + 1}"


@torch.no_grad()
def recalibrate_bn(
    net: nn.Module, biases: dict[str, torch.Tensor], x: torch.Tensor, eps: float = 1e-5
) -> None:
    """Set each BN (after its conv) to reproduce conv(x) + folded bias on images `x`."""
    modules = dict(net.named_modules())
    for name, bias in biases.items():
        bn = modules[bn_after(name)]
        bn.weight.fill_(1.0)
        bn.bias.copy_(bias)
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
    stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = []
    for name in biases:

        def hook(_m, _i, out, name=name):
            stats[name] = (out.mean(dim=(0, 2, 3)), out.var(dim=(0, 2, 3), unbiased=False))

        hooks.append(modules[name].register_forward_hook(hook))
    net.eval()
    net(x)
    for h in hooks:
        h.remove()
    for name, (mean, var) in stats.items():
        bn = modules[bn_after(name)]
        std = torch.sqrt(var + bn.eps)
        bn.weight.copy_(std)
        bn.bias.copy_(mean + biases[name])
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
