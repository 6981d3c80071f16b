"""Cubic-spline PSF of a measured (bead) PSF volume.

Coefficients are stored as a tensor of shape ``(n_z, n_y, n_x, 64)``: one tricubic polynomial per
voxel, the value at fractional position ``(fx, fy, fz)`` in ``[0, 1)^3`` inside voxel ``(kz, ky, kx)``
being ``sum coeff[kz, ky, kx, i*16 + j*4 + k] * fz^i * fx^j * fy^k`` (the index order of SMAP's
``_3dcal.mat``, see :mod:`plexloc.io.smap`). Lateral voxels have the camera pixel's size, axial ones
``dz_nm``. The PSF centre sits at voxel coordinates ``(x0, y0, z0)``: the spline value at coordinate
``s_x = x0 + (pixel centre - emitter)/px`` (and likewise in y) is the expected photons in that pixel,
and ``z_nm = (s_z - z0) * dz_nm``.

Evaluation groups emitters by their z voxel and runs one batched matrix product over the occupied
slices, so the cost is one ``(n_y n_x) x 64`` product per emitter with no per-emitter gather of
coefficients.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from plexloc.errors import InputError
from plexloc.psf.base import PSF

if TYPE_CHECKING:  # pragma: no cover
    from plexloc.io.smap import SplineCalibration


def _powers(fx: Tensor, fy: Tensor, fz: Tensor) -> Tensor:
    """(N, 64) monomials ``fz^i fx^j fy^k`` at index ``i*16 + j*4 + k``."""
    px = torch.stack([torch.ones_like(fx), fx, fx * fx, fx * fx * fx], dim=1)
    py = torch.stack([torch.ones_like(fy), fy, fy * fy, fy * fy * fy], dim=1)
    pz = torch.stack([torch.ones_like(fz), fz, fz * fz, fz * fz * fz], dim=1)
    return (pz[:, :, None, None] * px[:, None, :, None] * py[:, None, None, :]).reshape(-1, 64)


def coefficients_from_volume(volume: np.ndarray) -> np.ndarray:
    """Tricubic interpolating-spline coefficients of a PSF volume sampled on a unit grid.

    Args:
        volume: ``(n_z, n_y, n_x)`` samples (z slices of pixel values), at least 4 per axis.

    Returns:
        ``(n_z - 1, n_y - 1, n_x - 1, 64)`` float32 coefficients, index order as in the module docstring.
        Knot ``(kz, ky, kx)`` of the volume is voxel coordinate ``(kz, ky, kx)``.

    The tensor-product spline is built axis by axis with scipy's not-a-knot cubic spline, which is
    exact for cubic polynomials and interpolates every sample.
    """
    from scipy.interpolate import CubicSpline

    vol = np.asarray(volume, dtype=np.float64)
    if vol.ndim != 3 or min(vol.shape) < 4:
        raise InputError(f"PSF volume must be 3-D with >= 4 samples per axis, got shape {vol.shape}")
    if not np.all(np.isfinite(vol)):
        raise InputError(f"PSF volume contains {int((~np.isfinite(vol)).sum())} NaN or inf value(s)")
    nz, ny, nx = vol.shape
    # x: c[m, kx, z, y] multiplies t^(3-m)
    cx = CubicSpline(np.arange(nx), vol, axis=2).c  # (4, nx-1, nz, ny)
    cx = cx[::-1]  # power px
    # y: spline along the y axis of (4px, nx-1, nz, ny)
    cy = CubicSpline(np.arange(ny), cx, axis=3).c[::-1]  # (4py, ny-1, 4px, nx-1, nz)
    cz = CubicSpline(np.arange(nz), cy, axis=4).c[::-1]  # (4pz, nz-1, 4py, ny-1, 4px, nx-1)
    # -> (nz-1, ny-1, nx-1, pz, px, py)
    coeff = cz.transpose(1, 3, 5, 0, 4, 2).reshape(nz - 1, ny - 1, nx - 1, 64)
    return np.ascontiguousarray(coeff, dtype=np.float32)


class SplinePSF(PSF):
    """Cubic-spline PSF.

    Args:
        coeff: ``(n_z, n_y, n_x, 64)`` coefficients (see module docstring).
        x0, y0, z0: PSF centre in voxel coordinates.
        dz_nm: axial voxel size.
        px_size_nm: pixel size (x, y) in nm (the calibration's lateral voxel size).
        roi_px: crop the lateral extent to this many voxels around the centre (odd or even); default all.
        normalize: scale the coefficients so that the in-focus PSF (z = 0, emitter at the centre)
            sums to 1 over the spline's lateral extent, making ``photons`` the photons in that area.
    """

    kind = "spline"
    is_3d = True

    def __init__(
        self,
        *,
        coeff: Tensor | np.ndarray,
        x0: float,
        y0: float,
        z0: float,
        dz_nm: float,
        px_size_nm: tuple[float, float] = (100.0, 100.0),
        roi_px: int | None = None,
        normalize: bool = True,
    ):
        coeff = torch.as_tensor(np.array(coeff) if not isinstance(coeff, Tensor) else coeff, dtype=torch.float32)
        if coeff.ndim != 4 or coeff.shape[-1] != 64:
            raise InputError(f"spline coefficients must have shape (n_z, n_y, n_x, 64), got {tuple(coeff.shape)}")
        if not bool(torch.isfinite(coeff).all()):
            raise InputError("spline coefficients contain NaN or inf")
        if not (isinstance(dz_nm, (int, float, np.number)) and not isinstance(dz_nm, bool) and np.isfinite(dz_nm)
                and dz_nm > 0):
            raise InputError(f"spline dz_nm must be a number > 0 (nm per z slice), got {dz_nm!r}")
        nz, ny, nx, _ = coeff.shape
        if roi_px is not None and roi_px < min(ny, nx):
            # keep roi_px voxels around the centre
            ys = max(0, int(round(y0 - roi_px / 2)))
            xs = max(0, int(round(x0 - roi_px / 2)))
            coeff = coeff[:, ys : ys + roi_px, xs : xs + roi_px].contiguous()
            y0, x0 = y0 - ys, x0 - xs
            nz, ny, nx, _ = coeff.shape
        super().__init__(px_size_nm=px_size_nm, roi_px=(ny, nx))
        self.x0, self.y0, self.z0, self.dz_nm = float(x0), float(y0), float(z0), float(dz_nm)
        self.register_buffer("coeff", coeff.reshape(nz, ny * nx, 64))
        if normalize:
            total = self._focus_sum()
            if not total > 0:
                raise InputError(f"spline PSF sums to {total} at focus; the calibration looks empty or inverted")
            self.coeff = self.coeff / total

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_calibration(
        cls, cal: SplineCalibration, *, px_size_nm: tuple[float, float], roi_px: int | None = None
    ) -> SplinePSF:
        """Build from a loaded calibration (:func:`plexloc.io.smap.load_smap_3dcal`)."""
        return cls(
            coeff=cal.coeff, x0=cal.x0, y0=cal.y0, z0=cal.z0, dz_nm=cal.dz_nm, px_size_nm=px_size_nm, roi_px=roi_px
        )

    @classmethod
    def from_file(
        cls, path: str | os.PathLike, *, px_size_nm: tuple[float, float], channel: int = 0, roi_px: int | None = None
    ) -> SplinePSF:
        """Load a calibration: plexloc's own HDF5 file (``.h5``/``.hdf5``, :mod:`plexloc.calibrate.fileformat`)
        or a SMAP ``_3dcal.mat``.

        Our file records its pixel size; a ``px_size_nm`` that differs from it by more than 1 % is an error
        (a spline is only valid on the camera pixel it was calibrated on).
        """
        from pathlib import Path

        from plexloc.calibrate.fileformat import CALIBRATION_SUFFIXES, load_calibration

        if Path(path).suffix.lower() in CALIBRATION_SUFFIXES:
            cal = load_calibration(path)
            for own, given in zip(cal.px_size_nm, px_size_nm):
                if abs(own - float(given)) > 0.01 * own:
                    raise InputError(
                        f"px_size_nm: the calibration was made with {cal.px_size_nm} nm pixels, the configuration "
                        f"asks for {tuple(float(p) for p in px_size_nm)}",
                        source=path,
                    )
            return cal.psf(channel, roi_px=roi_px)
        from plexloc.io.smap import load_smap_3dcal

        return cls.from_calibration(load_smap_3dcal(path, channel=channel), px_size_nm=px_size_nm, roi_px=roi_px)

    @classmethod
    def from_volume(
        cls,
        volume: np.ndarray,
        *,
        dz_nm: float,
        px_size_nm: tuple[float, float] = (100.0, 100.0),
        center: tuple[float, float, float] | None = None,
        **kwargs,
    ) -> SplinePSF:
        """Spline of a PSF volume ``(n_z, n_y, n_x)`` whose emitter sits at sample ``center`` = (z, y, x)
        (default: the middle sample of each axis)."""
        if np.ndim(volume) != 3:
            raise InputError(f"PSF volume must be 3-D (n_z, n_y, n_x), got shape {np.shape(volume)}")
        nz, ny, nx = np.shape(volume)
        cz, cy, cx = center if center is not None else ((nz - 1) / 2, (ny - 1) / 2, (nx - 1) / 2)
        coeff = coefficients_from_volume(volume)
        return cls(coeff=coeff, x0=cx, y0=cy, z0=cz, dz_nm=dz_nm, px_size_nm=px_size_nm, **kwargs)

    # --- geometry -----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """(n_z, n_y, n_x) voxels."""
        return (int(self.coeff.shape[0]), self.roi_px[0], self.roi_px[1])

    @property
    def z_range_nm(self) -> tuple[float, float]:
        nz = self.shape[0]
        return (-self.z0 * self.dz_nm, (nz - self.z0) * self.dz_nm)

    def _focus_sum(self) -> float:
        with torch.no_grad():
            x = torch.tensor([self.px_size_nm[0] * 0.5], dtype=torch.float32, device=self.coeff.device)
            y = torch.tensor([self.px_size_nm[1] * 0.5], dtype=torch.float32, device=self.coeff.device)
            patch, _, _ = self.patches(x, y, torch.zeros_like(x), torch.ones_like(x))
        return float(patch.sum())

    # --- evaluation ---------------------------------------------------------------------------
    def patches(self, x_nm: Tensor, y_nm: Tensor, z_nm: Tensor, photons: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`PSF.patches`, in the coefficients' floating type (float32; ``psf.double()`` for float64)."""
        x_nm, y_nm, z_nm, photons = self.emitters(x_nm, y_nm, z_nm, photons)
        n = x_nm.shape[0]
        nz, ny, nx = self.shape
        dtype = self.coeff.dtype
        # spline coordinate of the pixel whose centre is at the emitter's left/top pixel edge offset
        cx = self.x0 + 0.5 - x_nm.to(dtype) / self.px_size_nm[0]
        cy = self.y0 + 0.5 - y_nm.to(dtype) / self.px_size_nm[1]
        sz = self.z0 + z_nm.to(dtype) / self.dz_nm
        fxl, fyl = torch.floor(cx.detach()), torch.floor(cy.detach())
        fx, fy = cx - fxl, cy - fyl
        kz = torch.floor(sz.detach()).clamp(0, nz - 1)
        fz = (sz - kz).clamp(0.0, 1.0)  # outside the calibrated range: the edge slice
        col0 = (-fxl).to(torch.int64)
        row0 = (-fyl).to(torch.int64)
        powers = _powers(fx, fy, fz)  # (N, 64)
        values = self._grouped_matvec(kz.to(torch.int64), powers)  # (N, ny*nx)
        patch = photons.to(dtype)[:, None, None] * values.reshape(n, ny, nx)
        return patch, row0, col0

    def _grouped_matvec(self, kz: Tensor, powers: Tensor) -> Tensor:
        """``coeff[kz[n]] @ powers[n]`` for every n, batched over the occupied z slices."""
        n = kz.shape[0]
        if n == 0:
            return powers.new_zeros(0, self.coeff.shape[1])
        slices, inverse, counts = torch.unique(kz, return_inverse=True, return_counts=True)
        u = slices.shape[0]
        m = int(counts.max())
        if u * m > 4 * n + 64:  # very uneven occupancy: gather per emitter instead of padding
            return torch.bmm(self.coeff[kz], powers[:, :, None])[..., 0]
        order = torch.argsort(inverse, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.empty_like(inverse)
        slot[order] = torch.arange(n, device=kz.device) - starts[inverse[order]]
        padded = powers.new_zeros(u, m, 64)
        padded = padded.index_put((inverse, slot), powers)
        out = torch.bmm(self.coeff[slices], padded.transpose(1, 2))  # (u, ny*nx, m)
        return out.permute(0, 2, 1)[inverse, slot]

    def extra_repr(self) -> str:
        return (
            f"shape={self.shape}, x0={self.x0}, y0={self.y0}, z0={self.z0}, dz_nm={self.dz_nm}, "
            f"px_size_nm={self.px_size_nm}"
        )


