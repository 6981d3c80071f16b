"""Session 49 review of the drift helper's change: a lone fiducial marker that blinks off for a few windows on a
curving drift is one track again (the gap check cut it: a patch of the sample followed across the gap was taken for a
marker that says what the drift did, and the marker's own pace misses a curving drift by 6-23 nm over 120-200 frames).
Each test fails on the code before the fix (7ba71be)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from plexloc.post.drift import drift_error_rms
from plexloc.post.fiducials import fiducial_drift
from plexloc.post.synthetic import blinking_table, structure_points, with_fiducials
from plexloc.table import LocTable

N = 2000


def _sine(amp: float) -> np.ndarray:
    t = np.linspace(0, 1, N)
    return np.stack([amp * np.sin(2 * np.pi * 2 * t), 0.7 * amp * np.sin(2 * np.pi * 1.5 * t + 1)
                     - 0.7 * amp * np.sin(1), 0 * t], 1)


@pytest.mark.parametrize(("amp", "gap"), [(60.0, (900, 1100)), (60.0, (1100, 1250))])
def test_a_lone_marker_that_blinks_off_on_a_curving_drift_stays_one_track(amp, gap):
    """One marker on lines of blinking molecules, a sine drift (60 nm, 2 periods in 2,000 frames), the marker off for
    150-200 frames (4-5 windows of 40). The code before (9386aee) followed it across: 2.0-2.7 nm off, reliable. The
    gap check of session 49 cut it in two: the drift across was called not measured, 12-23 nm off, and plexloc
    process kept the table uncorrected. Now the marker is one track, as before."""
    d = _sine(amp)
    rng = np.random.default_rng(0)
    pts = structure_points("lines", 1500, fov_nm=10000.0, rng=rng)
    t = blinking_table(pts, n_frames=N, rng=rng, drift_nm=d, events_per_molecule=5.0)
    t = with_fiducials(t, 1, n_frames=N, fov_nm=10000.0, drift_nm=d, rng=rng)
    t = t[~((t["id"] < 0) & (t["frame"] >= gap[0]) & (t["frame"] < gap[1]))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fiducial_drift(t)
    fids = res.info["fiducials"]
    assert len(fids) == 1 and fids[0]["first_frame"] < 50 and fids[0]["last_frame"] > N - 50
    assert not res.info.get("unreliable")
    assert drift_error_rms(res.drift_nm, d[res.frames]) < 4.0


def test_cli_does_not_call_a_settling_stage_a_stage_jump(tmp_path, capsys):
    """A stage settling in its first 150 frames of 5,000 (time constant 50 frames: 110 nm moved in frames 0-150), 25,000
    rows of lines, 10 windows: the step check's blocks (about 125 frames each) see a jump there, and the curve with it
    is closer to the truth (8.6 -> 7.5 nm rms), but plexloc drift said 'a stage jump of 29.9, -15.2 nm (x, y) found at
    frame 207', which did not happen. Now the line says the blocks cannot tell the two apart and how long they are."""
    from plexloc.cli.main import main
    from plexloc.io.tables import write_table
    from plexloc.post.synthetic import settling_drift

    n = 5000
    d = settling_drift(n, tau=0.01)
    rng = np.random.default_rng(0)
    pts = structure_points("lines", 2000, fov_nm=10000.0, rng=rng)
    t = blinking_table(pts, n_frames=n, rng=rng, drift_nm=d, events_per_molecule=5.0, precision_nm=10.0)
    write_table(LocTable({c: t[c] for c in ("frame", "x_nm", "y_nm", "z_nm", "photons")}), tmp_path / "locs.csv")
    assert main(["drift", str(tmp_path / "locs.csv"), "--out", str(tmp_path / "out.csv"), "--engine", "rcc"]) == 0
    out = capsys.readouterr().out
    line = next(s for s in out.splitlines() if "jump" in s)
    assert "stage jump of" not in line and "or drift faster than such blocks follow" in line
    block = float(line.split("blocks of about ")[1].split(" frames")[0])
    assert 80 < block < 200


@pytest.mark.parametrize("given", [(0, 1, 2), (0, 2), (1, 2)])
def test_two_given_markers_within_reach_are_kept_apart_as_found_ones(given):
    """A marker at (4000, 4000) nm bleached at frame 800, another 60 nm beside it there from frame 950, a steady third
    (test_drift49_fiducials' case). Found, they are three tracks, 1.6 nm off; given by position (any of them), the
    search from the given position followed both as one track: 14.3 nm off, the markers 'disagreeing' by 30 nm. Now
    a given marker's track is cut as a found one's, and the piece given is the one whose path is nearest."""
    from test_drift49_fiducials import _two_close

    t, d = _two_close(third=True)
    pos = np.array([[4000.0, 4000.0], [4060.0, 4000.0], [7000.0, 2000.0]])[list(given)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fiducial_drift(t, positions_nm=pos)
    fids = res.info["fiducials"]
    assert len(fids) == len(given) and all(f["given"] for f in fids)
    for f, p in zip(sorted(fids, key=lambda f: (f["x_nm"], f["y_nm"])), sorted(pos.tolist())):
        assert abs(f["x_nm"] - p[0]) < 25 and abs(f["y_nm"] - p[1]) < 100  # x: the two are 60 nm apart; y: the drift
    assert drift_error_rms(res.drift_nm, d[res.frames]) < 3.0 and not res.info.get("unreliable")
