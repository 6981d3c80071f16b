"""Bead z-stack calibration: spline PSF per channel, channel transforms, throughput, and our file format.

- :func:`calibrate_spline`: camera-normalised bead stacks -> :class:`PSFCalibration`; :func:`calibrate_astigmatic`:
  one stack -> the astigmatic Gaussian's defocus curves (:mod:`plexloc.calibrate.astigmatic`);
- :func:`save_calibration` / :func:`load_calibration`: the versioned HDF5 file (``PSF.h5``), its transforms in
  camera-chip coordinates (:func:`chip_transform`, :meth:`PSFCalibration.on_chip`);
- :mod:`plexloc.calibrate.validate`: leave-one-bead-out self-consistency with the MLE fitter;
- :func:`check_channel_alignment`: a movie's first frames against its channel geometry (split-view flips and boxes,
  channel order, transforms), model-free (:mod:`plexloc.calibrate.alignment`).
"""

from plexloc.calibrate.alignment import (
    AlignmentReport,
    ChannelAlignmentWarning,
    check_channel_alignment,
    check_movie_alignment,
)
from plexloc.calibrate.astigmatic import calibrate_astigmatic
from plexloc.calibrate.fileformat import (
    ChannelCalibration,
    PSFCalibration,
    chip_transform,
    load_calibration,
    save_calibration,
)
from plexloc.calibrate.spline import SplineCalibrationResult, calibrate_spline, fit_affine, find_focus

__all__ = [
    "AlignmentReport",
    "ChannelAlignmentWarning",
    "ChannelCalibration",
    "PSFCalibration",
    "SplineCalibrationResult",
    "calibrate_astigmatic",
    "calibrate_spline",
    "check_channel_alignment",
    "check_movie_alignment",
    "chip_transform",
    "find_focus",
    "fit_affine",
    "load_calibration",
    "save_calibration",
]
