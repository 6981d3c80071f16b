"""Session 51 (helper drift2): a failed 3-window check of a sparse 2-window table points to --max-drift where a reach
below the default shrank its allowance and the closure lies within the default's (drift._reach_hint): a right sparse
rings table (1,400 rows, 40 nm pixels, 0.9 nm off) closes 10.7 nm and is refused at max_drift_nm 100 (10 allowed);
at the default 300 it passes. A chance peak of one-window clusters closes 12.6 nm at 100 and 145 nm at 300 (refused
either way). At the default reach the warning does not name --max-drift. Fails on 96dea8a (no hint)."""

from __future__ import annotations

import warnings

import pytest

from plexloc.post.drift import UnreliableDriftWarning, rcc_drift
from test_drift50_review import _clusters_of_one_window
from test_drift51_review import _sparse


def test_a_right_sparse_table_refused_at_a_small_reach_is_told_of_max_drift():
    table, _ = _sparse("rings", 7, 1400, molecules=400)
    with pytest.warns(UnreliableDriftWarning, match="fewer than 1000 a window") as rec:
        res = rcc_drift(table, n_segments=2, render_px_nm=40.0, max_drift_nm=100.0)
    check = res.info["peak_check"]
    assert check["strong_peak"] and not check["passed"] and 10.0 < check["closure_nm"] < 20.0
    text = " ".join(str(w.message) for w in rec)
    assert "--max-drift, 100 nm here" in text and "at the default 300 nm 20 nm are allowed" in text
    with warnings.catch_warnings():  # the advice holds: at the default reach it passes
        warnings.simplefilter("error", UnreliableDriftWarning)
        ok = rcc_drift(table, n_segments=2, render_px_nm=40.0)
    assert ok.info["peak_check"]["passed"] and not ok.info.get("unreliable")


def test_a_chance_peak_at_a_small_reach_is_told_of_max_drift_and_refused_at_the_default():
    table = _clusters_of_one_window(300, 300 * 1000 + 6, 40, 60.0)
    with pytest.warns(UnreliableDriftWarning, match="--max-drift, 100 nm here"):
        rcc_drift(table, n_segments=2, render_px_nm=40.0, max_drift_nm=100.0)
    with pytest.warns(UnreliableDriftWarning, match="fewer than 1000 a window") as rec:
        res = rcc_drift(table, n_segments=2, render_px_nm=40.0)
    assert res.info["peak_check"]["closure_nm"] > 100.0 and res.info["unreliable"]
    assert "--max-drift" not in " ".join(str(w.message) for w in rec)
