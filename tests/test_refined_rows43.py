"""Rows without a value in a column (p_spot of rows --refine-mle did not keep, z of 2D rows): the filter's report
counts the rows a criterion failed for want of a value and says so; merge combines the detection test over the rows
that have it."""

import numpy as np
import pytest
from scipy.stats import chi2

from plexloc.post.merge import merge_localizations

from plexloc.post.filter import filter_localizations
from plexloc.table import LocTable


def _table(p_spot, z=None):
    n = len(p_spot)
    return LocTable({"frame": np.arange(n), "x_nm": np.zeros(n), "y_nm": np.zeros(n),
                     "z_nm": np.zeros(n) if z is None else np.asarray(z, float), "photons": np.full(n, 1000.0),
                     "p_spot": np.asarray(p_spot, float)})


def test_rows_without_a_value_are_counted_and_named():
    # a refined network table: p_spot only where a refit was kept (rows 0-2), NaN elsewhere
    t = _table([1e-5, 0.5, 1e-4, np.nan, np.nan])
    kept, rep = filter_localizations(t, max_p_spot=0.01)
    assert len(kept) == 2 and rep.failed["max_p_spot"] == 3
    assert rep.no_value == {"max_p_spot": 2}
    text = rep.format_table()
    assert "max_p_spot failed 2 row(s) with no value (NaN) in p_spot" in text


def test_no_line_without_nan_and_counts_add_over_parts():
    t = _table([1e-5, 0.5, 1e-4])
    _, rep = filter_localizations(t, max_p_spot=0.01)
    assert rep.no_value == {} and "no value" not in rep.format_table()
    _, rep2 = filter_localizations(_table([np.nan, 0.5], z=[np.nan, 0.0]), max_p_spot=0.01, z_range_nm=(-10, 10))
    assert rep2.no_value == {"max_p_spot": 1, "z_range_nm": 1}
    rep.add(rep2)
    assert rep.no_value == {"max_p_spot": 1, "z_range_nm": 1}
    assert rep.n_in == 5 and rep.failed["max_p_spot"] == 3
    assert "z_range_nm failed 1 row(s) with no value (NaN) in z_nm" in rep.format_table()


def test_uncertainty_criterion_names_the_columns_it_read():
    t = LocTable({"frame": [0, 1], "x_nm": [0.0, 0.0], "y_nm": [0.0, 0.0], "z_nm": [0.0, 0.0], "photons": [1.0, 1.0],
                  "sigma_x_nm": [5.0, np.nan], "sigma_y_nm": [5.0, 5.0]})
    kept, rep = filter_localizations(t, max_sigma_nm=10.0)
    assert len(kept) == 1 and rep.no_value == {"max_sigma_nm": 1}
    assert "in sigma_x_nm, sigma_y_nm" in rep.format_table()


def test_merge_combines_the_detection_test_over_the_rows_that_have_it():
    # event 0: frames 0-2, the middle row's refit not kept; event 1: one row without the test
    t = LocTable({"frame": [0, 1, 2, 10], "x_nm": [100.0, 102.0, 101.0, 3000.0], "y_nm": [50.0] * 4,
                  "z_nm": [0.0] * 4, "photons": [500.0] * 4, "spot_llr": [10.0, np.nan, 20.0, np.nan],
                  "p_spot": [0.04, np.nan, 5e-4, np.nan]})
    m = merge_localizations(t, radius_nm=30.0, gap=1)
    assert m["n_merged"].tolist() == [3, 1]
    assert m["spot_llr"][0] == 30.0 and np.isnan(m["spot_llr"][1])
    want = chi2.sf(-2 * np.log([0.04, 5e-4]).sum(), 4)  # two rows with the test: 4 degrees of freedom
    assert m["p_spot"][0] == pytest.approx(want, rel=1e-10)
    assert np.isnan(m["p_spot"][1])


def _refine_setup(tmp_path, prob_bias: float):
    """tests/test_mle_refine.py's tiny untrained network and 4-frame movie: (movie path, model path)."""
    from test_mle_refine import refine_model_setup

    return refine_model_setup(tmp_path, prob_bias=prob_bias)[:2]


def test_refined_fit_counts_rows_background_alone_matches(tmp_path, monkeypatch, capsys):
    import functools

    import plexloc.mle.refine as refine_module
    from plexloc.cli.main import main
    from plexloc.infer import fit_movie

    real = functools.partial(refine_module.refine_frames, fit_pvalue=None, max_shift_px=3.0)

    def refine_then_mark(*args, **kwargs):  # every other kept refit made insignificant: a count the test knows
        tab = real(*args, **kwargs)
        p = np.asarray(tab["p_spot"], float).copy()
        kept = np.flatnonzero(np.asarray(tab["refined"]) == 1)
        p[kept[::2]] = 0.5
        return tab.with_columns(p_spot=p)

    monkeypatch.setattr(refine_module, "refine_frames", refine_then_mark)
    movie, model = _refine_setup(tmp_path, 0.0)
    stats: dict = {}
    out = fit_movie(movie, model, refine_mle=True, stats=stats)
    want = int(np.count_nonzero(np.asarray(out["p_spot"]) > 0.01))
    assert want > 0 and stats["flagged"] == {"not_significant": want}
    assert main(["fit", str(movie), "--model", str(model), "--out", str(tmp_path / "r.csv"), "--device", "cpu",
                 "--refine-mle"]) == 0
    assert f"{want} refined rows have p_spot above 0.01" in capsys.readouterr().err
    assert main(["fit", str(movie), "--model", str(model), "--out", str(tmp_path / "r2.csv"), "--device", "cpu",
                 "--refine-mle", "--min-prob", "0.0"]) == 0
    assert f"{want} refined rows (before the filters) have p_spot above 0.01" in capsys.readouterr().err
    plain: dict = {}
    fit_movie(movie, model, stats=plain)
    assert "flagged" not in plain  # a fit without refinement has no test to count


def test_refined_fit_that_finds_nothing_has_the_refined_columns(tmp_path):
    from plexloc.infer import fit_movie

    movie, model = _refine_setup(tmp_path, -30.0)  # no pixel near the threshold: no rows
    out = fit_movie(movie, model, refine_mle=True)
    assert len(out) == 0
    assert {"spot_llr", "p_spot", "refined", "crlb_x_nm"} <= set(out.columns)


def test_the_not_significant_line_says_what_the_filter_removes():
    from plexloc.mle.pipeline import not_significant_line

    assert not_significant_line(1) == ("1 row has p_spot above 0.01 (kept): background alone gives a spot_llr this "
                                       "large in more than 1 % of windows; plexloc filter --max-p-spot 0.01 removes them")
    line = not_significant_line(3, refined=True, filtered=True)
    assert line.startswith("3 refined rows (before the filters) have p_spot above 0.01 (kept): background alone, with "
                           "the neighbours' light, gives")
    assert line.endswith("removes them and every row without a kept refit")  # process said only 'removes them'
