"""Session 42: the spline calibration smooths the averaged bead along z, its strength chosen from the beads' measured
noise (SURE), so that dim or few beads no longer give a noisy spline (bench/spline42.py: 20 dim beads z RMSE 26 -> 13
nm, CRLB 12)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from plexloc.calibrate.spline import _average_variance, calibrate_spline, smooth_z

PX, DZ, BG = 100.0, 50.0, 20.0
ZS = np.arange(-800.0, 801.0, DZ)


def _profiles(nz=33, npx=40, seed=0):
    rng = np.random.default_rng(seed)
    k = np.arange(nz)[:, None]
    centre = rng.uniform(12, 20, npx)[None]
    width = rng.uniform(3, 6, npx)[None]
    truth = np.exp(-0.5 * ((k - centre) / width) ** 2)
    return truth.reshape(nz, 5, 8)


def test_smooth_z_reduces_the_error_and_keeps_quadratics():
    truth = _profiles()
    sd = 0.05
    rng = np.random.default_rng(1)
    noisy = truth + rng.normal(0, sd, truth.shape)
    var = np.full(truth.shape, sd**2)
    out, info = smooth_z(noisy, var)
    mse_in = np.mean((noisy - truth) ** 2)
    mse_out = np.mean((out - truth) ** 2)
    assert mse_out < 0.35 * mse_in, (mse_in, mse_out)
    assert info["lam"] > 0 and 3 < info["dof"] < 20
    # SURE is an unbiased estimate of the weighted error per voxel: close to the true one
    assert info["sure"] == pytest.approx(mse_out / sd**2, abs=0.08)
    assert info["sure"] < info["sure_none"] == 1.0
    # the penalty (third differences) leaves a quadratic along z as it is, at any strength
    k = np.arange(33.0)[:, None, None]
    quad = (0.3 + 0.02 * k - 0.001 * k**2) * np.ones((1, 3, 4))
    q, _ = smooth_z(quad, np.full(quad.shape, 1e-4), 1e4)
    np.testing.assert_allclose(q, quad, atol=1e-8)
    # 0: no smoothing
    z0, i0 = smooth_z(noisy, var, 0.0)
    np.testing.assert_array_equal(z0, noisy)
    assert i0["dof"] == 33


def test_smoothing_follows_the_noise():
    truth = _profiles()
    rng = np.random.default_rng(2)
    dofs = []
    for sd in (0.003, 0.03, 0.3):
        _, info = smooth_z(truth + rng.normal(0, sd, truth.shape), np.full(truth.shape, sd**2))
        dofs.append(info["dof"])
    assert dofs[0] > dofs[1] > dofs[2], dofs  # more noise, smoother


def test_average_variance_is_the_variance_of_the_mean():
    rng = np.random.default_rng(3)
    vol = _profiles()
    n, sd = 8, 0.1
    beads = vol[None] + rng.normal(0, sd, (n,) + vol.shape)
    shifts = np.zeros((n, 3))
    avg = beads.mean(axis=0)
    var = _average_variance(beads, shifts, avg)
    assert np.median(var) == pytest.approx(sd**2 / n, rel=0.15)
    assert _average_variance(beads[:1], shifts[:1], beads[0]) is None


def _stack(n, photons, seed):
    from plexloc.calibrate.synthetic import bead_field

    rng = np.random.default_rng(seed)
    g = np.array([((15 + 20 * (i % 5)) * PX, (15 + 20 * (i // 5)) * PX) for i in range(n)]) + rng.uniform(-50, 50, (n, 2))
    rows = (n - 1) // 5 + 1
    mu = bead_field("gauss", [(x, y, photons) for x, y in g], ZS, (20 * rows + 10, 110)) + BG
    return rng.poisson(mu).astype(np.float64)


def _z_rmse(cal, n_per_z=8):
    from plexloc.calibrate.synthetic import true_windows
    from plexloc.mle import FitChannel, fit_rois
    from plexloc.mle.models import roi_model_for

    rng = np.random.default_rng(123)
    z = np.repeat(np.arange(-600.0, 601.0, 100.0), n_per_z)
    x = (20 + rng.uniform(0, 1, len(z))) * PX
    y = (20 + rng.uniform(0, 1, len(z))) * PX
    mu, origins = true_windows("gauss", x, y, z, 13)
    win = rng.poisson(mu * 5000.0 + BG).astype(np.float64)
    fit = fit_rois([torch.as_tensor(win, dtype=torch.float32)], [FitChannel(model=roi_model_for(cal.psf(0)))],
                   origins=torch.as_tensor(origins[:, None, :], dtype=torch.int64))
    return float(np.sqrt(np.mean((fit.z_nm.numpy() - z) ** 2)))


def test_dim_beads_calibration_is_smoothed_and_fits_better():
    """10 dim beads (3000 photons): the plain average's spline gave a z RMSE ~3 x the CRLB (~12 nm); the smoothed one
    (the default) is within ~1.3 x of it. z_smooth=0 is the old calibration."""
    st = _stack(10, 3000.0, 1)
    kw = dict(z_step_nm=DZ, px_size_nm=PX, roi_px=15)
    plain = calibrate_spline([st], z_smooth=0.0, **kw)
    smooth = calibrate_spline([st], **kw)
    assert plain.summary["z_smoothing"] == []
    (info,) = smooth.summary["z_smoothing"]
    assert info["channel"] == 0 and info["lam"] > 1 and info["dof"] < 15
    e_plain, e_smooth = _z_rmse(plain.calibration), _z_rmse(smooth.calibration)
    assert e_plain > 25.0, e_plain
    assert e_smooth < 17.0 and e_smooth < 0.6 * e_plain, (e_plain, e_smooth)
    # the smoothing is along z only: the in-focus slice keeps its lateral shape (sum and peak within a few %)
    a, b = plain.calibration.channels[0], smooth.calibration.channels[0]
    k = int(round(b.z0_voxel))
    assert abs(a.z0_voxel - b.z0_voxel) < 0.5
    assert b.volume[k].max() == pytest.approx(a.volume[k].max(), rel=0.1)


def test_cli_option():
    from plexloc.cli import calibrate as cli

    assert cli._z_smoothing("auto") is None
    assert cli._z_smoothing("off") == 0.0
    assert cli._z_smoothing("2.5") == 2.5
    for bad in ("-1", "nan", "inf", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            cli._z_smoothing(bad)
    ap = argparse.ArgumentParser()
    cli.register(ap.add_subparsers())
    base = ["calibrate", "b.tif", "--z-step", "50", "--pixel-size", "100", "--out", "p.h5"]
    assert ap.parse_args(base).z_smoothing is None
    assert ap.parse_args(base + ["--z-smoothing", "off"]).z_smoothing == 0.0
