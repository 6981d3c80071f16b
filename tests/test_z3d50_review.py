"""Session 50, review of helper z3d's 3D walk: de-biasing's z slabs with rows of NaN z, plexloc evaluate's z-scores
per z slab (issue 10)."""

import numpy as np
import pytest

from test_z3d50 import table_3d

from plexloc.post.debias import debias
from plexloc.table import LocTable

PX = 100.0


def test_debias_a_row_of_nan_z_does_not_move_the_other_rows_slabs():
    """The slabs started at the smallest z with NaN counted as 0: one row of unknown z in a table over z 125..625 nm
    moved every slab's edges by 25 nm and changed the de-biased positions of all the other rows (by up to 5.7 nm
    here). They start at the smallest finite z now: the other rows come out as without that row."""
    _, _, t = table_3d(n=6000, seed=3)
    t = t.with_columns(z_nm=np.asarray(t["z_nm"], float) * 0.5 + 375.0)  # 125..625 nm
    one = LocTable({c: np.asarray(t[c])[:1] for c in t.columns})
    one = one.with_columns(z_nm=np.array([np.nan]))
    both = LocTable({c: np.concatenate([np.asarray(t[c]), np.asarray(one[c])]) for c in t.columns})
    alone, _ = debias(t, PX)
    with_nan, rep = debias(both, PX)
    assert rep.n == 6001
    np.testing.assert_allclose(np.asarray(with_nan["x_nm"])[:-1], np.asarray(alone["x_nm"]), atol=1e-9)
    np.testing.assert_allclose(np.asarray(with_nan["y_nm"])[:-1], np.asarray(alone["y_nm"]), atol=1e-9)
    # the row of NaN z is in a slab of its own here (z = 0 is below the table's range): too small, left as it was
    assert rep.n_skipped >= 1 and np.asarray(with_nan["x_nm"])[-1] == np.asarray(one["x_nm"])[0]


def _sigma_tables(n=4000, seed=5):
    """A 3D truth over z -400..400 nm and predictions with sigma_x/y/z_nm whose errors are drawn with sd 1x the
    sigma below z = 0 and 2x above (under-reported there)."""
    rng = np.random.default_rng(seed)
    truth = LocTable({"frame": np.arange(n), "x_nm": rng.uniform(0, 5000, n), "y_nm": rng.uniform(0, 5000, n),
                      "z_nm": rng.uniform(-400, 400, n), "photons": np.full(n, 2000.0)})
    sig = rng.uniform(5, 20, (n, 3))
    k = np.where(truth["z_nm"] < 0, 1.0, 2.0)[:, None]
    err = rng.normal(size=(n, 3)) * sig * k
    pred = LocTable({"frame": truth["frame"], "x_nm": truth["x_nm"] + err[:, 0], "y_nm": truth["y_nm"] + err[:, 1],
                     "z_nm": truth["z_nm"] + err[:, 2], "photons": truth["photons"], "sigma_x_nm": sig[:, 0],
                     "sigma_y_nm": sig[:, 1], "sigma_z_nm": sig[:, 2]})
    return truth, pred


def test_evaluate_reports_the_z_scores_per_z_slab(tmp_path, capsys):
    """Issue 10 asks the errors' z-scores against the predicted sigma per z slab; zscore_slabs existed but plexloc
    evaluate said nothing of them. It prints them per --zscore-slab (100 nm) of the true z and writes them to --json:
    spreads of 1 below z = 0 and 2 above, where the sigma were under-reported by half."""
    import json

    from plexloc.cli.main import main
    from plexloc.io.formats import write_locs

    truth, pred = _sigma_tables()
    write_locs(truth, tmp_path / "truth.csv")
    write_locs(pred, tmp_path / "pred.csv")
    assert main(["evaluate", str(tmp_path / "truth.csv"), str(tmp_path / "pred.csv"), "--json",
                 str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "z-scores per 100-nm slab of the true z" in out and "z    -400..   -300 nm" in out
    slabs = json.loads((tmp_path / "m.json").read_text())["zscore_slabs"]
    assert [s["z_lo"] for s in slabs] == [-400.0 + 100 * i for i in range(8)] and slabs[-1]["z_hi"] == 400.0
    assert sum(s["n"] for s in slabs) == 4000
    for s in slabs:
        for ax in "xyz":
            assert s[f"zscore_rsd_{ax}"] == pytest.approx(1.0 if s["z_hi"] <= 0 else 2.0, rel=0.25)
    assert main(["evaluate", str(tmp_path / "truth.csv"), str(tmp_path / "pred.csv"), "--zscore-slab", "400",
                 "--json", str(tmp_path / "m4.json")]) == 0
    lo, hi = json.loads((tmp_path / "m4.json").read_text())["zscore_slabs"]
    assert lo["zscore_rsd_x"] == pytest.approx(1.0, abs=0.08) and hi["zscore_rsd_x"] == pytest.approx(2.0, abs=0.16)
    # a row without a sigma leaves its slab's spread as it was (it made it NaN); 2D tables and tables without sigma
    # columns print nothing
    nan_sig = pred.with_columns(sigma_x_nm=np.where(np.arange(4000) == 0, np.nan, pred["sigma_x_nm"]))
    write_locs(nan_sig, tmp_path / "nan.csv")
    assert main(["evaluate", str(tmp_path / "truth.csv"), str(tmp_path / "nan.csv"), "--zscore-slab", "400",
                 "--json", str(tmp_path / "mn.json")]) == 0
    assert np.isfinite([s["zscore_rsd_x"] for s in json.loads((tmp_path / "mn.json").read_text())["zscore_slabs"]]).all()
    write_locs(pred.without_columns("sigma_x_nm", "sigma_y_nm", "sigma_z_nm"), tmp_path / "bare.csv")
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "truth.csv"), str(tmp_path / "bare.csv"), "--json",
                 str(tmp_path / "mb.json")]) == 0
    assert "z-scores" not in capsys.readouterr().out
    assert "zscore_slabs" not in json.loads((tmp_path / "mb.json").read_text())
