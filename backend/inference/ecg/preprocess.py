"""Signal conditioning shared by ECG delineation, rhythm classification and their training.

Training scripts import these exact functions so that the models see at run time what they saw
while learning.
"""

from __future__ import annotations

from functools import lru_cache
from math import gcd

import numpy as np
from scipy import signal as sps

from backend.inference.ecg.record import STANDARD_LEADS

DELINEATION_FS = 500  # LUDB's native rate: the fiducials are drawn at 2 ms resolution
RHYTHM_FS = 250  # rhythm CNN, result trace and saliency


def resample(x: np.ndarray, fs_in: float, fs_out: int) -> np.ndarray:
    """Polyphase resampling along axis 0; NaN gaps are kept as NaN (zero-filled while filtering)."""
    if abs(fs_in - fs_out) < 1e-6:
        return np.asarray(x, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    nan = np.isnan(x)
    filled = np.where(nan, 0.0, x)
    fs_in_int = round(fs_in)
    if abs(fs_in - fs_in_int) < 1e-6:
        g = gcd(fs_in_int, fs_out)
        up, down = fs_out // g, fs_in_int // g
    else:  # odd rates such as 257.1 Hz: approximate with a 1/1000 ratio
        up, down = round(fs_out * 1000), round(fs_in * 1000)
        g = gcd(up, down)
        up, down = up // g, down // g
    out = sps.resample_poly(filled, up, down, axis=0)
    if nan.any():
        idx = np.minimum((np.arange(out.shape[0]) * fs_in / fs_out).astype(int), x.shape[0] - 1)
        out[nan[idx]] = np.nan
    return out


@lru_cache(maxsize=16)
def _bandpass_sos(fs: int, low: float, high: float) -> np.ndarray:
    return sps.butter(2, [low, high], btype="bandpass", fs=fs, output="sos")


def bandpass(x: np.ndarray, fs: int, low: float = 0.5, high: float = 40.0) -> np.ndarray:
    """Zero-phase 0.5-40 Hz band-pass (baseline wander and mains/EMG noise out, onsets kept in place).

    NaN samples are zero while filtering and NaN again afterwards.
    """
    x = np.asarray(x, dtype=np.float64)
    nan = np.isnan(x)
    filled = np.where(nan, 0.0, x)
    if filled.shape[0] < 64:
        return filled
    out = sps.sosfiltfilt(_bandpass_sos(int(fs), low, high), filled, axis=0)
    out[nan] = np.nan
    return out


def standard_lead_matrix(
    signal: np.ndarray, lead_names: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(n, 12) matrix in STANDARD_LEADS order (absent leads all-NaN) and a bool 'present' mask."""
    n = signal.shape[0]
    out = np.full((n, len(STANDARD_LEADS)), np.nan)
    present = np.zeros(len(STANDARD_LEADS), dtype=bool)
    for j, name in enumerate(lead_names):
        if name in STANDARD_LEADS:
            k = STANDARD_LEADS.index(name)
            out[:, k] = signal[:, j]
            present[k] = bool(np.isfinite(signal[:, j]).any())
    return out, present


def delineation_input(filtered_500: np.ndarray) -> np.ndarray:
    """(n, 12) band-passed mV at 500 Hz -> (12, n) float32 model input.

    One scale for the whole record keeps the relative lead amplitudes; absent samples are 0.
    """
    x = np.nan_to_num(filtered_500, nan=0.0)
    amp = [np.percentile(np.abs(col), 99) for col in x.T if np.any(col != 0)]
    scale = float(np.median(amp)) if amp else 1.0
    scale = max(scale, 0.05)
    return np.clip(x / scale, -10, 10).T.astype(np.float32)


def rhythm_input(filtered_250: np.ndarray) -> np.ndarray:
    """One band-passed lead at 250 Hz -> standardised float32 (the rhythm CNN's scale)."""
    x = np.nan_to_num(np.asarray(filtered_250, dtype=np.float64), nan=0.0)
    x = x - x.mean()
    return np.clip(x / (x.std() + 1e-3), -20, 20).astype(np.float32)
