"""The bead registration's mover (z spline coefficients and spectra computed once) against scipy's shift."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from plexloc.calibrate.register import _move, _Mover, register


def _scipy_move(volume, shift):
    """The definition: z by scipy's cubic spline (mode nearest), y and x by a Fourier shift of the zero-padded slices."""
    out = ndimage.shift(volume, (shift[0], 0.0, 0.0), order=3, mode="nearest")
    ny, nx = out.shape[1:]
    spec = ndimage.fourier_shift(np.fft.fft2(np.pad(out, ((0, 0), (0, ny), (0, nx)))), (0.0, shift[1], shift[2]))
    return np.real(np.fft.ifft2(spec))[:, :ny, :nx]


@pytest.mark.parametrize("shift", [(0.37, 0.0, 0.0), (-2.6, 0.3, -0.8), (0.0, 0.4, 0.2), (0.0, 0.0, 0.0),
                                   (9.7, 1.0, 1.0), (-9.99, 0.0, 0.0), (15.2, 0.2, 0.0), (-30.0, 0.0, 0.1)])
def test_the_mover_is_scipys_shift(shift):
    v = np.random.default_rng(0).random((41, 13, 11))
    m = _Mover(v)
    np.testing.assert_allclose(m(shift), _scipy_move(v, shift), rtol=0, atol=1e-12)
    np.testing.assert_allclose(_move(v, shift), _scipy_move(v, shift), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(m((0.0, 0.0, 0.0)), v)  # untouched: the input itself, a copy


def test_registration_finds_a_known_subvoxel_shift():
    z, y, x = np.mgrid[:61, :21, :21].astype(float)
    true = np.array([1.3, -0.4, 0.7])

    def bead(c):
        return np.exp(-((z - 30 - c[0]) ** 2 / 60.0 + (y - 10 - c[1]) ** 2 / 4.0 + (x - 10 - c[2]) ** 2 / 4.0))

    s, resid = register(bead(true), bead(np.zeros(3)))
    np.testing.assert_allclose(s, true, atol=0.02)
    assert resid < 0.02
