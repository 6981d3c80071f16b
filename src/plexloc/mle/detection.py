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
    """Separable Gaussian blur of (T, H, W) with replicated borders, truncated at 3 sigma. On the CPU
    scipy's filter does it (several times faster than a one-channel torch convolution there)."""
    if img.device.type == "cpu":
        from scipy.ndimage import gaussian_filter1d

        half = max(1, math.ceil(3 * sigma_px))
        x = img.detach().numpy()
        for axis in (2, 1):
            x = gaussian_filter1d(x, sigma_px, axis=axis, mode="nearest", radius=half)
        return torch.from_numpy(np.ascontiguousarray(x))
    return _blur_torch(img, sigma_px)


def _blur_torch(img: Tensor, sigma_px: float) -> Tensor:
    """:func:`_blur` with torch convolutions (any device), computed as scipy's filter does: each axis in
    float64, rounded to the input's dtype in between. float64 also keeps the convolutions off TF32, which
    cuDNN uses for float32 by default on recent GPUs (about 1e-3 relative error in the detection image)."""
    k = _gauss_kernel(sigma_px, img.device, torch.float64)
    n = k.numel()
    x = img[:, None].to(torch.float64)
    x = nnf.conv2d(nnf.pad(x, (n // 2, n // 2, 0, 0), mode="replicate"), k.view(1, 1, 1, n)).to(img.dtype)
    x = nnf.conv2d(nnf.pad(x.to(torch.float64), (0, 0, n // 2, n // 2), mode="replicate"), k.view(1, 1, n, 1))
    return x[:, 0].to(img.dtype)


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


def _blur_matrix(n: int, sigma_px: float) -> np.ndarray:
    """The (n, n) matrix of :func:`_blur` along one axis of length ``n``: the truncated, normalised Gaussian with
    replicated borders (row i holds the weights of output pixel i)."""
    g = _gauss_kernel(sigma_px, "cpu", torch.float64).numpy()  # the kernel _blur uses
    half = len(g) // 2
    rows = np.repeat(np.arange(n), 2 * half + 1)
    cols = np.clip(rows + np.tile(np.arange(-half, half + 1), n), 0, n - 1)
    m = np.zeros((n, n))
    np.add.at(m, (rows, cols), np.tile(g, n))
    return m


_GAIN_MAPS: dict[tuple[int, int, float], np.ndarray] = {}


def dog_noise_gain_map(shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Variance of :func:`dog_filter`'s output at every pixel of an (H, W) frame per unit variance of white noise
    (float64, cached per shape and width). Inside the frame it is the squared DoG kernel's sum; near the edges the
    replicated border counts the edge pixels several times: the first row and column have 1.54 times the inner
    variance for a 1.3 px filter (1.24 times the noise sd: a threshold of 6 inner sd was 4.8 sd there, where most
    of a Gaussian camera's false spots were). From the separable blur matrices, ``G = A1y A1x + A2y A2x - 2 Cy Cx``
    with ``A = diag(B Bᵀ)`` per filter and ``C = diag(B1 B2ᵀ)``."""
    key = (int(shape[0]), int(shape[1]), round(float(sigma_px), 6))
    if key not in _GAIN_MAPS:
        if len(_GAIN_MAPS) > 64:
            _GAIN_MAPS.clear()
        parts = []
        for n in key[:2]:
            b1, b2 = _blur_matrix(n, sigma_px), _blur_matrix(n, 2.5 * sigma_px)
            parts.append(((b1 * b1).sum(1), (b2 * b2).sum(1), (b1 * b2).sum(1)))
        (a1y, a2y, cy), (a1x, a2x, cx) = parts
        _GAIN_MAPS[key] = np.outer(a1y, a1x) + np.outer(a2y, a2x) - 2.0 * np.outer(cy, cx)
    return _GAIN_MAPS[key]


def local_maxima(
    filtered: Tensor, threshold: Tensor | float, *, min_distance_px: int = 2, border_px: int = 0
) -> Candidates:
    """Local maxima of (T, H, W) filtered frames above ``threshold`` (a scalar or one value per frame):
    pixels above the threshold that are the largest in their (2 min_distance_px + 1)² neighbourhood.

    The threshold goes first, so the neighbourhood test runs only on the few pixels above it.
    """
    thr = torch.as_tensor(threshold, dtype=filtered.dtype, device=filtered.device)
    thr = thr[:, None, None] if thr.ndim == 1 else thr
    above = filtered > thr
    if border_px > 0:
        above[:, :border_px] = False
        above[:, -border_px:] = False
        above[:, :, :border_px] = False
        above[:, :, -border_px:] = False
    f, r, c = torch.nonzero(above, as_tuple=True)
    d = int(min_distance_px)
    padded = nnf.pad(filtered, (d, d, d, d), value=float("-inf"))
    off = torch.arange(2 * d + 1, device=filtered.device)
    hood = padded[f[:, None, None], r[:, None, None] + off[None, :, None], c[:, None, None] + off[None, None, :]]
    value = filtered[f, r, c]
    keep = value >= hood.reshape(len(f), (2 * d + 1) ** 2).amax(dim=1)  # sizes spelled out: f may be empty
    f, r, c, value = f[keep], r[keep], c[keep], value[keep]
    return Candidates(f.cpu().numpy(), r.cpu().numpy(), c.cpu().numpy(), value.cpu().numpy())


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
    # outside the frame the box holds background only (zero after subtraction): a replicated edge pixel weighed as
    # signal put the centroids of spots at the edge outside the frame (x from -37 to 6441 nm on a 6400-nm frame)
    padded = nnf.pad((x - bg[:, None, None])[:, None], (half, half, half, half))[:, 0]
    f = torch.as_tensor(cand.frame, device=x.device)
    r = torch.as_tensor(cand.row, device=x.device)
    c = torch.as_tensor(cand.col, device=x.device)
    off = torch.arange(roi_px, device=x.device)
    rows = r[:, None, None] + off[None, :, None]
    cols = c[:, None, None] + off[None, None, :]
    roi = padded[f[:, None, None], rows, cols]
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
