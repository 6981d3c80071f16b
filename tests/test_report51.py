"""The report page as a microscopist reads it after an MLE fit (session 51): its converged line in the fit's own words
(the z bound's share of the rows), and the uncertainty histograms by the columns every other step reads."""

from __future__ import annotations

import numpy as np

from plexloc.mle.pipeline import not_converged_line
from plexloc.render.report import build_report
from plexloc.table import LocTable
from test_reportwalk47 import _mle_table


def test_the_converged_line_gives_the_z_bounds_share_of_the_rows_as_the_fits_own_summary_does():
    """The fit says "N z on its bound (P % of the M rows: ...)"; the page's line was called without a row count and
    kept the old wording, with no share (on examples/3d_astigmatic.yaml at 1 /um^2 about a fifth of the rows)."""
    t = _mle_table()
    n = len(t)
    on_z = int(np.sum(t["at_bound"] == 2))
    line = build_report(t, px_size_nm=20.0).summary["converged (maximum-likelihood fit)"]
    assert f"{on_z} z on its bound ({100 * on_z / n:.1f} % of the {n} rows: emitters beyond the fit's z range" in line, line
    assert "their crlb_z_nm is NaN" in line and "widen emitters.z_range_nm" in line, line
    # the very words of the fit's note, for the same counts
    flagged = {"not_converged": int(np.sum(t["converged"] == 0)), "z": on_z, "photons": int(np.sum(t["at_bound"] == 4))}
    assert line.endswith(not_converged_line(flagged, rows=n, z_range_nm=(-500.0, 500.0))), line


def _with(t: LocTable, **cols) -> LocTable:
    return LocTable({**{c: t[c] for c in t.columns}, **cols}, source=t.source)


def test_all_nan_sigma_columns_beside_a_finite_crlb_show_the_crlb_histograms():
    """A table whose sigma_x/y/z_nm are NaN in every row and whose crlb_* are finite (an MLE table joined with an
    empty network's columns, a converted file) read 'sigma_x_nm and sigma_y_nm NaN or infinite in every row' where the
    bound was there to show: the choice is now plexloc.table.uncertainty_columns', as NeNA's, the filter's and the
    z-scores'."""
    t = _mle_table()
    nan = np.full(len(t), np.nan)
    rep = build_report(_with(t, sigma_x_nm=nan, sigma_y_nm=nan, sigma_z_nm=nan), px_size_nm=20.0)
    assert "sigma" not in rep.missing and "sigma_z" not in rep.missing, rep.missing
    assert 'alt="lateral CRLB (nm) histogram"' in rep.html and 'alt="axial CRLB (nm) histogram"' in rep.html
    assert "NaN or infinite in every row" not in rep.html
    # finite sigmas are still preferred to the bound
    rep = build_report(_with(t, sigma_x_nm=t["crlb_x_nm"], sigma_y_nm=t["crlb_y_nm"]), px_size_nm=20.0)
    assert 'alt="lateral σ (nm) histogram"' in rep.html and 'alt="axial CRLB (nm) histogram"' in rep.html
    # and a 2D fit's crlb_z_nm, NaN in every row, is still said as such
    rep = build_report(_with(t, z_nm=np.zeros(len(t)), crlb_z_nm=nan), px_size_nm=20.0)
    assert rep.missing["sigma_z"] == "crlb_z_nm NaN or infinite in every row (a 2D table)", rep.missing


def test_the_converged_line_names_the_z_bounds_that_the_held_rows_show():
    """The fit's note names its z range ("[-500, 500] nm"); a table alone shows it in the rows held on it (their z is
    the bound; a z drift subtracted since is added back). Rows held at one end only show no range, and none is said."""
    t = _mle_table()
    held = t["at_bound"] == 2
    drift = np.where(held, 7.0, 3.0)
    rep = build_report(_with(t, z_nm=t["z_nm"] - drift, drift_x_nm=np.zeros(len(t)), drift_y_nm=np.zeros(len(t)),
                             drift_z_nm=drift), px_size_nm=20.0)
    assert "emitters beyond the fit's z range [-500, 500] nm, or spots" in rep.summary[
        "converged (maximum-likelihood fit)"]
    one_end = _with(t, z_nm=np.where(held, 500.0, t["z_nm"]))
    line = build_report(one_end, px_size_nm=20.0).summary["converged (maximum-likelihood fit)"]
    assert "emitters beyond the fit's z range, or spots" in line, line


def test_the_page_says_how_many_rows_were_refined_and_which_rows_the_axial_bound_histogram_leaves_out():
    """A table of plexloc fit --refine-mle (column refined): the page did not say how many rows were refitted, nor, for
    a network's table, that their sigma_* are then the CRLB; the axial CRLB histogram counted the rows with a finite
    crlb_z_nm without saying that the rows held on the z bound were not in it."""
    t = _mle_table()
    n = len(t)
    refined = (np.arange(n) % 4 != 0).astype(float)
    k = int(refined.sum())
    rep = build_report(_with(t, refined=refined, crlb_z_nm=np.where(t["at_bound"] == 2, np.nan, t["crlb_z_nm"])),
                       px_size_nm=20.0)
    line = rep.summary["refined (--refine-mle)"]
    assert line.startswith(f"{k} of {n} rows ({100 * k / n:.1f} %) refitted by maximum likelihood"), line
    assert line.endswith(f"{n - k} kept the first maximum-likelihood fit's values (refined 0)"), line
    on_z = int(np.sum(t["at_bound"] == 2))
    assert (f"{on_z} of {n} rows without a finite crlb_z_nm: not in the bars (z held on the fit&#x27;s bound, "
            "at_bound &amp; 2") in rep.html
    # a network's table refined: its sigma columns
    net = LocTable({**{c: t[c] for c in ("frame", "x_nm", "y_nm", "z_nm", "photons", "bg")},
                    "sigma_x_nm": t["crlb_x_nm"], "sigma_y_nm": t["crlb_y_nm"], "sigma_z_nm": t["crlb_z_nm"],
                    "prob": np.full(n, 0.9), "refined": refined})
    rep = build_report(net, px_size_nm=20.0)
    assert rep.summary["refined (--refine-mle)"].endswith(
        "(plexloc fit --refine-mle: refined 1; their sigma_x/y/z_nm are the CRLB at the refit); "
        f"{n - k} kept the network's values, its predicted sigma_*_nm among them (refined 0)"), rep.summary
    assert "not in the bars" not in rep.html
    assert not any(k.startswith("refined") for k in build_report(t, px_size_nm=20.0).summary)


def test_a_multi_channel_tables_photons_per_channel_are_shown():
    """A dual-colour fit's table (photons_ch0, photons_ch1): the page showed the total photons only, so its two dyes
    (channel 0's share about 0.3 and 0.8) were on no figure and no line."""
    t = _mle_table()
    n = len(t)
    share = np.where(np.arange(n) % 2 == 0, 0.3, 0.8)
    two = _with(t, photons_ch0=share * t["photons"], photons_ch1=(1 - share) * t["photons"])
    rep = build_report(two, px_size_nm=20.0)
    assert rep.n_figures == build_report(t, px_size_nm=20.0).n_figures + 1
    assert 'alt="channel 0 share histogram"' in rep.html and "plexloc color assigns them" in rep.html
    med = rep.summary["median photons per channel"]
    assert med == f"ch0: {np.median(share * t['photons']):.0f}, ch1: {np.median((1 - share) * t['photons']):.0f}", med
    keys = list(rep.summary)
    assert keys.index("median photons per channel") == keys.index("median photons") + 1
    # one channel's column alone (photons_ch1 without photons_ch0) is not read as channels
    assert "median photons per channel" not in build_report(_with(t, photons_ch1=t["photons"]), px_size_nm=20.0).summary


def test_a_merged_tables_held_rows_and_refined_shares_are_said_as_merged_rows():
    """merged.csv of a refined 3D MLE fit: a merged row's at_bound holds its rows' bits and its z their mean, its refined
    their share refitted. The page said all 431 held rows were the z histogram's end bars (358 were) and that the 938
    rows not refined 1 'kept the first fit's values' (229 were partly refitted)."""
    t = _mle_table()
    n = len(t)
    held = t["at_bound"] == 2
    off = held & (np.cumsum(held) % 3 == 0)  # a third of the held rows: a mean off the bound
    z = np.where(off, 250.0, t["z_nm"])
    refined = np.where(np.arange(n) % 5 == 0, 0.5, np.where(np.arange(n) % 5 == 1, 0.0, 1.0))
    m = _with(t, z_nm=z, refined=refined, n_merged=np.full(n, 2), frame_last=t["frame"] + 1)
    rep = build_report(m, px_size_nm=20.0)
    on_z, at_end = int(held.sum()), int(np.sum(held & ~off))
    assert 0 < at_end < on_z
    assert (f"{on_z} of {n} merged rows ({100 * on_z / n:.1f} %) hold a localization that ended on the fit&#x27;s z "
            f"bound") in rep.html and f"; {at_end} of them at z = -500 or 500 nm, the bars at the ends" in rep.html
    k, part = int(np.sum(refined == 1)), int(np.sum(refined == 0.5))
    assert rep.summary["refined (--refine-mle)"] == (
        f"{k} of {n} merged rows ({100 * k / n:.1f} %) of localizations all refitted by plexloc fit --refine-mle "
        f"(refined 1), {part} of some refitted and some that kept the first maximum-likelihood fit's values (refined "
        f"the share refitted), {n - k - part} of none (refined 0)")


def test_the_z_coloured_image_says_the_rows_held_on_the_z_bound_are_its_end_colours(tmp_path, capsys):
    """The report's image and plexloc render --color-by z drew an MLE fit's rows held on its z bound (their z the bound,
    no estimate) in the end colours of the z scale as molecules there, without a word."""
    from plexloc.cli.main import main
    from plexloc.io.tables import write_table

    t = _mle_table()
    on_z = int(np.sum(t["at_bound"] == 2))
    rep = build_report(t, px_size_nm=20.0)
    assert (f"the end colours); {on_z} rows with z held on the fit&#x27;s bound (at_bound &amp; 2) in the end "
            "colours</p>") in rep.html
    write_table(t, tmp_path / "locs.csv")
    assert main(["render", str(tmp_path / "locs.csv"), "--out", str(tmp_path / "r.png"), "--color-by", "z",
                 "--pixel-size", "20"]) == 0
    err = capsys.readouterr().err
    assert (f"note: {on_z} of {len(t)} localizations ({100 * on_z / len(t):.1f} %) have z held on the fit's z bound "
            "(at_bound & 2") in err, err
    # not coloured by z: no note
    assert main(["render", str(tmp_path / "locs.csv"), "--out", str(tmp_path / "g.png"), "--pixel-size", "20"]) == 0
    assert "held" not in capsys.readouterr().err
