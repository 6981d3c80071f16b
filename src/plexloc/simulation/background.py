"""Background: a level per frame, optionally modulated by a smooth spatial field per sequence."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as nnf
from torch import Tensor

from plexloc.config.models import BackgroundConfig


def smooth_field(
    n: int,
    frame_shape: tuple[int, int],
    *,
    scale_px: float | tuple[float, float],
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """(n, H, W) smooth random fields in [-1, 1]: a coarse random grid (one node every ``scale_px``, or
    ``(along y, along x)`` for pixels that are not square) upsampled bicubically, then scaled so each field's
    largest magnitude is 1."""
    H, W = frame_shape
    sy, sx = (scale_px, scale_px) if isinstance(scale_px, (int, float)) else scale_px
    gh = max(2, math.ceil(H / sy) + 1)
    gw = max(2, math.ceil(W / sx) + 1)
    coarse = 2 * torch.rand(n, 1, gh, gw, generator=generator, device=device, dtype=dtype) - 1
    field = nnf.interpolate(coarse, size=(H, W), mode="bicubic", align_corners=True)[:, 0]
    field = field - field.mean(dim=(1, 2), keepdim=True)
    return field / field.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)


def _scale_px(scale_nm: float, px_size_nm: float | tuple[float, float]) -> tuple[float, float]:
    """The field's correlation length in pixels along (y, x); ``px_size_nm`` is one size or ``(x, y)``."""
    px_x, px_y = (px_size_nm, px_size_nm) if isinstance(px_size_nm, (int, float)) else px_size_nm
    return scale_nm / px_y, scale_nm / px_x


def sample_background_parts(
    config: BackgroundConfig,
    *,
    n_sequences: int,
    n_frames: int,
    frame_shape: tuple[int, int],
    px_size_nm: float | tuple[float, float],
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor | None]:
    """The random numbers of :func:`sample_background`, drawn as it draws them: the level of every frame
    ``(n_sequences * n_frames,)`` and each sequence's relative field ``1 + variation * f`` ``(n_sequences, H, W)``
    (None without ``variation``). :func:`background_frames` makes any run of frames of them, so that a long movie
    never holds its whole background (10,000 frames of 256 x 256 px: 2.6 GB of float32 per channel)."""
    lo, hi = config.range
    n = n_sequences * n_frames
    level = lo + (hi - lo) * torch.rand(n, generator=generator, device=device, dtype=dtype)
    if config.variation <= 0:
        return level, None
    field = smooth_field(
        n_sequences, frame_shape, scale_px=_scale_px(config.variation_scale_nm, px_size_nm),
        generator=generator, device=device, dtype=dtype,
    )
    return level, 1 + config.variation * field


def background_frames(level: Tensor, field: Tensor | None, *, frame_shape: tuple[int, int], n_frames: int,
                      start: int = 0, stop: int | None = None) -> Tensor:
    """Frames ``[start, stop)`` (of all sequences, ``sequence * n_frames + frame``) of the background whose parts
    :func:`sample_background_parts` drew, ``(stop - start, H, W)``: the same numbers as those frames of
    :func:`sample_background`."""
    stop = int(level.shape[0]) if stop is None else stop
    bg = level[start:stop, None, None].expand(stop - start, *frame_shape)
    if field is not None:
        seq = torch.arange(start, stop, device=level.device) // max(int(n_frames), 1)
        bg = bg * field[seq]
    return bg.contiguous()


def sample_background(
    config: BackgroundConfig,
    *,
    n_sequences: int,
    n_frames: int,
    frame_shape: tuple[int, int],
    px_size_nm: float | tuple[float, float],
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Expected background photons per pixel, ``(n_sequences * n_frames, H, W)``.

    The level is uniform in ``config.range`` per frame; with ``variation > 0`` each sequence gets one
    smooth field ``1 + variation * f`` (illumination profile) that multiplies all of its frames.
    """
    level, field = sample_background_parts(config, n_sequences=n_sequences, n_frames=n_frames, frame_shape=frame_shape,
                                           px_size_nm=px_size_nm, generator=generator, device=device, dtype=dtype)
    return background_frames(level, field, frame_shape=frame_shape, n_frames=n_frames)
