"""Session 48, review of the bead-calibration change (helper "revbeadwalk"):

- the PSF-shape check named a camera baseline far above the offset as "the likelier cause" and the pixel size only
  "if the baseline is right" where both were wrong (70 nm pixels configured for 100 and a baseline 600-1000 ADU too
  high: 8 of 8 movies); it now re-checks the frames lifted to the baseline that fits and says whether the baseline is
  the only cause, with the pixel size that the uncut widths give;
- with several channels, the warning naming a bead that may be two beads (3-4 beads) did not say which stack its
  pixel is in (``--exclude-bead`` takes channel 0's pixels).
"""

from __future__ import annotations


import numpy as np
import pytest
import torch

from plexloc.calibrate import calibrate_spline
from plexloc.calibrate.synthetic import bead_field
from test_beadwalk48 import _check, _psf_config, calibrate_above_baseline  # an EMCCD configuration of a given pixel size and baseline

PX, DZ = 100.0, 50.0
ZS = np.arange(-800.0, 801.0, DZ)


def test_a_wrong_baseline_and_a_wrong_pixel_size_are_both_named():
    """EMCCD movie (offset 100 ADU, 100 nm pixels) read with a baseline of 1100 AND 70 nm pixels: the spots read
    0.43x; the old message called the baseline the likelier cause and the pixel size a check 'if the baseline is
    right' (the user fixed the baseline and met the pixel size next run). With the baseline that fits they still read
    ~0.67x: both named, the pixel guess from the uncut widths (~105 nm, not 70 / 0.43 = 163)."""
    from plexloc.psf.check import PSFShapeWarning
    from plexloc.simulation import Simulator

    sim = Simulator(_psf_config(100.0, 100.0))
    raw = sim.simulate_movie(60, generator=torch.Generator().manual_seed(0), density_per_um2=0.5).frames
    wrong = _psf_config(70.0, 1100.0)
    with pytest.warns(PSFShapeWarning) as rec:
        r = _check(Simulator(wrong).to_photons(raw)[0], wrong)
    text = str(rec[0].message)
    assert r.width_scale < 0.5
    assert "below the camera's baseline" in text and "a baseline of at most about" in text
    assert "That is the likelier cause" not in text and "If the baseline is right" not in text
    k2 = float(text.split("With the baseline that fits, the spots still read ")[1].split("x")[0])
    assert 0.6 <= k2 <= 0.75 and "so it is not the only cause" in text
    assert "Check also px_size_nm, 70 nm" in text
    guess = float(text.split("the movie's pixels would be about ")[1].split()[0])
    assert 95 <= guess <= 115
    # the baseline alone (right pixels): still the likelier cause, no re-check finding
    alone = _psf_config(100.0, 1100.0)
    with pytest.warns(PSFShapeWarning) as rec:
        _check(Simulator(alone).to_photons(raw)[0], alone)
    text = str(rec[0].message)
    assert "That is the likelier cause: set the camera's baseline" in text and "not the only cause" not in text


def _stack(pixels, photons: float, *, size: int = 72, bg: float = 20.0, seed: int = 0) -> np.ndarray:
    em = [((c + 0.5) * PX, (r + 0.5) * PX, photons) for r, c in pixels]
    return np.random.default_rng(seed).poisson(bead_field("gauss", em, ZS, (size, size)) + bg).astype(np.float64)


def test_with_two_channels_the_pair_warning_names_channel_0s_stack():
    """Two channels (the second shifted by 3 rows), 3 singles and a pair 1.5 px apart: the warning said 'the bead at
    pixel (row, col) (50, 51)' without saying which stack's pixel it is (--exclude-bead takes channel 0's; channel 1's
    pixel of the same bead is 3 rows lower)."""
    beads = [(20.3, 20.6), (20.5, 50.2), (50.1, 20.4), (50.2, 50.3), (50.2, 51.8)]
    st0 = _stack(beads, 3000.0, seed=5)
    st1 = _stack([(r + 3, c) for r, c in beads], 3000.0, seed=6)
    res = calibrate_spline([st0, st1], z_step_nm=DZ, px_size_nm=PX, sources=["beads_ch0.tif", "beads_ch1.tif"])
    pc = res.summary["pair_shape_check"]
    assert len(pc["named"]) == 1
    r, c = pc["named"][0]
    said = [w for w in res.summary["warnings"] if "may be two beads" in w]
    assert len(said) == 1
    assert said[0].startswith(f"the bead of channel 0 (beads_ch0.tif) at pixel (row, col) ({r}, {c}) may be two beads")
    assert f"--exclude-bead {r} {c}" in said[0]


def test_four_single_beads_are_not_told_the_pair_check_did_not_run():
    """4 single beads: the check ran in its naming mode (3-4 beads) and named none, but the note said 'the double-bead
    shape check did not run'."""
    res = calibrate_spline([_stack([(20.3, 20.6), (20.5, 50.2), (50.1, 20.4), (50.2, 50.3)], 3000.0, seed=5)],
                           z_step_nm=DZ, px_size_nm=PX)
    pc = res.summary["pair_shape_check"]
    assert pc["named"] == [] and not pc["ran"]
    assert pc["n_measured"] == 4  # PSF.json said 0 beads measured where it named from 4
    assert "did not run" not in pc["note"]
    assert pc["note"].startswith("the double-bead shape check rejects beads from 5: 4 bead(s) reached it, it needs 5; "
                                 "with 4 it only names beads that look double and named none")
    # two beads: it did not run (as before)
    two = calibrate_spline([_stack([(20.3, 20.6), (50.1, 40.4)], 3000.0, seed=5)], z_step_nm=DZ, px_size_nm=PX)
    assert "named" not in two.summary["pair_shape_check"]
    assert two.summary["pair_shape_check"]["note"].startswith("the double-bead shape check did not run: 2 bead(s)")


def test_calibrate_and_the_psf_check_share_one_baseline_rule(tmp_path, monkeypatch, capsys):
    """plexloc calibrate's baseline warning repeated the PSF check's rule (dim_offset, its margin, the baseline that
    fits) in its own copy; one function now: the CLI's sentence carries what baseline_excess measures."""
    from plexloc.psf import check

    calls = []
    real = check.baseline_excess

    def counting(frames, camera):
        calls.append(tuple(frames.shape))
        return real(frames, camera)

    monkeypatch.setattr(check, "baseline_excess", counting)
    rc, err, _ = calibrate_above_baseline(tmp_path, capsys)
    assert rc == 2 and calls == [(10, 32, 32)]
    assert "sit 28" in err and "a baseline of at most about 1" in err and "would fit (now 400)" in err


def test_two_channels_left_with_two_beads_by_exclude_bead_say_why():
    """Two channels of 4 beads, two left out with --exclude-bead: the error was 'an affine transform needs >= 3 beads
    matched in both channels, got 2', naming neither the stack, the exclusion nor the fix."""
    from plexloc.errors import InputError

    beads = [(20.3, 20.6), (20.5, 50.2), (50.1, 20.4), (50.2, 50.3)]
    st0 = _stack(beads, 3000.0, seed=5)
    st1 = _stack([(r + 1, c) for r, c in beads], 3000.0, seed=6)
    with pytest.raises(InputError) as err:
        calibrate_spline([st0, st1], z_step_nm=DZ, px_size_nm=PX, sources=["a.tif", "b.tif"],
                         exclude_px=[(20, 20), (20, 50)])
    text = str(err.value)
    assert text.startswith("a.tif: an affine transform from channel 0 to channel 1 needs >= 3 beads used in both "
                           "channels, got 2 (4 found, 2 excluded")
    assert "to fix: excluded (2): beads left out by --exclude-bead: give fewer" in text


def test_spots_cut_by_a_baseline_far_too_high_are_not_called_elongated():
    """2D movie (100 nm pixels, offset 100 ADU) read with a baseline of 2100 and 70 nm pixels: the cut spots' widths
    scatter (sigma_x/sigma_y 0.48-2.65) and the message asked 'Is this a 3D (astigmatic) movie?' without a word about
    the baseline; now the baseline comes first and, the lifted spots still reading narrower, the pixel size too."""
    from plexloc.psf.check import PSFShapeWarning
    from plexloc.simulation import Simulator

    raw = Simulator(_psf_config(100.0, 100.0)).simulate_movie(
        60, generator=torch.Generator().manual_seed(0), density_per_um2=0.5).frames
    wrong = _psf_config(70.0, 2100.0)
    with pytest.warns(PSFShapeWarning) as rec:
        _check(Simulator(wrong).to_photons(raw)[0], wrong)
    text = str(rec[0].message)
    assert "Is this a 3D (astigmatic) movie" not in text
    assert "below the camera's baseline" in text and "a baseline of at most about" in text
    assert "so it is not the only cause" in text and "px_size_nm" in text


def test_a_bead_unmatched_because_its_partner_was_rejected_says_so():
    """Channel 1 holds an extra bead 8 px from one bead, so that bead's partner there is rejected as too close: channel
    0's bead was 'unmatched in channel 1' and the fix said to check the stacks' order (which was right)."""
    from plexloc.calibrate.beads import rejection_advice

    beads = [(20.3, 20.6), (20.5, 50.2), (50.1, 20.4), (50.2, 50.3)]
    st0 = _stack(beads, 3000.0, seed=5)
    st1 = _stack(beads + [(50.2, 58.3)], 3000.0, seed=6)
    res = calibrate_spline([st0, st1], z_step_nm=DZ, px_size_nm=PX, sources=["a.tif", "b.tif"])
    assert res.summary["n_beads_used"] == [3, 3]
    (bead,) = [b for b in res.summary["rejected_beads"][0] if b["reason"] == "unmatched in channel 1"]
    assert (bead["row"], bead["col"]) == (50, 50)
    assert bead["detail"].startswith("its bead in channel 1 (b.tif), pixel (row, col) (50, 50), was rejected there: "
                                     "too close")
    assert "where its bead there was rejected, that reason's fix" in rejection_advice(res.selections[0])
