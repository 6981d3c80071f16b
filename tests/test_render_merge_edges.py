"""Edge cases of rendering, FRC, merging, filtering and the report that gave wrong numbers (review of 2026-12-05)."""

from __future__ import annotations

import numpy as np
import pytest

from plexloc.post.filter import filter_localizations
from plexloc.post.merge import merge_localizations
from plexloc.render.frc import frc
from plexloc.render.image import render_color, render_gaussian
from plexloc.table import LocTable


def _table(x, y, **extra) -> LocTable:
    n = len(x)
    return LocTable({"frame": extra.pop("frame", np.zeros(n, int)), "x_nm": x, "y_nm": y,
                     "z_nm": extra.pop("z_nm", np.zeros(n)), "photons": np.full(n, 1000.0), **extra})


def test_frc_on_fields_at_any_offset_and_without_a_crossing():
    """Every field offset works (an extent of n pixels rounded to n + 1 crashed about 1 table in 7), and a curve
    already below 1/7 at the lowest frequency considered gives NaN, not an extrapolated (negative) resolution."""
    rng = np.random.default_rng(0)
    for offset in rng.uniform(0, 5000, 40):
        x, y = rng.uniform(0, 3000, 400) + offset, rng.uniform(0, 3000, 400)
        t = _table(x, y)
        res = frc(t, px_size_nm=5.0, extent_nm=(offset + 0.3, offset + 3000.3, 0.0, 3000.0))
        assert np.isnan(res.resolution_nm) or res.resolution_nm > 0
    noise = _table(rng.uniform(0, 3000, 300), rng.uniform(0, 3000, 300))  # nothing repeated: no correlation
    values = [frc(noise, seed=s).resolution_nm for s in range(10)]
    assert all(np.isnan(v) or v > 0 for v in values)


def test_wide_sigma_outliers_are_drawn_wide_not_as_bright_dots():
    x = np.r_[np.full(1000, 5000.0), 15000.0]
    sigma = np.r_[np.full(1000, 10.0), 100.0]
    t = _table(x, np.full(1001, 5000.0), sigma_x_nm=sigma, sigma_y_nm=sigma)
    r = render_gaussian(t, px_size_nm=5.0, extent_nm=(0, 20000, 0, 10000))
    assert r.image.sum() == pytest.approx(1001.0, rel=1e-3)
    peak = r.image[:, 2900:].max()  # the outlier's peak: 1 / (2 pi (100/5)^2) ~ 4e-4, not 1 / (2 pi 2^2) ~ 0.04
    assert peak == pytest.approx(1.0 / (2 * np.pi * 20.0**2), rel=0.1)


def test_colour_by_z_ignores_a_missing_z():
    rng = np.random.default_rng(1)
    z = rng.uniform(-400, 400, 2000)
    z[5] = np.nan
    t = _table(rng.uniform(0, 2000, 2000), rng.uniform(0, 2000, 2000), z_nm=z)
    r = render_color(t, color_by="z", px_size_nm=20.0)
    assert "nan" not in r.legend.split(";")[0] and "1 without a finite z" in r.legend
    hues = {tuple(np.round(v / v.sum(), 2)) for v in r.image.reshape(-1, 3) if v.sum() > 0}
    assert len(hues) > 20  # one NaN made every localization one colour


def test_merge_weights_z_per_event_and_remerges_from_the_last_frame():
    # one event of 4 rows with sigma_z 30, and an unrelated row elsewhere whose sigma_z is NaN
    t = _table(np.r_[np.full(4, 100.0), 5000.0], np.r_[np.full(4, 100.0), 5000.0], frame=np.r_[0, 1, 2, 3, 0],
               z_nm=np.r_[0.0, 0.0, 0.0, 60.0, 0.0], sigma_x_nm=np.full(5, 10.0), sigma_y_nm=np.full(5, 10.0),
               sigma_z_nm=np.r_[30.0, 30.0, 30.0, 60.0, np.nan])
    m = merge_localizations(t, radius_nm=50.0, gap=0)
    event = m[m["n_merged"] == 4]
    w = np.r_[1 / 30**2, 1 / 30**2, 1 / 30**2, 1 / 60**2]
    assert event["z_nm"][0] == pytest.approx(60.0 * w[3] / w.sum()) and event["sigma_z_nm"][0] == pytest.approx(w.sum() ** -0.5)
    assert np.isnan(m[m["n_merged"] == 1]["sigma_z_nm"][0])
    # frames 0, 1, 2, 3, 5, 6 at one place: gap 1 links them all, also in two steps (gap 0, then gap 1)
    frames = np.r_[0, 1, 2, 3, 5, 6]
    s = _table(np.full(6, 100.0), np.full(6, 100.0), frame=frames, sigma_x_nm=np.full(6, 10.0), sigma_y_nm=np.full(6, 10.0))
    assert len(merge_localizations(s, radius_nm=50.0, gap=1)) == 1
    twice = merge_localizations(merge_localizations(s, radius_nm=50.0, gap=0), radius_nm=50.0, gap=1)
    assert len(twice) == 1 and twice["n_merged"][0] == 6 and twice["frame_last"][0] == 6


def test_filters_take_numpy_numbers():
    t = _table(np.arange(4.0), np.arange(4.0), prob=np.array([0.2, 0.6, 0.7, 0.9]))
    kept = filter_localizations(t, min_prob=np.float32(0.5))
    kept = kept[0] if isinstance(kept, tuple) else kept
    assert len(kept) == 3


def test_report_keeps_lateral_and_axial_sigma_apart():
    from plexloc.render.report import build_report

    rng = np.random.default_rng(2)
    n = 300
    t = _table(rng.uniform(0, 3000, n), rng.uniform(0, 3000, n), z_nm=rng.normal(0, 100, n),
               sigma_x_nm=np.full(n, 7.5), sigma_y_nm=np.full(n, 7.5), sigma_z_nm=np.full(n, 40.0))
    rep = build_report(t)
    assert "lateral σ (nm) histogram" in rep.html and "axial σ (nm) histogram" in rep.html
    nan_sigma = t.with_columns(sigma_x_nm=np.r_[np.nan, np.full(n - 1, 7.5)])
    assert "image" not in build_report(nan_sigma).missing  # a NaN sigma: a histogram image (it raised)
