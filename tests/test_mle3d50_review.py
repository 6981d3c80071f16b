"""Review of session 50's mle3d change (cb0a0ca: an MLE fit's crlb_z_nm is NaN where z is held on its bound): the
readers of crlb_z_nm that left those rows out of a figure without a word."""

import json

import numpy as np

from plexloc.table import LocTable


def _mle_tables(n=2000, seed=3):
    """A 3D truth over z -600..600 nm and an MLE-like table (crlb_* columns, no sigma_*) fitted within +-500 nm:
    the rows truly beyond the range sit on the bound (at_bound 2, crlb_z_nm NaN) with large z errors; the others have
    errors drawn with sd 1x their CRLB."""
    rng = np.random.default_rng(seed)
    zt = rng.uniform(-600, 600, n)
    truth = LocTable({"frame": np.arange(n), "x_nm": rng.uniform(0, 5000, n), "y_nm": rng.uniform(0, 5000, n),
                      "z_nm": zt, "photons": np.full(n, 2000.0)})
    crlb = rng.uniform(10, 40, (n, 3))
    err = rng.normal(size=(n, 3)) * crlb
    held = np.abs(zt) > 500
    z = np.where(held, np.sign(zt) * 500.0, zt + err[:, 2])
    pred = LocTable({"frame": truth["frame"], "x_nm": truth["x_nm"] + err[:, 0], "y_nm": truth["y_nm"] + err[:, 1],
                     "z_nm": z, "photons": truth["photons"], "crlb_x_nm": crlb[:, 0], "crlb_y_nm": crlb[:, 1],
                     "crlb_z_nm": np.where(held, np.nan, crlb[:, 2]), "at_bound": np.where(held, 2, 0),
                     "converged": np.where(held, 0, 1)})
    return truth, pred, held


def test_evaluate_says_how_many_pairs_its_z_scores_leave_out(tmp_path, capsys):
    """plexloc evaluate's z-scores per z slab left the pairs whose crlb_z_nm is NaN (z held on its bound) out of the z
    spread and printed the slab's n of all pairs: on a 1/um2 3D astigmatic fit (bench/mle3d50.py's movie) 896 of 4330
    pairs were left out in silence, and the z spread of a slab read 1.77 where it had read 2.39 with their bound's
    CRLB. The pairs counted are now in --json (n_x, n_y, n_z), printed where fewer than n, and the total said."""
    from plexloc.cli.main import main
    from plexloc.io.formats import write_locs

    truth, pred, held = _mle_tables()
    write_locs(truth, tmp_path / "truth.csv")
    write_locs(pred, tmp_path / "mle.csv")
    assert main(["evaluate", str(tmp_path / "truth.csv"), str(tmp_path / "mle.csv"), "--json",
                 str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    slabs = json.loads((tmp_path / "m.json").read_text())["zscore_slabs"]
    assert sum(s["n"] for s in slabs) == len(truth)
    assert sum(s["n_x"] for s in slabs) == sum(s["n_y"] for s in slabs) == len(truth)
    assert sum(s["n_z"] for s in slabs) == int((~held).sum())
    beyond = [s for s in slabs if s["z_hi"] <= -500 or s["z_lo"] >= 500]
    assert beyond and all(s["n_z"] == 0 and s["zscore_rsd_z"] in (None, "NaN", "nan") for s in beyond)
    for s in slabs:
        if s["n_z"] == s["n"]:  # slabs inside the range: every pair, spread 1
            assert abs(s["zscore_rsd_z"] - 1.0) < 0.3
    assert f"z: {int(held.sum())} matched pairs without a finite crlb_z_nm left out" in out
    assert "at_bound & 2" in out
    # a slab with some pairs left out says how many count (300-nm slabs: -600..-300 holds held rows and others)
    assert main(["evaluate", str(tmp_path / "truth.csv"), str(tmp_path / "mle.csv"), "--zscore-slab", "300",
                 "--json", str(tmp_path / "m3.json")]) == 0
    out = capsys.readouterr().out
    part = [s for s in json.loads((tmp_path / "m3.json").read_text())["zscore_slabs"] if 0 < s["n_z"] < s["n"]]
    assert len(part) == 2 and all(f"; {s['n_z']} pairs)" in out for s in part)
    # a table whose every row has its sigma prints no such line
    write_locs(pred.with_columns(crlb_z_nm=np.where(held, 50.0, pred["crlb_z_nm"])), tmp_path / "all.csv")
    assert main(["evaluate", str(tmp_path / "truth.csv"), str(tmp_path / "all.csv")]) == 0
    out = capsys.readouterr().out
    slab_lines = out.split("z-scores per 100-nm slab", 1)[1]  # the whole-table line above them names its pairs
    assert "left out" not in out and " pairs)" not in slab_lines
    assert f"crlb_z_nm, {len(truth)} pairs)" in out


def test_report_median_crlb_z_says_its_nan_rows():
    """The report's 'median CRLB z (nm)' was the median of the rows that have one, read as the table's: the rows held
    on the z bound (NaN) are now counted beside it."""
    from plexloc.render.report import build_report

    _, pred, held = _mle_tables(n=600)
    r = build_report(pred)
    cz = np.asarray(pred["crlb_z_nm"], float)
    assert r.summary["median CRLB z (nm)"] == f"{np.nanmedian(cz):.3g} ({int(held.sum())} rows NaN, left out)"
    assert r.summary["median CRLB x (nm)"] == f"{np.median(pred['crlb_x_nm']):.3g}"
