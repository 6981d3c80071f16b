"""PSF models behind one interface (:class:`PSF`), with a registry by name.

- ``gaussian``: 2D Gaussian, pixel-integrated;
- ``astigmatic``: 3D astigmatic Gaussian (Huang et al. 2008 defocus model);
- ``spline``: cubic spline of a measured PSF volume (SMAP ``_3dcal.mat``).

:func:`check_psf_shape` (:mod:`plexloc.psf.check`) compares a movie's spot shapes with a model's PSF.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plexloc.config.io import validate_section
from plexloc.config.models import AstigmaticPSFConfig, GaussianPSFConfig, PSFConfig, SplinePSFConfig
from plexloc.errors import InputError
from plexloc.psf.base import PSF
from plexloc.psf.check import PSFShapeReport, PSFShapeWarning, check_psf_shape, check_psf_shapes
from plexloc.psf.gaussian import AstigmaticPSF, GaussianPSF
from plexloc.psf.spline import SplinePSF, coefficients_from_volume

PSFS: dict[str, type[PSF]] = {"gaussian": GaussianPSF, "astigmatic": AstigmaticPSF, "spline": SplinePSF}


def psf_from_config(
    config: PSFConfig | Mapping[str, Any], *, px_size_nm: float | tuple[float, float], z_extent_nm: float = 750.0
) -> PSF:
    """Build a PSF from its typed configuration, or a dict of its fields as in a YAML file's ``psf:`` section
    (``{"kind": "astigmatic", "s0_nm": [120, 120], ...}``, validated as the file's would be).

    ``px_size_nm``: the camera pixel (nm; one number or (x, y)). ``z_extent_nm`` (largest |z| to be rendered, nm)
    sizes the astigmatic model's default patch.

    Raises:
        InputError: a dict without a known ``kind`` or with a field out of range, naming the field and value.
    """
    if isinstance(config, Mapping):
        config = validate_section(config, PSFConfig, "psf")
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
