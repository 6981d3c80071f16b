"""Session 51, helper mle: the MLE fitter's words and levels on dense and 3D movies.

(a) A camera ``saturation_adu`` below the movie's values: the level its rows are flagged at instead is looked for in
frames spread over the movie too, not only in the first ones (:func:`plexloc.mle.pipeline.exceeded_clip_levels`).
(b) ``plexloc filter --max-sigma-z`` on an MLE table: the rows without ``crlb_z_nm`` are said to be held on the z
bound; a 3D table whose every row is held is not told it is a 2D fit.
(c) The fit's summary line gives the z-bound share of the rows, its two causes and what to do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from plexloc.camera import EMCCD
from plexloc.errors import InputError
from plexloc.mle.fit import AT_BOUND_BITS
from plexloc.mle.pipeline import MLEFitter, not_converged_line
from plexloc.post.filter import filter_localizations
from plexloc.table import LocTable
from test_mlewalk47 import EMCCD_2D, _config, _fit

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _spots(n: int, bright: float) -> np.ndarray:
    """uint16 frames (n, 40, 40) as test_mlewalk47's ``_movie``, the bright spot with ``bright`` photons."""
    cfg = _config()
    psf = MLEFitter(cfg).channels[0].psf
    px = cfg.px_size_xy_nm[0]
    x = torch.tensor([12.3 * px, 27.6 * px] * n)
    y = torch.tensor([14.4 * px, 25.2 * px] * n)
    ph = torch.tensor([bright, 1000.0] * n)
    fr = torch.arange(n).repeat_interleave(2)
    light = 30.0 + psf.render(x, y, torch.zeros(2 * n), ph, fr, n_frames=n, frame_shape=(40, 40))
    adu = EMCCD(**EMCCD_2D)(light, generator=torch.Generator().manual_seed(51))
    return adu.round().clamp(0, 65535).numpy().astype(np.uint16)


def test_a_replacement_clip_level_is_looked_for_in_the_later_frames_too():
    """100 frames of 40 x 40 px (the check reads the first 64): the first 64 (a 12,000-photon spot) reach about
    6,500 ADU, above the configured 4095, unclipped; in the last 36 the illumination is raised (30,000 photons) and
    the camera clips at 8191 (13 bits). The rows are flagged at 8191, found in the later frames (before: the pixel
    type's maximum, 65535, and no row flagged)."""
    first = _spots(64, 12000.0)
    later = np.minimum(_spots(36, 30000.0), 8191).astype(np.uint16)
    assert 4095 < first.max() < 8191 and (later == 8191).sum() > 36
    movie = np.concatenate([first, later])
    table, stats, said = _fit(movie, _config(saturation_adu=4095))
    (w,) = [s for s in said if "saturation_adu" in s]
    assert "lie above the camera's saturation_adu, 4095 ADU" in w
    assert f"up to {first.max():.0f} ADU" in w  # the first frames' maximum, which the sentence names
    assert "at 8191 ADU instead, where the movie's values pile up" in w
    assert stats["clip_levels"] == [(8191.0, "found")]
    frame = np.asarray(table["frame"])
    sat = np.asarray(table["saturated_px"]) > 0
    bright = np.asarray(table["photons"]) > 10000
    assert stats["saturated_rows"] == int(sat.sum()) == 36  # the bright spot of every later frame
    assert np.all(sat == (bright & (frame >= 64)))
    # the rows the summary line's counts are of (no filters: the table's), and no z range in 2D
    assert stats["rows_fitted"] == len(table) == 200 and stats["z_range_nm"] is None


def _mle3d_table(n: int = 10, held: int = 4) -> LocTable:
    """A 3D MLE-like table: ``held`` of its ``n`` rows with z held on the bound (at_bound 2, crlb_z_nm NaN)."""
    z_bit = AT_BOUND_BITS["z"]
    at = np.array([z_bit] * held + [0] * (n - held), np.int64)
    return LocTable({"frame": np.arange(n), "x_nm": np.full(n, 1000.0), "y_nm": np.full(n, 1000.0),
                     "z_nm": np.where(at > 0, 500.0, 100.0), "photons": np.full(n, 2000.0),
                     "crlb_x_nm": np.full(n, 10.0), "crlb_y_nm": np.full(n, 10.0),
                     "crlb_z_nm": np.where(at > 0, np.nan, 30.0), "converged": (at == 0).astype(np.int64),
                     "at_bound": at})


def test_filter_max_sigma_z_says_the_rows_without_crlb_z_are_held_on_the_z_bound():
    kept, report = filter_localizations(_mle3d_table(10, 4), max_sigma_z_nm=80.0)
    assert len(kept) == 6 and report.no_value == {"max_sigma_z_nm": 4}
    assert report.held_z == {"max_sigma_z_nm": 4}
    text = report.format_table()
    assert ("max_sigma_z_nm failed 4 row(s) with no value (NaN) in crlb_z_nm: a row without the value does not pass "
            "(4 of them an MLE fit's z held on its bound, at_bound & 2: no estimate of z)") in text
    # a table without at_bound (a network's, or NaN for another reason): as before, no such clause
    t = _mle3d_table(10, 4)
    t = LocTable({k: t[k] for k in t.columns if k != "at_bound"})
    _, report = filter_localizations(t, max_sigma_z_nm=80.0)
    assert report.held_z == {} and "held on its bound" not in report.format_table()


def test_filter_a_3d_table_whose_every_row_is_held_is_not_called_2d():
    kept, report = filter_localizations(_mle3d_table(5, 5), max_sigma_z_nm=80.0)
    assert len(kept) == 0 and report.removed == {"max_sigma_z_nm": 5} and report.held_z == {"max_sigma_z_nm": 5}
    assert "5 of them an MLE fit's z held on its bound" in report.format_table()
    # a 2D MLE table (NaN crlb_z_nm, no z bit): still refused as having no z
    t = _mle3d_table(5, 0)
    t = LocTable({**{k: t[k] for k in t.columns}, "crlb_z_nm": np.full(5, np.nan)})
    with pytest.raises(InputError, match="a 2D table has no z"):
        filter_localizations(t, max_sigma_z_nm=80.0)


def test_the_summary_line_gives_the_z_bound_share_its_causes_and_the_advice():
    flagged = {"not_converged": 1041, "xy": 0, "z": 1026, "photons": 2, "width": 0}
    line = not_converged_line(flagged, rows=4531, z_range_nm=(-500.0, 500.0))
    assert line == ("1041 rows did not converge (converged 0, kept), on a bound of the fit (column at_bound): "
                    "1026 z on its bound (22.6 % of the 4531 rows: emitters beyond the fit's z range [-500, 500] nm, "
                    "or spots overlapping a neighbour, fitted as one wide spot; their crlb_z_nm is NaN); "
                    "2 photons at their bound; plexloc filter --converged removes them; a sample thicker than the z "
                    "range: widen emitters.z_range_nm in the configuration")
    # without the row count (the report's own call): the words as before
    assert not_converged_line(flagged) == (
        "1041 rows did not converge (converged 0, kept), on a bound of the fit (column at_bound): 1026 z on its "
        "bound; 2 photons at their bound; plexloc filter --converged removes them")


# --- (d) dense 3D movies: the MLE fit refined with its neighbours modelled (fit_movie refine_mle, --refine-mle) -------

@pytest.fixture(scope="module")
def dense_3d(tmp_path_factory):
    """examples/3d_astigmatic.yaml cut to 40 x 40 px, emitters over z +-600 nm at 1 per um^2, 60 frames, seed 1 (about
    15 emitters a frame, many overlapping); the fit's z range is the example's +-500 nm."""
    import yaml

    from plexloc.cli.main import main
    from plexloc.io.tables import read_table

    work = tmp_path_factory.mktemp("dense3d")
    cfg = yaml.safe_load((EXAMPLES / "3d_astigmatic.yaml").read_text())
    cfg["emitters"]["z_range_nm"] = [-600.0, 600.0]
    cfg["frame_size"] = [40, 40]
    (work / "sim.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["simulate", str(work / "sim.yaml"), "--frames", "60", "--out", str(work / "sim"), "--density", "1",
                 "--seed", "1"]) == 0
    return work, read_table(work / "sim" / "truth.csv")


def _rmse(truth, table) -> tuple[float, float, int]:
    from plexloc.evaluate.matching import match

    m = match(truth, table, dim=3)
    d = {k: np.asarray(table[k], float)[m.tp_pred] - np.asarray(truth[k], float)[m.tp_truth] for k in ("x_nm", "y_nm", "z_nm")}
    return float(np.sqrt(np.mean(d["x_nm"] ** 2 + d["y_nm"] ** 2))), float(np.sqrt(np.mean(d["z_nm"] ** 2))), int(m.n_tp)


def test_fit_movie_refine_mle_models_the_neighbours_and_keeps_its_flags_consistent(dense_3d):
    import tifffile

    from plexloc.config import load_config
    from plexloc.mle import fit_movie

    work, truth = dense_3d
    movie = tifffile.imread(work / "sim" / "movie.tif")
    cfg = load_config(EXAMPLES / "3d_astigmatic.yaml")
    plain_stats, stats = {}, {}
    plain = fit_movie(movie, cfg, stats=plain_stats)
    refined = fit_movie(movie, cfg, stats=stats, refine_mle=True)
    assert len(refined) == len(plain) == stats["rows_fitted"] > 400  # no row added or dropped
    ref = np.asarray(refined["refined"]) > 0
    assert stats["refined_rows"] == int(ref.sum()) > 0.5 * len(refined)
    # measured (session 51): axial RMSE 138.2 -> 124.8 nm, lateral 66.8 -> 66.1 nm, 491 / 490 matched
    lat0, ax0, tp0 = _rmse(truth, plain)
    lat1, ax1, tp1 = _rmse(truth, refined)
    assert ax1 < 0.95 * ax0 and lat1 < lat0 + 1.0 and abs(tp1 - tp0) <= 3
    # the refit's flags: z held on its bound exactly where crlb_z_nm is NaN, and the summary's counts are the table's
    held = (np.asarray(refined["at_bound"]) & AT_BOUND_BITS["z"]) != 0
    assert np.array_equal(held, np.isnan(np.asarray(refined["crlb_z_nm"])))
    assert stats["flagged"]["z"] == int(held.sum())
    assert stats["flagged"]["not_converged"] == int((np.asarray(refined["converged"]) == 0).sum())
    assert stats["flagged"]["not_significant"] == int((np.asarray(refined["p_spot"]) > 0.01).sum())
    # rows not refined are the plain fit's
    assert np.array_equal(np.asarray(refined["x_nm"])[~ref], np.asarray(plain["x_nm"])[~ref])


def test_refining_an_mle_table_rewrites_its_at_bound_and_converged(dense_3d):
    """refine_frames on an MLE fitter's table (the library's way before fit_movie's refine_mle): rows whose refit
    moved onto or off the z bound carry the refit's at_bound and converged (before: the first fit's, so at_bound & 2
    and a NaN crlb_z_nm disagreed on those rows)."""
    import tifffile

    from plexloc.config import load_config
    from plexloc.mle import fit_movie, refine_frames

    work, _ = dense_3d
    movie = tifffile.imread(work / "sim" / "movie.tif")
    cfg = load_config(EXAMPLES / "3d_astigmatic.yaml")
    fitter = MLEFitter(cfg)
    table = refine_frames(fitter, fitter.to_photons([movie]), fit_movie(movie, cfg))
    held = (np.asarray(table["at_bound"]) & AT_BOUND_BITS["z"]) != 0
    assert np.array_equal(held, np.isnan(np.asarray(table["crlb_z_nm"])))
    assert np.all(np.asarray(table["converged"])[held] == 0)


def test_plexloc_fit_method_mle_takes_refine_mle(dense_3d, capsys):
    from plexloc.cli.main import main
    from plexloc.io.tables import read_table

    work, _ = dense_3d
    out = work / "refined.csv"
    assert main(["fit", str(work / "sim" / "movie.tif"), "--method", "mle", "--config",
                 str(EXAMPLES / "3d_astigmatic.yaml"), "--out", str(out), "--refine-mle"]) == 0
    err = capsys.readouterr().err
    table = read_table(out)
    n = int((np.asarray(table["refined"]) > 0).sum())
    assert f"refined by maximum likelihood, the neighbours modelled: {n} of the fits (column refined)" in err
    held = int(((np.asarray(table["at_bound"]) & 2) != 0).sum())
    assert f"{held} z on its bound ({100 * held / len(table):.1f} % of the {len(table)} rows: emitters beyond the fit's z " \
           "range [-500, 500] nm" in err
