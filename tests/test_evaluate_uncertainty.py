"""Errors against the CRLB and calibration of predicted sigmas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from plexloc.camera import IdealCamera
from plexloc.evaluate.matching import match
from plexloc.evaluate.uncertainty import (
    error_scores,
    neighbour_distance_nm,
    offset_calibration,
    robust_sd,
    sigma_calibration,
    table_crlb,
    zscore_by_neighbour,
    zscore_slabs,
)
from plexloc.psf import GaussianPSF
from plexloc.table import LocTable


def test_errors_at_the_bound_score_one_and_scaled_errors_scale():
    rng = np.random.default_rng(0)
    n = 4000
    truth = LocTable({"frame": np.arange(n), "x_nm": rng.uniform(1000, 2000, n), "y_nm": rng.uniform(1000, 2000, n),
                      "z_nm": np.zeros(n), "photons": rng.uniform(500, 5000, n), "bg": np.full(n, 20.0)})
    bound = table_crlb(truth, [(GaussianPSF(sigma_nm=130.0), IdealCamera())])
    # Mortensen's scaling: the bound falls with photons
    order = np.argsort(truth["photons"])
    assert bound["crlb_x_nm"][order[0]] > 2 * bound["crlb_x_nm"][order[-1]]
    for scale in (1.0, 2.0):
        dx = rng.normal(0, 1, n) * bound["crlb_x_nm"] * scale
        dy = rng.normal(0, 1, n) * bound["crlb_y_nm"] * scale
        pred = truth.with_columns(x_nm=truth["x_nm"] + dx, y_nm=truth["y_nm"] + dy,
                                  sigma_x_nm=bound["crlb_x_nm"], sigma_y_nm=bound["crlb_y_nm"])
        m = match(truth, pred, dim=2)
        s = error_scores(pred, m, bound, dim=2)
        assert s["crlb_ratio_lat"] == pytest.approx(scale, rel=0.05)
        assert s["zscore_std_x"] == pytest.approx(scale, rel=0.05)
        assert math.isnan(s["crlb_ratio_ax"]) and math.isnan(s["zscore_std_z"])


def test_zscore_slabs_find_the_slab_whose_sigmas_are_under_reported():
    """Errors calibrated everywhere except z > 400 nm, where the predicted sigma is half the true one:
    the per-slab z-score sd is 1 in the lower slabs and 2 in the top one, while the pooled sd is between."""
    rng = np.random.default_rng(1)
    n = 6000
    z = rng.uniform(-600, 600, n)
    truth = LocTable({"frame": np.arange(n), "x_nm": rng.uniform(1000, 2000, n), "y_nm": rng.uniform(1000, 2000, n),
                      "z_nm": z, "photons": np.full(n, 2000.0)})
    true_sigma = np.full(n, 10.0)
    reported = np.where(z > 400, 5.0, 10.0)
    err = rng.normal(0, 1, (n, 3)) * true_sigma[:, None] * [1, 1, 3]
    pred = truth.with_columns(x_nm=truth["x_nm"] + err[:, 0], y_nm=truth["y_nm"] + err[:, 1], z_nm=z + err[:, 2],
                              sigma_x_nm=reported, sigma_y_nm=reported, sigma_z_nm=3 * reported)
    m = match(truth, pred, dim=3)
    slabs = zscore_slabs(pred, m, truth, [-600, -200, 200, 400, 600])
    assert [s["n"] for s in slabs] == pytest.approx([2000, 2000, 1000, 1000], rel=0.1)
    for s in slabs[:3]:
        assert s["zscore_std_x"] == pytest.approx(1.0, abs=0.07) and s["zscore_std_z"] == pytest.approx(1.0, abs=0.07)
    assert slabs[3]["zscore_std_x"] == pytest.approx(2.0, abs=0.15) and slabs[3]["zscore_std_z"] == pytest.approx(2.0, abs=0.15)
    pooled = error_scores(pred, m, {k: np.ones(n) for k in ("crlb_x_nm", "crlb_y_nm", "crlb_z_nm")}, dim=3)
    assert 1.1 < pooled["zscore_std_x"] < 1.6
    with pytest.raises(ValueError, match="ascending"):
        zscore_slabs(pred, m, truth, [0, 0])


def test_robust_zscore_spread_ignores_a_minority_of_gross_errors():
    """Calibrated sigmas with 5 % of the localizations 10 sigma off (e.g. two emitters reported as one): the
    z-score sd is far above 1, its robust version stays at 1; sigmas half the true ones raise both to 2."""
    rng = np.random.default_rng(2)
    n = 8000
    truth = LocTable({"frame": np.arange(n), "x_nm": rng.uniform(1000, 2000, n), "y_nm": rng.uniform(1000, 2000, n),
                      "z_nm": np.zeros(n), "photons": np.full(n, 2000.0)})
    sigma = np.full(n, 10.0)
    err = rng.normal(0, 1, (n, 3)) * 10.0
    gross = rng.random(n) < 0.05
    err[gross] = rng.choice([-1.0, 1.0], (int(gross.sum()), 3)) * 100.0
    ones = {k: np.ones(n) for k in ("crlb_x_nm", "crlb_y_nm", "crlb_z_nm")}
    for reported, expect in ((sigma, 1.0), (sigma / 2, 2.0)):
        pred = truth.with_columns(x_nm=truth["x_nm"] + err[:, 0], y_nm=truth["y_nm"] + err[:, 1], z_nm=err[:, 2],
                                  sigma_x_nm=reported, sigma_y_nm=reported, sigma_z_nm=reported)
        s = error_scores(pred, match(truth, pred, dim=3), ones, dim=3)
        for ax in "xyz":
            assert s[f"zscore_std_{ax}"] > 2.2 * expect  # sqrt(0.95 + 0.05 * 100) = 2.4 for calibrated sigmas
            # 5 % contamination moves the median absolute deviation by ~6 %, the sd by ~140 %
            assert 0.98 * expect < s[f"zscore_rsd_{ax}"] < 1.12 * expect
    assert robust_sd(np.array([1.0, 1.0, 1.0])) == 0.0
    assert robust_sd(rng.normal(0, 3, 200000)) == pytest.approx(3.0, rel=0.01)


def _singles_and_pairs(n_single: int, n_pairs: int) -> tuple[LocTable, np.ndarray, np.ndarray]:
    """Truth of ``n_single`` frames with one emitter each, then ``n_pairs`` frames with two 150 nm apart."""
    frames = np.r_[np.arange(n_single), np.repeat(n_single + np.arange(n_pairs), 2)]
    x = np.r_[np.full(n_single, 2000.0), np.tile([2000.0, 2150.0], n_pairs)]
    y = np.full(len(frames), 2000.0)
    truth = LocTable({"frame": frames, "x_nm": x, "y_nm": y, "z_nm": np.zeros(len(x)), "photons": np.full(len(x), 1e3)})
    return truth, x, y


def test_zscore_by_neighbour_separates_close_pairs_from_isolated_emitters():
    """Isolated emitters with calibrated sigmas, pairs 150 nm apart whose errors are 3x the reported sigma: the
    close group's spread is 3, the isolated group's 1, and its tail beyond 4 sigma is large."""
    rng = np.random.default_rng(3)
    n_single, n_pairs = 3000, 1500
    truth, x, y = _singles_and_pairs(n_single, n_pairs)
    nn = neighbour_distance_nm(truth)
    assert np.all(np.isinf(nn[:n_single])) and np.allclose(nn[n_single:], 150.0)
    scale = np.r_[np.ones(n_single), np.full(2 * n_pairs, 3.0)]
    err = rng.normal(0, 1, (len(x), 2)) * 10.0 * scale[:, None]
    pred = truth.with_columns(x_nm=x + err[:, 0], y_nm=y + err[:, 1], sigma_x_nm=np.full(len(x), 10.0),
                              sigma_y_nm=np.full(len(x), 10.0))
    groups = zscore_by_neighbour(pred, match(truth, pred, dim=2), truth)
    assert [g["n"] for g in groups] == [2 * n_pairs, 0, n_single]
    assert groups[0]["share"] == pytest.approx(0.5)
    assert groups[0]["zscore_std_x"] == pytest.approx(3.0, rel=0.06) and groups[0]["zscore_rsd_y"] == pytest.approx(3.0, rel=0.08)
    assert groups[2]["zscore_std_x"] == pytest.approx(1.0, rel=0.05) and groups[2]["tail4"] < 0.002
    assert groups[0]["tail4"] > 0.15  # P(|N(0, 3)| > 4) = 0.18
    assert math.isnan(groups[1]["zscore_std_x"]) and math.isnan(groups[0]["zscore_std_z"])


def test_sigma_calibration_is_the_isolated_emitters_spread():
    """Isolated emitters whose errors are twice their sigma in x and half in y, a few of them gross errors, and
    close pairs with errors ten times their sigma: the factors are 2 and 0.5, set by the isolated ones alone."""
    rng = np.random.default_rng(5)
    n_single, n_pairs = 2000, 500
    truth, x, y = _singles_and_pairs(n_single, n_pairs)
    err = rng.normal(0, 1, (len(x), 2)) * [20.0, 5.0]
    err[n_single:] = rng.normal(0, 1, (2 * n_pairs, 2)) * 60.0
    err[:20, 0] = 200.0  # 1 % gross errors among the isolated: a standard deviation would rise to ~2.9
    pred = truth.with_columns(x_nm=x + err[:, 0], y_nm=y + err[:, 1], sigma_x_nm=np.full(len(x), 10.0),
                              sigma_y_nm=np.full(len(x), 10.0))
    m = match(truth, pred, dim=2)
    cal = sigma_calibration(pred, m, truth, dim=2)
    assert cal["sigma_cal_x"] == pytest.approx(2.0, rel=0.06) and cal["sigma_cal_y"] == pytest.approx(0.5, rel=0.06)
    assert math.isnan(cal["sigma_cal_z"])  # 2D
    # too few isolated pairs: no factor
    few = sigma_calibration(pred, m, truth, dim=2, min_pairs=n_single + 1)
    assert all(math.isnan(v) for v in few.values())


def test_offset_calibration_is_the_median_error_where_significant():
    rng = np.random.default_rng(6)
    n_single, n_pairs = 2000, 500
    truth, x, y = _singles_and_pairs(n_single, n_pairs)
    z = np.zeros(len(x))
    err = rng.normal(0, 10.0, (len(x), 3))
    err[:, 1] += 3.0  # +3 nm in y (se 0.25 nm); x and z unbiased
    err[:45, 0] += 150.0  # 1.5 % gross errors in x, inside the matching radius: the mean moves 2.3 nm, the median not
    pred = truth.with_columns(x_nm=x + err[:, 0], y_nm=y + err[:, 1], z_nm=z + err[:, 2])
    m = match(truth, pred, dim=3)
    assert m.n_tp == len(x) and np.mean(m.dx) > 2.0  # the gross errors are matched, and would bias a mean
    off = offset_calibration(m, truth, dim=3)
    assert off["offset_cal_y"] == pytest.approx(3.0, abs=0.7)
    # an insignificant median (|median| < 2 se) is set to 0, not subtracted as noise
    assert off["offset_cal_x"] == 0.0 and off["offset_cal_z"] == 0.0
    assert math.isnan(offset_calibration(m, truth, dim=2)["offset_cal_z"])
    assert all(math.isnan(v) for v in offset_calibration(m, truth, dim=3, min_pairs=len(x) + 1).values())


def test_table_crlb_uses_each_rows_channel_split_and_each_channels_background():
    """Two channels: the bound of a row follows its own photon split (photons_chN) and each channel's background
    (bg_chN); with equal splits and backgrounds it is the bound of the shared-fraction, one-background call."""
    import torch

    from plexloc.camera import IdealCamera
    from plexloc.evaluate.crlb import crlb
    from plexloc.evaluate.uncertainty import table_crlb
    from plexloc.psf import GaussianPSF
    from plexloc.table import LocTable

    chans = [(GaussianPSF(sigma_nm=130.0), IdealCamera()), (GaussianPSF(sigma_nm=130.0), IdealCamera())]
    base = dict(frame=np.zeros(3, int), x_nm=np.full(3, 1550.0), y_nm=np.full(3, 1550.0), z_nm=np.zeros(3),
                photons=np.full(3, 2000.0), bg=np.full(3, 20.0))
    even = LocTable({**base, "photons_ch0": np.full(3, 1000.0), "photons_ch1": np.full(3, 1000.0),
                     "bg_ch0": np.full(3, 20.0), "bg_ch1": np.full(3, 20.0)})
    want = crlb(chans, x_nm=torch.full((3,), 1550.0), y_nm=torch.full((3,), 1550.0), z_nm=torch.zeros(3),
                photons=torch.full((3,), 2000.0), bg=torch.full((3,), 20.0), photon_fractions=[0.5, 0.5])
    got = table_crlb(even, chans)
    np.testing.assert_allclose(got["crlb_x_nm"], want["crlb_x_nm"].numpy(), rtol=1e-9)
    # channel 1 at 135 photons of background: a larger bound than the one-background call gave (20 in both)
    noisy = even.with_columns(bg_ch1=np.full(3, 135.0))
    assert (table_crlb(noisy, chans)["crlb_x_nm"] > 1.2 * got["crlb_x_nm"]).all()
    # a row's own split: all photons in the quiet channel 0 beat an even split, in the noisy channel 1 lose to it
    split = noisy.with_columns(photons_ch0=np.array([2000.0, 1000.0, 0.0]), photons_ch1=np.array([0.0, 1000.0, 2000.0]))
    b = table_crlb(split, chans)["crlb_x_nm"]
    assert b[0] < b[1] < b[2]
    # no background anywhere (seed 002's additive camera) or in one channel only: a finite bound, not a singular
    # Fisher matrix; with none it is the zero-background bound
    dark = even.with_columns(bg_ch0=np.zeros(3), bg_ch1=np.zeros(3))
    zero_bg = crlb(chans, x_nm=torch.full((3,), 1550.0), y_nm=torch.full((3,), 1550.0), z_nm=torch.zeros(3),
                   photons=torch.full((3,), 2000.0), bg=torch.full((3,), 1e-6), photon_fractions=[0.5, 0.5])
    np.testing.assert_allclose(table_crlb(dark, chans)["crlb_x_nm"], zero_bg["crlb_x_nm"].numpy(), rtol=1e-6)
    half = even.with_columns(bg_ch0=np.zeros(3))
    hb = table_crlb(half, chans)["crlb_x_nm"]
    assert np.isfinite(hb).all() and (hb < got["crlb_x_nm"]).all() and (hb > zero_bg["crlb_x_nm"].numpy()).all()


def test_photon_calibration_is_the_median_ratio_where_significant():
    """Predicted photons 10 % high with 15 % scatter and a few gross errors: the scale is 1.10; unbiased photons
    give 1; a table with per-channel photons gets none (the channels' sum would no longer be the total)."""
    from plexloc.evaluate.uncertainty import photon_calibration

    rng = np.random.default_rng(8)
    truth, x, y = _singles_and_pairs(6000, 0)  # the MAD of 1,500 pairs scatters by 5 %
    true = rng.uniform(500, 8000, len(x))
    truth = truth.with_columns(photons=true)
    scale = 1.10 * np.exp(rng.normal(0, 0.15, len(x)))
    scale[:120] = 5.0  # 2 % gross errors
    # sigma_photons half the true spread of the (scaled) photon errors: the sigma factor is 2
    pred = truth.with_columns(photons=true * scale, sigma_photons=0.5 * 0.15 * 1.10 * true)
    m = match(truth, pred, dim=2)
    cal = photon_calibration(pred, m, truth)
    assert cal["photon_cal"] == pytest.approx(1.10, rel=0.015)
    assert cal["photon_sigma_cal"] == pytest.approx(2.0, rel=0.08)
    fair = truth.with_columns(photons=true * np.exp(rng.normal(0, 0.15, len(x))))
    assert photon_calibration(fair, match(truth, fair, dim=2), truth)["photon_cal"] == 1.0
    per_channel = pred.with_columns(photons_ch0=0.5 * true, photons_ch1=0.5 * true)
    assert math.isnan(photon_calibration(per_channel, m, truth)["photon_cal"])
    assert math.isnan(photon_calibration(fair, match(truth, fair, dim=2), truth)["photon_sigma_cal"])  # no sigma column
    assert math.isnan(photon_calibration(pred, m, truth, min_pairs=len(x) + 1)["photon_cal"])
