"""``transform_at_roi``: one chip transform as it acts on an ROI's positions, shared by the alignment check, the MLE
fitter and the bright-spot check (three copies before session 37)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from plexloc.calibrate.fileformat import chip_transform
from plexloc.errors import InputError
from plexloc.simulation.geometry import apply_transform, transform_at_roi


def _rotation(deg: float, dx: float, dy: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, dx], [s, c, dy], [0.0, 0.0, 1.0]])


def test_roi_positions_map_as_chip_positions_do():
    T = _rotation(1.0, 320.0, -180.0)
    px, off = (100.0, 110.0), (96, 40)
    t_roi = transform_at_roi(T, off, px)
    assert t_roi.dtype == torch.float64
    x = torch.tensor([0.0, 1234.5, 6000.0], dtype=torch.float64)
    y = torch.tensor([0.0, 777.0, 3000.0], dtype=torch.float64)
    ox, oy = off[0] * px[0], off[1] * px[1]
    xr, yr = apply_transform(t_roi, x, y)
    xc, yc = apply_transform(torch.as_tensor(T), x + ox, y + oy)
    assert torch.allclose(xr, xc - ox, atol=1e-9) and torch.allclose(yr, yc - oy, atol=1e-9)
    # a 1 degree rotation 9.6 um from the chip's corner moves the ROI's origin by about 170 nm against the chip's
    assert float(torch.hypot(xr[0] - T[0, 2], yr[0] - T[1, 2])) == pytest.approx(math.radians(1.0) * math.hypot(ox, oy), rel=0.01)


def test_inverse_of_the_calibration_files_chip_transform():
    T = _rotation(-0.7, 55.0, 12.0)
    px, off = (107.0, 107.0), (31, 200)
    measured_on_roi = transform_at_roi(chip_transform(T, (off[0] * px[0], off[1] * px[1])), off, px)
    assert np.allclose(measured_on_roi.numpy(), T, atol=1e-9)


def test_dtype_device_and_the_zero_offset():
    t = torch.as_tensor(_rotation(2.0, 1.0, 2.0), dtype=torch.float32)
    assert transform_at_roi(t, (0, 0), (100.0, 100.0)) is t
    out = transform_at_roi(t, (10, 20), (100.0, 100.0))
    assert out.dtype == torch.float32 and out.device == t.device
    with pytest.raises(ValueError, match="3x3"):
        transform_at_roi(np.eye(2), (1, 1), (100.0, 100.0))


def test_the_alignment_check_names_a_wrong_shape_as_bad_input():
    from plexloc.calibrate.alignment import _transform_at

    with pytest.raises(InputError, match=r"3x3, got shape \(2, 3\)"):
        _transform_at(np.ones((2, 3)), (0, 0), (100.0, 100.0))
