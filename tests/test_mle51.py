"""Session 51, helper mle: the MLE fitter's words and levels on dense and 3D movies.

(a) A camera ``saturation_adu`` below the movie's values: the level its rows are flagged at instead is looked for in
frames spread over the movie too, not only in the first ones (:func:`plexloc.mle.pipeline.exceeded_clip_levels`).
(b) ``plexloc filter --max-sigma-z`` on an MLE table: the rows without ``crlb_z_nm`` are said to be held on the z
bound; a 3D table whose every row is held is not told it is a 2D fit.
(c) The fit's summary line gives the z-bound share of the rows, its two causes and what to do.
"""

from __future__ import annotations

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
