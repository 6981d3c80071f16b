"""Session 50: a stage step that RCC finds counts its own error in the uncertainty (each test fails on the code before,
3b71002: the step's curve was reported +-0.7-1.2 nm for 2.6-16.6 nm off)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from plexloc.post.drift import drift_error_rms, rcc_drift
from plexloc.post.synthetic import settling_drift
from test_drift49_rcc import _lines


def _settling_lines(tau: float, seed: int):
    from plexloc.post.synthetic import blinking_table, structure_points

    rng = np.random.default_rng(seed)
    d = settling_drift(5000, tau)
    pts = structure_points("lines", 2000, fov_nm=10000.0, rng=rng)
    return blinking_table(pts, n_frames=5000, rng=rng, drift_nm=d, events_per_molecule=5.0), d


def _run(table):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rcc_drift(table, n_segments=2)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_found_jump_is_not_reported_tighter_than_it_is(seed):
    """A 54 nm jump at frame 2,500, 24,000-25,000 rows of lines, 2 windows: the step is found (frame 2,501-2,510), the
    curve 2.6-4.1 nm off, reported +-0.7-1.0 before. The blocks cannot place a jump closer than one block (625
    frames): that timing term (|size| / sqrt(12) over one block's share of the frames) now counts, +-6.3-6.6."""
    table, d = _lines("step", seed=seed)
    res = _run(table)
    step = res.info["step"]
    assert abs(step["frame"] - 2500) <= 15
    actual = drift_error_rms(res.drift_nm, d[res.frames])
    reported = res.info["uncertainty_nm"]
    # session 51: the jump is placed to a few frames and its timing read from sub-blocks (tests/test_drift51_step.py):
    # 1.6-1.7 nm off, reported +-1.5-1.8 (before: one block's timing term, +-6.3-6.6 for 2.6-4.1 off)
    assert reported >= 0.9 * actual, (actual, reported)
    assert reported < 3.0 * actual  # not a blanket figure: 1.6-2.4x in session 50, 0.96-1.07x since session 51
    assert res.info["uncertainty_without_step_nm"] < reported
    np.testing.assert_allclose(reported, np.hypot(res.info["uncertainty_without_step_nm"], step["error_nm"]))
    assert step["block_timing_error_nm"] > 5.0 and step["block_misfit_nm"] < 2.0


@pytest.mark.parametrize("seed", [0, 1])
def test_a_settling_stage_read_as_a_jump_reports_more(seed):
    """A stage settling with a time constant of 300 frames (tau 0.06 of 5,000), 2 windows: read as a jump at frame
    889-983, 15.7-16.6 nm off, reported +-1.2-2.7 before (6-13x low); now +-4.1-4.6 (3.6-3.8x low: the shape inside
    the first block stays unseen)."""
    table, d = _settling_lines(0.06, seed)
    res = _run(table)
    assert "step" in res.info
    actual = drift_error_rms(res.drift_nm, d[res.frames])
    assert actual > 10.0
    assert res.info["uncertainty_nm"] > 3.5 and actual / res.info["uncertainty_nm"] < 4.5


def test_a_straight_drift_keeps_its_figure():
    """No step found: no step term (the figure as before, 0.73 nm for 0.77 nm off)."""
    table, d = _lines("linear")
    res = _run(table)
    assert "step" not in res.info and "uncertainty_without_step_nm" not in res.info
    assert res.info["uncertainty_nm"] < 1.5
