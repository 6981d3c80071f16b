"""Session 43's walk through the README's main flows as a new user: the defects found, each pinned.

- ``plexloc calibrate``'s leave-one-bead-out z RMSE (printed, and in PSF.json) fitted the *unsmoothed* average of the
  other beads: the z smoothing, auto, off or any strength, left it as it was, so it described another PSF than the
  one written (auto: 15.2 nm printed for a calibration whose own check now reads 8.0; a penalty of 10^6: 15.1 nm
  printed for a PSF that fits z to ~80 nm).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_spline42 import DZ, PX, _stack, _z_rmse  # noqa: E402  (the dim beads and the held-out z test)


def test_leave_one_bead_out_checks_the_smoothed_psf():
    """10 dim beads (3,000 photons): the held-out fit's z RMSE (``_z_rmse``: beads at known z, not in the stack) and
    the leave-one-bead-out check now move together with the z smoothing (measured: off 43.9 / 44.5 nm, auto 18.2 /
    11.9, a penalty of 10^6 94.7 / 82.8); the old check read ~44 nm for all three."""
    from plexloc.calibrate.spline import calibrate_spline
    from plexloc.calibrate.validate import leave_one_bead_out

    st = _stack(10, 3000.0, 1)
    kw = dict(z_step_nm=DZ, px_size_nm=PX, roi_px=15)
    loo, held_out, smoothing = {}, {}, {}
    for name, zs in (("off", 0.0), ("auto", None), ("heavy", 1e6)):
        res = calibrate_spline([st], z_smooth=zs, **kw)
        smoothing[name] = res.summary["z_smoothing"]
        loo[name] = leave_one_bead_out(res)["z_rmse_nm"]
        held_out[name] = _z_rmse(res.calibration)
    # the held-out truth: auto best, off ~3.7x worse, the heavy penalty worst
    assert held_out["auto"] < 0.5 * held_out["off"] < held_out["heavy"], held_out
    # the check follows it (the old one: the same ~44 nm whatever the smoothing)
    assert loo["auto"] < 0.6 * loo["off"], loo
    assert loo["heavy"] > 1.5 * loo["off"], loo
    assert loo["off"] == pytest.approx(held_out["off"], rel=0.25)
    assert np.isfinite(list(loo.values())).all()
    # the summary says whether the strength was chosen (auto: the check chooses it again from the other beads)
    assert smoothing["off"] == [] and smoothing["auto"][0]["auto"] is True and smoothing["heavy"][0]["auto"] is False


def _loc_table(n: int, **cols):
    from plexloc.table import LocTable

    rng = np.random.default_rng(0)
    base = dict(frame=np.arange(n) // 4, x_nm=rng.uniform(0, 5000, n), y_nm=rng.uniform(0, 5000, n),
                z_nm=np.zeros(n), photons=np.full(n, 2000.0))
    base.update(cols)
    return LocTable(base)


def test_a_refined_table_gets_no_nena_caveat_of_the_network():
    """``plexloc process --refine-mle`` marked NeNA with ``*`` and the caveat that a network's temporal window makes it
    read low; its rows were refitted frame by frame (4.4 % left as the network's): NeNA 7.5 nm against a robust error
    spread of 7.9 nm (the unrefined table: 4.0 against 10.6). The caveat stays where many rows are the network's."""
    from plexloc.render.nena import nena_caveat

    n = 200
    refined = np.ones(n, np.int64)
    refined[:9] = 0  # 4.5 % not refined
    assert nena_caveat(_loc_table(n, prob=np.ones(n), refined=refined)) is None
    mostly_net = np.zeros(n, np.int64)
    mostly_net[:100] = 1
    text = nena_caveat(_loc_table(n, prob=np.ones(n), refined=mostly_net))
    assert text is not None and "correlated" in text and "50 % of this table's rows are the network's own" in text
    assert "correlated" in nena_caveat(_loc_table(n, prob=np.ones(n)))  # a plain network table: as before
    assert nena_caveat(_loc_table(n)) is None  # an MLE table: none


def test_bright_spots_not_judged_names_a_wrong_psf_not_only_crowding():
    """``plexloc fit`` of a movie whose PSF is 1.55x the model's (0.5 emitters/um^2, not crowded): the PSF-shape check
    warned, and the bright-spot row of the training-domain table said "not judged: 98 % of the spots are wider than
    one emitter (crowded frames: a bright spot is often several)", a cause the movie does not have."""
    from plexloc.config import load_config
    from plexloc.infer.domain import bright_spot_checks
    from test_bright_spots import EXAMPLES, _report_and_table

    cfg = load_config(EXAMPLES / "2d_gaussian.yaml")
    spots = np.random.default_rng(0).uniform(2000, 8000, 100)
    rep, table = _report_and_table(spots, spots)
    rep.far_fraction = 0.98
    (crowded,) = bright_spot_checks([rep], table, cfg)  # no PSF-shape warning: crowding, as before
    assert crowded.note == ("not judged: 98 % of the spots are wider than one emitter (crowded frames: a bright spot "
                            "is often several)")
    rep.warning = "the spots are 1.55x wider than the model's PSF"
    (wide,) = bright_spot_checks([rep], table, cfg)
    assert wide.warning is None
    assert "a PSF or pixel size unlike the model's: see the PSF-shape warning" in wide.note, wide.note
