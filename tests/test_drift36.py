"""Session 36: the split-half test's halves share each window's centre; COMET makes the windows asked.

1. The split-half test (RCC and COMET) cut each window into alternate blocks of frames (A B A B ...). One half's rows
   then sat a block earlier than the other's: their window centres differed by 15-58 frames on the bench's
   3,000-frame tables, and on a steep settling the two halves' curves differed by what the drift does over those
   frames and by how each curve, through its own centres, misses the bend. That is no noise, and the split-half
   term read the knots' noise too high (bench/drift_uncertainty.py, fast settling, 5 tables of about 100,000 rows:
   the term 1.39x the knots' actual error, rms; bench/drift_rcc36_s1.json). Now the blocks are of equal row counts
   and dealt in the Thue-Morse order (A B B A B A A B): both halves have the same mean frame and spread in every
   window (1.06x).
2. COMET was asked for 10 windows and made 9: its "number of windows" mode turns S windows into a minimum count of
   ceil(N / S) localizations, closes a window at the first whole frame that reaches it, and merges a short remainder
   into the last window. Our windows (equal counts, as RCC's) now go to COMET as window ids.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from plexloc.post.drift import _curve, _half_split, _segments, comet_available, comet_drift, drift_error_rms
from plexloc.post.synthetic import blinking_table, linear_drift, settling_drift, structure_points
from plexloc.table import LocTable

N_FRAMES = 3000

needs_comet = pytest.mark.skipif(not comet_available(), reason="optional package comet-smlm not installed")


def _blinking(n_mol: int, n_frames: int, seed: int, drift: np.ndarray | None = None) -> LocTable:
    """Blinking clusters (5 on-events a molecule; most of them early: the table's rows thin out over the movie)."""
    rng = np.random.default_rng(seed)
    mol = structure_points("clusters", n_mol, fov_nm=8000.0, rng=rng)
    return blinking_table(mol, n_frames=n_frames, rng=rng, drift_nm=np.zeros((n_frames, 3)) if drift is None else drift,
                          events_per_molecule=5, precision_nm=10.0)


def test_halves_share_each_windows_centre_and_spread():
    """In every window both halves have the same mean frame and the same spread of frames, where the rows thin out over
    the window too (72 rows in frame 0, 8 in frame 454; equal frame spans in the Thue-Morse order left the first
    window's halves 22 frames apart). Alternate blocks: up to 58 frames apart, 0.5-2x a block. On-events stay whole."""
    t = _blinking(4000, N_FRAMES, 11)
    frame = t["frame"]
    seg, centre = _segments(frame, 10)
    half, block = _half_split(frame, seg, len(centre))
    assert 0.45 < half.mean() < 0.55
    offsets, spreads = [], []
    for k in range(len(centre)):
        a, b = frame[half & (seg == k)], frame[~half & (seg == k)]
        offsets.append(a.mean() - b.mean())
        spreads.append(a.std() / b.std())
    offsets = np.abs(offsets)
    assert offsets.max() < 3.0, offsets  # measured 1.8 frames at most (alternate blocks: 57.7)
    assert offsets.max() < 0.1 * np.median(block), (offsets, block)
    assert np.all(np.abs(np.log(spreads)) < 0.1), spreads  # measured within 8 %
    event = t["event"].astype(np.int64)
    in_a = np.bincount(event, weights=half.astype(float)) / np.bincount(event)
    assert np.mean((in_a > 0) & (in_a < 1)) < 0.05  # fewer block edges than before (5 a window instead of 9-10)


def test_halves_curves_agree_on_a_settling_without_noise():
    """The halves' difference on a steep settling when neither has any noise: each half's curve through the true mean
    drift of its rows in every window, at its own window centres. Measured (rms, x and y): 0.23 nm for a settling with
    a time constant of 0.2 of the movie (alternate blocks: 0.94 nm), against 1.68 nm of the curve's construction error
    that all halves share; 0.87 nm for 0.1 (2.46 nm)."""
    t = _blinking(4000, N_FRAMES, 11)
    frame = t["frame"]
    frames = np.arange(int(frame.min()), int(frame.max()) + 1)
    seg, centre = _segments(frame, 10)
    half, _ = _half_split(frame, seg, len(centre))
    for tau, bound in ((0.2, 0.4), (0.1, 1.3)):
        truth = settling_drift(N_FRAMES, tau)[:, :2]
        curves = []
        for part in (half, ~half):
            c = np.array([frame[part & (seg == k)].mean() for k in range(len(centre))])
            m = np.array([truth[frame[part & (seg == k)]].mean(axis=0) for k in range(len(centre))])
            curves.append(_curve(c, m, frames))
        full = _curve(centre, np.array([truth[frame[seg == k]].mean(axis=0) for k in range(len(centre))]), frames)
        assert drift_error_rms(curves[0], curves[1]) < bound, tau
        assert drift_error_rms(curves[0], curves[1]) < 0.6 * drift_error_rms(full, truth[frames]), tau


def _comet_table(seed: int = 1) -> LocTable:
    rng = np.random.default_rng(seed)
    truth = linear_drift(600, (40.0, -30.0, 0.0))
    mol = structure_points("lines", 200, fov_nm=5000.0, rng=rng)
    return blinking_table(mol, n_frames=600, rng=rng, drift_nm=truth, events_per_molecule=5, precision_nm=15.0)


@needs_comet
def test_comet_makes_the_windows_asked():
    """10 windows asked, 10 made, the same as RCC's (equal counts). COMET's own mode made 9 of this table's 2,442 rows,
    the last centred at frame 512.2 (now 471.6 and 544.9)."""
    t = _comet_table()
    seg, centre = _segments(t["frame"], 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a small table: the split-half test is off, the warnings are not the subject
        res = comet_drift(t, n_segments=10, max_drift_nm=150.0, backend="cpu", split_half=False)
    assert len(res.segment_frames) == 10 and res.info["n_segments"] == 10
    np.testing.assert_allclose(res.segment_frames, centre)


@needs_comet
def test_comet_runs_every_pass_in_the_full_tables_windows(monkeypatch):
    """The full run and both halves of the split-half test hand COMET the same windows, as ids (its mode -1): 10 of
    them, and each half has rows in all 10. A capped run's centres are the mean frames of the rows COMET kept."""
    import comet

    t = _comet_table()
    seg, centre = _segments(t["frame"], 10)
    calls = []

    def fake_run(dataset, segmentation_mode, segmentation_var, max_locs_per_segment=None, **_):
        from comet.core.segmenter import segmentation_wrapper

        calls.append((segmentation_mode, dataset[:, 3].copy()))
        ids = dataset[:, 3]
        assert segmentation_mode == -1 and np.array_equal(ids, np.round(ids))
        sg = segmentation_wrapper(ids, 1, 2, max_locs_per_segment, random_state=0)  # what mode -1 does
        n = sg.n_segments
        drift = np.column_stack([np.linspace(0.0, 10.0, n), np.zeros(n), np.zeros(n)])
        details = type("Details", (), dict(knot_frames=sg.center_frames, knot_drift_nm=drift, segmentation=sg,
                                            backend="fake"))()
        return None, details

    monkeypatch.setattr(comet, "comet_run_kd", fake_run)
    res = comet_drift(t, n_segments=10, max_pairs=None)
    assert [c[0] for c in calls] == [-1, -1, -1]
    np.testing.assert_array_equal(calls[0][1], seg)
    for _, ids in calls[1:]:
        assert np.array_equal(np.unique(ids), np.arange(10))
    np.testing.assert_allclose(res.segment_frames, centre)
    calls.clear()
    capped = comet_drift(t, n_segments=10, max_pairs=None, max_locs_per_segment=50, split_half=False)
    assert len(capped.segment_frames) == 10
    assert not np.allclose(capped.segment_frames, centre)  # the sample's centres, not the window's
    assert np.all(np.abs(capped.segment_frames - centre) < 25.0)
