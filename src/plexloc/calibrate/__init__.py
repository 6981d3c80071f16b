"""Bead z-stack calibration: spline PSF per channel, channel transforms, throughput, and our file format.

- :func:`calibrate_spline`: camera-normalised bead stacks -> :class:`PSFCalibration`;
- :func:`save_calibration` / :func:`load_calibration`: the versioned HDF5 file (``PSF.h5``);
- :mod:`plexloc.calibrate.validate`: leave-one-bead-out self-consistency with the MLE fitter.
"""

from plexloc.calibrate.fileformat import (
    ChannelCalibration,
    PSFCalibration,
    load_calibration,
    save_calibration,
)
from plexloc.calibrate.spline import SplineCalibrationResult, calibrate_spline, fit_affine, find_focus

__all__ = [
    "ChannelCalibration",
    "PSFCalibration",
    "SplineCalibrationResult",
    "calibrate_spline",
    "find_focus",
    "fit_affine",
    "load_calibration",
    "save_calibration",
]
