"""Session 48 (driftwalk): drift correction walked as a microscopist. A marker whose photons drop at once (the
illumination changed) is followed through as dimmed, not taken for bleached; frames that no fiducial measures (every
marker bleached before the end) count in the uncertainty, which judges the drift unreliable where they decide it."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from plexloc.cli.main import main
from plexloc.io.tables import write_table
from plexloc.post.drift import UnreliableDriftWarning, drift_error_rms, estimate_drift
from plexloc.post.fiducials import FiducialWarning
from plexloc.post.synthetic import blinking_table, structure_points, with_fiducials
from plexloc.table import LocTable
from plexloc.workflow import MAX_DRIFT_NM

N = 2000
POSITIONS = np.array([[2000.0, 2100.0], [6000.0, 3000.0], [4000.0, 6500.0]])


def _sine(n: int = N) -> np.ndarray:
    """A drift of two slow sine cycles (60 nm in x, 40 nm in y): it keeps moving after any frame."""
    t = np.linspace(0.0, 1.0, n)
    return np.stack([60.0 * np.sin(2 * np.pi * 2 * t), 40.0 * np.sin(2 * np.pi * 1.5 * t + 1) - 40.0 * np.sin(1),
                     np.zeros(n)], axis=1)


def _table(n_fid: int, *, seed: int = 0, **kw):
    rng = np.random.default_rng(seed)
    truth = _sine()
    t = blinking_table(structure_points("lines", 1500, fov_nm=8000.0, rng=rng), n_frames=N, rng=rng, drift_nm=truth,
                       events_per_molecule=5.0)
    t = with_fiducials(t, n_fid, n_frames=N, fov_nm=8000.0, drift_nm=truth, rng=rng, positions_nm=POSITIONS[:n_fid],
                       **kw)
    return t, truth


def _dim_markers(t, factor: float, frame: int):
    """The markers' photons times ``factor`` from ``frame`` on (an illumination or focus change)."""
    return t.with_columns(photons=np.where((t["frame"] >= frame) & (t["id"] < 0), factor, 1.0) * t["photons"])


def _fiducials(t, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = estimate_drift(t, engine="fiducials", **kw)
    return res, [w for w in caught]


# --- 1. a marker that dims at once is followed, not taken for bleached -------------------------------------------------

@pytest.mark.parametrize("factor", [0.35, 0.2])
def test_a_marker_dimmed_at_once_is_followed_through_and_said(factor):
    """One marker whose photons drop to 35 % (20 %) at frame 1000: its rows stay where it is in every frame, at steady
    photons. It was read as bleached (its track ended at frame 999, the drift after it held constant: 30-40 nm rms
    off, reported 3 nm); now it is followed to the end and a warning names the change (a bleached marker leaves no
    steady rows there)."""
    t, truth = _table(1)
    t = _dim_markers(t, factor, 1000)
    res, caught = _fiducials(t)
    fid = res.info["fiducials"][0]
    assert fid["last_frame"] >= N - 5
    assert drift_error_rms(res.drift_nm, truth) < 3.0
    assert not res.info.get("unreliable")
    (change,) = fid["photon_changes"]
    assert abs(change["frame"] - 1000) <= 3
    assert change["photons_after"] / change["photons_before"] == pytest.approx(factor, rel=0.1)
    said = [str(w.message) for w in caught if issubclass(w.category, FiducialWarning) and "photons at" in
            str(w.message)]
    assert len(said) == 1 and "not bleached" in said[0] and "frame 100" in said[0]


def test_a_bleached_marker_is_still_bleached():
    """A marker that bleaches at frame 1000 (no rows after it) is not "dimmed": its track ends there, no photon change
    is named, and the other two carry the drift."""
    t, truth = _table(3, last_frames=[None, 999, None])
    res, caught = _fiducials(t)
    fids = {round(f["x_nm"] / 1000): f for f in res.info["fiducials"]}
    assert 990 <= fids[6]["last_frame"] <= 999
    assert all("photon_changes" not in f for f in res.info["fiducials"])
    assert drift_error_rms(res.drift_nm, truth) < 2.0
    assert not any("photons at" in str(w.message) for w in caught)


def test_a_sample_spot_where_a_marker_bleached_is_not_followed():
    """The marker bleaches at frame 1000 and sample rows lie where it was in 40 % of the frames after (within 5 nm,
    exponential photons of mean 2,000): in as many frames as the search asks, but their photons jump from frame to
    frame (no steady emitter), so the track ends at the bleach as before."""
    t, truth = _table(3, last_frames=[None, 999, None])
    rng = np.random.default_rng(5)
    f = np.arange(1000, N)
    f = f[rng.uniform(0, 1, len(f)) < 0.4]
    spot = {"frame": f, "x_nm": 6000.0 + truth[f, 0] + rng.normal(0, 5, len(f)),
            "y_nm": 3000.0 + truth[f, 1] + rng.normal(0, 5, len(f)), "z_nm": np.zeros(len(f)),
            "photons": np.maximum(100.0, rng.exponential(2000.0, len(f)))}
    for c in t.columns:
        if c not in spot:
            spot[c] = np.full(len(f), 0 if np.issubdtype(t[c].dtype, np.integer) else 5.0, dtype=t[c].dtype)
    both = LocTable({c: np.concatenate([t[c], spot[c]]) for c in t.columns}).sort_by_frame()
    res, caught = _fiducials(both)
    fid = min(res.info["fiducials"], key=lambda g: abs(g["x_nm"] - 6000.0) + abs(g["y_nm"] - 3000.0))
    assert 990 <= fid["last_frame"] <= 1005 and "photon_changes" not in fid
    assert drift_error_rms(res.drift_nm, truth) < 2.0


# --- 2. frames no fiducial measures count in the uncertainty ------------------------------------------------------------

def test_every_marker_bleached_early_makes_the_drift_unreliable(tmp_path, capsys):
    """Two markers, bleached at frames 800 and 1200, while the sample drifts on to frame 1999: the drift of the last
    800 frames is held, not measured (35-45 nm rms off). It was reported known to +-3 nm and subtracted as reliable;
    the error the drift's own motion puts on the unmeasured frames now counts (reported within 0.7-1.5x the actual
    error), the estimate is unreliable and the warning names the frames and the fix. Same through plexloc drift."""
    t, truth = _table(2, last_frames=[799, 1199])
    res, caught = _fiducials(t)
    err = drift_error_rms(res.drift_nm, truth)
    assert err > 20.0
    assert 0.7 * err < res.info["uncertainty_nm"] < 1.5 * err
    assert res.info["unreliable"] and res.info["unmeasured_nm"] > 0.5 * res.info["uncertainty_nm"]
    said = [str(w.message) for w in caught if issubclass(w.category, UnreliableDriftWarning)]
    assert len(said) == 1 and "1200..1999" in said[0] and "--engine rcc" in said[0]
    assert "--exclude-frames 1200-1999" in said[0]
    per_frame = np.asarray(res.info["uncertainty_per_frame_nm"])
    assert per_frame[1900] > 10 * per_frame[500]  # the held frames, not the measured ones

    src, out = tmp_path / "locs.csv", tmp_path / "dc.csv"
    write_table(t, src)
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # the command prints them, one line each
        assert main(["drift", str(src), "--out", str(out), "--engine", "fiducials", "--json",
                     str(tmp_path / "d.json")]) == 0
    said = capsys.readouterr()
    assert "NOT RELIABLE" in said.out and "no fiducial is localized in frames 1200..1999" in said.err
    with open(tmp_path / "d.json") as fh:
        d = json.load(fh)
    assert d["unreliable"] and d["uncertainty_nm"] > 20.0


def test_a_gap_longer_than_any_measured_stretch_is_not_known():
    """One marker, in frames 0..599 of 2000 only: the 1,400 frames after it cannot be judged from the 600 it measures;
    the uncertainty is not known (NaN; it was +-3 nm for 30-40 nm actual) and the estimate unreliable."""
    t, truth = _table(1, last_frames=[599])
    res, caught = _fiducials(t)
    assert res.info["unreliable"]
    assert not np.isfinite(res.info["uncertainty_nm"])
    said = [str(w.message) for w in caught if issubclass(w.category, UnreliableDriftWarning)]
    assert len(said) == 1 and "not known" in said[0] and "600..1999" in said[0]


def test_a_short_gap_in_a_linear_drift_stays_reliable():
    """All three markers missing in frames 900..1149 (250 frames: followed across) while the stage drifts linearly:
    the interpolation is right, the gap adds little, and the drift stays reliable (0.7-1.6x the actual error)."""
    rng = np.random.default_rng(1)
    truth = np.stack([np.linspace(0, 120.0, N), np.linspace(0, -80.0, N), np.zeros(N)], axis=1)
    t = blinking_table(structure_points("lines", 1500, fov_nm=8000.0, rng=rng), n_frames=N, rng=rng, drift_nm=truth)
    t = with_fiducials(t, 3, n_frames=N, fov_nm=8000.0, drift_nm=truth, rng=rng, positions_nm=POSITIONS)
    t = t[~((t["id"] < 0) & (t["frame"] >= 900) & (t["frame"] < 1150))]
    res, _ = _fiducials(t)
    err = drift_error_rms(res.drift_nm, truth)
    assert not res.info.get("unreliable") and err < 2.0
    assert 0.7 * err < res.info["uncertainty_nm"] < 1.6 * err


# --- 3. a marker that blinks ------------------------------------------------------------------------------------------

def _blinking(t, truth, block: int = 20):
    """Marker 0 off in every other block of ``block`` frames (95 % of its frames there): localized in about 45 % of
    the frames; and 60 molecules of the sample 40-130 nm from it (a bead in the sample)."""
    rng = np.random.default_rng(3)
    off = ((t["frame"] // block) % 2 == 1) & (rng.uniform(0, 1, len(t)) < 0.95)
    t = t[~((t["id"] == -1) & off)]
    r, a = rng.uniform(40.0, 130.0, 60), rng.uniform(0, 2 * np.pi, 60)
    near = blinking_table(POSITIONS[0] + np.column_stack([r * np.cos(a), r * np.sin(a)]), n_frames=N, rng=rng,
                          drift_nm=truth, events_per_molecule=8.0)
    return LocTable({c: np.concatenate([t[c], near[c]]) for c in t.columns}).sort_by_frame()


def test_a_blinking_marker_is_not_fed_the_sample_rows_of_its_off_frames():
    """Two markers, one off half the time in blocks of 20 frames, with sample molecules 40-130 nm from it. Its track
    took the nearest sample row within the radius in every frame it was off (its share read 70 % for 47 %), so the
    two "disagreed" by 9 nm and their mean was 5.5 nm off. Now a track keeps the rows that look like the marker only:
    under the default share the blinking one is not used (2.1 nm off, the other marker alone), and a warning names
    it with the share that would use it; with that share both are used and agree (1.7 nm)."""
    t, truth = _table(2)
    t = _blinking(t, truth)
    res, caught = _fiducials(t)
    said = [str(w.message) for w in caught if issubclass(w.category, FiducialWarning)]
    assert not any("disagree" in m for m in said)
    seldom = [m for m in said if "as bright as a marker" in m]
    assert len(seldom) == 1
    at = [float(v) for v in seldom[0].split("e.g. at (")[1].split(")")[0].split(",")]
    assert np.hypot(at[0] - 2000.0, at[1] - 2100.0) < 100.0  # where it is, raw coordinates (with the drift)
    assert res.info["n_fiducials"] == 1 and drift_error_rms(res.drift_nm, truth) < 3.0
    share = float(seldom[0].split("--fiducial-min-frames ")[1].split(")")[0])
    res2, caught2 = _fiducials(t, min_share=share)
    assert res2.info["n_fiducials"] == 2
    assert not any("disagree" in str(w.message) for w in caught2)
    fid = min(res2.info["fiducials"], key=lambda g: abs(g["x_nm"] - 2000.0))
    assert 0.4 < fid["share"] < 0.5
    assert drift_error_rms(res2.drift_nm, truth) < 2.0
    assert res2.info["residual_ratio"] < 1.5


# --- 4. RCC with too few localizations a window ------------------------------------------------------------------------

def _sparse(n_rows: int) -> tuple:
    rng = np.random.default_rng(0)
    truth = np.stack([np.linspace(0, 120.0, 3000), np.linspace(0, -80.0, 3000), np.zeros(3000)], axis=1)
    t = blinking_table(structure_points("lines", 600, fov_nm=10000.0, rng=rng), n_frames=3000, rng=rng,
                       drift_nm=truth, events_per_molecule=5.0)
    if n_rows < 100:  # the first rows (over the first frames)
        return t[:n_rows], truth
    pick = np.random.default_rng(0)
    for n in (100, 200, 400):  # the sub-samples drawn one after the other (the walk's tables)
        rows = np.sort(pick.choice(len(t), n, replace=False))
        if n == n_rows:
            return t[rows], truth
    raise ValueError(n_rows)


@pytest.mark.parametrize("n_rows, advice", [(200, "--segments 6"), (40, "too sparse")])
def test_rcc_with_too_few_rows_a_window_is_unreliable_and_says_the_fix(n_rows, advice):
    """200 localizations over 10 windows (20 a window) read +-15 nm for 43 nm actual, 40 (5 a window) +-30 nm for 105
    nm (over 19 frames, where the stage moved 1 nm): neither was flagged, and both were subtracted. Under 30 a window
    RCC is now unreliable, and the warning names the count and the fix (fewer windows, or none from the sample)."""
    t, truth = _sparse(n_rows)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = estimate_drift(t, engine="rcc", max_drift_nm=MAX_DRIFT_NM)  # as plexloc drift and process
    assert drift_error_rms(res.drift_nm, truth[res.frames]) > 2 * res.info["uncertainty_nm"]  # the figure reads low
    assert res.info["unreliable"]
    said = [str(w.message) for w in caught if issubclass(w.category, UnreliableDriftWarning)]
    assert len(said) == 1 and "a window" in said[0] and advice in said[0]


def test_rcc_with_enough_rows_a_window_is_not_flagged_by_the_count():
    """400 localizations of the same table (40 a window): 13 nm actual, +-15 nm reported; no warning."""
    t, truth = _sparse(400)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = estimate_drift(t, engine="rcc", max_drift_nm=MAX_DRIFT_NM)  # as plexloc drift and process
    assert not res.info.get("unreliable")
    err = drift_error_rms(res.drift_nm, truth[res.frames])
    assert 0.7 * err < res.info["uncertainty_nm"] < 1.5 * err


# --- 5. the fiducials engine on a table of a few frames -----------------------------------------------------------------

@pytest.mark.parametrize("n_frames", [1, 3])
def test_fiducials_on_a_table_of_a_few_frames_is_refused_and_nothing_written(tmp_path, capsys, n_frames):
    """A table with rows in 1 or 3 frames (its frame numbers lost, or a few frames only): the engine took bright rows of
    the sample for markers ("3 used of 3 found ... 100 % of frames 0..0") and removed 779 of its rows. Now an error
    names column frame, its distinct values and the fix, and no file is written."""
    t, _ = _sparse(400)
    t = t.with_columns(frame=(np.arange(len(t)) % n_frames).astype(np.int64))
    src, out = tmp_path / "locs.csv", tmp_path / "dc.csv"
    write_table(t, src)
    assert main(["drift", str(src), "--out", str(out), "--engine", "fiducials"]) != 0
    err = capsys.readouterr().err
    assert "column frame" in err and f"{n_frames} distinct value" in err and "locs.csv" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["locs.csv"]
