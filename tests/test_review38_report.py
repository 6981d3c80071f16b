"""Review of the day's changes (c2ae2ab..): the gridding check's counting-noise level (7292fb1)."""

from __future__ import annotations

import numpy as np

from plexloc.evaluate.gridding import gridding_check, gridding_deviation, gridding_noise


def _field(seed, n=20000, fov=1600.0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, fov, n), rng.uniform(0, fov, n)


def test_the_noise_level_of_a_small_field_is_not_raised_by_the_fields_edge():
    """The control histograms (periods 0.6-1.6 px) counted the part of a period left at the field's end, which raises
    their first bins: on a 16-pixel field of 20,000 uniform positions the level was 0.12 (seed 0) where the pixel
    histograms read 0.04. Whole periods only: 0.07, the largest of 40 histograms of noise."""
    x, y = _field(0)
    level = gridding_noise(x, y, 100.0)
    assert max(gridding_deviation(v, 100.0) for v in (x, y)) <= level < 0.08


def test_slight_gridding_on_a_small_field_is_called_gridding():
    """Positions pulled 3 % of the way to the pixel centres (0.11-0.15 at the pixel, three times the noise) on that
    field were called within counting noise for 3 of 10 seeds; now for none."""
    for seed in range(10):
        x, y = _field(seed)
        pulled = x * 0.97 + (np.floor(x / 100) + 0.5) * 100 * 0.03
        assert gridding_deviation(pulled, 100.0) > gridding_noise(pulled, y, 100.0), seed


def test_one_gridding_verdict_for_report_debias_and_evaluate():
    """The verdict that plexloc report, debias and evaluate print comes from one place (they were three copies): a
    uniform field is within counting noise, the same field pulled 10 % to the pixel centres is gridding, and the
    report's summary line says what the check says."""
    from plexloc.render.report import build_report
    from plexloc.table import LocTable

    x, y = _field(1)
    flat = gridding_check(x, y, 100.0)
    assert not flat.gridded and flat.verdict == "within counting noise" and flat.dev_x <= flat.noise
    pulled = x * 0.9 + (np.floor(x / 100) + 0.5) * 100 * 0.1
    grid = gridding_check(pulled, y, 100.0)
    assert grid.gridded and grid.dev_x > 0.3 > grid.dev_y
    t = LocTable({"frame": np.arange(len(x)) % 50, "x_nm": pulled, "y_nm": y, "z_nm": np.zeros(len(x)),
                  "photons": np.full(len(x), 1000.0)})
    line = build_report(t, camera_px_size_nm=100.0).summary["gridding deviation x / y (%)"]
    assert line.startswith(f"{100 * grid.dev_x:.1f} / {100 * grid.dev_y:.1f} (above counting noise: gridding")
    empty = gridding_check(np.zeros(0), np.zeros(0), 100.0)
    assert not empty.gridded and np.isnan(empty.dev_x) and np.isnan(empty.noise)
