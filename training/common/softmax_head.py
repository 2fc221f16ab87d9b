"""Re-fitting a classifier's last layer on frozen features: weighted softmax regression.

Used by the ear and skin head re-fits (training/*/retrain_head.py).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def fit_softmax_head(
    f: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    n_cls: int,
    l2: float,
    *,
    iters: int,
    standardise: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted softmax regression (L-BFGS) -> (weight (C, F), bias (C,)) in raw feature space.

    standardise: fit on z-scored features (the L2 penalty then treats every feature alike) and
    fold the scaling back into the returned weight and bias.
    """
    if standardise:
        mu, sd = f.mean(0), f.std(0) + 1e-6
        a = torch.from_numpy((f - mu) / sd).float()
    else:
        a = torch.from_numpy(f).float()
    t = torch.from_numpy(y)
    sw = torch.from_numpy(w / w.sum()).float()
    weight = torch.zeros(n_cls, f.shape[1], requires_grad=True)
    bias = torch.zeros(n_cls, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        nll = F.cross_entropy(a @ weight.T + bias, t, reduction="none")
        loss = (nll * sw).sum() + l2 * (weight**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    if not standardise:
        return weight.detach().numpy(), bias.detach().numpy()
    wt = weight.detach().numpy().astype(np.float64) / sd
    b = bias.detach().numpy().astype(np.float64) - wt @ mu
    return wt.astype(np.float32), b.astype(np.float32)
