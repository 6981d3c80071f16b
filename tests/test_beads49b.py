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


def _steps(text: str, where: str) -> tuple[float, float]:
    """The step range (nm) the message gives ``where`` ("at an oil objective" / "at a water objective")."""
    import re

    m = re.search(rf"about ([0-9]+)-([0-9]+) nm {where}", text)
    assert m, text
    return float(m.group(1)), float(m.group(2))


def test_a_z_step_twice_the_step_taken_is_told_the_steps_real_optics_would_mean():
    """plexloc's astigmatic Gaussian (3.3x longer than wide), 50 nm steps given as 100: 6.74x. The advice was "a ratio
    of 3 would mean a step of about 45 nm", a ratio real high-NA oil optics do not read (1.6-2.5): now both ranges."""
    from test_beads49 import _stack4

    from plexloc.calibrate import calibrate_spline

    res = calibrate_spline([_stack4()], z_step_nm=100.0, px_size_nm=100.0)
    (said,) = [w for w in res.summary["warnings"] if "longer than wide" in w]
    oil, water = _steps(said, "at an oil objective of NA 1.4-1.49"), _steps(said, "at a water objective")
    assert 20 <= oil[0] < oil[1] <= 40 and water[0] <= 50.0 <= water[1] <= 65, (oil, water)
    assert "ratio of 3" not in said and "(which reads 1.6-2.5 x with the right step)" in said


def test_half_the_step_on_a_vectorial_na_149_stack_is_told_a_range_that_holds_the_true_step():
    """The vectorial PSF of an NA 1.49 objective (200 nm beads, 160 nm pixels, 520 nm), 50 nm steps given as 25: 0.8x
    longer than wide, refused (< 1.2), and told "a ratio of 3 would mean a step of about 91 nm" (true 50)."""
    from test_beads49_review import _vectorial_stack

    from plexloc.calibrate import calibrate_spline
    from plexloc.errors import InputError

    st = _vectorial_stack(px=160.0, wl=520.0, bead_nm=200.0, step=50.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError, match=r"longer than wide") as err:
            calibrate_spline([st], z_step_nm=25.0, px_size_nm=160.0)
    lo, hi = _steps(str(err.value), "at an oil objective of NA 1.4-1.49")
    assert lo <= 50.0 <= hi <= 80.0, (lo, hi)
    assert "ratio of 3" not in str(err.value)


def test_too_few_slices_for_the_astigmatic_fit_say_the_astigmatic_fit_needs_them():
    from test_beads49 import _stack4

    from plexloc.calibrate import calibrate_spline
    from plexloc.calibrate.astigmatic import calibrate_astigmatic
    from plexloc.errors import InputError

    st = _stack4()[:7]
    with pytest.raises(InputError) as err:
        calibrate_astigmatic(st, z_step_nm=100.0, px_size_nm=100.0, sources=["beads.tif"])
    text = str(err.value)
    assert text.startswith("beads.tif: a z-stack needs >= 8 slices, got 7 (z -300 to +300 nm around its middle")
    assert "the astigmatic fit needs them" in text and "spline" in text and "spline along z" not in text
    with pytest.raises(InputError, match=r"got 7 .*: the spline along z needs them; take the stack"):
        calibrate_spline([st], z_step_nm=100.0, px_size_nm=100.0)


def test_calibrates_baseline_warning_names_the_camera_field(tmp_path, capsys):
    """calibrate's own warning of a baseline above the stack's offset said "set it to the offset" without the field;
    psf.check's warning names it. --camera cam.yaml (baseline 400, offset 100) and a config's channel camera."""
    import tifffile
    import yaml
    from test_beadwalk48 import calibrate_above_baseline

    from plexloc.cli.main import main

    rc, err, _ = calibrate_above_baseline(tmp_path, capsys)
    assert "set it (baseline in " in err and "cam.yaml) to the offset measured on dark frames" in err, err
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"px_size_nm": 100.0, "frame_size": [32, 32],
                                   "psf": {"kind": "gaussian", "sigma_nm": 130.0},
                                   "camera": {"kind": "scmos", "qe": 1.0, "e_per_adu": 1.0, "baseline": 400.0,
                                              "read_sigma": 1.0, "spurious_charge": 0.0}}))
    stack = tmp_path / "beads.tif"
    tifffile.imwrite(stack, (100 + np.random.default_rng(0).poisson(20.0, (10, 32, 32))).astype(np.uint16))
    main(["calibrate", str(stack), "--z-step", "50", "--pixel-size", "100", "--config", str(cfg), "--out",
          str(tmp_path / "PSF2.h5"), "--no-validate"])
    err = capsys.readouterr().err
    assert "set it (camera.baseline in " in err and "config.yaml) to the offset" in err, err
