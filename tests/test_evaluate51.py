"""Session 51 (helper evaluate): uncertainty scores on MLE tables (crlb_* columns), NaN sigmas counted and left out,
``plexloc evaluate``'s z-scores over all pairs (2D too), de-biasing a table of sigma 0, and the gridding verdict with
an axis of NaN positions. Every test here fails on the code before the session's change."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from plexloc.cli.main import main
from plexloc.evaluate.gridding import gridding_check
from plexloc.evaluate.matching import match
from plexloc.evaluate.uncertainty import error_scores, sigma_calibration, zscore_by_neighbour
from plexloc.io import write_table
from plexloc.post.debias import debias
from plexloc.table import LocTable


def _tables(n: int = 1500, seed: int = 0, nan_z_share: float = 0.1):
    """One emitter per frame (isolated), errors drawn at the stated uncertainty: a truth, an MLE-like prediction (only
    ``crlb_*_nm``, ``crlb_z_nm`` NaN in ``nan_z_share`` of the rows, whose z errors are 2x, within the 500-nm match),
    and the same as a network-like prediction (``sigma_*_nm``)."""
    rng = np.random.default_rng(seed)
    fr = np.arange(n)
    x, y, z = rng.uniform(1000, 5000, n), rng.uniform(1000, 5000, n), rng.uniform(-300, 300, n)
    ph = rng.uniform(500, 5000, n)
    truth = LocTable({"frame": fr, "x_nm": x, "y_nm": y, "z_nm": z, "photons": ph})
    s = 1000.0 / np.sqrt(ph)
    held = rng.uniform(size=n) < nan_z_share
    ez = 2 * s * np.clip(rng.normal(size=n), -2.5, 2.5) * np.where(held, 2.0, 1.0)  # 2 * 44.7 * 2.5 * 2 < 500
    base = dict(frame=fr, x_nm=x + s * rng.normal(size=n), y_nm=y + s * rng.normal(size=n), z_nm=z + ez, photons=ph)
    mle = LocTable({**base, "crlb_x_nm": s, "crlb_y_nm": s, "crlb_z_nm": np.where(held, np.nan, 2 * s)})
    net = LocTable({**base, "sigma_x_nm": s, "sigma_y_nm": s, "sigma_z_nm": np.where(held, np.nan, 2 * s)})
    return truth, mle, net, int(held.sum())


def test_error_scores_and_sigma_calibration_read_an_mle_tables_crlb():
    truth, mle, net, n_held = _tables()
    m = match(truth, mle, dim=3)
    assert m.n_tp == len(truth)
    bound = {k: np.full(len(truth), 20.0) for k in ("crlb_x_nm", "crlb_y_nm", "crlb_z_nm")}
    es = error_scores(mle, m, bound, dim=3)
    # all NaN before (only sigma_* columns were read)
    for ax in "xyz":
        assert 0.9 < es[f"zscore_rsd_{ax}"] < 1.1, (ax, es)
        assert 0.9 < es[f"zscore_std_{ax}"] < 1.1, (ax, es)  # the held rows (z errors 2x) are left out
    # the same scores as the network-like table with the same numbers in sigma_*
    es_net = error_scores(net, match(truth, net, dim=3), bound, dim=3)
    assert all(math.isclose(es[k], es_net[k]) for k in es)
    cal = sigma_calibration(mle, m, truth, dim=3)
    assert all(0.9 < cal[f"sigma_cal_{ax}"] < 1.1 for ax in "xyz"), cal
    from plexloc.evaluate.uncertainty import zscore_summary  # new in session 51

    summ = zscore_summary(mle, m, dim=3)
    assert summ["x"]["column"] == "crlb_x_nm" and summ["z"]["column"] == "crlb_z_nm"
    assert summ["z"]["n_left_out"] == n_held and summ["z"]["n"] == len(truth) - n_held
    assert summ["x"]["n_left_out"] == 0
    # 2D: a sigma_z column is not read (a sigma <= 0 there is not the 2D scores' business)
    assert set(zscore_summary(mle, m, dim=2)) == {"x", "y"}


def test_tail4_counts_only_pairs_with_a_sigma():
    truth, _, net, _ = _tables(n=400, nan_z_share=0.0)
    sx = np.asarray(net["sigma_x_nm"], float).copy()
    x = np.asarray(truth["x_nm"], float).copy()
    # 40 pairs 6 sigma off in x (a tail of 40 / 200 among the 200 with a sigma), 200 pairs without a sigma
    x[:40] += 6 * sx[:40]
    x[40:] += 0.5 * sx[40:]
    sx[200:] = np.nan
    pred = net.with_columns(x_nm=x, sigma_x_nm=sx)
    m = match(truth, pred, dim=3)
    rows = zscore_by_neighbour(pred, m, truth)
    isolated = rows[-1]
    assert isolated["n"] == 400 and isolated["n_x"] == 200
    assert isolated["tail4"] == pytest.approx(40 / 200)  # 40 / 400 before: the NaN sigmas counted as no tail


def test_cli_evaluate_prints_zscores_with_their_columns_in_2d_and_3d(tmp_path, capsys):
    truth, mle, net, n_held = _tables(n=600)
    write_table(truth, tmp_path / "truth.csv")
    write_table(mle, tmp_path / "mle.csv")
    assert main(["evaluate", str(tmp_path / "truth.csv"), str(tmp_path / "mle.csv"), "--json",
                 str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    line = next(s for s in out.splitlines() if s.startswith("z-scores (error / predicted sigma"))
    assert "crlb_x_nm, 600 pairs" in line and f"crlb_z_nm, {600 - n_held} pairs" in line
    assert f"z: {n_held} of 600 matched pairs without a finite crlb_z_nm left out" in out
    data = json.loads((tmp_path / "e.json").read_text())
    assert data["zscores"]["z"]["n_left_out"] == n_held and data["zscores"]["y"]["column"] == "crlb_y_nm"
    assert 0.85 < data["zscores"]["x"]["zscore_rsd"] < 1.15
    # a 2D network table: its predicted uncertainty was not judged at all before
    net2 = net.with_columns(z_nm=np.full(len(net), np.nan))
    write_table(net2, tmp_path / "net2.csv")
    assert main(["evaluate", str(tmp_path / "truth.csv"), str(tmp_path / "net2.csv"), "--dim", "2"]) == 0
    out = capsys.readouterr().out
    line = next(s for s in out.splitlines() if s.startswith("z-scores (error / predicted sigma"))
    assert "sigma_x_nm, 600 pairs" in line and "sigma_y_nm" in line and " z " not in line


def test_debias_moves_a_table_of_sigma_zero():
    rng = np.random.default_rng(0)
    n = 4000
    u = rng.uniform(size=n)
    x = (rng.integers(0, 50, n) + 0.5 + 0.5 * (u - 0.5)) * 100.0  # pulled to the pixel centres
    t = LocTable({"frame": np.zeros(n, int), "x_nm": x, "y_nm": x[::-1].copy(), "z_nm": np.zeros(n),
                  "photons": np.ones(n), "sigma_x_nm": np.zeros(n), "sigma_y_nm": np.zeros(n)})
    before = gridding_check(t["x_nm"], t["y_nm"], 100.0)
    out, rep = debias(t, 100.0)
    after = gridding_check(out["x_nm"], out["y_nm"], 100.0)
    assert before.dev_x > 1.0 and after.dev_x < 0.05 and after.dev_y < 0.05  # 1.08 -> 1.08 before: not moved
    assert rep.n_sigma_nonpositive == {"x": n, "y": n}
    assert "sigma_x_nm <= 0" in rep.format_table() and "where de-biased" in rep.format_table()
    # the same rows with a plain map (no sigma columns) come out the same
    plain, _ = debias(t.with_columns(sigma_x_nm=np.full(n, np.nan), sigma_y_nm=np.full(n, np.nan)), 100.0)
    np.testing.assert_allclose(out["x_nm"], plain["x_nm"])


def test_gridding_check_judges_y_where_x_has_no_finite_position():
    rng = np.random.default_rng(0)
    n = 20000
    y = (rng.integers(0, 50, n) + 0.5 + 0.5 * (rng.uniform(size=n) - 0.5)) * 100.0
    for xs, ys in ((np.full(n, np.nan), y), (y, np.full(n, np.nan))):
        c = gridding_check(xs, ys, 100.0)
        assert np.isfinite(c.noise) and c.gridded  # False before: the noise level NaN, max(NaN, ...) NaN
        assert "no finite" in c.describe()
    assert not gridding_check(np.full(5, np.nan), np.full(5, np.nan), 100.0).gridded
