"""A 3D matching scored in 2D (``evaluate_matching(..., dim=2)``) reports the axial threshold its pairs were held to:
its tp, fp, fn and Jaccard index depend on it (``max_ax_nm`` read None before, as for a 2D matching)."""

from __future__ import annotations

import json

import numpy as np

from plexloc.evaluate.matching import match
from plexloc.evaluate.metrics import evaluate, evaluate_matching
from plexloc.table import LocTable


def _tables() -> tuple[LocTable, LocTable]:
    """Three emitters in one frame, 2 um apart; the predictions 10 nm off in x and 0, 100 and 400 nm off in z."""
    x = np.array([1000.0, 3000.0, 5000.0])
    truth = LocTable({"frame": [0, 0, 0], "x_nm": x, "y_nm": [1000.0] * 3, "z_nm": [0.0] * 3, "photons": [1e3] * 3})
    pred = truth.with_columns(x_nm=x + 10.0, z_nm=np.array([0.0, 100.0, 400.0]))
    return truth, pred


def test_3d_matching_scored_in_2d_reports_its_axial_threshold():
    truth, pred = _tables()
    m3 = match(truth, pred, dim=3, max_ax_nm=300.0)  # the 400 nm one is not a pair
    s = evaluate_matching(truth, pred, m3, dim=2)
    assert (s.dim, s.matching_dim, s.max_lat_nm, s.max_ax_nm) == (2, 3, 250.0, 300.0)
    assert (s.tp, s.fp, s.fn) == (2, 1, 1) and s.jaccard == 50.0  # what the axial threshold made of the counts
    assert s.rmse_lat == 10.0 and s.eff_lat == 100.0 - np.hypot(50.0, 10.0)
    assert [s.rmse_ax, s.rmse_vol, s.eff_ax, s.eff_3d, s.bias_z] == [None] * 5  # scored in 2D: no axial scores
    d = s.to_dict()
    assert (d["dim"], d["matching_dim"], d["max_ax_nm"]) == (2, 3, 300.0)
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    table = s.format_table()
    assert "matching_dim          3" in table and "max_ax_nm        300.00  nm" in table
    assert "rmse_ax" not in table and "eff_3d" not in table


def test_2d_and_3d_matchings_report_their_own_thresholds():
    truth, pred = _tables()
    s2 = evaluate(truth, pred, dim=2)  # a 2D matching: no axial threshold at all
    assert (s2.dim, s2.matching_dim, s2.max_ax_nm, s2.tp) == (2, 2, None, 3)
    assert s2.to_dict()["max_ax_nm"] is None and s2.to_dict()["matching_dim"] == 2
    assert "matching_dim" not in s2.format_table() and "max_ax_nm" not in s2.format_table()
    s3 = evaluate(truth, pred, dim=3, max_ax_nm=300.0)
    assert (s3.dim, s3.matching_dim, s3.max_ax_nm, s3.tp) == (3, 3, 300.0, 2)
    assert s3.rmse_ax == np.sqrt((0.0**2 + 100.0**2) / 2)  # dz 0 and 100 nm
    assert "matching_dim" not in s3.format_table()
