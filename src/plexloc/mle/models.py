"""PSF models evaluated on a fixed fitting window (ROI), with their derivatives.

The fitter needs, for a batch of N regions of R x R pixels, the unit-photon PSF of one emitter on the
region's own pixel grid and its derivatives with respect to the emitter's position (and z, and the PSF
width when that is free). Positions here are *region-local pixels*: the centre of region pixel
(row i, column j) is at ``(x, y) = (j + 0.5, i + 0.5)``, as in conventions.md with the region's
top-left pixel as origin.

- :class:`GaussianRoiModel`: the pixel-integrated 2D Gaussian (fixed or free width) and the
  astigmatic 3D Gaussian of :mod:`plexloc.psf`, with closed-form derivatives (erf/Gaussian pdf);
- :class:`SplineRoiModel`: the cubic spline, the window's voxel coefficients contracted with the
  monomials and their derivatives;
- :class:`PSFRoiModel`: any :class:`~plexloc.psf.PSF`: the PSF's own ``patches`` placed onto the
  region, derivatives by forward-mode automatic differentiation (the reference the others are tested
  against).

``roi_model_for(psf)`` picks the fast analytic model where there is one.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.autograd.forward_ad as fwad
from torch import Tensor

from plexloc.psf import PSF, AstigmaticPSF, GaussianPSF, SplinePSF
from plexloc.psf import functional as PF

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass
class RoiEval:
    """A unit-photon PSF on N regions and its derivatives, all ``(N, R, R)``.

    ``d_x, d_y`` are per region-local pixel; ``d_z`` per nm (None for a 2D model); ``d_s`` with respect
    to the free width scale (None unless the model fits the width).
    """

    psf: Tensor
    d_x: Tensor
    d_y: Tensor
    d_z: Tensor | None = None
    d_s: Tensor | None = None


@dataclass
class SeparableEval:
    """A separable unit-photon PSF on N regions: ``psf = rows ⊗ cols`` and every derivative a sum of
    such outer products, all factors ``(N, R)`` (rows: y, columns: x).

    ``d_x = rows ⊗ d_cols``, ``d_y = d_rows ⊗ cols``; ``d_z`` (3D) and ``d_s`` (free width) are
    ``dz_rows ⊗ cols + rows ⊗ dz_cols`` (likewise ``ds_*``). The fitter builds its Fisher matrix from
    these factors without forming the full Jacobian (:mod:`plexloc.mle.fit`).
    """

    rows: Tensor
    cols: Tensor
    d_rows: Tensor
    d_cols: Tensor
    dz_rows: Tensor | None = None
    dz_cols: Tensor | None = None
    ds_rows: Tensor | None = None
    ds_cols: Tensor | None = None


class RoiModel:
    """Interface: ``model(x_px, y_px, z_nm, s) -> RoiEval`` on ``roi`` x ``roi`` pixels; models whose
    PSF is separable also give ``model.separable(...) -> SeparableEval`` (``is_separable``)."""

    is_separable: bool = False

    is_3d: bool = False
    #: whether the model has a free width scale ``s`` (1 = the calibrated width)
    free_sigma: bool = False
    px_size_nm: tuple[float, float] = (100.0, 100.0)

    def z_range_nm(self) -> tuple[float, float]:
        return (-float("inf"), float("inf"))

    def __call__(self, x_px: Tensor, y_px: Tensor, z_nm: Tensor, s: Tensor, roi: int) -> RoiEval:  # pragma: no cover
        raise NotImplementedError

    def value(self, x_px: Tensor, y_px: Tensor, z_nm: Tensor, s: Tensor, roi: int) -> Tensor:
        """The unit-photon PSF alone, ``(N, R, R)``, without derivatives (models override it where that is
        cheaper than :meth:`__call__`)."""
        return self(x_px, y_px, z_nm, s, roi).psf


def _axis(pos: Tensor, sigma: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """1D integrated Gaussian over ``n`` pixels and its derivatives with respect to position and sigma.

    ``E_k = 0.5 [erf((k + 1 - u) / (sqrt2 s)) - erf((k - u) / (sqrt2 s))]``;
    ``dE/du = g(k - u) - g(k + 1 - u)``; ``dE/ds = -[(k + 1 - u) g(k + 1 - u) - (k - u) g(k - u)] / s``,
    with ``g`` the Gaussian pdf of width ``s``.
    """
    e = PF.integrated_gaussian_1d(pos, sigma, n)
    t = torch.arange(n + 1, device=pos.device, dtype=pos.dtype)[None, :] - pos[:, None]  # edge - u
    s = sigma[:, None]
    g = torch.exp(-0.5 * (t / s) ** 2) * (_INV_SQRT_2PI / s)
    de_du = g[:, :-1] - g[:, 1:]
    tg = t * g
    de_ds = -(tg[:, 1:] - tg[:, :-1]) / s
    return e, de_du, de_ds


class GaussianRoiModel(RoiModel):
    """The Gaussian and astigmatic PSFs of :mod:`plexloc.psf`, analytic derivatives.

    Args:
        psf: a :class:`~plexloc.psf.GaussianPSF` or :class:`~plexloc.psf.AstigmaticPSF`.
        free_sigma: fit a width scale ``s`` (``sigma = s * sigma_calibrated``, both axes), 2D only.
    """

    def __init__(self, psf: GaussianPSF, *, free_sigma: bool = False):
        self.psf = psf
        self.is_3d = isinstance(psf, AstigmaticPSF)
        if free_sigma and self.is_3d:
            raise ValueError("a free PSF width is only fitted for the 2D Gaussian")
        self.free_sigma = bool(free_sigma)
        self.px_size_nm = psf.px_size_nm

    def _sigma(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """sigma_x, sigma_y in pixels and their z derivatives (per nm)."""
        p = self.psf
        if not self.is_3d:
            sx, sy = p.sigma_px(z)
            return sx, sy, None, None
        out = []
        for i in (0, 1):
            u = (z - p.c_nm[i]) / p.d_nm[i]
            rad = 1.0 + u * u + p.A[i] * u**3 + p.B[i] * u**4
            rad_c = rad.clamp_min(1e-6)
            root = torch.sqrt(rad_c)
            s = p.s0_nm[i] * root / p.px_size_nm[i]
            drad = (2 * u + 3 * p.A[i] * u * u + 4 * p.B[i] * u**3) / p.d_nm[i]
            ds = torch.where(rad > 1e-6, p.s0_nm[i] / p.px_size_nm[i] * drad / (2 * root), torch.zeros_like(rad))
            out += [s, ds]
        return out[0], out[2], out[1], out[3]

    is_separable = True

    def separable(self, x_px: Tensor, y_px: Tensor, z_nm: Tensor, s: Tensor, roi: int) -> SeparableEval:
        """The model as 1D factors (the Gaussian is separable in x and y at every z)."""
        sx, sy, dsx_dz, dsy_dz = self._sigma(z_nm)
        if self.free_sigma:
            sx, sy = sx * s, sy * s
        ex, dex, dex_s = _axis(x_px, sx, roi)
        ey, dey, dey_s = _axis(y_px, sy, roi)
        ev = SeparableEval(rows=ey, cols=ex, d_rows=dey, d_cols=dex)
        if self.is_3d:
            ev.dz_rows, ev.dz_cols = dey_s * dsy_dz[:, None], dex_s * dsx_dz[:, None]
        if self.free_sigma:
            ev.ds_rows, ev.ds_cols = dey_s * (sy / s)[:, None], dex_s * (sx / s)[:, None]
        return ev

    def value(self, x_px: Tensor, y_px: Tensor, z_nm: Tensor, s: Tensor, roi: int) -> Tensor:
        sx, sy, _, _ = self._sigma(z_nm)
        if self.free_sigma:
            sx, sy = sx * s, sy * s
        rows = PF.integrated_gaussian_1d(y_px, sy, roi)
        cols = PF.integrated_gaussian_1d(x_px, sx, roi)
        return rows[:, :, None] * cols[:, None, :]

    def __call__(self, x_px: Tensor, y_px: Tensor, z_nm: Tensor, s: Tensor, roi: int) -> RoiEval:
        f = self.separable(x_px, y_px, z_nm, s, roi)
        outer = lambda a, b: a[:, :, None] * b[:, None, :]  # noqa: E731 - rows (y) x columns (x)
        ev = RoiEval(psf=outer(f.rows, f.cols), d_x=outer(f.rows, f.d_cols), d_y=outer(f.d_rows, f.cols))
        if self.is_3d:
            ev.d_z = outer(f.dz_rows, f.cols) + outer(f.rows, f.dz_cols)
        if self.free_sigma:
            ev.d_s = outer(f.ds_rows, f.cols) + outer(f.rows, f.ds_cols)
        return ev


class PSFRoiModel(RoiModel):
    """Any PSF of the registry on a fitting window, derivatives by forward-mode AD of ``psf.patches``.

    The PSF renders its own patch around the emitter; the patch is placed onto the window by its
    integer offset (pixels of the window that the patch does not cover get 0).
    """

    def __init__(self, psf: PSF):
        self.psf = psf
        self.is_3d = psf.is_3d
        self.px_size_nm = psf.px_size_nm

    def z_range_nm(self) -> tuple[float, float]:
        return self.psf.z_range_nm

    def _place(self, theta: Tensor, roi: int) -> Tensor:
        px = self.px_size_nm
        patch, row0, col0 = self.psf.patches(
            theta[:, 0] * px[0], theta[:, 1] * px[1], theta[:, 2], torch.ones_like(theta[:, 0])
        )
        n, h, w = patch.shape
        ar = torch.arange(roi, device=theta.device)
        rr = ar[None, :] - row0[:, None]  # patch row of each window row
        cc = ar[None, :] - col0[:, None]
        ok = ((rr >= 0) & (rr < h))[:, :, None] & ((cc >= 0) & (cc < w))[:, None, :]
        flat = rr.clamp(0, h - 1)[:, :, None] * w + cc.clamp(0, w - 1)[:, None, :]
        vals = torch.gather(patch.reshape(n, -1), 1, flat.reshape(n, -1)).reshape(n, roi, roi)
        return torch.where(ok, vals, torch.zeros_like(vals))

    def value(self, x_px: Tensor, y_px: Tensor, z_nm: Tensor, s: Tensor, roi: int) -> Tensor:
        return self._place(torch.stack([x_px, y_px, z_nm], dim=1), roi)

    def __call__(self, x_px: Tensor, y_px: Tensor, z_nm: Tensor, s: Tensor, roi: int) -> RoiEval:
        theta = torch.stack([x_px, y_px, z_nm], dim=1)
        value = self._place(theta, roi)
        ders = []
        for col in range(3 if self.is_3d else 2):
            tangent = torch.zeros_like(theta)
            tangent[:, col] = 1.0
            with warnings.catch_warnings(), fwad.dual_level():
                warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=DeprecationWarning)
                ders.append(fwad.unpack_dual(self._place(fwad.make_dual(theta, tangent), roi)).tangent)
        return RoiEval(psf=value, d_x=ders[0], d_y=ders[1], d_z=ders[2] if self.is_3d else None)


def _monomials(f: Tensor) -> tuple[Tensor, Tensor]:
    """(N, 4) powers ``1, f, f², f³`` and their derivatives ``0, 1, 2f, 3f²``."""
    one, zero = torch.ones_like(f), torch.zeros_like(f)
    return torch.stack([one, f, f * f, f * f * f], 1), torch.stack([zero, one, 2 * f, 3 * f * f], 1)


class SplineRoiModel(RoiModel):
    """The cubic-spline PSF (:class:`~plexloc.psf.SplinePSF`) on a window, derivatives of the
    polynomials in closed form.

    Window pixel (i, j) of an emitter at window position (x, y) is spline voxel
    ``(floor(cy) + i, floor(cx) + j)`` at fraction ``(fy, fx)``, with ``cx = x0 + 0.5 - x`` (pixels):
    the coefficients of the window's voxels are gathered once per evaluation and contracted with the
    monomials and their derivatives in one batched product (voxels outside the spline give 0).
    """

    def __init__(self, psf):
        self.psf = psf
        self.is_3d = True
        self.px_size_nm = psf.px_size_nm

    def z_range_nm(self) -> tuple[float, float]:
        return self.psf.z_range_nm

    #: windows evaluated at a time (the gathered coefficients are R² x 64 floats per window)
    chunk = 2048

    def __call__(self, x_px: Tensor, y_px: Tensor, z_nm: Tensor, s: Tensor, roi: int) -> RoiEval:
        n = x_px.shape[0]
        if n <= self.chunk:
            return self._eval(x_px, y_px, z_nm, roi)
        parts = [self._eval(x_px[a : a + self.chunk], y_px[a : a + self.chunk], z_nm[a : a + self.chunk], roi)
                 for a in range(0, n, self.chunk)]
        return RoiEval(*(torch.cat([getattr(q, f) for q in parts]) for f in ("psf", "d_x", "d_y", "d_z")))

    def value(self, x_px: Tensor, y_px: Tensor, z_nm: Tensor, s: Tensor, roi: int) -> Tensor:
        n = x_px.shape[0]
        return torch.cat([self._eval(x_px[a : a + self.chunk], y_px[a : a + self.chunk], z_nm[a : a + self.chunk], roi,
                                     value_only=True) for a in range(0, max(n, 1), self.chunk)])

    def _eval(self, x_px: Tensor, y_px: Tensor, z_nm: Tensor, roi: int, value_only: bool = False):
        p = self.psf
        nz, ny, nx = p.shape
        coeff = p.coeff  # (nz, ny*nx, 64)
        dtype = coeff.dtype
        n = x_px.shape[0]
        cx = p.x0 + 0.5 - x_px.to(dtype)
        cy = p.y0 + 0.5 - y_px.to(dtype)
        sz = p.z0 + z_nm.to(dtype) / p.dz_nm
        kx, ky = torch.floor(cx), torch.floor(cy)
        fx, fy = cx - kx, cy - ky
        kz = torch.floor(sz).clamp(0, nz - 1)
        fz_raw = sz - kz
        fz = fz_raw.clamp(0.0, 1.0)
        dz_ok = ((fz_raw >= 0) & (fz_raw <= 1)).to(dtype) / p.dz_nm
        ar = torch.arange(roi, device=coeff.device)
        vx = kx.long()[:, None] + ar  # (n, R) voxel column of each window column
        vy = ky.long()[:, None] + ar
        inside = ((vy >= 0) & (vy < ny))[:, :, None] & ((vx >= 0) & (vx < nx))[:, None, :]
        flat = vy.clamp(0, ny - 1)[:, :, None] * nx + vx.clamp(0, nx - 1)[:, None, :]  # (n, R, R)
        c = coeff[kz.long()[:, None, None], flat]  # (n, R, R, 64)
        c = c * inside[..., None].to(dtype)
        px, dpx = _monomials(fx)
        py, dpy = _monomials(fy)
        pz, dpz = _monomials(fz)

        def mono(a, b, cc):  # index i*16 + j*4 + k: fz^i fx^j fy^k
            return (a[:, :, None, None] * b[:, None, :, None] * cc[:, None, None, :]).reshape(n, 64)

        if value_only:  # the PSF alone: (n, R, R)
            return torch.bmm(c.reshape(n, roi * roi, 64), mono(pz, px, py)[:, :, None]).reshape(n, roi, roi)
        basis = torch.stack([mono(pz, px, py), mono(pz, dpx, py), mono(pz, px, dpy), mono(dpz, px, py)], 2)
        out = torch.bmm(c.reshape(n, roi * roi, 64), basis).reshape(n, roi, roi, 4)
        # d/dx = -d/dfx (cx = x0 + 0.5 - x), likewise y; d/dz = d/dfz / dz_nm inside the calibrated range
        return RoiEval(
            psf=out[..., 0],
            d_x=-out[..., 1],
            d_y=-out[..., 2],
            d_z=out[..., 3] * dz_ok[:, None, None],
        )


def roi_model_for(psf: PSF, *, free_sigma: bool = False) -> RoiModel:
    """The fitting-window model of ``psf``: analytic for the Gaussian/astigmatic and spline PSFs,
    forward-mode AD of ``psf.patches`` for any other."""
    if isinstance(psf, GaussianPSF):  # AstigmaticPSF is a GaussianPSF
        return GaussianRoiModel(psf, free_sigma=free_sigma)
    if isinstance(psf, SplinePSF) and not free_sigma:
        return SplineRoiModel(psf)
    if free_sigma:
        raise ValueError(f"a free PSF width is only fitted for the 2D Gaussian, not the {psf.kind} PSF")
    return PSFRoiModel(psf)
