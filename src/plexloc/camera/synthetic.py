"""Test light for camera calibration: a frame's expected photons under a Gaussian excitation beam, with sparse
single-frame spots (numpy; the simulator's PSFs are not needed to check a photon-transfer measurement).

Used by the camera-calibration tests and ``bench/diag/movie_gain.py``."""

from __future__ import annotations

import numpy as np


def beam(shape: tuple[int, int], waist: float | None) -> np.ndarray:
    """A Gaussian beam of mean 1 over a frame ``(H, W)``, centred, of sd ``waist`` x W (0.35: the corners at 13 % of
    the centre); None: uniform light."""
    h, w = shape
    if waist is None:
        return np.ones((h, w))
    yy, xx = np.mgrid[:h, :w] + 0.5
    b = np.exp(-((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / (2 * (waist * w) ** 2))
    return b / b.mean()


def spotted_light(rng: np.random.Generator, n: int, shape: tuple[int, int], *, bg: float = 80.0,
                  waist: float | None = None, density: float = 0.1, photons: tuple[float, float] = (1000.0, 5000.0),
                  sigma_px: float = 1.3, px_nm: float = 100.0) -> np.ndarray:
    """``(n, H, W)`` expected photons: ``bg`` photons/px times :func:`beam`, plus in each frame Poisson(``density``
    per µm² x area) Gaussian spots of ``photons`` (uniform) and sd ``sigma_px``, each on for that frame only. The
    draws, in order: the spot counts, then each frame's rows, columns and photons."""
    h, w = shape
    out = np.broadcast_to(bg * beam(shape, waist), (n, h, w)).copy()
    k = rng.poisson(density * h * w / (1000.0 / px_nm) ** 2, n)
    yy, xx = np.mgrid[:h, :w] + 0.5
    for t in range(n):
        for y, x, p in zip(rng.uniform(0, h, k[t]), rng.uniform(0, w, k[t]), rng.uniform(*photons, k[t])):
            out[t] += p / (2 * np.pi * sigma_px**2) * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma_px**2))
    return out
