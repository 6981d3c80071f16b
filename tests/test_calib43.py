"""Session 43 mends of the bead calibration:

- impossible option values (negative, NaN, infinite, not an integer) are an InputError naming the option and the value;
  ``z_smooth < 0`` read as "no smoothing", a NaN ``saturation_adu`` or a negative ``dim_fraction`` turned their check
  off, a negative pixel size calibrated, all without a word;
- the pair-shape check (a double bead missed by the two-spot fit) needs 5 beads: where it did not run, the summary
  says so and why (``pair_shape_check``), and ``plexloc calibrate`` prints it and writes it to PSF.json.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

from plexloc.calibrate import beads as B
from plexloc.calibrate import calibrate_spline
from plexloc.calibrate.astigmatic import calibrate_astigmatic
from plexloc.calibrate.spline import smooth_z
from plexloc.cli.main import main
from plexloc.errors import InputError
from plexloc.io import write_movie
from plexloc.psf import AstigmaticPSF

PX = 100.0
DZ = 50.0
ZS = np.arange(-800.0, 801.0, DZ)


def _beads(n: int, *, seed: int = 0) -> np.ndarray:
    """(n_z, H, W) photons: ``n`` astigmatic Gaussian beads (2e4 photons, bg 20, Poisson) 20 px apart on a 3-column grid."""
    rng = np.random.default_rng(seed)
    xy = np.array([((15 + 20 * (i % 3)) * PX, (15 + 20 * (i // 3)) * PX) for i in range(n)]) + rng.uniform(-50, 50, (n, 2))
    shape = (20 * ((n + 2) // 3) + 10, 70)
    psf = AstigmaticPSF(px_size_nm=(PX, PX), roi_px=21)
    frames = torch.zeros((len(ZS), *shape))
    for x, y in xy:
        frames += psf.render(torch.full((len(ZS),), float(x)), torch.full((len(ZS),), float(y)),
                             torch.tensor(ZS, dtype=torch.float32), torch.full((len(ZS),), 2e4), torch.arange(len(ZS)),
                             n_frames=len(ZS), frame_shape=shape)
    return torch.poisson(frames + 20.0, generator=torch.Generator().manual_seed(seed)).numpy()


@pytest.fixture(scope="module")
def noise_stack():
    """A valid stack (10 slices of Poisson background): the option checks come before anything is detected."""
    return np.random.default_rng(0).poisson(20.0, (10, 30, 30)).astype(np.float64)


# --- (a) impossible values ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [-1.0, -1e-9, math.nan, math.inf, -math.inf, "1"])
def test_z_smooth_out_of_range_is_named(noise_stack, value):
    with pytest.raises(InputError, match=r"z_smooth must be None \(auto.*0 \(off\).*got " + re.escape(repr(value))):
        calibrate_spline([noise_stack], z_step_nm=DZ, px_size_nm=PX, z_smooth=value)


@pytest.mark.parametrize("options, name", [
    ({"z_step_nm": math.inf}, r"z_step_nm \(--z-step\) must be a finite number > 0, got inf"),
    ({"z_step_nm": math.nan}, r"z_step_nm \(--z-step\) must be a finite number > 0, got nan"),
    ({"px_size_nm": -100.0}, r"px_size_nm \(--pixel-size\) must be a finite number > 0, got -100.0"),
    ({"px_size_nm": math.nan}, r"px_size_nm \(--pixel-size\) must be a finite number > 0, got nan"),
    ({"px_size_nm": (100.0, 0.0)}, r"px_size_nm \(--pixel-size\) must be a finite number > 0, got 0.0"),
    ({"px_size_nm": (100.0, 100.0, 100.0)}, r"px_size_nm must be one pixel size or \(x, y\)"),
    ({"roi_px": math.nan}, r"roi_px must be an integer, got nan"),
    ({"roi_px": 15.5}, r"roi_px must be an integer, got 15.5"),
    ({"saturation_adu": math.nan}, r"saturation_adu must be a finite number > 0, got nan"),
    ({"saturation_adu": -5.0}, r"saturation_adu must be a finite number > 0, got -5.0"),
    ({"dim_fraction": -0.1}, r"dim_fraction must be a finite number >= 0 and < 1, got -0.1"),
    ({"dim_fraction": math.nan}, r"dim_fraction must be a finite number >= 0 and < 1, got nan"),
    ({"min_distance_px": -3}, r"min_distance_px must be an integer >= 0, got -3"),
    ({"raw_stacks": []}, r"raw_stacks must hold one stack of each channel's shape"),
])
def test_impossible_calibration_options_are_named(noise_stack, options, name):
    kw = {"z_step_nm": DZ, "px_size_nm": PX, **options}
    with pytest.raises(InputError, match=name):
        calibrate_spline([noise_stack], **kw)


@pytest.mark.parametrize("options, name", [
    ({"roi_px": 14}, r"roi_px must be an odd integer >= 3, got 14"),
    ({"threshold_sigma": -8.0}, r"threshold_sigma must be a finite number > 0, got -8.0"),
    ({"double_fraction": math.nan}, r"double_fraction must be a finite number > 0 and <= 1, got nan"),
    ({"double_fraction": 1.5}, r"double_fraction must be a finite number > 0 and <= 1, got 1.5"),
])
def test_impossible_detection_options_are_named(noise_stack, options, name):
    with pytest.raises(InputError, match=name):
        B.detect_beads(noise_stack, **{"roi_px": 15, **options})


def test_smooth_z_and_astigmatic_options(noise_stack):
    vol = np.random.default_rng(1).normal(size=(12, 5, 5))
    for lam in (-1.0, math.nan, math.inf):
        with pytest.raises(InputError, match=r"lam \(the z smoothing's penalty\) must be a finite number >= 0"):
            smooth_z(vol, np.ones_like(vol), lam)
    out, info = smooth_z(vol, np.ones_like(vol), 0.0)  # 0 is "off", as documented
    assert info["lam"] == 0.0 and np.array_equal(out, vol)
    with pytest.raises(InputError, match=r"z_fit_nm must be a finite number > 0, got -800.0"):
        calibrate_astigmatic(noise_stack, z_step_nm=DZ, px_size_nm=PX, z_fit_nm=-800.0)


def test_valid_options_still_calibrate_and_a_negative_z_smooth_is_not_off():
    """The same beads: ``z_smooth=0`` is the plain average, a positive penalty smooths it; -1 was the plain average."""
    st = _beads(5, seed=3)
    kw = dict(z_step_nm=DZ, px_size_nm=(PX, PX), roi_px=15, saturation_adu=1e9, dim_fraction=0.0, min_distance_px=15)
    plain = calibrate_spline([st], z_smooth=0, **kw)
    smooth = calibrate_spline([st], z_smooth=10.0, **kw)
    assert plain.summary["z_smoothing"] == [] and smooth.summary["z_smoothing"][0]["lam"] == 10.0
    v0, v1 = plain.calibration.channels[0].volume, smooth.calibration.channels[0].volume
    assert not np.allclose(v0, v1)
    with pytest.raises(InputError, match="z_smooth"):
        calibrate_spline([st], z_smooth=-1.0, **kw)


# --- (b) the pair-shape check: ran or not, and why ---------------------------------------------------------------


def test_pair_shape_check_that_did_not_run_is_recorded():
    res = calibrate_spline([_beads(4, seed=5)], z_step_nm=DZ, px_size_nm=PX, roi_px=15)
    assert res.summary["n_beads_used"] == [4]
    pc = res.summary["pair_shape_check"]
    assert (pc["ran"], pc["n_beads"], pc["min_beads"], pc["n_rejected"]) == (False, 4, B.PAIR_SHAPE_MIN_BEADS, 0)
    assert pc["reason"] == f"4 bead(s) reached it, it needs {B.PAIR_SHAPE_MIN_BEADS}"
    # with 3-4 beads it names, never rejects (session 48): the note says so, not "did not run"
    assert pc["note"].startswith("the double-bead shape check rejects beads from 5: 4 bead(s) reached it, it needs 5; "
                                 "with 4 it only names beads")
    assert not any("double-bead" in w for w in res.summary["warnings"])  # a check not made, not a finding


def test_pair_shape_check_that_ran_is_recorded():
    res = calibrate_spline([_beads(6, seed=6)], z_step_nm=DZ, px_size_nm=PX, roi_px=15)
    assert res.summary["n_beads_used"] == [6]
    pc = res.summary["pair_shape_check"]
    assert (pc["ran"], pc["n_beads"], pc["n_measured"], pc["n_rejected"], pc["reason"]) == (True, 6, 6, 0, "")
    assert "note" not in pc


def test_cli_prints_and_reports_a_pair_shape_check_that_did_not_run(tmp_path, capsys):
    write_movie(tmp_path / "beads.tif", np.round(_beads(4, seed=5)).astype(np.uint16))
    out = tmp_path / "PSF.h5"
    rc = main(["calibrate", str(tmp_path / "beads.tif"), "--z-step", "50", "--pixel-size", "100", "--out", str(out),
               "--no-validate"])
    assert rc == 0
    err = capsys.readouterr().err
    assert ("plexloc calibrate: note: the double-bead shape check rejects beads from 5: 4 bead(s) reached it, it "
            "needs 5; with 4 it only names beads") in err
    rep = json.loads(out.with_suffix(".json").read_text())
    assert rep["pair_shape_check"]["ran"] is False and rep["pair_shape_check"]["n_beads"] == 4
    assert "only names beads that look double and named none" in rep["pair_shape_check"]["note"]
