"""The render method where none is chosen: one rule (plexloc.render.image.default_method) for plexloc render,
plexloc report and plexloc process."""

from __future__ import annotations

import numpy as np

from plexloc.render.image import default_method, rows_without_sigma
from plexloc.render.report import build_report
from plexloc.table import LocTable


def _table(**sigmas) -> LocTable:
    n = 200
    rng = np.random.default_rng(0)
    return LocTable({"frame": np.arange(n), "x_nm": rng.uniform(0, 2000, n), "y_nm": rng.uniform(0, 2000, n),
                     "z_nm": np.zeros(n), "photons": np.full(n, 1000.0),
                     **{k: np.full(n, v) if np.isscalar(v) else v for k, v in sigmas.items()}})


def test_gaussian_only_where_every_row_has_a_sigma():
    assert default_method(_table(sigma_x_nm=8.0, sigma_y_nm=9.0)) == "gaussian"
    assert default_method(_table()) == "histogram" and default_method(_table(sigma_x_nm=8.0)) == "histogram"
    for bad in (np.nan, np.inf, -1.0):
        sy = np.full(200, 9.0)
        sy[7] = bad
        t = _table(sigma_x_nm=8.0, sigma_y_nm=sy)
        assert default_method(t) == "histogram" and np.flatnonzero(rows_without_sigma(t)).tolist() == [7]


def test_the_report_takes_the_same_rule():
    """A negative sigma (no width a Gaussian could have): the report's image is a histogram, as plexloc render's and
    process's are (the report drew it as a Gaussian of the smallest width before)."""
    sy = np.full(200, 9.0)
    sy[3] = -2.0
    assert "histogram, " in build_report(_table(sigma_x_nm=8.0, sigma_y_nm=sy)).html
    assert "Gaussian (own σ), " in build_report(_table(sigma_x_nm=8.0, sigma_y_nm=9.0)).html
