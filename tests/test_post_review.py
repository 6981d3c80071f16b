"""Known-answer checks of drift, merging, rendering and FRC found by a review (each failed before its fix)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from plexloc.errors import InputError
from plexloc.post.drift import drift_error_rms, estimate_drift
from plexloc.post.synthetic import blinking_table, linear_drift, structure_points
from plexloc.table import LocTable

_COLS = ("frame", "x_nm", "y_nm", "z_nm", "photons")


def _dense_first_frame(first_frame: int) -> tuple[LocTable, np.ndarray]:
    """A linear drift of (60, 30) nm over 200 frames on lines, and a first frame that holds 1/8 of the rows (every
    molecule on at once, as at the start of a dSTORM movie)."""
    rng = np.random.default_rng(1)
    n_frames = 200
    truth = linear_drift(n_frames, (60.0, 30.0, 0.0))
    mol = structure_points("lines", 3000, fov_nm=6000.0, rng=rng)
    t = blinking_table(mol, n_frames=n_frames, rng=rng, drift_nm=truth, events_per_molecule=6, precision_nm=10.0)
    t = LocTable({c: t[c] for c in _COLS})
    n0 = len(t) // 7
    p = mol[rng.integers(0, len(mol), n0)] + rng.normal(0, 10.0, (n0, 2))
    dense = LocTable({"frame": np.zeros(n0, int), "x_nm": p[:, 0], "y_nm": p[:, 1], "z_nm": np.zeros(n0),
                      "photons": np.full(n0, 1e3)})
    both = LocTable.concat([dense, t])
    return both.with_columns(frame=both["frame"] + first_frame), truth


@pytest.mark.parametrize("first_frame", [0, 5])
def test_rcc_with_a_crowded_first_frame(first_frame):
    """The first frame held more than 1/n_segments of the rows: the equal-count windows left window 0 empty, its
    blank image was correlated with the others (log of zero: RuntimeWarnings) and its knot sat at frame 0 (before
    the table's first frame), so the curve was wrong by 393 nm rms (first frame 0) or 173 nm (first frame 5)."""
    t, truth = _dense_first_frame(first_frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero in the peak fit, no unreliability warning
        res = estimate_drift(t, engine="rcc", n_segments=10)
    frames = np.arange(len(truth)) + first_frame
    assert drift_error_rms(res.at(frames), truth) < 3.0
    assert res.segment_frames.min() >= first_frame  # every window centre is a frame of the table
    assert np.all(np.diff(res.segment_frames) > 0)
    assert res.info["n_segments"] == len(res.segment_frames) >= 2


def test_rcc_needs_two_windows_that_hold_rows():
    """Nearly every row in the first frame: one window is left; an InputError says so (before: a drift of 960 nm between windows centred at frames 0 and 0.2)."""
    rng = np.random.default_rng(0)
    n = 1000
    frame = np.r_[np.zeros(n - 20, int), np.arange(1, 21)]
    t = LocTable({"frame": frame, "x_nm": rng.uniform(0, 3000, n), "y_nm": rng.uniform(0, 3000, n),
                  "z_nm": np.zeros(n), "photons": np.full(n, 1e3)})
    with pytest.raises(InputError, match="window"):
        estimate_drift(t, engine="rcc", n_segments=4)


def test_photon_weighted_merge_propagates_the_uncertainties():
    """weights='photons' on a table with sigma columns: the merged sigma is that of the photon-weighted mean,
    sqrt(sum w² sigma²) / sum w (sigma / sqrt(n) for n equal rows); it was the plain mean of the rows' sigmas, 10 nm
    for four rows of 10 nm (5 nm), so a merged event looked as uncertain as one frame."""
    from plexloc.post.merge import merge_localizations

    n = 4
    t = LocTable({"frame": np.arange(n), "x_nm": [0.0, 10.0, 20.0, 30.0], "y_nm": np.zeros(n), "z_nm": np.zeros(n),
                  "photons": np.full(n, 1e3), "sigma_x_nm": np.full(n, 10.0), "sigma_y_nm": np.full(n, 6.0),
                  "sigma_z_nm": np.full(n, 30.0)})
    m = merge_localizations(t, weights="photons", radius_nm=50.0, gap=0)
    assert len(m) == 1 and m["x_nm"][0] == pytest.approx(15.0)
    np.testing.assert_allclose([m["sigma_x_nm"][0], m["sigma_y_nm"][0], m["sigma_z_nm"][0]], [5.0, 3.0, 15.0])
    # unequal photons and sigmas: the weighted mean's own spread
    p, s = np.array([1e3, 3e3, 2e3, 500.0]), np.array([12.0, 5.0, 8.0, 20.0])
    m = merge_localizations(t.with_columns(photons=p, sigma_x_nm=s), weights="photons", radius_nm=50.0, gap=0)
    assert m["x_nm"][0] == pytest.approx(float(np.sum(p * t["x_nm"]) / p.sum()))
    assert m["sigma_x_nm"][0] == pytest.approx(float(np.sqrt(np.sum(p**2 * s**2)) / p.sum()))
    # inverse-variance weights keep 1 / sqrt(sum 1 / sigma²)
    m = merge_localizations(t.with_columns(sigma_x_nm=s), radius_nm=50.0, gap=0)
    assert m["sigma_x_nm"][0] == pytest.approx(float(1.0 / np.sqrt(np.sum(1.0 / s**2))))


def _with_bad_x(value: float) -> LocTable:
    rng = np.random.default_rng(0)
    n = 500
    x = rng.uniform(0, 3000, n)
    x[3] = value
    return LocTable({"frame": rng.integers(0, 50, n), "x_nm": x, "y_nm": rng.uniform(0, 3000, n),
                     "z_nm": np.zeros(n), "photons": np.full(n, 1e3), "sigma_x_nm": np.full(n, 10.0),
                     "sigma_y_nm": np.full(n, 10.0)})


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_positions_are_an_input_error_naming_the_column(value):
    """A NaN or infinite x_nm (a table built in Python; the readers reject them) was a ValueError from deep in numpy
    or scipy ('cannot convert float NaN to integer', 'data must be finite'), an OverflowError, an 'extent must be'
    InputError with NaN in it, or, with an extent given, a row silently counted as outside the image."""
    from plexloc.post.merge import merge_localizations
    from plexloc.render.frc import frc
    from plexloc.render.image import render_color, render_gaussian, render_histogram
    from plexloc.render.report import build_report

    t = _with_bad_x(value)
    calls = [
        lambda: estimate_drift(t, engine="rcc", n_segments=5),
        lambda: merge_localizations(t),
        lambda: render_histogram(t, px_size_nm=10.0),
        lambda: render_histogram(t, px_size_nm=10.0, extent_nm=(0, 3000, 0, 3000)),
        lambda: render_gaussian(t, px_size_nm=10.0, extent_nm=(0, 3000, 0, 3000)),
        lambda: render_color(t, color_by="z", px_size_nm=10.0),
        lambda: frc(t, px_size_nm=10.0),
        lambda: build_report(t),
    ]
    for call in calls:
        with pytest.raises(InputError, match=r"column 'x_nm' has 1 non-finite value\(s\), first at row 3"):
            call()
