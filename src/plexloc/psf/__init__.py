"""PSF models behind one interface (:class:`PSF`), with a registry by name.

- ``gaussian``: 2D Gaussian, pixel-integrated;
- ``astigmatic``: 3D astigmatic Gaussian (Huang et al. 2008 defocus model);
- ``spline``: cubic spline of a measured PSF volume (SMAP ``_3dcal.mat``).

:func:`check_psf_shape` (:mod:`plexloc.psf.check`) compares a movie's spot shapes with a model's PSF.
"""

from __future__ import annotations

from plexloc.config.models import AstigmaticPSFConfig, GaussianPSFConfig, PSFConfig, SplinePSFConfig
from plexloc.errors import InputError
from plexloc.psf.base import PSF
from plexloc.psf.check import PSFShapeReport, PSFShapeWarning, check_psf_shape, check_psf_shapes
from plexloc.psf.gaussian import AstigmaticPSF, GaussianPSF
from plexloc.psf.spline import SplinePSF, coefficients_from_volume

PSFS: dict[str, type[PSF]] = {"gaussian": GaussianPSF, "astigmatic": AstigmaticPSF, "spline": SplinePSF}


def psf_from_config(
    config: PSFConfig, *, px_size_nm: tuple[float, float], z_extent_nm: float = 750.0
) -> PSF:
    """Build a PSF from its typed configuration.

    ``z_extent_nm`` (largest |z| to be rendered) sizes the astigmatic model's default patch.
    """
    if isinstance(config, GaussianPSFConfig):
        return GaussianPSF(sigma_nm=config.sigma_nm, px_size_nm=px_size_nm, roi_px=config.roi_px)
    if isinstance(config, AstigmaticPSFConfig):
        return AstigmaticPSF(
            s0_nm=config.s0_nm,
            c_nm=config.c_nm,
            d_nm=config.d_nm,
            A=config.A,
            B=config.B,
            px_size_nm=px_size_nm,
            roi_px=config.roi_px,
            z_extent_nm=z_extent_nm,
        )
    if isinstance(config, SplinePSFConfig):
        return SplinePSF.from_file(config.calibration, px_size_nm=px_size_nm, channel=config.channel, roi_px=config.roi_px)
    raise InputError(f"unknown PSF kind {getattr(config, 'kind', config)!r}; known: {sorted(PSFS)}")  # pragma: no cover


__all__ = ["PSF", "PSFS", "AstigmaticPSF", "GaussianPSF", "PSFShapeReport", "PSFShapeWarning", "SplinePSF",
           "check_psf_shape", "check_psf_shapes", "coefficients_from_volume", "psf_from_config"]
