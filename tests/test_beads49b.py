"""Session 49, follow-ups of the bead review (helper "beads2"):

- the dark-slice rule refused a right bead stack: the vectorial PSF of an NA 1.49 objective (160 nm pixels, 100 nm
  steps, +-1200 nm) fades out of the beads' 15 px windows towards the stack's ends (31 % of the light at focus in the
  first slice, 20-25 % less from slice to slice; the same with the beads rendered in 41 px windows, so a real stack
  fades so too), and slices 0 and 1 were named "dark or dropped" (37 %, 45 % of the brightest slice within reach).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

#: the beads' light in their 15 px windows over a +-1200 nm stack in 100 nm steps, relative to focus (measured on the
#: vectorial PSF, NA 1.49, 160 nm pixels, 200 nm beads, 520 nm: tests/test_beads49_review.py's stack)
FADE = np.array([0.311, 0.41, 0.523, 0.645, 0.752, 0.846, 0.912, 0.956, 0.988, 1.0, 1.0, 0.987, 0.963, 0.928, 0.882,
                 0.823, 0.756, 0.681, 0.599, 0.513, 0.437, 0.362, 0.306, 0.262, 0.226])


class _Sel:
    used = np.arange(4)
    rows = np.full(4, 20)
    cols = np.array([20, 40, 60, 80])


def _fading_stack(dark=(), seed=0):
    yy, xx = np.mgrid[0:41, 0:101]
    spot = sum(np.exp(-((xx - c) ** 2 + (yy - 20) ** 2) / (2 * 1.5**2)) for c in _Sel.cols)
    light = FADE.copy()
    light[list(dark)] = 0.0  # the shutter closed: background and noise only
    rng = np.random.default_rng(seed)
    return rng.poisson(10.0 + 3000.0 * light[:, None, None] * spot[None]).astype(float)


@pytest.mark.parametrize("seed", range(3))
def test_beads_fading_out_of_their_windows_at_both_ends_are_not_dark_slices(seed):
    from plexloc.calibrate.spline import _refuse_dark_slices

    _refuse_dark_slices(_fading_stack(seed=seed), _Sel(), roi_px=15, src="fade")  # no error (was: slices 0, 1)


@pytest.mark.parametrize("dark, named", [((0,), "0"), ((0, 1), "0, 1"), ((24,), "24"), ((23, 24), "23, 24"),
                                         ((12,), "12"), ((2,), "2")])
def test_a_dark_slice_on_a_fading_stack_is_still_refused(dark, named):
    from plexloc.calibrate.spline import _refuse_dark_slices
    from plexloc.errors import InputError

    with pytest.raises(InputError, match=rf"slice\(s\) {named} of 25 hold much less of the beads' light"):
        _refuse_dark_slices(_fading_stack(dark), _Sel(), roi_px=15, src="fade")


def test_a_vectorial_na_149_stack_over_1200_nm_in_100_nm_steps_calibrates():
    """The review's stack: refused before as 'slice(s) 0, 1 of 25 ... dark or dropped frame'."""
    from test_beads49_review import _vectorial_stack

    from plexloc.calibrate import calibrate_spline

    st = _vectorial_stack(px=160.0, wl=520.0, bead_nm=200.0, step=100.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = calibrate_spline([st], z_step_nm=100.0, px_size_nm=160.0)
    assert res.summary["n_beads_used"] == [9]


def test_a_baseline_alone_whose_lifted_spots_fit_says_one_thing_about_the_pixel_size():
    """A 2D EMCCD movie (offset 100 ADU, 100 nm pixels right) read with a baseline of 1100: the spots read 0.62x the
    model's width. The warning said "If the baseline is right, check px_size_nm, 100 nm: ... about 161 nm" and, in the
    same warning, "the pixel size (100 nm) and the PSF are not in question" (the spots lifted to the baseline that
    fits: 1.04x). Now only the latter, after the baseline."""
    from test_beads49 import _movie, _read

    for seed in (0, 1):
        r, text = _read(_movie(seed), 100.0, 1100.0)
        assert r.width_scale < 0.8, seed  # narrower as read: the baseline named first
        assert "That is the likelier cause" in text and "the pixel size (100 nm) and the PSF are not in question" in text
        assert text.index("likelier cause") < text.index("not in question")
        assert "If the baseline is right" not in text and "pixels would be about" not in text, text
