"""Session 50: RCC at 2 windows checks a peak between chance's and the rule's with 3 windows (the three pairs' shifts
must add up): right estimates on sparse lines pass, chance peaks stay flagged (fails on the code before, 3b71002)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from plexloc.post import drift
from plexloc.post.drift import UnreliableDriftWarning, drift_error_rms, rcc_drift
from plexloc.post.synthetic import blinking_table, linear_drift, structure_points
from test_drift49_rcc import _structure_free


def _sparse_lines(rows: int, seed: int, z: bool):
    rng = np.random.default_rng(seed)
    d = linear_drift(3000, (120.0, -80.0, 40.0 if z else 0.0))
    pts = structure_points("lines", 600, fov_nm=10000.0, rng=rng, **({"z_range_nm": (-400, 400)} if z else {}))
    t = blinking_table(pts, n_frames=3000, rng=rng, drift_nm=d, events_per_molecule=5.0,
                       precision_z_nm=30.0 if z else None)
    return t[np.sort(rng.choice(len(t), rows, replace=False))], d


@pytest.mark.parametrize(("rows", "seed", "z"), [(500, 3, True), (1000, 3, True)])
def test_a_right_sparse_estimate_is_no_longer_refused(rows, seed, z):
    """3D lines of 500 / 1,000 rows, 2 windows: 1.9 / 6.6 nm off, the peak 5.2 / 5.5 standard deviations (6 needed):
    refused before. Cut into 3 windows, the pairs' shifts add up to within 2-6 nm: accepted."""
    table, d = _sparse_lines(rows, seed, z)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnreliableDriftWarning)
        res = rcc_drift(table, n_segments=2)
    assert 4.5 <= res.info["peak_z_min"] < 6.0
    check = res.info["peak_check"]
    assert check["passed"] and check["closure_nm"] <= drift.RCC_MAX_CLOSURE_NM
    assert not res.info.get("unreliable")
    assert drift_error_rms(res.drift_nm, d[res.frames]) < 8.0


def test_a_chance_peak_above_the_checked_level_stays_flagged():
    """1,000 structure-free rows (seed 1): the peak stands 5.15 standard deviations (the highest of the tables without
    shared structure measured), 170 nm off; the 3 windows' shifts miss adding up by 318 nm: flagged, and said."""
    with pytest.warns(UnreliableDriftWarning, match="miss adding up by"):
        res = rcc_drift(_structure_free(1000, 1), n_segments=2)
    assert res.info["unreliable"] and not res.info["peak_check"]["passed"]
    assert res.info["peak_check"]["closure_nm"] > 100.0
    assert drift_error_rms(res.drift_nm, np.zeros_like(res.drift_nm)) > 100.0


def test_a_wrong_sparse_estimate_stays_refused():
    """2D lines of 1,000 rows (seed 0): 8.5 nm off, peak 5.4; the 3 windows miss closing by 30 nm: still refused."""
    table, d = _sparse_lines(1000, 0, False)
    with pytest.warns(UnreliableDriftWarning, match="miss adding up"):
        res = rcc_drift(table, n_segments=2)
    assert res.info["unreliable"] and res.info["peak_check"]["closure_nm"] > drift.RCC_MAX_CLOSURE_NM
