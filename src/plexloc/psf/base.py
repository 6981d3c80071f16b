"""The PSF interface shared by every model.

A PSF turns a batch of emitters (positions in nm in the channel's own image coordinates, photons)
into pixel-integrated expected photons. It works in two steps:

- :meth:`PSF.patches` renders one small patch per emitter, placed on the frame's pixel grid at
  ``(row0, col0)``; it is differentiable with respect to x, y, z and photons (the patch position is
  piecewise constant), which is what the CRLB and the MLE fitter need;
- :meth:`PSF.render` adds all patches into frames (one scatter-add, batched on any device).

Coordinates follow conventions.md: the centre of pixel (row i, column j) is at
``x = (j + 0.5) * px_x``, ``y = (i + 0.5) * px_y``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PSF(nn.Module):
    """Base class of the PSF models.

    Args:
        px_size_nm: pixel size (x, y) in nm.
        roi_px: patch shape (rows, cols) rendered per emitter.
    """

    kind: str = "psf"
    #: whether the model depends on z (3D) or ignores it (2D)
    is_3d: bool = True

    def __init__(self, *, px_size_nm: tuple[float, float], roi_px: tuple[int, int]):
        super().__init__()
        self.px_size_nm = (float(px_size_nm[0]), float(px_size_nm[1]))
        self.roi_px = (int(roi_px[0]), int(roi_px[1]))

    @property
    def z_range_nm(self) -> tuple[float, float]:
        """z range in which the model is defined (infinite for analytic models)."""
        return (-float("inf"), float("inf"))

    def patches(self, x_nm: Tensor, y_nm: Tensor, z_nm: Tensor, photons: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Expected photons of each emitter on a patch of the pixel grid.

        Args:
            x_nm, y_nm, z_nm, photons: 1-D tensors of N emitters.

        Returns:
            ``(patch, row0, col0)``: patch ``(N, rows, cols)`` float; row0/col0 ``(N,)`` int64, the frame
            pixel index of each patch's top-left pixel.
        """
        raise NotImplementedError  # pragma: no cover

    def patch_groups(
        self, x_nm: Tensor, y_nm: Tensor, z_nm: Tensor, photons: Tensor
    ) -> list[tuple[Tensor | None, Tensor, Tensor, Tensor]]:
        """The emitters' patches in groups of one patch shape: ``(index, patch, row0, col0)`` per group, where
        ``index`` selects the group's emitters (``None``: all of them, in order). One group of :attr:`roi_px` here;
        models whose PSF width varies per emitter may render narrow ones on smaller patches."""
        return [(None, *self.patches(x_nm, y_nm, z_nm, photons))]

    def render(
        self,
        x_nm: Tensor,
        y_nm: Tensor,
        z_nm: Tensor,
        photons: Tensor,
        frame_ix: Tensor,
        *,
        n_frames: int,
        frame_shape: tuple[int, int],
        frame_slots: Tensor | None = None,
    ) -> Tensor:
        """Frames ``(n_frames, H, W)`` of expected photons (no background, no noise).

        ``frame_ix`` (N,) int says which frame each emitter lands in; emitters whose patch misses the
        frame contribute nothing. Differentiable with respect to positions and photons. ``frame_slots``:
        :func:`plexloc.psf.functional.frame_slots` of ``frame_ix`` where :meth:`uses_frame_slots` (several
        channels' renders of the same emitters share it); ignored by this patch-wise render.
        """
        H, W = int(frame_shape[0]), int(frame_shape[1])
        dtype = photons.dtype if photons.is_floating_point() else torch.float32
        device = photons.device
        n_pix = n_frames * H * W
        # one extra "sink" element collects everything that falls outside the frame
        canvas = torch.zeros(n_pix + 1, dtype=dtype, device=device)
        if not x_nm.numel():
            return canvas[:n_pix].reshape(n_frames, H, W)
        for index, patch, row0, col0 in self.patch_groups(x_nm, y_nm, z_nm, photons):
            h, w = patch.shape[-2:]
            rows = row0[:, None] + torch.arange(h, device=device)[None, :]  # (N, h)
            cols = col0[:, None] + torch.arange(w, device=device)[None, :]  # (N, w)
            fr = (frame_ix if index is None else frame_ix[index]).to(torch.int64)
            ok_rows = (rows >= 0) & (rows < H) & ((fr >= 0) & (fr < n_frames))[:, None]
            inside = ok_rows[:, :, None] & ((cols >= 0) & (cols < W))[:, None, :]
            # the (N, h, w) index is the largest tensor of a render (a 100,000-frame movie on a GPU holds
            # millions of patches): int32 where the canvas allows, built from in-range (clamped) rows and
            # columns, the rest sent to the sink in place
            idx = torch.int32 if n_pix < 2**31 - 1 else torch.int64
            base = (fr.clamp(0, max(n_frames - 1, 0)) * H)[:, None] + rows.clamp(0, max(H - 1, 0))
            flat = (base.to(idx) * W)[:, :, None] + cols.clamp(0, max(W - 1, 0)).to(idx)[:, None, :]
            flat.masked_fill_(~inside, n_pix)
            canvas = canvas.index_add(0, flat.reshape(-1), patch.reshape(-1).to(dtype))
        return canvas[:n_pix].reshape(n_frames, H, W)

    def uses_frame_slots(self, frame_shape: tuple[int, int]) -> bool:
        """Whether :meth:`render` of frames of this shape lays the emitters out per frame (``frame_slots``)."""
        return False

    def extra_repr(self) -> str:
        return f"px_size_nm={self.px_size_nm}, roi_px={self.roi_px}"
