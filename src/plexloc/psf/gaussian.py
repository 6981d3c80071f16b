"""Analytic PSFs: the 2D Gaussian and the 3D astigmatic Gaussian, both pixel-integrated (erf)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from plexloc.psf import functional as F
from plexloc.psf.base import PSF, _frame_shape, number_pair, patch_size


def _odd_roi(sigma_px: float, *, n_sigma: float = 4.0, cap: int = 41) -> int:
    half = max(2, math.ceil(n_sigma * sigma_px))
    return min(2 * half + 1, cap)


#: patch sizes that emitters of a PSF with a per-emitter width are rendered on (the smallest that holds +-4 sigma,
#: at most the PSF's own ``roi_px``): a few sizes, so that a render is a few batched groups
PATCH_LADDER: tuple[int, ...] = (5, 7, 9, 11, 15, 19, 25, 31, 41)


class GaussianPSF(PSF):
    """2D Gaussian PSF, pixel-integrated; ignores z. Integrates to ``photons`` over an infinite frame.

    Args:
        sigma_nm: standard deviation (scalar or (x, y)) in nm, > 0.
        px_size_nm: pixel size (scalar or (x, y)) in nm, > 0.
        roi_px: patch side in pixels (odd keeps the emitter's pixel in the middle); default covers +-4 sigma.

    :meth:`patches` and :meth:`render` take the emitters as 1-D tensors (or numpy arrays, or one number for all):
    positions in nm (conventions.md: the centre of pixel (i, j) at ``((j + 0.5) px, (i + 0.5) px)``), photons per
    emitter; the frames are expected photons per pixel in the photons' floating type (float32 by default).

    Example:
        >>> import torch
        >>> psf = GaussianPSF(sigma_nm=130.0, px_size_nm=(100.0, 100.0))
        >>> f = psf.render(torch.tensor([3200.0]), torch.tensor([3200.0]), torch.zeros(1), torch.tensor([1000.0]),
        ...                torch.zeros(1, dtype=torch.long), n_frames=1, frame_shape=(64, 64))
        >>> round(float(f.sum()), 2)
        1000.0
    """

    kind = "gaussian"
    is_3d = False
    #: frames of at most this many pixels render as one batched product of row and column profiles (:meth:`render`)
    separable_max_pixels: int = 128 * 128

    def __init__(
        self,
        *,
        sigma_nm: float | tuple[float, float] = 130.0,
        px_size_nm: tuple[float, float] = (100.0, 100.0),
        roi_px: int | None = None,
    ):
        sx, sy = number_pair(sigma_nm, f"{type(self).__name__} sigma_nm", positive=True)
        self.sigma_nm = (sx, sy)
        px_size_nm = number_pair(px_size_nm, f"{type(self).__name__} px_size_nm", positive=True)
        #: a default patch size adapts to each emitter's width (narrow ones on smaller patches); a given one is kept
        self.adaptive_roi = roi_px is None
        if roi_px is None:
            roi_px = _odd_roi(max(sx / px_size_nm[0], sy / px_size_nm[1]))
        roi_px = patch_size(roi_px, f"{type(self).__name__} roi_px")
        super().__init__(px_size_nm=px_size_nm, roi_px=(roi_px, roi_px))

    def sigma_px(self, z_nm: Tensor) -> tuple[Tensor, Tensor]:
        """Per-emitter sigma (x, y) in pixels."""
        ones = torch.ones_like(z_nm)
        return ones * (self.sigma_nm[0] / self.px_size_nm[0]), ones * (self.sigma_nm[1] / self.px_size_nm[1])

    def patches(self, x_nm: Tensor, y_nm: Tensor, z_nm: Tensor, photons: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x_nm, y_nm, z_nm, photons = self.emitters(x_nm, y_nm, z_nm, photons)
        sx, sy = self.sigma_px(z_nm)
        return F.gaussian_patches(
            x_nm / self.px_size_nm[0], y_nm / self.px_size_nm[1], sx, sy, photons, self.roi_px
        )

    def patch_sizes(self, sx: Tensor, sy: Tensor) -> Tensor:
        """(N,) int64 patch size of each emitter (per-emitter widths ``sx, sy`` in pixels): with the default patch
        size the smallest of :data:`PATCH_LADDER` that holds +-4 sigma of the emitter's own width (the rule of the
        default size, which holds the widest; at most that size), else :attr:`roi_px` for every emitter."""
        roi = self.roi_px[0]
        if not self.adaptive_roi:
            return torch.full(sx.shape, roi, dtype=torch.int64, device=sx.device)
        need = 2 * torch.ceil(4.0 * torch.maximum(sx, sy).detach()).clamp_min(2) + 1  # _odd_roi's rule, per emitter
        sizes = [k for k in PATCH_LADDER if k < roi] + [roi]
        ladder = torch.tensor(sizes, device=need.device, dtype=need.dtype)
        return ladder[torch.searchsorted(ladder, need.contiguous()).clamp_max(len(sizes) - 1)].to(torch.int64)

    def patch_groups(
        self, x_nm: Tensor, y_nm: Tensor, z_nm: Tensor, photons: Tensor
    ) -> list[tuple[Tensor | None, Tensor, Tensor, Tensor]]:
        """With the default patch size, each emitter on its own :meth:`patch_sizes` patch: an astigmatic or
        defocused PSF in focus needs a 7-pixel patch where the widest needs 29, and rendering is most of a
        multi-plane simulation. One group, as before, where all emitters need the same size."""
        x_nm, y_nm, z_nm, photons = self.emitters(x_nm, y_nm, z_nm, photons)
        if not self.adaptive_roi or x_nm.numel() == 0:
            return super().patch_groups(x_nm, y_nm, z_nm, photons)
        sx, sy = self.sigma_px(z_nm)
        size = self.patch_sizes(sx, sy)
        present = torch.unique(size).tolist()
        x_px, y_px = x_nm / self.px_size_nm[0], y_nm / self.px_size_nm[1]
        groups = []
        for k in present:
            index = None if len(present) == 1 else torch.nonzero(size == k).squeeze(1)
            args = (x_px, y_px, sx, sy, photons) if index is None else (a[index] for a in (x_px, y_px, sx, sy, photons))
            groups.append((index, *F.gaussian_patches(*args, (k, k))))
        return groups

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
        """Frames ``(n_frames, H, W)`` of expected photons per pixel: :meth:`PSF.render` (its arguments, units and
        types). Its frames (the same patches, to float rounding), for frames of at most
        :attr:`separable_max_pixels` as one batched matrix product per render: the patch is the outer product of a
        row and a column profile, so frame ``f`` is ``sum_n photons_n ey_n ex_n^T = Ey_f^T Ex_f`` over its
        emitters, each profile laid out over the frame's rows (columns), zero outside the emitter's patch. No
        index of every patch pixel, no scatter-add (on a GPU: no atomic adds, all the clipped pixels of the
        patch-wise render land on one element), a fixed number of operations whatever the patch sizes, and one
        host-device synchronisation (the most emitters in a frame). Larger frames (whole movies) render patch by
        patch: there the product's work (frame pixels x emitters) outgrows the patches'."""
        x_nm, y_nm, z_nm, photons, frame_ix = self.emitters(x_nm, y_nm, z_nm, photons, frame_ix)
        H, W = _frame_shape(frame_shape, x_nm)
        if not x_nm.numel() or not n_frames or not self.uses_frame_slots((H, W)):
            return super().render(x_nm, y_nm, z_nm, photons, frame_ix, n_frames=n_frames, frame_shape=frame_shape)
        dtype = photons.dtype if photons.is_floating_point() else torch.float32
        sx, sy = self.sigma_px(z_nm)
        size = self.patch_sizes(sx, sy)
        x_px, y_px = x_nm / self.px_size_nm[0], y_nm / self.px_size_nm[1]
        col0 = torch.floor(x_px.detach()).to(torch.int64) - size // 2  # as gaussian_patches places each patch
        row0 = torch.floor(y_px.detach()).to(torch.int64) - size // 2
        slots = F.frame_slots(frame_ix, n_frames) if frame_slots is None else frame_slots  # (T, K)
        # the emitters' parameters, one extra empty emitter (no photons, an empty patch) for the unused slots
        rows = [x_px, y_px, sx, sy, photons.to(x_px.dtype), col0.to(x_px.dtype), row0.to(x_px.dtype), size.to(x_px.dtype)]
        empty = torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0], dtype=x_px.dtype, device=x_px.device)
        xs, ys, sxs, sys_, ph, c0, r0, s = torch.cat([torch.stack(rows, 1), empty[None]])[slots].unbind(-1)
        ex = F.windowed_gaussian_profile(xs, sxs, c0, s, W)
        ey = F.windowed_gaussian_profile(ys, sys_, r0, s, H, weight=ph)  # (T, K, H), with the photons
        return torch.bmm(ey.transpose(1, 2), ex).to(dtype)

    def uses_frame_slots(self, frame_shape: tuple[int, int]) -> bool:
        return int(frame_shape[0]) * int(frame_shape[1]) <= self.separable_max_pixels

    def extra_repr(self) -> str:
        return f"sigma_nm={self.sigma_nm}, " + super().extra_repr()


class AstigmaticPSF(GaussianPSF):
    """3D astigmatic Gaussian: ``sigma_i(z) = s0_i sqrt(1 + u^2 + A_i u^3 + B_i u^4)``, ``u = (z - c_i) / d_i``.

    The model of Huang et al. (2008) as used by ThunderSTORM; index i is x or y.

    Args:
        s0_nm, c_nm, d_nm, A, B: per-axis (x, y) parameters, or one number for both: in-focus width ``s0_nm`` (nm,
            > 0), focal offset ``c_nm`` (nm), depth of focus ``d_nm`` (nm, > 0), higher-order coefficients ``A, B``.
        px_size_nm: pixel size (scalar or (x, y)) in nm, > 0.
        roi_px: patch side in pixels; default covers +-4 sigma at ``z_extent_nm`` from focus.
        z_extent_nm: the largest |z| the default patch size must hold.
    """

    kind = "astigmatic"
    is_3d = True

    def __init__(
        self,
        *,
        s0_nm: tuple[float, float] = (120.0, 120.0),
        c_nm: tuple[float, float] = (-250.0, 250.0),
        d_nm: float | tuple[float, float] = 400.0,
        A: tuple[float, float] = (0.0, 0.0),  # noqa: N803 - the model's own symbol
        B: tuple[float, float] = (0.0, 0.0),  # noqa: N803
        px_size_nm: tuple[float, float] = (100.0, 100.0),
        roi_px: int | None = None,
        z_extent_nm: float = 750.0,
    ):
        adaptive = roi_px is None
        name = type(self).__name__
        self.s0_nm = number_pair(s0_nm, f"{name} s0_nm", positive=True)
        self.c_nm = number_pair(c_nm, f"{name} c_nm")
        self.d_nm = number_pair(d_nm, f"{name} d_nm", positive=True)
        self.A = number_pair(A, f"{name} A")
        self.B = number_pair(B, f"{name} B")
        px_size_nm = number_pair(px_size_nm, f"{name} px_size_nm", positive=True)
        if roi_px is None:
            zs = torch.tensor([-z_extent_nm, 0.0, z_extent_nm], dtype=torch.float64)
            s_max = max(
                float(F.astigmatic_sigma(zs, self.s0_nm[i], self.c_nm[i], self.d_nm[i], self.A[i], self.B[i]).max())
                / px_size_nm[i]
                for i in (0, 1)
            )
            roi_px = _odd_roi(s_max)
        super().__init__(sigma_nm=self.s0_nm, px_size_nm=px_size_nm, roi_px=roi_px)
        self.adaptive_roi = adaptive

    def sigma_px(self, z_nm: Tensor) -> tuple[Tensor, Tensor]:
        return tuple(  # type: ignore[return-value]
            F.astigmatic_sigma(z_nm, self.s0_nm[i], self.c_nm[i], self.d_nm[i], self.A[i], self.B[i])
            / self.px_size_nm[i]
            for i in (0, 1)
        )

    def extra_repr(self) -> str:
        return (
            f"s0_nm={self.s0_nm}, c_nm={self.c_nm}, d_nm={self.d_nm}, A={self.A}, B={self.B}, "
            f"px_size_nm={self.px_size_nm}, roi_px={self.roi_px}"
        )
