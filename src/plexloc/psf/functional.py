"""Pure tensor kernels of the analytic PSF models."""

from __future__ import annotations

import math

import torch
from torch import Tensor

_SQRT2 = math.sqrt(2.0)


def integrated_gaussian_1d(offset_px: Tensor, sigma_px: Tensor, n: int) -> Tensor:
    """Fraction of a unit 1D Gaussian falling into each of ``n`` consecutive pixels.

    Args:
        offset_px: (N,) emitter position relative to the left edge of the first pixel, in pixels.
        sigma_px: (N,) Gaussian standard deviation in pixels.
        n: number of pixels.

    Returns:
        (N, n): ``0.5 * (erf((k + 1 - offset) / (sqrt(2) sigma)) - erf((k - offset) / (sqrt(2) sigma)))``.
    """
    edges = torch.arange(n + 1, device=offset_px.device, dtype=offset_px.dtype)
    e = torch.erf((edges[None, :] - offset_px[:, None]) / (_SQRT2 * sigma_px[:, None]))
    return 0.5 * (e[:, 1:] - e[:, :-1])


def astigmatic_sigma(z_nm: Tensor, s0_nm: float, c_nm: float, d_nm: float, a: float, b: float) -> Tensor:
    """Huang et al. (2008) defocus model ``s0 * sqrt(1 + u^2 + A u^3 + B u^4)``, ``u = (z - c) / d``.

    The radicand is clamped at a small positive value: polynomials with large negative A can dip
    below zero far outside the calibrated range.
    """
    u = (z_nm - c_nm) / d_nm
    return s0_nm * torch.sqrt((1.0 + u * u + a * u**3 + b * u**4).clamp_min(1e-6))


def gaussian_patches(
    x_px: Tensor, y_px: Tensor, sigma_x_px: Tensor, sigma_y_px: Tensor, photons: Tensor, roi: tuple[int, int]
) -> tuple[Tensor, Tensor, Tensor]:
    """Pixel-integrated separable Gaussian patches centred on each emitter's pixel.

    ``x_px, y_px`` are in pixel units with pixel centres at ``j + 0.5``. Returns ``(patch, row0, col0)``.
    """
    h, w = roi
    col0 = torch.floor(x_px.detach()).to(torch.int64) - w // 2
    row0 = torch.floor(y_px.detach()).to(torch.int64) - h // 2
    ex = integrated_gaussian_1d(x_px - col0.to(x_px.dtype), sigma_x_px, w)
    ey = integrated_gaussian_1d(y_px - row0.to(y_px.dtype), sigma_y_px, h)
    patch = photons[:, None, None] * ey[:, :, None] * ex[:, None, :]
    return patch, row0, col0
