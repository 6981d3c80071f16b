"""Astigmatic Gaussian calibration: the defocus curves ``sigma_x(z)``, ``sigma_y(z)`` of bead z-stacks.

The light alternative to the spline (:func:`calibrate_astigmatic`): the beads are detected, rejected,
registered, averaged and z = 0 is defined exactly as for the spline (:func:`plexloc.calibrate.calibrate_spline`,
single channel). Each slice of the averaged bead within ``|z| <= z_fit_nm`` is fitted by least squares with a
pixel-integrated (erf) elliptical Gaussian plus offset, which gives ``sigma_x(z)`` and ``sigma_y(z)`` in nm; then
per axis the Huang et al. (2008) model of :class:`plexloc.psf.AstigmaticPSF`,
``sigma_i(z) = s0_i sqrt(1 + u^2 + A_i u^3 + B_i u^4)``, ``u = (z - c_i) / d_i``, is fitted to those widths by
least squares (first without A, B, then with them starting from that). The result is a
:class:`plexloc.config.models.AstigmaticPSFConfig` that the simulator, the network and the MLE fitter use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy.optimize import least_squares
from scipy.special import erf

from plexloc.calibrate.spline import MIN_SLICES, SplineCalibrationResult, calibrate_spline, too_few_slices
from plexloc.config.models import AstigmaticPSFConfig
from plexloc.errors import InputError

__all__ = ["AstigmaticCalibrationResult", "calibrate_astigmatic", "fit_defocus_curves", "slice_sigmas"]


@dataclasses.dataclass
class AstigmaticCalibrationResult:
    """``psf``: the fitted model; ``z_nm``, ``sigma_nm`` ((n, 2) x, y): the per-slice widths it was fitted to;
    ``residual_nm``: rms of the curve fit per axis; ``spline``: the registration/averaging result it came from."""

    psf: AstigmaticPSFConfig
    z_nm: np.ndarray
    sigma_nm: np.ndarray
    residual_nm: tuple[float, float]
    spline: SplineCalibrationResult


def _gauss_image(p: np.ndarray, edges_x: np.ndarray, edges_y: np.ndarray) -> np.ndarray:
    amp, x0, y0, sx, sy, off = p
    ex = erf((edges_x - x0) / (np.sqrt(2) * sx))
    ey = erf((edges_y - y0) / (np.sqrt(2) * sy))
    return amp * 0.25 * np.outer(np.diff(ey), np.diff(ex)) + off


def slice_sigmas(volume: np.ndarray, *, px_size_nm: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares fit of a pixel-integrated elliptical Gaussian plus offset to each slice ``(n_z, R, R)``.

    Returns ``(sigma_nm (n_z, 2) x, y, ok (n_z,) bool)``; ``ok`` is False where the fit failed or the width
    reached the window (sigma > R / 3 px)."""
    nz, ny, nx = volume.shape
    ex, ey = np.arange(nx + 1, dtype=np.float64), np.arange(ny + 1, dtype=np.float64)
    out = np.full((nz, 2), np.nan)
    ok = np.zeros(nz, bool)
    lim = min(nx, ny) / 3
    for k in range(nz):
        img = np.asarray(volume[k], np.float64)
        w = np.clip(img, 0, None)
        if not w.sum() > 0:
            continue
        p0 = np.array([w.sum(), nx / 2, ny / 2, 1.5, 1.5, 0.0])
        res = least_squares(
            lambda p: (_gauss_image(p, ex, ey) - img).ravel(),
            p0,
            bounds=([0, 0, 0, 0.2, 0.2, -np.inf], [np.inf, nx, ny, nx, ny, np.inf]),
        )
        sx, sy = res.x[3], res.x[4]
        out[k] = sx * px_size_nm[0], sy * px_size_nm[1]
        ok[k] = res.success and sx < lim and sy < lim
    return out, ok


def _model(p: np.ndarray, z: np.ndarray) -> np.ndarray:
    s0, c, d, a, b = p
    u = (z - c) / d
    return s0 * np.sqrt(np.clip(1 + u * u + a * u**3 + b * u**4, 1e-6, None))


def fit_defocus_curves(z_nm: np.ndarray, sigma_nm: np.ndarray, *, fit_ab: bool = True) -> tuple[AstigmaticPSFConfig, tuple[float, float]]:
    """Per axis, the Huang et al. (2008) model fitted to widths ``sigma_nm`` ((n, 2) x, y) at ``z_nm``.

    Returns ``(config, rms residual nm per axis)``. Raises :class:`InputError` with fewer than 6 widths."""
    z = np.asarray(z_nm, np.float64)
    s = np.asarray(sigma_nm, np.float64)
    if len(z) < 6:
        raise InputError(f"the astigmatic fit needs >= 6 slices with a measurable width, got {len(z)}")
    params, rms = [], []
    for i in (0, 1):
        si = s[:, i]
        k = int(np.argmin(si))
        span = max(float(np.ptp(z)), 1.0)
        p3 = least_squares(
            lambda q: _model(np.array([q[0], q[1], q[2], 0.0, 0.0]), z) - si,
            [si[k], z[k], span / 3],
            bounds=([1.0, z.min() - span, 10.0], [np.inf, z.max() + span, 10 * span]),
        ).x
        p = np.array([*p3, 0.0, 0.0])
        if fit_ab:
            p = least_squares(
                lambda q: _model(q, z) - si,
                p,
                bounds=([1.0, z.min() - span, 10.0, -5.0, -5.0], [np.inf, z.max() + span, 10 * span, 5.0, 5.0]),
            ).x
        params.append(p)
        rms.append(float(np.sqrt(np.mean((_model(p, z) - si) ** 2))))
    px_, py_ = params
    cfg = AstigmaticPSFConfig(
        s0_nm=(float(px_[0]), float(py_[0])),
        c_nm=(float(px_[1]), float(py_[1])),
        d_nm=(float(px_[2]), float(py_[2])),
        A=(float(px_[3]), float(py_[3])),
        B=(float(px_[4]), float(py_[4])),
    )
    return cfg, (rms[0], rms[1])


def _curves_of(volume: np.ndarray, z0_voxel: float, *, dz_nm: float, px: tuple[float, float], z_fit_nm: float, fit_ab: bool):
    z = (np.arange(volume.shape[0]) - z0_voxel) * dz_nm
    sel = np.abs(z) <= z_fit_nm
    sig, ok = slice_sigmas(volume[sel], px_size_nm=px)
    zf, sf = z[sel][ok], sig[ok]
    cfg, rms = fit_defocus_curves(zf, sf, fit_ab=fit_ab)
    return cfg, rms, zf, sf


def calibrate_astigmatic(
    stack: np.ndarray,
    *,
    z_step_nm: float,
    px_size_nm: float | tuple[float, float],
    z_fit_nm: float = 800.0,
    fit_ab: bool = True,
    **spline_options,
) -> AstigmaticCalibrationResult:
    """Astigmatic defocus curves of one channel's bead z-stack (photons, ``(n_z, H, W)``), see the module docstring.

    ``spline_options`` go to :func:`calibrate_spline` (``roi_px``, ``raw_stacks``, ``saturation_adu``, ``sources``...).
    """
    from plexloc.calibrate.beads import check_number

    check_number("z_fit_nm", z_fit_nm, low=0, low_open=True)  # NaN or <= 0 left no slice and an error that named none
    check_number("z_step_nm (--z-step)", z_step_nm, low=0, low_open=True)
    if np.ndim(stack) == 3 and np.shape(stack)[0] < MIN_SLICES:  # (the spline's words said "the spline along z")
        src = list(spline_options.get("sources") or ()) or ["channel 0"]
        raise too_few_slices(np.shape(stack)[0], z_step_nm, source=src[0],
                             needs="the astigmatic fit needs them (its beads are registered and averaged along z as "
                                   "for the spline, then each slice's widths fitted)")
    res = calibrate_spline([stack], z_step_nm=z_step_nm, px_size_nm=px_size_nm, **spline_options)
    cal = res.calibration
    ch = cal.channels[0]
    cfg, rms, zf, sf = _curves_of(ch.volume, ch.z0_voxel, dz_nm=cal.dz_nm, px=cal.px_size_nm, z_fit_nm=z_fit_nm, fit_ab=fit_ab)
    return AstigmaticCalibrationResult(psf=cfg, z_nm=zf, sigma_nm=sf, residual_nm=rms, spline=res)


def astigmatic_builder(*, z_fit_nm: float = 800.0, fit_ab: bool = True):
    """A ``build_psf(volume, z0_voxel, dz_nm, px)`` for :func:`plexloc.calibrate.validate.leave_one_bead_out`:
    the astigmatic PSF fitted to the other beads' average."""
    from plexloc.psf import psf_from_config

    def build(volume: np.ndarray, z0_voxel: float, dz_nm: float, px: tuple[float, float]):
        cfg = _curves_of(volume, z0_voxel, dz_nm=dz_nm, px=px, z_fit_nm=z_fit_nm, fit_ab=fit_ab)[0]
        return psf_from_config(cfg, px_size_nm=px)

    return build


def config_dict(psf: AstigmaticPSFConfig, *, px_size_nm: Sequence[float]) -> dict:
    """``{'px_size_nm': ..., 'psf': {'kind': 'astigmatic', ...}}`` with plain floats (for YAML)."""
    d = psf.model_dump(exclude={"roi_px"})
    d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
    px = list(map(float, px_size_nm))
    return {"px_size_nm": px[0] if px[0] == px[1] else px, "psf": d}
