"""From per-pixel outputs to localizations.

An emitter near a pixel border often spreads its detection probability over two or more pixels. The
probability is therefore integrated over each local maximum's 3x3 neighbourhood; a localization is
kept where that integral reaches the threshold, at the maximum's pixel, with that pixel's predicted
offsets, photons, uncertainties and background. Ties between equal neighbouring maxima are broken by
a tiny position-dependent bias, so one emitter split evenly over two pixels still gives one
localization.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from plexloc.nets.localizer import LocalizerSpec, Prediction


@dataclass
class Extracted:
    """Localizations of a batch of frames (all 1-D tensors on the prediction's device, length N).

    ``sample``: index of the frame in the batch; ``pixel_row, pixel_col``: the frame pixel of the
    probability maximum; ``x_nm, y_nm, z_nm``; ``photons`` (N, n_photons);
    ``prob`` (integrated, <= 1); ``sigma`` (N, 3 + n_photons: x, y, z in nm, photons); ``bg`` (N, n_channels).
    """

    sample: Tensor
    pixel_row: Tensor
    pixel_col: Tensor
    x_nm: Tensor
    y_nm: Tensor
    z_nm: Tensor
    photons: Tensor
    prob: Tensor
    sigma: Tensor
    bg: Tensor

    def __len__(self) -> int:
        return int(self.sample.numel())


def candidates(prob: Tensor, *, threshold: float = 0.5, min_pixel_prob: float = 0.05) -> tuple[Tensor, Tensor]:
    """Boolean map (B, H, W) of extracted pixels and the integrated probability map (B, H, W).

    ``prob`` is (B, 1, H, W) or (B, H, W).
    """
    p = prob.reshape(-1, 1, *prob.shape[-2:]).float()
    p = torch.where(p >= min_pixel_prob, p, torch.zeros_like(p))
    h, w = p.shape[-2:]
    # tie-break: a strictly increasing bias of at most 1e-6 in raster order
    bias = torch.arange(h * w, device=p.device, dtype=torch.float32).view(1, 1, h, w) * (1e-6 / max(h * w, 1))
    pb = p + bias * (p > 0)
    is_max = (pb == F.max_pool2d(pb, 3, stride=1, padding=1)) & (p > 0)
    integrated = F.avg_pool2d(p, 3, stride=1, padding=1, count_include_pad=True) * 9.0
    keep = is_max & (integrated >= threshold)
    return keep[:, 0], integrated[:, 0]


def extract(
    pred: Prediction,
    spec: LocalizerSpec,
    *,
    threshold: float = 0.5,
    origin_px: tuple[int, int] = (0, 0),
) -> Extracted:
    """Localizations from a batch of predictions. ``origin_px`` (row, col) of the maps' corner in the frame."""
    keep, integrated = candidates(pred.prob, threshold=threshold)
    b_ix, row, col = torch.nonzero(keep, as_tuple=True)
    px_x, px_y = spec.px_size_nm
    off = pred.offset[b_ix, :, row, col]
    sig = pred.sigma[b_ix, :, row, col].clone()
    sig[:, 0] *= px_x
    sig[:, 1] *= px_y
    return Extracted(
        sample=b_ix,
        pixel_row=row + origin_px[0],
        pixel_col=col + origin_px[1],
        x_nm=(col.float() + origin_px[1] + 0.5 + off[:, 0]) * px_x,
        y_nm=(row.float() + origin_px[0] + 0.5 + off[:, 1]) * px_y,
        z_nm=off[:, 2],
        photons=pred.photons[b_ix, :, row, col],
        prob=integrated[b_ix, row, col].clamp(max=1.0),
        sigma=sig,
        bg=pred.bg[b_ix, :, row, col],
    )
