"""Session 51, review of helper mle's ``fit_movie(refine_mle=True)`` (``plexloc fit --method mle --refine-mle``).

(a) A fit with a free PSF width (``free_sigma``): the refined rows' ``psf_sigma_x_nm, psf_sigma_y_nm`` are the refit's
width, as their positions, photons and CRLBs are (before: the first fit's, beside the refit's position).
(b) A movie without any spot: the empty table has the column ``refined`` too, as every refined table has (and as
the network's ``--refine-mle`` gives an empty table).
"""

from __future__ import annotations

import numpy as np
import torch

from plexloc.camera import EMCCD
from plexloc.mle import MLEFitter, fit_movie, refine_frames
from test_mle51 import _spots
from test_mlewalk47 import EMCCD_2D, _config


def test_a_refit_with_a_free_width_writes_its_width():
    """40 x 40 px frames of two spots (12,000 and 1,000 photons; test_mlewalk47's 2D EMCCD configuration), fitted
    with a free width and refined: refined rows' psf_sigma_x_nm is the refit's (a refit started from width 1 and
    fitted again), not the first fit's."""
    movie = _spots(6, 12000.0)
    cfg = _config()
    plain = fit_movie(movie, cfg, free_sigma=True)
    refined = fit_movie(movie, cfg, free_sigma=True, refine_mle=True)
    ref = np.asarray(refined["refined"]) > 0
    assert ref.sum() >= 6
    # the same refit by hand: the width it fitted is in its table's columns
    fitter = MLEFitter(cfg, free_sigma=True)
    again = refine_frames(fitter, fitter.to_photons([movie]), plain)
    for c in ("psf_sigma_x_nm", "psf_sigma_y_nm"):
        assert np.allclose(np.asarray(again[c]), np.asarray(refined[c]))
        w0, w1 = np.asarray(plain[c])[ref], np.asarray(refined[c])[ref]
        assert np.all(np.isfinite(w1)) and not np.array_equal(w0, w1)  # before the fix: w1 == w0, the first fit's
        assert np.all(np.abs(w1 / w0 - 1.0) < 0.2)  # the same spots: a width near the first fit's
    s0 = fitter.channels[0].psf.sigma_nm
    ratio = np.asarray(refined["psf_sigma_y_nm"])[ref] / np.asarray(refined["psf_sigma_x_nm"])[ref]
    assert np.allclose(ratio, s0[1] / s0[0])  # one scale of the PSF's width, as the fitter writes it


def test_an_empty_refined_mle_table_has_the_refined_column():
    cfg = _config()
    light = torch.full((8, 40, 40), 30.0)  # background alone, 30 photons/px, through the example's EMCCD
    dark = EMCCD(**EMCCD_2D)(light, generator=torch.Generator().manual_seed(51)).round().numpy().astype(np.uint16)
    stats: dict = {}
    table = fit_movie(dark, cfg, refine_mle=True, stats=stats)
    assert len(table) == 0 and stats["refined_rows"] == 0
    assert "refined" in table.columns  # before: missing, where every table with rows has it
    assert "refined" not in fit_movie(dark, cfg).columns  # not refined: no such column, as before
