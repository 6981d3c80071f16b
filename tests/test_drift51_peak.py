"""Session 51: a 2-window RCC of a sparse table (fewer than drift.RCC_STRONG_CHECK_ROWS rows a window) is checked with
3 windows whatever its peak: clusters that live in one window only read chance peaks of 6-21 standard deviations
and were accepted up to 186 nm off (fails on 3abfe7b). Guards: right sparse lines with a strong peak stay accepted;
a dense 2-window stage jump is not checked (its middle window of 3 holds the jump)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from plexloc.post import drift
from plexloc.post.drift import UnreliableDriftWarning, drift_error_rms, rcc_drift
from test_drift50_review import _clusters_of_one_window

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from drift50 import lines_table  # noqa: E402


@pytest.mark.parametrize(("rows", "per_cluster", "radius", "seed", "px"),
                         [(300, 15, 40.0, 1, 20.0), (300, 40, 60.0, 6, 20.0), (300, 40, 60.0, 3, 40.0),
                          (1000, 8, 20.0, 8, 40.0)])
def test_a_strong_chance_peak_of_a_sparse_table_is_flagged(rows, per_cluster, radius, seed, px):
    """Before: accepted with peaks of 13.6 / 7.9 / 9.7 / 6.4 standard deviations, 164 / 9 / 53 / 186 nm off a table
    that did not drift. Their 3 windows miss adding up by 33-410 nm."""
    table = _clusters_of_one_window(rows, 1000 * rows + seed, per_cluster, radius)
    with pytest.warns(UnreliableDriftWarning, match="fewer than 1000 a window"):
        res = rcc_drift(table, n_segments=2, render_px_nm=px)
    assert res.info["peak_z_min"] >= drift.RCC_MIN_PEAK_Z and res.info["unreliable"]
    check = res.info["peak_check"]
    assert check["strong_peak"] and not check["passed"] and check["closure_nm"] > 30.0
    assert drift_error_rms(res.drift_nm, np.zeros_like(res.drift_nm)) > 5.0


@pytest.mark.parametrize(("rows", "seed", "z"), [(500, 1, False), (1000, 1, False), (1000, 2, True)])
def test_right_sparse_lines_with_a_strong_peak_stay_accepted(rows, seed, z):
    """Guard: peaks 6.1-7.7, closures 1.6-6.9 nm, 1.8-3.6 nm off: checked and kept."""
    table, d = lines_table(rows, seed, z)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnreliableDriftWarning)
        res = rcc_drift(table, n_segments=2)
    assert res.info["peak_z_min"] >= drift.RCC_MIN_PEAK_Z
    assert res.info["peak_check"]["passed"] and res.info["peak_check"]["strong_peak"]
    assert drift_error_rms(res.drift_nm, d[res.frames]) < 5.0


def test_a_dense_two_window_table_is_not_checked():
    """Lines of 3,000 rows (1,500 a window) with a strong peak: no 3-window check, as before."""
    table, d = lines_table(2000, 1, False)
    assert len(table) / 2 >= drift.RCC_STRONG_CHECK_ROWS
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnreliableDriftWarning)
        res = rcc_drift(table, n_segments=2)
    assert "peak_check" not in res.info or not res.info["peak_check"].get("strong_peak")
