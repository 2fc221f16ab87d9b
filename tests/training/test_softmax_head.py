"""training/common/softmax_head: the head re-fit shared by the ear and skin scripts."""

from __future__ import annotations

import numpy as np
import torch

from training.common.softmax_head import fit_softmax_head


def test_standardised_fit_returns_a_head_for_raw_features():
    torch.manual_seed(0)
    rng = np.random.default_rng(7)
    raw = rng.normal(size=(600, 3)).astype(np.float32)
    y = (raw[:, 0] + raw[:, 1] > 0).astype(np.int64)
    # Wildly different feature scales and offsets: the fit standardises them, the returned
    # head must still work on the raw features it will see in the ONNX graph.
    f = raw * np.array([1000.0, 0.001, 5.0], np.float32) + np.array([50.0, -3.0, 0.0], np.float32)
    weight, bias = fit_softmax_head(f, y, np.ones(len(y)), 2, l2=1e-3, iters=300,
                                    standardise=True)
    accuracy = ((f.astype(np.float64) @ weight.T + bias).argmax(1) == y).mean()
    assert accuracy > 0.95
