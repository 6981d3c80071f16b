"""Known-answer review of ``plexloc calibrate``: bead stacks that are wrong in a realistic way end in a calibration
that is right or in a message naming the file, the bead(s)/slice(s) and the measured value.

Beads are rendered with plexloc's own astigmatic Gaussian PSF (s0 = 120 nm, foci at z = -250 / +250 nm, d = 400 nm,
so the crossing, z = 0, is at the stage's z = 0), Poisson noise, 100 nm pixels, 50 nm steps over +-800 nm. Each test
failed on the code before this review (a silently wrong calibration, or no measured value in the message)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from plexloc.calibrate import calibrate_spline
from plexloc.calibrate.astigmatic import calibrate_astigmatic
from plexloc.cli.main import main
from plexloc.errors import InputError
from plexloc.io import write_movie
from plexloc.psf import AstigmaticPSF

PX = 100.0
DZ = 50.0
ZS = np.arange(-800.0, 801.0, DZ)
GRID = [(1230.0, 1170.0), (1260.0, 3010.0), (3120.0, 1240.0), (3050.0, 3080.0)]


def _beads(xy_nm, *, photons=2e4, bg=20.0, z=ZS, shape=(48, 48), psfs=None, drift_nm=(0.0, 0.0), seed=0):
    """(n_z, H, W) photons; bead i drawn with ``psfs[i]`` (default the astigmatic PSF) and ``photons[i]``; every bead
    moves linearly by ``drift_nm`` (x, y) from the first slice to the last."""
    xy = np.asarray(xy_nm, float)
    n = len(xy)
    psfs = psfs or [None] * n
    phot = np.broadcast_to(np.asarray(photons, float), (n,))
    t = np.linspace(0.0, 1.0, len(z))
    frames = torch.zeros((len(z), *shape))
    for i in range(n):
        psf = psfs[i] or AstigmaticPSF(px_size_nm=(PX, PX), roi_px=21)
        frames += psf.render(
            torch.tensor(xy[i, 0] + drift_nm[0] * t, dtype=torch.float32),
            torch.tensor(xy[i, 1] + drift_nm[1] * t, dtype=torch.float32),
            torch.tensor(z, dtype=torch.float32),
            torch.full((len(z),), float(phot[i])),
            torch.arange(len(z)),
            n_frames=len(z),
            frame_shape=shape,
        )
    return torch.poisson(frames + bg, generator=torch.Generator().manual_seed(seed)).numpy()


def test_a_z_step_given_too_small_is_measured_against_the_beads_shape():
    """True step 50 nm, said 10 nm: calibrated before (d 80 nm instead of 400, foci at -50/+50 nm, silently); now an
    error with the PSF's measured length and width and the step they imply."""
    st = _beads(GRID)
    with pytest.raises(InputError, match=r"beads\.tif.*0\.6\d x longer than wide.*check --z-step \(the ratio read would "
                                         r"mean a step of about .* about 4\d-(5|6)\d nm at a water objective .* "
                                         r"simulated astigmatic Gaussian"):
        calibrate_spline([st], z_step_nm=10.0, px_size_nm=PX, sources=["beads.tif"])
    ok = calibrate_astigmatic(st, z_step_nm=DZ, px_size_nm=PX)
    assert abs(ok.psf.c_nm[0] + 250.0) < 15.0 and abs(ok.psf.d_nm[0] - 400.0) < 20.0
    assert ok.spline.summary["warnings"] == []


def test_lateral_drift_through_the_stack_is_measured():
    """All beads drift 100 nm in x over the stack (stage drift): the calibration kept it silently (leave-one-out xy
    RMSE 22 nm instead of 1.5); now a warning with the measured motion."""
    res = calibrate_spline([_beads(GRID, drift_nm=(100.0, 0.0))], z_step_nm=DZ, px_size_nm=PX)
    (text,) = [w for w in res.summary["warnings"] if "moves by" in w]
    dx, dy = (float(v) for v in text.split("(x, y) = (")[1].split(")")[0].split(","))
    assert 80.0 < dx < 105.0 and abs(dy) < 10.0  # 100 nm over the whole stack, ~97 over the slices in focus


def test_an_aggregate_is_rejected_with_its_width():
    """Three beads and one twice as wide (an aggregate, 3x brighter): it was averaged in (s0 140 nm instead of 120);
    now rejected as 'outlier width' with its width and the median's."""
    wide = AstigmaticPSF(px_size_nm=(PX, PX), roi_px=21, s0_nm=(200.0, 200.0))
    st = _beads(GRID, psfs=[None, None, None, wide], photons=[2e4, 2e4, 2e4, 6e4])
    r = calibrate_astigmatic(st, z_step_nm=DZ, px_size_nm=PX)
    sel = r.spline.selections[0]
    (i,) = np.flatnonzero(sel.reason == "outlier width")
    assert (sel.rows[i], sel.cols[i]) == (30, 30)
    assert "width (Gaussian sigma) 2" in sel.detail[i] and "median 1" in sel.detail[i]
    assert r.spline.summary["n_beads_used"] == [3]
    assert all(abs(s - 120.0) < 4.0 for s in r.psf.s0_nm)


def test_dim_beads_are_refused_with_their_snr():
    """SNR ~3 per bead: calibrated before with the foci at -390 / +96 nm (truth -250 / +250) and no word; now an
    error naming each bead and its SNR."""
    with pytest.raises(InputError, match=r"dim\.tif: the beads are too dim.*\(\d+, \d+\): \d\.\d.*combined over 4 "
                                         r"bead\(s\) \d\.\d < 15"):
        calibrate_spline([_beads(GRID, photons=300.0, bg=100.0)], z_step_nm=DZ, px_size_nm=PX, sources=["dim.tif"])


def test_a_constant_slice_is_named():
    st = _beads(GRID)
    st[10] = 20.0
    with pytest.raises(InputError, match=r"slice\(s\) 10 of 33 hold one constant value \(20\)"):
        calibrate_spline([st], z_step_nm=DZ, px_size_nm=PX)


def test_pixel_size_is_checked_against_the_diffraction_limit():
    """A non-astigmatic bead (sigma 120 nm in focus) with --pixel-size 50 for 100 (65 for 130): a warning with the
    width; 35 for 100: an error (no optics images visible light that narrowly)."""
    flat = AstigmaticPSF(px_size_nm=(PX, PX), roi_px=21, c_nm=(0.0, 0.0))
    st = _beads(GRID, psfs=[flat] * 4)
    res = calibrate_spline([st], z_step_nm=DZ, px_size_nm=50.0)
    assert any("in-focus width (Gaussian sigma) is only 6" in w and "check --pixel-size" in w
               for w in res.summary["warnings"])
    with pytest.raises(InputError, match=r"in-focus width \(Gaussian sigma\) is 4\d nm with --pixel-size 35 nm"):
        calibrate_spline([st], z_step_nm=DZ, px_size_nm=35.0)
    assert not calibrate_spline([st], z_step_nm=DZ, px_size_nm=PX).summary["warnings"]


def test_a_short_stack_says_which_z_range_it_covers():
    res = calibrate_spline([_beads(GRID, z=np.arange(-300.0, 301.0, DZ))], z_step_nm=DZ, px_size_nm=PX)
    import re

    # the true range is -300..+300 nm; the focus found is within a few nm of 0 (-299..+301 since the z smoothing)
    assert any(re.search(r"covers z = -[23]\d\d to \+[23]\d\d nm", w) for w in res.summary["warnings"])


def test_cli_finds_a_12_bit_flat_top_and_names_the_clipped_bead(tmp_path, capsys):
    """A 12-bit camera in a uint16 file: one bead 10x brighter clipped at 4095. Before: 4095 < 65535 was not
    saturated, the flat-topped bead was averaged in. Now the flat top is found, the bead rejected with the slices
    and value, the other three calibrate the PSF."""
    st = np.clip(_beads(GRID, photons=[2e4, 2e4, 2e5, 2e4]), 0, 4095)
    tif = tmp_path / "beads.tif"
    write_movie(tif, st, dtype=np.uint16)
    out = tmp_path / "PSF.yaml"
    rc = main(["calibrate", str(tif), "--z-step", "50", "--pixel-size", "100", "--model", "astigmatic", "--out", str(out),
               "--no-validate"])
    err = capsys.readouterr().err
    assert rc == 0
    assert "share its highest value, 4095 ADU" in err
    assert "bead at pixel (row, col) (12, 31) rejected: saturated: raw 4095 ADU >= 4095 in" in err
    rep = json.loads(out.with_suffix(".json").read_text())
    assert rep["n_beads_used"] == [3]
    assert rep["rejected_beads"][0][0]["reason"] == "saturated"
    assert all(abs(s - 120.0) < 4.0 for s in rep["psf"]["s0_nm"])
    assert "x is in focus at z = -2" in err  # the orientation, so that a reversed stack can be seen
    # every bead clipped: the error names each bead and the level
    write_movie(tif, np.clip(_beads(GRID, photons=2e5), 0, 4095), dtype=np.uint16)
    assert main(["calibrate", str(tif), "--z-step", "50", "--pixel-size", "100", "--out", str(tmp_path / "x.h5")]) == 2
    assert "no beads left: 4 found, 4 saturated; saturated: bead at pixel (row, col)" in capsys.readouterr().err
