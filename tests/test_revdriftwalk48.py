"""Session 48 (revdriftwalk): the review of driftwalk's drift changes. Two different markers close together, one
bleached and the other there from later on, are not joined into one track (the jump between them was taken for
drift); every marker off at once is still joined; one default of the largest drift searched for; the drift figure
shades the frames no fiducial measures."""

from __future__ import annotations

import inspect
import io
import json
import warnings

import numpy as np

from plexloc.cli.main import main
from plexloc.io.tables import write_table
from plexloc.post.drift import MAX_DRIFT_NM, comet_drift, drift_error_rms, estimate_drift, rcc_drift
from plexloc.post.synthetic import blinking_table, linear_drift, structure_points, with_fiducials
from plexloc.render.figures import drift_figure

N = 2000  # search windows of 40 frames: a track is followed across at most 5 missed windows (200 frames)


def _sine(n: int = N) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)
    return np.stack([60.0 * np.sin(2 * np.pi * 2 * t), 40.0 * np.sin(2 * np.pi * 1.5 * t + 1) - 40.0 * np.sin(1),
                     np.zeros(n)], axis=1)


def _table(positions, *, last_frames=None, late: dict[int, int] | None = None, off: tuple[int, int] | None = None,
           seed: int = 0):
    """A sine drift, a sample of lines, markers at ``positions``; ``late``: marker k (0-based) there from frame f only;
    ``off``: every marker off in frames [a, b)."""
    rng = np.random.default_rng(seed)
    truth = _sine()
    t = blinking_table(structure_points("lines", 1000, fov_nm=8000.0, rng=rng), n_frames=N, rng=rng, drift_nm=truth,
                       events_per_molecule=5.0)
    t = with_fiducials(t, len(positions), n_frames=N, fov_nm=8000.0, drift_nm=truth, rng=rng,
                       positions_nm=np.asarray(positions, dtype=float), last_frames=last_frames)
    drop = np.zeros(len(t), dtype=bool)
    for k, f in (late or {}).items():
        drop |= (t["id"] == -1 - k) & (t["frame"] < f)
    if off is not None:
        drop |= (t["id"] < 0) & (t["frame"] >= off[0]) & (t["frame"] < off[1])
    return t[~drop], truth


def _fiducials(t):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = estimate_drift(t, engine="fiducials")
    return res, caught


# --- joining a marker's tracks across a gap ------------------------------------------------------------------------------

def test_two_markers_close_together_are_not_joined_into_one_track():
    """Marker A at (3000, 3000) bleaches at frame 999; marker B, 50 nm beside it and as bright, is there from frame
    1400 (after the 200 frames the search follows a missed marker). Joined, A's track and B's made one marker whose
    path jumps 50 nm at the gap: with only A and B the drift was 24 nm off, reported +-11.5 nm and reliable. Nothing
    spans the gap to confirm the jump, so they stay two tracks and the drift across them is called unreliable."""
    t, truth = _table([[3000.0, 3000.0], [3050.0, 3000.0]], last_frames=[999, None], late={1: 1400})
    res, _ = _fiducials(t)
    assert all("stretches" not in f for f in res.info["fiducials"])
    assert res.info["unreliable"]
    assert res.info.get("unlinked_at_frames")


def test_two_markers_close_together_beside_a_third_are_two_markers():
    """The same two markers beside a third that is there throughout: the third's path says the drift did not jump
    50 nm over the gap, so A and B are not joined; the drift is as good as the markers (it was 11.8 nm off with the
    joined track, reported +-14)."""
    t, truth = _table([[3000.0, 3000.0], [3050.0, 3000.0], [6000.0, 5000.0]], last_frames=[999, None, None],
                      late={1: 1400})
    res, _ = _fiducials(t)
    assert all("stretches" not in f for f in res.info["fiducials"])
    assert not res.info.get("unreliable")
    assert drift_error_rms(res.drift_nm, truth) < 2.5


def test_every_marker_off_at_once_is_still_joined():
    """Every marker off in frames 800..1099 (300 frames, longer than the search follows): their jumps across the gap
    agree (the drift's), so each is one track again and the drift across the gap is interpolated, not unlinked."""
    t, truth = _table([[2000.0, 2100.0], [6000.0, 3000.0], [4000.0, 6500.0]], off=(800, 1100))
    res, _ = _fiducials(t)
    joined = [f for f in res.info["fiducials"] if "stretches" in f]
    assert len(joined) == 3 and not res.info.get("unlinked_at_frames")
    assert all(f["stretches"][0][1] < 800 and f["stretches"][1][0] >= 1100 for f in joined)
    err = drift_error_rms(res.drift_nm, truth)
    assert err < 4.0 and 0.5 * err < res.info["uncertainty_nm"] < 2.0 * err


# --- one default of the largest drift searched for -----------------------------------------------------------------------

def test_one_default_for_the_largest_drift():
    """rcc_drift searched 1000 nm where plexloc drift, plexloc process and comet_drift search 300: one default,
    post.drift.MAX_DRIFT_NM, that plexloc.workflow (the CLI's) re-exports."""
    import plexloc.workflow as workflow

    assert MAX_DRIFT_NM == 300.0 and workflow.MAX_DRIFT_NM is MAX_DRIFT_NM
    for fn in (rcc_drift, comet_drift):
        assert inspect.signature(fn).parameters["max_drift_nm"].default == MAX_DRIFT_NM
    rng = np.random.default_rng(1)
    n = 600
    t = blinking_table(structure_points("lines", 400, fov_nm=5000.0, rng=rng), n_frames=n, rng=rng,
                       drift_nm=linear_drift(n, (80.0, -50.0, 0.0)), events_per_molecule=5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = rcc_drift(t, n_segments=5)
        b = rcc_drift(t, n_segments=5, max_drift_nm=MAX_DRIFT_NM)
    np.testing.assert_array_equal(a.drift_nm, b.drift_nm)


# --- the drift figure shades the frames no fiducial measures -----------------------------------------------------------

def _grey_share(png: bytes, x0: float, x1: float) -> float:
    """Share of the pixels of the columns between ``x0`` and ``x1`` (fractions of the width) that are the shade."""
    import matplotlib.image as mpimg

    img = mpimg.imread(io.BytesIO(png), format="png")[..., :3]
    w = img.shape[1]
    cols = img[:, int(x0 * w):int(x1 * w)]
    return float(np.mean(np.all(np.abs(cols - 0.85) < 0.02, axis=-1)))


def test_the_drift_figure_shades_unmeasured_frames():
    frames = np.arange(1000)
    d = np.column_stack([np.linspace(0, 30, 1000), np.zeros(1000)])
    plain = drift_figure(frames, d)
    shaded = drift_figure(frames, d, unmeasured_frames=[[600, 999]])
    # the axes span about 0.12..0.9 of the width: the shaded stretch is the right part of them
    assert _grey_share(plain, 0.7, 0.85) < 0.01
    assert _grey_share(shaded, 0.7, 0.85) > 0.5 and _grey_share(shaded, 0.2, 0.4) < 0.01


def test_plexloc_drift_marks_the_frames_no_fiducial_measures(tmp_path):
    """Two markers bleached by frame 1199 of 1999: plexloc drift's JSON names the unmeasured frames and its figure
    shades them."""
    t, _ = _table([[2000.0, 2100.0], [6000.0, 3000.0]], last_frames=[799, 1199])
    src, out, js = tmp_path / "locs.csv", tmp_path / "dc.csv", tmp_path / "d.json"
    write_table(t, src)
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # the command prints them, one line each
        assert main(["drift", str(src), "--out", str(out), "--engine", "fiducials", "--json", str(js)]) == 0
    with open(js) as fh:
        info = json.load(fh)
    ((a, b),) = info["unmeasured_frames"]
    assert 1195 <= a <= 1210 and b >= N - 3
    png = (tmp_path / "dc.csv.drift.png").read_bytes()
    assert _grey_share(png, 0.75, 0.85) > 0.5


# --- a marker beside a dimmer one is not "dimmed" ----------------------------------------------------------------------

def test_a_marker_beside_a_dimmer_marker_is_not_followed_as_dimmed():
    """Marker A bleaches at frame 999; marker B, 40 nm beside it at 20 % of its photons, is there throughout; a third
    marker elsewhere. B's steady rows after the bleach were taken for A dimmed (50,000 to 10,000 photons named), the
    40 nm jump to them for drift: 8.1 nm off (with 5,000 frames and A to frame 2,500, where the rows nearest A's path
    were B's in some frames though A's bright rows were still there, the track was handed between them: 8.6 nm off,
    several changes named). A dim change needs the bright rows gone and the dim ones where the marker was."""
    t, truth = _table([[3000.0, 3000.0], [3040.0, 3000.0], [6000.0, 5000.0]], last_frames=[999, None, None])
    t = t.with_columns(photons=np.where(t["id"] == -2, 0.2, 1.0) * t["photons"])
    res, caught = _fiducials(t)
    assert all("photon_changes" not in f for f in res.info["fiducials"])
    assert not any("not bleached" in str(w.message) for w in caught)
    assert drift_error_rms(res.drift_nm, truth) < 3.0
