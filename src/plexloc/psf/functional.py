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


def frame_slots(frame_ix: Tensor, n_frames: int) -> Tensor:
    """(n_frames, K) index of the emitters of every frame, K the most emitters in one frame; ``N`` (one past the
    last emitter) fills the unused slots, and emitters with a frame outside ``[0, n_frames)`` are left out.

    Emitters keep their order within a frame. One host-device synchronisation (K)."""
    n = frame_ix.shape[0]
    dev = frame_ix.device
    fr = frame_ix.to(torch.int64)
    fr = torch.where((fr >= 0) & (fr < n_frames), fr, n_frames)  # the frames outside go to a dropped extra row
    counts = torch.zeros(n_frames + 1, dtype=torch.int64, device=dev).index_add_(0, fr, torch.ones_like(fr))
    k = int(counts[:n_frames].max()) if n_frames else 0
    order = torch.argsort(fr, stable=True)
    fr_sorted = fr[order]
    rank = torch.arange(n, device=dev) - (torch.cumsum(counts, 0) - counts)[fr_sorted]  # place within the frame
    # the left-out emitters all write to one extra element past the table, which is cut off
    pos = torch.where(fr_sorted < n_frames, fr_sorted * k + rank, n_frames * k)
    slots = torch.full((n_frames * k + 1,), n, dtype=torch.int64, device=dev)
    slots[pos] = order
    return slots[: n_frames * k].reshape(n_frames, k)


def windowed_gaussian_profile(
    pos_px: Tensor, sigma_px: Tensor, start: Tensor, size: Tensor, n: int, *, weight: Tensor | None = None
) -> Tensor:
    """The 1D factor of :func:`gaussian_patches` (``integrated_gaussian_1d`` on a patch of ``size`` pixels from
    pixel ``start``) laid out over a frame's ``n`` pixels, zero outside the patch, times ``weight``.

    Args:
        pos_px: (...) emitter positions (pixel centres at ``j + 0.5``).
        sigma_px: (...) Gaussian standard deviations in pixels.
        start: (...) first pixel of each patch (integer-valued, any dtype).
        size: (...) patch length in pixels.
        n: frame length in pixels.
        weight: (...) factor of each profile (e.g. photons); default 1.

    Returns:
        (..., n): ``0.5 * weight * (erf(b_{j+1}) - erf(b_j))``, ``b_j`` the pixel edge ``j`` relative to the emitter
        in units of ``sqrt(2) sigma``, clamped to the patch's edges ``[start, start + size]``: outside the patch both
        edges of a pixel clamp to the same border and the pixel gets exactly 0, inside it gets the patch's value (to
        rounding).
    """
    dtype = pos_px.dtype
    lo = (start.to(dtype) - pos_px)[..., None]
    edges = torch.arange(n + 1, device=pos_px.device, dtype=dtype) - pos_px[..., None]
    edges = torch.minimum(torch.maximum(edges, lo), lo + size.to(dtype)[..., None])  # (torch.clamp: slower on a CPU)
    e = torch.erf(edges.mul_((1.0 / (_SQRT2 * sigma_px))[..., None]))
    out = e[..., 1:] - e[..., :-1]
    return out.mul_(0.5 if weight is None else (0.5 * weight)[..., None])
