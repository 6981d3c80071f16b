"""Review of the day's changes (c2ae2ab..): the gridding check's counting-noise level (7292fb1)."""

from __future__ import annotations

import numpy as np

from plexloc.render.report import gridding_deviation, gridding_noise


def _field(seed, n=20000, fov=1600.0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, fov, n), rng.uniform(0, fov, n)


def test_the_noise_level_of_a_small_field_is_not_raised_by_the_fields_edge():
    """The control histograms (periods 0.6-1.6 px) counted the part of a period left at the field's end, which raises
    their first bins: on a 16-pixel field of 20,000 uniform positions the level was 0.12 (seed 0) where the pixel
    histograms read 0.04. Whole periods only: 0.07, the largest of 40 histograms of noise."""
    x, y = _field(0)
    level = gridding_noise(x, y, 100.0)
    assert max(gridding_deviation(v, 100.0)[1] for v in (x, y)) <= level < 0.08


def test_slight_gridding_on_a_small_field_is_called_gridding():
    """Positions pulled 3 % of the way to the pixel centres (0.11-0.15 at the pixel, three times the noise) on that
    field were called within counting noise for 3 of 10 seeds; now for none."""
    for seed in range(10):
        x, y = _field(seed)
        pulled = x * 0.97 + (np.floor(x / 100) + 0.5) * 100 * 0.03
        assert gridding_deviation(pulled, 100.0)[1] > gridding_noise(pulled, y, 100.0), seed
