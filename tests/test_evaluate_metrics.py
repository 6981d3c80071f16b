"""SMLM Challenge 2016 scores (plexloc.evaluate.metrics), numbers per docs/conventions.md."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest

import plexloc.evaluate.metrics as metrics_module
from plexloc.errors import InputError
from plexloc.evaluate import Metrics, evaluate, evaluate_matching, gridding_deviation, match
from plexloc.evaluate.metrics import CORE_KEYS
from plexloc.table import LocTable
from conftest import make_table


_table = make_table


def _grid_truth(n: int = 40, *, seed: int = 0) -> LocTable:
    """n emitters, 4 per frame, well apart (>= 1 um), at integer nm positions."""
    rng = np.random.default_rng(seed)
    k = np.arange(n)
    return _table(k // 4, 1000.0 * (k % 4) + 200.0, rng.integers(0, 5000, n), rng.integers(-400, 400, n))


AXIAL = ("rmse_ax", "rmse_vol", "eff_ax", "eff_3d", "bias_z")


@pytest.mark.parametrize("dim", [2, 3])
def test_identity(dim):
    t = _grid_truth()
    m = evaluate(t, t, dim=dim)
    assert (m.tp, m.fp, m.fn, m.n_truth, m.n_pred, m.dim) == (40, 0, 0, 40, 40, dim)
    assert (m.jaccard, m.recall, m.precision) == (100.0, 100.0, 100.0)
    assert (m.rmse_lat, m.eff_lat, m.bias_x, m.bias_y) == (0.0, 100.0, 0.0, 0.0)
    if dim == 3:
        assert (m.rmse_ax, m.rmse_vol, m.eff_ax, m.eff_3d, m.bias_z) == (0.0, 0.0, 100.0, 100.0, 0.0)
    else:
        assert all(getattr(m, k) is None for k in AXIAL)


def test_uniform_lateral_shift_of_10_nm():
    t = _grid_truth()
    p = t.with_columns(x_nm=t["x_nm"] + 6.0, y_nm=t["y_nm"] - 8.0)  # |shift| = 10 nm
    m = evaluate(t, p)
    assert m.jaccard == 100.0
    assert m.rmse_lat == 10.0
    assert m.eff_lat == 90.0  # 100 - sqrt(0^2 + (1 nm^-1 * 10 nm)^2)
    assert (m.rmse_ax, m.eff_ax, m.eff_3d) == (0.0, 100.0, 95.0)
    assert m.rmse_vol == 10.0
    assert (m.bias_x, m.bias_y, m.bias_z) == (6.0, -8.0, 0.0)


def test_efficiency_weights_lateral_1_axial_half():
    # 5 truths, 4 predicted with dx = 10 nm and dz = 20 nm, 1 spurious: TP 4, FP 1, FN 1 -> JI 66.67 %
    t = _table([0, 0, 0, 0, 1], [0.0, 1000.0, 2000.0, 3000.0, 0.0], z=[0.0] * 5)
    p = _table([0, 0, 0, 0, 2], [10.0, 1010.0, 2010.0, 3010.0, 0.0], z=[20.0, -20.0, 20.0, -20.0, 0.0])
    m = evaluate(t, p, dim=3)  # (a truth of z 0 everywhere is scored in 2D unless asked)
    ji = 100.0 * 4 / 6
    assert (m.tp, m.fp, m.fn) == (4, 1, 1)
    assert m.jaccard == pytest.approx(ji, rel=1e-15)
    assert (m.recall, m.precision) == (80.0, 80.0)
    assert (m.rmse_lat, m.rmse_ax) == (10.0, 20.0)
    assert m.rmse_vol == pytest.approx(math.sqrt(500.0), rel=1e-15)
    e_lat = 100.0 - math.sqrt((100.0 - ji) ** 2 + (1.0 * 10.0) ** 2)
    e_ax = 100.0 - math.sqrt((100.0 - ji) ** 2 + (0.5 * 20.0) ** 2)
    assert m.eff_lat == pytest.approx(e_lat, rel=1e-12)
    assert m.eff_ax == pytest.approx(e_ax, rel=1e-12)
    assert m.eff_lat == pytest.approx(m.eff_ax, rel=1e-12)  # 1 nm^-1 * 10 nm == 0.5 nm^-1 * 20 nm
    assert m.eff_3d == pytest.approx((e_lat + e_ax) / 2, rel=1e-12)
    assert (m.bias_x, m.bias_z) == (10.0, 0.0)


def test_beyond_threshold_counts_as_fp_and_fn():
    t = _table([0, 0], [0.0, 2000.0])
    p = _table([0, 0], [249.0, 2251.0])
    m = evaluate(t, p)
    assert (m.tp, m.fp, m.fn) == (1, 1, 1)
    assert m.jaccard == pytest.approx(100.0 / 3, rel=1e-15)
    assert m.rmse_lat == 249.0


def test_axial_threshold_in_3d_only():
    t = _table([0, 1], [0.0, 0.0], z=[0.0, 0.0])
    p = _table([0, 1], [0.0, 0.0], z=[499.0, 501.0])
    m3, m2 = evaluate(t, p, dim=3), evaluate(t, p, dim=2)
    assert (m3.tp, m3.fp, m3.fn, m3.rmse_ax) == (1, 1, 1, 499.0)
    assert (m2.tp, m2.fp, m2.fn, m2.rmse_lat, m2.rmse_ax) == (2, 0, 0, 0.0, None)
    assert evaluate(t, p, dim=3, max_ax_nm=600.0).tp == 2


def test_no_match():
    t = _table([0], [0.0])
    p = _table([1], [0.0])
    m = evaluate(t, p)
    assert (m.tp, m.fp, m.fn, m.jaccard, m.recall, m.precision) == (1 - 1, 1, 1, 0.0, 0.0, 0.0)
    for key in ("rmse_lat", "rmse_ax", "rmse_vol", "eff_lat", "eff_ax", "eff_3d", "bias_x", "bias_y", "bias_z"):
        assert getattr(m, key) is None, key


def test_empty_tables():
    t = _grid_truth(8)
    e = LocTable.empty()
    m = evaluate(t, e)
    assert (m.tp, m.fp, m.fn, m.jaccard, m.recall, m.precision) == (0, 0, 8, 0.0, 0.0, None)
    m = evaluate(e, t)
    assert (m.tp, m.fp, m.fn, m.jaccard, m.recall, m.precision) == (0, 8, 0, 0.0, None, 0.0)
    m = evaluate(e, e, px_size_nm=100.0)
    assert (m.tp, m.fp, m.fn, m.jaccard, m.recall, m.precision) == (0, 0, 0, 0.0, None, None)
    assert m.rmse_lat is None and m.gridding_dev_x is None
    json.dumps(m.to_dict(), allow_nan=False)
    assert "n/a" in m.format_table()


# --- colour ---------------------------------------------------------------------------------------------


def test_color_accuracy_and_rejection():
    # 5 matched pairs: colours right, right, wrong, rejected, rejected; plus an unmatched prediction
    t = _table([0] * 5, [0.0, 1000.0, 2000.0, 3000.0, 4000.0], color=[0, 1, 0, 1, 0])
    p = _table([0] * 6, [0.0, 1000.0, 2000.0, 3000.0, 4000.0, 9000.0], color=[0, 1, 1, -1, -1, 0])
    m = evaluate(t, p)
    assert m.tp == 5 and m.has_color
    assert (m.color_accuracy, m.color_rejection) == (40.0, 40.0)
    d = m.to_dict()
    assert (d["color_accuracy"], d["color_rejection"]) == (40.0, 40.0)


def test_rejected_truth_colour_is_not_counted_correct():
    t = _table([0, 0], [0.0, 1000.0], color=[-1, 0])
    p = _table([0, 0], [0.0, 1000.0], color=[-1, 0])
    m = evaluate(t, p)
    assert (m.color_accuracy, m.color_rejection) == (50.0, 50.0)  # accuracy + rejection <= 100


def test_colour_only_when_both_tables_have_it():
    t = _table([0], [0.0], color=[0])
    p = _table([0], [0.0])
    for m in (evaluate(t, p), evaluate(p, t), evaluate(p, p)):
        assert not m.has_color and m.color_accuracy is None and m.color_rejection is None
        assert "color_accuracy" not in m.to_dict() and "color_accuracy" not in m.format_table()
    m = evaluate(t, t.with_columns(frame=[1]))  # colours present, nothing matched
    assert m.has_color and m.color_accuracy is None
    assert m.to_dict()["color_accuracy"] is None


# --- gridding ---------------------------------------------------------------------------------------


def test_gridding_uniform_subpixel_positions():
    px = 100.0
    k = np.arange(200)
    sub = ((k % 10) + 0.5) * 10.0  # one position in the middle of every tenth of a pixel
    x = (k // 10) * px + sub
    y = ((k * 7) % 200) * px + sub[::-1]
    t = _table(k // 20, x, y)
    m = evaluate(t, t, px_size_nm=px)
    assert m.gridding_dev_x == pytest.approx(0.0, abs=1e-12)
    assert m.gridding_dev_y == pytest.approx(0.0, abs=1e-12)
    # random sub-pixel positions: small deviation (10 bins of ~5000, relative sd ~1.4 %)
    rng = np.random.default_rng(1)
    assert gridding_deviation(rng.uniform(0, 1e5, 50_000), px) < 0.06


def test_gridding_all_positions_at_pixel_centres():
    px = 100.0
    k = np.arange(200)
    t = _table(k // 20, (k + 0.5) * px, ((k * 3) % 50 + 0.5) * px)
    p = t.with_columns(x_nm=t["x_nm"] + 1.0)  # still in the centre bin
    m = evaluate(t, p, px_size_nm=px)
    assert m.gridding_dev_x == 9.0  # all counts in one bin of 10: count/expected - 1 = 9
    assert m.gridding_dev_y == 9.0
    d = m.to_dict()
    assert (d["gridding_dev_x"], d["px_size_nm"]) == (9.0, 100.0)


def test_gridding_uses_matched_predictions_only():
    px = 100.0
    t = _table([0, 0], [50.0, 1050.0])
    p = _table([0, 0, 0], [50.0, 1050.0, 5000.0])  # the unmatched one is at a pixel edge
    m = evaluate(t, p, px_size_nm=px)
    assert m.gridding_dev_x == 9.0  # both matched in bin 5 of 10: 2 / 0.2 - 1 (with all 3: 2 / 0.3 - 1)


@pytest.mark.parametrize("px", [0.0, -100.0, float("nan"), float("inf"), "100"])
def test_bad_pixel_size(px):
    t = _table([0], [0.0])
    with pytest.raises(InputError, match="px_size_nm"):
        evaluate(t, t, px_size_nm=px)


# --- dict, table, reuse -------------------------------------------------------------------------------


def test_to_dict_keys_and_json():
    t = _grid_truth()
    d3 = evaluate(t, t.with_columns(x_nm=t["x_nm"] + 5.0)).to_dict()
    d2 = evaluate(t, t, dim=2).to_dict()
    for d in (d3, d2):
        assert set(CORE_KEYS) <= set(d)
        assert {"bias_x", "bias_y", "bias_z", "n_truth", "n_pred", "dim"} <= set(d)
        assert "color_accuracy" not in d and "gridding_dev_x" not in d
        text = json.dumps(d, allow_nan=False)
        assert json.loads(text) == d
        assert all(type(v) in (int, float, type(None)) for v in d.values())
    assert d3["rmse_lat"] == 5.0 and d3["eff_3d"] == 97.5 and d3["tp"] == 40
    assert [d2[k] for k in ("rmse_ax", "rmse_vol", "eff_ax", "eff_3d", "bias_z", "max_ax_nm")] == [None] * 6
    assert d2["eff_lat"] == 100.0


def test_format_table_units_and_alignment():
    t = _grid_truth()
    text = evaluate(t, t.with_columns(x_nm=t["x_nm"] + 5.0), px_size_nm=100.0).format_table()
    lines = text.splitlines()
    rows = {line.split()[0]: line for line in lines[2:]}
    assert rows["jaccard"].split()[1:] == ["100.00", "%"]
    assert rows["rmse_lat"].split()[1:] == ["5.00", "nm"]
    assert rows["eff_3d"].split()[1:] == ["97.50", "%"]
    assert rows["tp"].split()[1:] == ["40"]
    assert "gridding_dev_x" in rows
    # values right-aligned in one column
    ends = {line.index(line.split()[1]) + len(line.split()[1]) for line in lines[2:]}
    assert len(ends) == 1
    assert "rmse_ax" not in evaluate(t, t, dim=2).format_table()


def test_evaluate_matching_reuses_a_matching():
    t = _grid_truth()
    p = t.with_columns(x_nm=t["x_nm"] + 3.0, z_nm=t["z_nm"] + 4.0)
    mt = match(t, p)
    assert evaluate_matching(t, p, mt, dim=3) == evaluate(t, p)
    assert evaluate_matching(t, p, mt) == evaluate(t, p)  # dim defaults to the matching's
    m2 = evaluate_matching(t, p, mt, dim=2)
    assert m2.rmse_lat == 3.0 and m2.rmse_ax is None
    assert isinstance(m2, Metrics)


def test_evaluate_matching_refuses_a_foreign_matching():
    t = _grid_truth()
    mt = match(t, t)
    with pytest.raises(InputError, match="does not fit"):
        evaluate_matching(t[:10], t, mt)
    with pytest.raises(InputError, match="dim must be 2 or 3"):
        evaluate_matching(t, t, mt, dim=1)


def test_doctests():
    assert doctest.testmod(metrics_module).failed == 0


def test_photon_scores_are_the_median_relative_errors():
    """Photons 10 % high on half the pairs and 20 % low on the other half: bias = the median relative error, rel_err
    the median absolute one; not part of the SMLM Challenge's keys, but in the dict and the table."""
    from plexloc.evaluate.metrics import evaluate

    n = 101
    truth = LocTable({"frame": np.arange(n), "x_nm": np.zeros(n), "y_nm": np.zeros(n), "z_nm": np.zeros(n),
                      "photons": np.full(n, 1000.0)})
    factor = np.where(np.arange(n) < 51, 1.1, 0.8)
    pred = truth.with_columns(photons=1000.0 * factor)
    m = evaluate(truth, pred, dim=2)
    assert m.photons_bias == pytest.approx(10.0) and m.photons_rel_err == pytest.approx(10.0)
    d = m.to_dict()
    assert d["photons_bias"] == pytest.approx(10.0)
    assert "photons_rel_err" in m.format_table()
    low = evaluate(truth, truth.with_columns(photons=np.full(n, 800.0)), dim=2)
    assert low.photons_bias == pytest.approx(-20.0) and low.photons_rel_err == pytest.approx(20.0)
