"""Session 51 review of the sparse 2-window check (drift.RCC_STRONG_CHECK_ROWS): at a smaller reach (max_drift_nm)
the 3-window closure's allowance shrinks with it (20 nm x reach / 300: 6.7 nm at 100, 3.3 at 50), and right sparse
tables whose strong peak was never checked before were refused: 26 of 173 strong-peak estimates (1,200-1,800 rows,
0-9.9 nm off, closures 0.04-12.8 nm) at 100 nm and 68 of 173 at 50 nm (bench/drift51_review.py). A strong peak's
allowance is now at least drift.RCC_STRONG_MIN_CLOSURE_NM (4 and 4 refused; fails on 5ca1b82). Guard: a strong chance
peak at 100 nm (closure 12.6 nm, the smallest of 38 strong chance peaks there) stays flagged."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from plexloc.post import drift
from plexloc.post.drift import UnreliableDriftWarning, drift_error_rms, rcc_drift
from plexloc.post.synthetic import blinking_table, linear_drift, structure_points
from test_drift50_review import _clusters_of_one_window


def _sparse(kind: str, seed: int, rows: int, *, z: bool = False, molecules: int = 600):
    """A sparse table of ``kind`` (2,000 frames, a straight drift of 36 nm, z 15 nm in 3D), ``rows`` rows kept."""
    r = np.random.default_rng(seed + 77)
    d = linear_drift(2000, (30.0, -20.0, 15.0 if z else 0.0))
    pts = structure_points(kind, molecules, fov_nm=10000.0, rng=r, **({"z_range_nm": (-400, 400)} if z else {}))
    t = blinking_table(pts, n_frames=2000, rng=r, drift_nm=d, events_per_molecule=5.0,
                       precision_z_nm=30.0 if z else None)
    return t[np.sort(r.choice(len(t), rows, replace=False))], d


@pytest.mark.parametrize(("kind", "seed", "rows", "z", "molecules", "reach"),
                         [("rings", 4, 1400, False, 400, 100.0), ("lines", 14, 1200, False, 600, 100.0),
                          ("lines", 2, 1600, True, 600, 100.0), ("lines", 0, 1800, False, 600, 50.0)])
def test_a_right_sparse_table_at_a_small_reach_is_kept(kind, seed, rows, z, molecules, reach):
    """Before the fix: peaks 7.1-9.9, closures 4.3-9.1 nm over 6.7 / 3.3 allowed, 0.8-4.8 nm off: refused."""
    table, d = _sparse(kind, seed, rows, z=z, molecules=molecules)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnreliableDriftWarning)
        res = rcc_drift(table, n_segments=2, max_drift_nm=reach)
    check = res.info["peak_check"]
    assert check["strong_peak"] and check["passed"]
    assert check["allowed_nm"] == pytest.approx(drift.RCC_STRONG_MIN_CLOSURE_NM)
    assert drift_error_rms(res.drift_nm, d[res.frames]) < 5.0


def test_a_strong_chance_peak_at_a_small_reach_stays_flagged():
    """Clusters of one window (300 rows), 40 nm pixels, reach 100 nm: peak 17.5, closure 12.6 nm: flagged."""
    table = _clusters_of_one_window(300, 300 * 1000 + 6, 40, 60.0)
    with pytest.warns(UnreliableDriftWarning, match="fewer than 1000 a window"):
        res = rcc_drift(table, n_segments=2, render_px_nm=40.0, max_drift_nm=100.0)
    check = res.info["peak_check"]
    assert res.info["peak_z_min"] >= drift.RCC_MIN_PEAK_Z and check["strong_peak"] and not check["passed"]
    assert check["closure_nm"] > drift.RCC_STRONG_MIN_CLOSURE_NM and res.info["unreliable"]


def test_the_weak_peak_band_keeps_its_scaled_allowance():
    """The 4.5-6 band's allowance (session 50 review) is unchanged: 20 nm x reach / 300 (6.7 nm at 100 nm)."""
    table, _ = _sparse("lines", 1, 1600, z=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreliableDriftWarning)
        res = rcc_drift(table, n_segments=2, max_drift_nm=100.0)
    check = res.info["peak_check"]  # peak 5.5, closure 10.9 nm: refused
    assert not check["strong_peak"] and not check["passed"]
    assert check["allowed_nm"] == pytest.approx(drift.RCC_MAX_CLOSURE_NM / 3.0)
