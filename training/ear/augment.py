"""Batched torch augmentations that break the otoscope-source shortcuts.

Each source has its own camera look (black circular mask, orange cast, purple vignette); a
model can learn the camera instead of the disease. So every training image gets a random
otoscope look: any rotation and zoom, a random colour cast and gamma, a random vignette of a
random tint, sometimes a black circular mask, blur and sensor noise. Runs on the GPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(
    n: int, lo: float, hi: float, g: torch.Generator, device: torch.device
) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, device=device)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(2.5 * sigma))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(
        F.pad(x, (radius, radius, 0, 0), mode="replicate"),
        k.view(1, 1, 1, -1).repeat(c, 1, 1, 1),
        groups=c,
    )
    return F.conv2d(
        F.pad(x, (0, 0, radius, radius), mode="replicate"),
        k.view(1, 1, -1, 1).repeat(c, 1, 1, 1),
        groups=c,
    )


def augment(
    x_uint8: torch.Tensor, g: torch.Generator, *, colour_strength: float = 1.0
) -> torch.Tensor:
    """(B, H, W, 3) uint8 crops -> (B, 3, H, W) float in [0, 1], randomly re-photographed."""
    device = x_uint8.device
    x = x_uint8.permute(0, 3, 1, 2).float() / 255.0
    b, _, h, _ = x.shape

    # Geometry: any rotation (the eardrum has no fixed "up" across otoscopes), zoom, shift, mirror.
    angle = _uniform(b, 0, 2 * math.pi, g, device)
    scale = _uniform(b, 0.8, 1.2, g, device)
    flip = torch.where(torch.rand(b, generator=g, device=device) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(b, 2, 3, device=device)
    theta[:, 0, 0] = cos * flip
    theta[:, 0, 1] = -sin
    theta[:, 1, 0] = sin * flip
    theta[:, 1, 1] = cos
    theta[:, :, 2] = (torch.rand(b, 2, generator=g, device=device) - 0.5) * 0.16
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    # Colour: per-channel gain (light colour / white balance), gamma, brightness.
    s = colour_strength
    gains = torch.exp(torch.randn(b, 3, 1, 1, generator=g, device=device) * 0.18 * s)
    gamma = torch.exp(torch.randn(b, 1, 1, 1, generator=g, device=device) * 0.2 * s)
    bright = torch.exp(torch.randn(b, 1, 1, 1, generator=g, device=device) * 0.2 * s)
    x = (x.clamp(1e-4, 1.0) ** gamma) * gains * bright

    # A random vignette with a random tint (purple, orange, black...), centred anywhere near the middle.
    coords = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h - 0.5
    yy, xx = coords[:, None], coords[None, :]
    centre = (torch.rand(b, 2, 1, 1, generator=g, device=device) - 0.5) * 0.2
    r = torch.sqrt((yy - centre[:, 0:1]) ** 2 + (xx - centre[:, 1:2]) ** 2)
    inner = _uniform(b, 0.15, 0.45, g, device).view(b, 1, 1, 1)
    power = _uniform(b, 1.0, 3.0, g, device).view(b, 1, 1, 1)
    amount = _uniform(b, 0.0, 1.0, g, device).view(b, 1, 1, 1)
    amount = amount * (torch.rand(b, 1, 1, 1, generator=g, device=device) < 0.7)
    fall = (((r - inner) / (0.72 - inner)).clamp(0, 1) ** power) * amount
    tint = torch.rand(b, 3, 1, 1, generator=g, device=device) * _uniform(b, 0, 0.6, g, device).view(
        b, 1, 1, 1
    )
    x = x * (1 - fall) + tint * fall

    # Sometimes the black circular surround of a different otoscope.
    circle = _uniform(b, 0.36, 0.5, g, device).view(b, 1, 1, 1)
    use_circle = torch.rand(b, 1, 1, 1, generator=g, device=device) < 0.3
    x = torch.where(use_circle & (r > circle), torch.zeros_like(x), x)

    # Focus and sensor noise.
    blur_mask = torch.rand(b, generator=g, device=device) < 0.25
    if blur_mask.any():
        sigma = float(_uniform(1, 0.5, 1.6, g, device))
        x[blur_mask] = _gaussian_blur(x[blur_mask], sigma)
    noise_level = _uniform(b, 0.0, 0.03, g, device).view(b, 1, 1, 1)
    x = x + torch.randn(x.shape, generator=g, device=device) * noise_level
    return x.clamp(0.0, 1.0)


def to_float(x_uint8: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [0, 1], as the serving code feeds it."""
    return x_uint8.permute(0, 3, 1, 2).float() / 255.0
