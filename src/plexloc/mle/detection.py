"""Spot detection in the photon domain, and the simplest localizer built on it.

``detect`` finds candidate emitters: difference-of-Gaussians filtering, local maxima, and a threshold
in photons. ``localize_centroid`` turns the candidates into a localization table with a
background-subtracted centre of mass: a baseline (and the demo's trivial localizer), not a fitter;
the maximum-likelihood fitter builds on ``detect``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor

from plexloc.table import LocTable


def _gauss_kernel(sigma_px: float, device, dtype) -> Tensor:
    half = max(1, math.ceil(3 * sigma_px))
    x = torch.arange(-half, half + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (x / sigma_px) ** 2)
    return k / k.sum()


def _blur(img: Tensor, sigma_px: float) -> Tensor:
    k = _gauss_kernel(sigma_px, img.device, img.dtype)
    n = k.numel()
    x = nnf.conv2d(nnf.pad(img[:, None], (n // 2, n // 2, 0, 0), mode="replicate"), k.view(1, 1, 1, n))
    x = nnf.conv2d(nnf.pad(x, (0, 0, n // 2, n // 2), mode="replicate"), k.view(1, 1, n, 1))
    return x[:, 0]


@dataclass
class Candidates:
    """Detected spots: frame, row, col (int arrays) and the filtered peak height in photons."""

    frame: np.ndarray
    row: np.ndarray
    col: np.ndarray
    height: np.ndarray

    def __len__(self) -> int:
        return len(self.frame)


def dog_filter(frames_photons: Tensor, *, sigma_px: float = 1.0) -> Tensor:
    """Difference of Gaussians (``sigma_px`` minus ``2.5 sigma_px``) of (T, H, W) frames in photons: spots
    become peaks whose height is in photons per pixel above the local background."""
    x = frames_photons.to(torch.float32)
    return _blur(x, sigma_px) - _blur(x, 2.5 * sigma_px)


def noise_threshold(filtered: Tensor, *, snr: float = 5.0) -> Tensor:
    """Per-frame threshold ``snr`` times the robust standard deviation (1.4826 MAD) of a filtered
    frame stack (T, H, W); returns (T,)."""
    flat = filtered.reshape(filtered.shape[0], -1)
    med = flat.median(dim=1, keepdim=True).values
    mad = (flat - med).abs().median(dim=1).values
    return snr * 1.4826 * mad


def local_maxima(
    filtered: Tensor, threshold: Tensor | float, *, min_distance_px: int = 2, border_px: int = 0
) -> Candidates:
    """Local maxima of (T, H, W) filtered frames above ``threshold`` (a scalar or one value per frame)."""
    size = 2 * min_distance_px + 1
    peak = nnf.max_pool2d(filtered[:, None], size, stride=1, padding=min_distance_px)[:, 0]
    thr = torch.as_tensor(threshold, dtype=filtered.dtype, device=filtered.device)
    thr = thr[:, None, None] if thr.ndim == 1 else thr
    is_max = (filtered == peak) & (filtered > thr)
    if border_px > 0:
        is_max[:, :border_px] = False
        is_max[:, -border_px:] = False
        is_max[:, :, :border_px] = False
        is_max[:, :, -border_px:] = False
    f, r, c = torch.nonzero(is_max, as_tuple=True)
    return Candidates(f.cpu().numpy(), r.cpu().numpy(), c.cpu().numpy(), filtered[f, r, c].cpu().numpy())


def detect(
    frames_photons: Tensor,
    *,
    threshold_photons: float = 20.0,
    sigma_px: float = 1.0,
    min_distance_px: int = 2,
    border_px: int = 0,
) -> Candidates:
    """Local maxima of the difference-of-Gaussians-filtered frames above a threshold.

    Args:
        frames_photons: (T, H, W) frames in photons (after the camera's ``to_photons``).
        threshold_photons: minimum height of a peak of the filtered image (photons per pixel above the
            local background; a 1000-photon emitter with a 1.3 px PSF gives ~40).
        sigma_px: width of the smoothing Gaussian (about the PSF's sigma).
        min_distance_px: maxima closer than this to a higher one are suppressed.
        border_px: ignore maxima this close to the frame edge.
    """
    dog = dog_filter(frames_photons, sigma_px=sigma_px)
    return local_maxima(dog, threshold_photons, min_distance_px=min_distance_px, border_px=border_px)


def localize_centroid(
    frames_photons: Tensor,
    *,
    px_size_nm: tuple[float, float],
    threshold_photons: float = 20.0,
    sigma_px: float = 1.0,
    roi_px: int = 5,
    frame_offset: int = 0,
) -> LocTable:
    """Detect spots and localize each by the background-subtracted centre of mass of a ``roi_px`` box.

    The background is each frame's median. Returns a table with ``frame, x_nm, y_nm, z_nm (0), photons,
    bg``; ``frame_offset`` is added to the frame numbers (for chunked movies).
    """
    x = frames_photons.to(torch.float32)
    t, h, w = x.shape
    half = roi_px // 2
    cand = detect(x, threshold_photons=threshold_photons, sigma_px=sigma_px, border_px=0)
    if len(cand) == 0:
        return LocTable.empty(["bg"])
    bg = x.reshape(t, -1).median(dim=1).values
    padded = nnf.pad(x[:, None], (half, half, half, half), mode="replicate")[:, 0]
    f = torch.as_tensor(cand.frame, device=x.device)
    r = torch.as_tensor(cand.row, device=x.device)
    c = torch.as_tensor(cand.col, device=x.device)
    off = torch.arange(roi_px, device=x.device)
    rows = r[:, None, None] + off[None, :, None]
    cols = c[:, None, None] + off[None, None, :]
    roi = padded[f[:, None, None], rows, cols] - bg[f][:, None, None]
    weight = roi.clamp_min(0)
    total = weight.sum(dim=(1, 2)).clamp_min(1e-6)
    dy = (weight * (off - half)[None, :, None]).sum(dim=(1, 2)) / total
    dx = (weight * (off - half)[None, None, :]).sum(dim=(1, 2)) / total
    return LocTable(
        {
            "frame": cand.frame + frame_offset,
            "x_nm": ((c + 0.5 + dx) * px_size_nm[0]).cpu().double().numpy(),
            "y_nm": ((r + 0.5 + dy) * px_size_nm[1]).cpu().double().numpy(),
            "z_nm": np.zeros(len(cand)),
            "photons": roi.sum(dim=(1, 2)).cpu().double().numpy(),
            "bg": bg[f].cpu().double().numpy(),
        }
    )
