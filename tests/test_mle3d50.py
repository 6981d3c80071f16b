"""A 3D MLE fit whose z is held on its bound has no estimate of z, and its ``crlb_z_nm`` says so (NaN), where it read
the Fisher bound at the bound, as small as an interior fit's (session 50, bench/mle3d50.py: rows on the z bound whose
true z was inside the range had z errors 5-8 times that CRLB, rms). The fit's table, the fitter's result and a
refinement's table alike; the value at the bound stays in ``FitResult.extra["crlb_z_held"]``; lateral CRLBs unchanged.
"""

from __future__ import annotations

import numpy as np
import torch

from test_mle41_bounds import EXAMPLES, _fit, _render
from plexloc.camera import EMCCD
from plexloc.config import load_config
from plexloc.mle.fit import AT_BOUND_BITS
from plexloc.psf import AstigmaticPSF


def _spots():
    """50 astigmatic spots at z = 800 nm (beyond +-500) and 50 at z = 0, 3000 photons, fitted within +-500 nm."""
    psf, cam = AstigmaticPSF(), EMCCD()
    outside = _render(psf, 50, x_px=5.5, y_px=5.5, z_nm=800, photons=3000, bg=50, seed=15, cam=cam)
    inside = _render(psf, 50, x_px=5.5, y_px=5.5, z_nm=0, photons=3000, bg=50, seed=14, cam=cam)
    return _fit(psf, torch.cat([outside, inside]), cam, z_range_nm=(-500.0, 500.0))


def test_crlb_z_of_a_fit_held_on_the_z_bound_is_nan():
    res = _spots()
    held = (res.at_bound & AT_BOUND_BITS["z"]) != 0
    assert bool(held[:50].all()) and not bool(held[50:].any())
    assert bool(torch.isnan(res.crlb["z_nm"][:50]).all())  # was 56-76 nm on the old code: read as a good z
    assert bool(torch.isfinite(res.crlb["z_nm"][50:]).all())
    # the bound's value at the bound is kept aside, and the interior rows' CRLB is it
    held_sd = res.extra["crlb_z_held"]
    assert bool((held_sd[:50] > 0).all()) and bool((held_sd[:50] < 200).all())
    torch.testing.assert_close(held_sd[50:], res.crlb["z_nm"][50:])
    # lateral bounds stay (x, y are estimated with z held)
    assert bool(torch.isfinite(res.crlb["x_nm"]).all() and torch.isfinite(res.crlb["y_nm"]).all())


def test_fit_table_and_refinement_write_nan_crlb_z_on_the_bound():
    """plexloc's MLE fit of a movie whose emitters span +-900 nm under the +-500 nm configuration: every row with
    at_bound & 2 has crlb_z_nm NaN (the other rows finite); refining those rows keeps them NaN."""
    from plexloc.mle import MLEFitter
    from plexloc.mle.refine import refine_frames
    from plexloc.simulation import Simulator

    cfg = load_config(EXAMPLES / "3d_astigmatic.yaml")
    cfg.frame_size = [32, 32]
    cfg.emitters.density_per_um2 = 0.3
    cfg.background.variation = 0.0
    wide = cfg.model_copy(deep=True)
    wide.emitters.z_range_nm = [-900.0, 900.0]
    movie = Simulator(wide).simulate_movie(20, generator=torch.Generator().manual_seed(4))
    fitter = MLEFitter(cfg)
    raw = movie.frames[0].numpy()
    ph = fitter.to_photons([raw])
    t = fitter.fit_frames(raw)
    on_z = (np.asarray(t["at_bound"]).astype(int) & AT_BOUND_BITS["z"]) != 0
    assert on_z.sum() >= 5 and (~on_z).sum() >= 5
    cz = np.asarray(t["crlb_z_nm"], float)
    assert np.isnan(cz[on_z]).all() and np.isfinite(cz[~on_z]).all()
    # a selection on the z CRLB (plexloc filter --max-sigma-z) leaves them out, however loose (it kept them)
    from plexloc.post.filter import filter_localizations
    kept = filter_localizations(t, max_sigma_z_nm=1e6)
    kept = kept[0] if isinstance(kept, tuple) else kept
    assert len(kept) == int((~on_z).sum())
    ref = refine_frames(fitter, ph, movie.truth)
    r = np.asarray(ref["refined"]) == 1
    held = r & (np.abs(np.asarray(ref["z_nm"], float)) >= 500.0 - 1e-3)
    assert held.sum() >= 3
    assert np.isnan(np.asarray(ref["crlb_z_nm"], float)[held]).all()
    assert np.isfinite(np.asarray(ref["crlb_z_nm"], float)[r & ~held]).all()


def test_combining_channels_with_rows_held_on_the_z_bound():
    """Tables combined over channels (plexloc.post.channels) where some molecules have crlb_z_nm NaN in every channel
    (z held on its bound in each): their sigma_z_nm is NaN, the others' the inverse-variance value, and no warning
    (0 ** -0.5 raised a divide-by-zero RuntimeWarning, an error under plexloc's warnings-as-errors, and read inf)."""
    import warnings

    from test_post_channels import _two_channel_tables
    from plexloc.post.channels import combine_channels
    from plexloc.table import LocTable

    rng = np.random.default_rng(3)
    cfg, tables, truth, keep = _two_channel_tables(rng, n=600)
    held = np.zeros(len(truth), bool)
    held[::10] = True  # every tenth molecule: NaN in both channels
    tables = [LocTable({**t.to_dict(), "crlb_z_nm": np.where(held[k], np.nan, np.asarray(t["crlb_z_nm"], float))})
              for t, k in zip(tables, keep)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = combine_channels(tables, cfg)
    sz = np.asarray(out["sigma_z_nm"], float)
    n_nan = int(np.isnan(sz).sum())
    assert abs(n_nan - held.sum()) <= 3 and not np.isinf(sz).any()
    fin = sz[np.isfinite(sz)]
    # the others: 40 and 30 nm -> 24 nm (both channels), 40 nm (channel 0 alone)
    assert np.all((np.abs(fin - 24.0) < 0.01) | (np.abs(fin - 40.0) < 0.01) | (np.abs(fin - 30.0) < 0.01))
