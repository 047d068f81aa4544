"""Small measurement helpers shared by tests."""
from __future__ import annotations

import numpy as np


def content_shift(before: np.ndarray, after: np.ndarray) -> tuple[int, int]:
    """(dx, dy) that moves `before`'s content onto `after`'s (grey 2-D frames), by windowed phase
    correlation.

    The cross-power spectrum is only half-whitened (divided by sqrt of its magnitude): full
    whitening would let the sensor noise, strong where the smooth texture is weak, pick the peak.
    """
    h, w = before.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    a = np.fft.fft2((before - before.mean()) * window)
    b = np.fft.fft2((after - after.mean()) * window)
    cross = b * np.conj(a)
    surface = np.fft.ifft2(cross / (np.sqrt(np.abs(cross)) + 1e-9)).real
    dy, dx = np.unravel_index(np.argmax(surface), surface.shape)
    return (int(dx - w if dx > w // 2 else dx), int(dy - h if dy > h // 2 else dy))
