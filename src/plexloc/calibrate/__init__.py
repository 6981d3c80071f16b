"""Bead z-stack calibration: spline PSF per channel, channel transforms, throughput, and our file format.

- :func:`calibrate_spline`: camera-normalised bead stacks -> :class:`PSFCalibration`;
- :func:`save_calibration` / :func:`load_calibration`: the versioned HDF5 file (``PSF.h5``), its transforms in
  camera-chip coordinates (:func:`chip_transform`, :meth:`PSFCalibration.on_chip`);
- :mod:`plexloc.calibrate.validate`: leave-one-bead-out self-consistency with the MLE fitter.
"""

from plexloc.calibrate.fileformat import (
    ChannelCalibration,
    PSFCalibration,
    chip_transform,
    load_calibration,
    save_calibration,
)
from plexloc.calibrate.spline import SplineCalibrationResult, calibrate_spline, fit_affine, find_focus

__all__ = [
    "ChannelCalibration",
    "PSFCalibration",
    "SplineCalibrationResult",
    "calibrate_spline",
    "chip_transform",
    "find_focus",
    "fit_affine",
    "load_calibration",
    "save_calibration",
]
