"""Errors against the CRLB and calibration of predicted sigmas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from plexloc.camera import IdealCamera
from plexloc.evaluate.matching import match
from plexloc.evaluate.uncertainty import error_scores, table_crlb
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
