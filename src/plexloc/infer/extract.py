"""From per-pixel outputs to localizations.

An emitter near a pixel border often spreads its detection probability over two or more pixels. The
probability is therefore integrated over each local maximum's 3x3 neighbourhood; a localization is
kept where that integral reaches the threshold. Ties between equal neighbouring maxima are broken by a
tiny position-dependent bias, so one emitter split evenly over two pixels still gives one localization.

Position: every pixel of the neighbourhood that carries probability predicts an absolute position of
the emitter (its centre plus its offsets). The localization's x, y, z and their sigmas are the
probability-weighted mean over the pixels whose prediction lies within ``merge_radius_px`` of the
maximum pixel's own (so that a neighbouring emitter's pixels do not pull it; a pixel's weight tapers
linearly over ``MERGE_TAPER_PX`` either side of the radius, so that float rounding cannot make a position
jump). Taking the maximum pixel's offsets alone gridded the output: near a pixel border the maximum
pixel's offset is drawn towards its own centre, and positions piled up at pixel centres (bench/RESULTS.md,
"gridding").
The sigmas add, in quadrature, the spread of the neighbourhood's predictions about the reported position (each
pixel with probability, predicting within ``SPREAD_RADIUS_PX``, weighted by its probability): the variance of the
pixels' mixture, which the network's per-pixel sigma leaves out. Where two emitters overlap and are placed as one,
the neighbouring pixels point at both, and a clean single spot's sigma came out 2-3x too small for them. On
CPU-trained models (bench/RESULTS.md, session 34) the x z-score spread at 1 / 2 emitters/um^2 fell from 1.61 / 1.98
to 1.27 / 1.38 (2D) and 1.76 / 2.11 to 1.47 / 1.74 (3D), at 0.1/um^2 1.07 -> 1.06 and 1.09 -> 1.07; positions unchanged.
Photons come from the maximum pixel. Background: the median of the predicted background map over the
``BG_WINDOW_PX`` square around the maximum. The map is right between emitters but pulled by the emitter's own
photons under it (a network trained for minutes put 31-49 photons/px under spots on a 67-photon background),
and a median over the 7x7 window is decided by the pixels around the spot.
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
    # a local maximum of the 3x3 neighbourhood; of equal neighbours the later one in raster order (an exact
    # comparison: a bias added to the values vanished in float32 rounding, and an emitter split evenly over two
    # pixels gave two localizations). The order is the frame's, so every tile decides a tie the same way.
    padded = F.pad(p, (1, 1, 1, 1), value=-1.0)
    is_max = p > 0
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr or dc:
                q = padded[..., 1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]
                is_max &= (p > q) if (dr > 0 or (dr == 0 and dc > 0)) else (p >= q)
    integrated = F.avg_pool2d(p, 3, stride=1, padding=1, count_include_pad=True) * 9.0
    keep = is_max & (integrated >= threshold)
    return keep[:, 0], integrated[:, 0]


MERGE_RADIUS_PX = 0.5
#: half width (px) of the linear taper of a neighbour pixel's weight around ``MERGE_RADIUS_PX``
MERGE_TAPER_PX = 0.05
#: the neighbourhood spread added to the sigma counts the pixels predicting within this distance (px) of the
#: localization (None or 0: no spread, the pixels' own sigmas alone)
SPREAD_RADIUS_PX: float | None = 1.5
BG_WINDOW_PX = 7


def _local_background(bg: Tensor, b_ix: Tensor, row: Tensor, col: Tensor, window: int) -> Tensor:
    """(N, C) median of each channel's background map over the ``window`` square around each pixel (clipped
    to the map: the median of the pixels that exist)."""
    h, w = bg.shape[-2:]
    half = window // 2
    d = torch.arange(-half, half + 1, device=row.device)
    r = row[:, None, None] + d[None, :, None]  # (N, k, 1)
    c = col[:, None, None] + d[None, None, :]  # (N, 1, k)
    n, k2 = len(row), window * window
    inside = ((r >= 0) & (r < h) & (c >= 0) & (c < w)).reshape(n, k2)
    r = r.clamp(0, h - 1).expand(-1, -1, window).reshape(n, k2)
    c = c.clamp(0, w - 1).expand(-1, window, -1).reshape(n, k2)
    vals = bg[b_ix[:, None], :, r, c].float()  # (N, k*k, C)
    vals = torch.where(inside[..., None], vals, torch.full_like(vals, float("nan")))
    return vals.nanmedian(dim=1).values


def _neighbourhood_mean(
    pred: Prediction, b_ix: Tensor, row: Tensor, col: Tensor, *, merge_radius_px: float, min_pixel_prob: float,
    spread_radius_px: float | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Probability-weighted x, y (pixels, map coordinates), z (nm) and sigma (x, y, z) of each maximum's
    3x3 neighbourhood, over the pixels that predict a position within ``merge_radius_px`` of the maximum's."""
    h, w = pred.prob.shape[-2:]
    own_x = col.float() + 0.5 + pred.offset[b_ix, 0, row, col].float()
    own_y = row.float() + 0.5 + pred.offset[b_ix, 1, row, col].float()
    n = b_ix.numel()
    zeros = lambda *s: torch.zeros(*s, device=b_ix.device, dtype=torch.float32)  # noqa: E731
    den, sx, sy, sz, ssig = zeros(n), zeros(n), zeros(n), zeros(n), zeros(n, 3)
    pixels = []  # (p, x, y, z) of every pixel of the neighbourhood, for the spread below
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            r, c = row + dr, col + dc
            inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
            r, c = r.clamp(0, h - 1), c.clamp(0, w - 1)
            p = pred.prob[b_ix, 0, r, c].float()
            off = pred.offset[b_ix, :, r, c].float()
            x, y = c.float() + 0.5 + off[:, 0], r.float() + 0.5 + off[:, 1]
            # a pixel's weight falls linearly from full to none over MERGE_TAPER_PX either side of the radius: a
            # hard cut moved a localization by up to 21 nm when float rounding put a pixel's prediction on the radius
            valid = torch.where(inside & (p >= min_pixel_prob), p, torch.zeros_like(p))
            if dr == 0 and dc == 0:  # the maximum itself always counts
                wgt = p.clamp(min=1e-12)
            elif merge_radius_px > 0:
                dist = torch.sqrt((x - own_x) ** 2 + (y - own_y) ** 2)
                wgt = valid * ((merge_radius_px + MERGE_TAPER_PX - dist) / (2 * MERGE_TAPER_PX)).clamp(0.0, 1.0)
            else:
                wgt = torch.zeros_like(p)
            den += wgt
            sx += wgt * x
            sy += wgt * y
            sz += wgt * off[:, 2]
            ssig += wgt[:, None] * pred.sigma[b_ix, :3, r, c].float()
            pixels.append((wgt if dr == 0 and dc == 0 else valid, x, y, off[:, 2]))
    mx, my, mz, sig = sx / den, sy / den, sz / den, ssig / den[:, None]
    if spread_radius_px is not None and spread_radius_px > 0:
        # the neighbourhood's pixels that predict this emitter disagree where two overlap: their probability-weighted
        # variance about the reported position is added to the sigma (law of total variance over the pixels' mixture)
        vden, v = zeros(n), zeros(n, 3)
        for pw, x, y, z in pixels:
            d = torch.stack([x - mx, y - my, z - mz], dim=1)
            pw = torch.where((d[:, 0] ** 2 + d[:, 1] ** 2) <= spread_radius_px**2, pw, torch.zeros_like(pw))
            vden += pw
            v += pw[:, None] * d**2
        sig = torch.sqrt(sig**2 + v / vden.clamp_min(1e-12)[:, None])
    return mx, my, mz, sig


def extract(
    pred: Prediction,
    spec: LocalizerSpec,
    *,
    threshold: float = 0.5,
    origin_px: tuple[int, int] = (0, 0),
    merge_radius_px: float | None = None,
    spread_radius_px: float | None = None,
) -> Extracted:
    """Localizations from a batch of predictions. ``origin_px`` (row, col) of the maps' corner in the frame.

    ``merge_radius_px``: see the module docstring (default :data:`MERGE_RADIUS_PX`; 0 takes the maximum
    pixel's own position and sigmas). ``spread_radius_px``: the neighbourhood spread added to the sigmas counts
    the pixels that predict within it (default :data:`SPREAD_RADIUS_PX`; 0: no spread, the pixels' sigmas alone)."""
    keep, integrated = candidates(pred.prob, threshold=threshold)
    b_ix, row, col = torch.nonzero(keep, as_tuple=True)
    px_x, px_y = spec.px_size_nm
    radius = MERGE_RADIUS_PX if merge_radius_px is None else float(merge_radius_px)
    x, y, z, sig_pos = _neighbourhood_mean(pred, b_ix, row, col, merge_radius_px=radius, min_pixel_prob=0.05,
                                           spread_radius_px=SPREAD_RADIUS_PX if spread_radius_px is None
                                           else float(spread_radius_px))
    sig = pred.sigma[b_ix, :, row, col].clone()
    sig[:, :3] = sig_pos.to(sig.dtype)
    sig[:, 0] *= px_x
    sig[:, 1] *= px_y
    return Extracted(
        sample=b_ix,
        pixel_row=row + origin_px[0],
        pixel_col=col + origin_px[1],
        x_nm=(x + origin_px[1]) * px_x,
        y_nm=(y + origin_px[0]) * px_y,
        z_nm=z,
        photons=pred.photons[b_ix, :, row, col],
        prob=integrated[b_ix, row, col].clamp(max=1.0),
        sigma=sig,
        bg=_local_background(pred.bg, b_ix, row, col, BG_WINDOW_PX),
    )
