"""plexloc filter on MLE tables: the uncertainty criteria read the CRLB where the table has no predicted σ, and
``--converged`` keeps the fits that converged (on no bound of the fit)."""

from __future__ import annotations

import numpy as np
import pytest

from plexloc.cli.main import main
from plexloc.errors import InputError
from plexloc.io.tables import read_table, write_table
from plexloc.post.filter import FilterReport, filter_localizations, uncertainty_columns
from plexloc.table import LocTable


def _mle_table(n: int = 200, seed: int = 0) -> LocTable:
    """An MLE fitter's columns: CRLB, converged and at_bound, no predicted σ."""
    rng = np.random.default_rng(seed)
    crlb = rng.uniform(3.0, 30.0, n)
    converged = (rng.random(n) > 0.2).astype(np.int64)
    at_bound = np.where(converged == 0, 2, 0).astype(np.int64)
    return LocTable({"frame": np.arange(n) // 10, "x_nm": rng.uniform(0, 5000, n), "y_nm": rng.uniform(0, 5000, n),
                     "z_nm": rng.uniform(-400, 400, n), "photons": rng.uniform(500, 5000, n),
                     "crlb_x_nm": crlb, "crlb_y_nm": 1.2 * crlb, "crlb_z_nm": 3.0 * crlb,
                     "converged": converged, "at_bound": at_bound})


def test_max_sigma_reads_the_crlb_of_an_mle_table():
    t = _mle_table()
    kept, report = filter_localizations(t, max_sigma_nm=18.0, max_sigma_z_nm=60.0)
    want = (np.maximum(t["crlb_x_nm"], t["crlb_y_nm"]) <= 18.0) & (t["crlb_z_nm"] <= 60.0)
    assert 0 < len(kept) == int(want.sum()) < len(t)
    assert np.array_equal(kept["x_nm"], t["x_nm"][want])
    # y's bound is the larger one here: the criterion takes the larger of the two axes, as with sigma
    assert report.failed["max_sigma_nm"] == int(np.count_nonzero(1.2 * t["crlb_x_nm"] > 18.0))
    assert report.columns == {"max_sigma_nm": ["crlb_x_nm", "crlb_y_nm"], "max_sigma_z_nm": ["crlb_z_nm"]}
    text = report.format_table()
    assert "max_sigma_nm read crlb_x_nm, crlb_y_nm (the Cramér-Rao bound" in text
    assert "max_sigma_z_nm read crlb_z_nm" in text


def test_the_predicted_sigma_comes_first_and_a_table_with_neither_is_refused():
    t = _mle_table()
    both = t.with_columns(sigma_x_nm=np.full(len(t), 5.0), sigma_y_nm=np.full(len(t), 50.0))
    assert uncertainty_columns(both, "max_sigma_nm") == ("sigma_x_nm", "sigma_y_nm")
    kept, report = filter_localizations(both, max_sigma_nm=20.0)
    assert len(kept) == 0  # sigma_y 50 nm everywhere, whatever the CRLB says
    assert report.columns == {"max_sigma_nm": ["sigma_x_nm", "sigma_y_nm"]}
    assert "read" not in report.format_table()  # the usual columns: no note
    base = {"frame": [0, 1], "x_nm": [0.0, 1.0], "y_nm": [0.0, 1.0], "z_nm": [0.0, 0.0], "photons": [900.0, 900.0]}
    bare = LocTable(base)
    with pytest.raises(InputError, match=r"sigma_x_nm.*or \['crlb_x_nm', 'crlb_y_nm'\], the CRLB of an MLE fit"):
        filter_localizations(bare, max_sigma_nm=10.0)
    # one CRLB column is not enough to stand in for the pair
    half = LocTable({**base, "crlb_x_nm": [1.0, 2.0]})
    assert uncertainty_columns(half, "max_sigma_nm") == ("sigma_x_nm", "sigma_y_nm")


def test_converged_keeps_the_converged_fits_and_only_true_is_a_criterion():
    t = _mle_table()
    kept, report = filter_localizations(t, converged=True, min_photons=1000.0)
    want = (t["converged"] == 1) & (t["photons"] >= 1000.0)
    assert len(kept) == int(want.sum()) and set(np.asarray(kept["at_bound"])) == {0}
    assert report.failed["converged"] == int(np.count_nonzero(t["converged"] == 0))
    assert sum(report.removed.values()) == len(t) - len(kept)
    with pytest.raises(InputError, match="converged must be True"):
        filter_localizations(t, converged=False)
    network = LocTable({"frame": [0], "x_nm": [0.0], "y_nm": [0.0], "z_nm": [0.0], "photons": [900.0], "prob": [0.9]})
    with pytest.raises(InputError, match=r"converged needs column\(s\) \['converged'\]"):
        filter_localizations(network, converged=True)


def test_reports_of_parts_keep_the_columns_read():
    t = _mle_table()
    a = filter_localizations(t[:100], max_sigma_nm=15.0)[1]
    b = filter_localizations(t[100:], max_sigma_nm=15.0)[1]
    merged = FilterReport(0, 0, criteria=dict(a.criteria)).add(a).add(b)
    assert merged.columns == {"max_sigma_nm": ["crlb_x_nm", "crlb_y_nm"]}
    assert merged.n_in == len(t) and merged.failed["max_sigma_nm"] == a.failed["max_sigma_nm"] + b.failed["max_sigma_nm"]


def test_cli_filter_converged_and_max_sigma_on_an_mle_file(tmp_path, capsys):
    t = _mle_table()
    src, out = tmp_path / "mle.csv", tmp_path / "kept.csv"
    write_table(t, src)
    assert main(["filter", str(src), "--out", str(out), "--converged", "--max-sigma", "20"]) == 0
    kept = read_table(out)
    want = (t["converged"] == 1) & (np.maximum(t["crlb_x_nm"], t["crlb_y_nm"]) <= 20.0)
    assert len(kept) == int(want.sum()) > 0
    assert (np.asarray(kept["converged"]) == 1).all()
    printed = capsys.readouterr().out
    assert "converged" in printed and "max_sigma_nm read crlb_x_nm, crlb_y_nm" in printed


def test_merging_keeps_the_largest_saturated_px_of_a_molecule():
    """A molecule one of whose frames clipped keeps that count after merging, whichever row is the best."""
    from plexloc.post.merge import merge_localizations

    t = LocTable({"frame": [0, 1, 2, 10], "x_nm": [0.0, 2.0, 1.0, 5000.0], "y_nm": [0.0, 1.0, 2.0, 5000.0],
                  "z_nm": [0.0] * 4, "photons": [5000.0, 900.0, 4000.0, 800.0], "sigma_x_nm": [3.0, 9.0, 4.0, 9.0],
                  "sigma_y_nm": [3.0, 9.0, 4.0, 9.0], "saturated_px": [0, 6, 0, 0]})
    merged = merge_localizations(t)
    assert len(merged) == 2
    assert merged["saturated_px"].dtype == np.int64
    assert sorted(np.asarray(merged["saturated_px"]).tolist()) == [0, 6]


def test_a_merged_event_is_converged_where_every_row_of_it_converged():
    """converged is a flag, not a share: 1, 0, 1 merge to 0 (they averaged to 0.67), so filter --converged keeps only
    events whose every frame converged."""
    from plexloc.post.merge import merge_localizations

    t = LocTable({"frame": [0, 1, 2, 10, 11], "x_nm": [0.0, 2.0, 1.0, 5000.0, 5001.0],
                  "y_nm": [0.0, 1.0, 2.0, 5000.0, 5000.0], "z_nm": [0.0] * 5, "photons": [5000.0] * 5,
                  "crlb_x_nm": [3.0] * 5, "crlb_y_nm": [3.0] * 5, "converged": [1, 0, 1, 1, 1]})
    merged = merge_localizations(t)
    assert np.asarray(merged["converged"]).tolist() == [0.0, 1.0]
    kept, _ = filter_localizations(merged, converged=True)
    assert len(kept) == 1 and float(kept["x_nm"][0]) > 4000


def test_one_rule_for_the_uncertainty_columns_of_filter_nena_and_the_table():
    """σ columns with no value in any row give way to the CRLB (filter refused them as NaN throughout); NeNA and the
    filter read the same columns."""
    from plexloc.render.nena import predicted_sigma_columns
    from plexloc.table import uncertainty_columns as table_rule

    t = _mle_table().with_columns(sigma_x_nm=np.full(200, np.nan), sigma_y_nm=np.full(200, np.nan))
    assert table_rule(t) == ("crlb_x_nm", "crlb_y_nm") == predicted_sigma_columns(t)
    assert uncertainty_columns(t, "max_sigma_nm") == ("crlb_x_nm", "crlb_y_nm")
    assert table_rule(t, "z") == ("crlb_z_nm",)
    kept, report = filter_localizations(t, max_sigma_nm=18.0)
    assert len(kept) == int((np.maximum(t["crlb_x_nm"], t["crlb_y_nm"]) <= 18.0).sum()) > 0
    assert table_rule(t.with_columns(crlb_y_nm=np.full(200, np.nan))) is None  # no row with both
