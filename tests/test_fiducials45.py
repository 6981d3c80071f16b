"""Drift from fiducial markers (the ``fiducials`` engine): recovery of a known drift, rows removed, a detached marker
left out, a bleached one used for the frames it lasts, no marker (the error), and the command line."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from plexloc.cli.main import main
from plexloc.errors import InputError
from plexloc.io.tables import read_table, write_table
from plexloc.post.drift import DriftResult, UnreliableDriftWarning, apply_drift, drift_error_rms, estimate_drift
from plexloc.post.fiducials import FiducialWarning
from plexloc.post.synthetic import blinking_table, structure_points, with_fiducials, wobbly_drift

N = 1500


def _table(n_fid: int = 3, *, seed: int = 0, z: bool = False, **kw):
    rng = np.random.default_rng(seed)
    truth = wobbly_drift(N, 100.0, rng=rng)
    if z:
        truth[:, 2] = 40.0 * np.sin(np.linspace(0.0, 3.0, N))
    mol = structure_points("lines", 1500, fov_nm=8000.0, rng=rng, z_range_nm=(-300.0, 300.0) if z else None)
    t = blinking_table(mol, n_frames=N, rng=rng, drift_nm=truth, precision_z_nm=30.0 if z else None)
    if n_fid:
        t = with_fiducials(t, n_fid, n_frames=N, fov_nm=8000.0, drift_nm=truth, rng=rng,
                           precision_z_nm=8.0 if z else None, **kw)
    return t, truth


def test_recovers_a_known_drift_within_a_few_nm_and_says_how_well():
    t, truth = _table(3)
    res = estimate_drift(t, engine="fiducials")
    assert res.engine == "fiducials" and res.info["n_fiducials"] == 3
    err = drift_error_rms(res.drift_nm, truth)
    # 3 markers of 3 nm precision in 90 % of the frames, 5 frames smoothed: about 3 / sqrt(3 * 0.9 * 5) * sqrt(2)
    assert err < 2.0
    assert 0.7 < res.info["uncertainty_nm"] / err < 1.4
    assert len(res.info["uncertainty_per_frame_nm"]) == N
    assert res.drift_nm[0].tolist() == [0.0, 0.0, 0.0] and not res.info.get("unreliable")
    # far better than the structure's own cross-correlation (the sample without its markers)
    sample = t[t["id"] >= 0]
    assert drift_error_rms(estimate_drift(sample, engine="rcc", split_half=False).drift_nm, truth) > 2 * err


def test_z_drift_from_the_markers():
    t, truth = _table(3, z=True)
    res = estimate_drift(t, engine="fiducials")
    assert drift_error_rms(res.drift_nm, truth) < 2.0
    assert drift_error_rms(res.drift_nm, truth, axes=(2,)) < 4.0
    assert 0.6 < res.info["z_uncertainty_nm"] / drift_error_rms(res.drift_nm, truth, axes=(2,)) < 1.6


def test_fiducial_rows_are_removed_and_counted_unless_kept():
    t, truth = _table(3)
    res = estimate_drift(t, engine="fiducials")
    out = apply_drift(t, res)
    n_fid = int(np.sum(t["id"] < 0))
    assert not np.any(out["id"] < 0)
    assert len(t) - len(out) == res.info["fiducial_rows"]
    assert n_fid <= res.info["fiducial_rows"] < n_fid + 0.01 * len(t)  # the markers', and little of the sample
    # the sample's rows are corrected
    kept = out["id"] >= 0
    assert np.sqrt(np.mean((out["x_nm"][kept] - out["x_true_nm"][kept] - out["x_nm"][kept].mean()
                            + out["x_true_nm"][kept].mean()) ** 2)) < 40.0
    res_keep = estimate_drift(t, engine="fiducials", keep_fiducials=True)
    assert len(apply_drift(t, res_keep)) == len(t) and res_keep.remove_rows is None


def test_a_detached_marker_is_left_out_and_said():
    motion = np.zeros((N, 3))
    motion[600:, 0] = np.linspace(0.0, 80.0, N - 600)
    motion[600:, 1] = np.linspace(0.0, -40.0, N - 600)
    t, truth = _table(4, own_motion_nm=[None, motion, None, None])
    with pytest.warns(FiducialWarning, match="moved on its own") as rec:
        res = estimate_drift(t, engine="fiducials")
    assert len([w for w in rec if "moved on its own" in str(w.message)]) == 1
    assert res.info["n_fiducials"] == 3 and res.info["n_found"] == 4
    left_out = [f for f in res.info["fiducials"] if not f["used"]]
    assert len(left_out) == 1 and left_out[0]["rejected"]
    assert drift_error_rms(res.drift_nm, truth) < 2.0
    assert not np.any(apply_drift(t, res)["id"] < 0)  # its rows removed too


def test_a_bleaching_marker_is_used_while_it_lasts_and_the_frame_said():
    t, truth = _table(3, last_frames=[None, 700, None])
    with pytest.warns(FiducialWarning, match=r"from frame 70\d on 2 of 3"):
        res = estimate_drift(t, engine="fiducials")
    assert res.info["n_fiducials"] == 3 and 699 <= res.info["fewer_fiducials_from_frame"] <= 701
    assert drift_error_rms(res.drift_nm, truth) < 2.0


def test_one_marker_works_and_says_it_cannot_be_checked():
    t, truth = _table(1)
    with pytest.warns(FiducialWarning, match="cannot be checked against a second"):
        res = estimate_drift(t, engine="fiducials")
    assert drift_error_rms(res.drift_nm, truth) < 3.0


def test_two_markers_that_disagree_are_said_and_counted_in_the_uncertainty():
    motion = np.zeros((N, 3))
    motion[600:, 0] = np.linspace(0.0, 80.0, N - 600)
    t, truth = _table(2, own_motion_nm=[None, motion])
    with pytest.warns(FiducialWarning, match="two cannot say which"):
        res = estimate_drift(t, engine="fiducials")
    err = drift_error_rms(res.drift_nm, truth)
    assert err > 5.0 and 0.6 < res.info["uncertainty_nm"] / err < 1.6


def test_no_marker_is_a_clear_error():
    t, _ = _table(0)
    with pytest.raises(InputError, match=r"no fiducial found: .* at least 50 % of the frames .*\(the most: \d+ % of "
                       r"frames .*--fiducial-min-frames.*--fiducial X,Y"):
        estimate_drift(t, engine="fiducials")


def test_given_positions_and_bad_settings():
    t, truth = _table(3, seed=1)
    first = t["id"] == -1
    pos = [(float(t["x_true_nm"][first][0]), float(t["y_true_nm"][first][0]))]
    with pytest.warns(FiducialWarning, match="one fiducial only"):
        res = estimate_drift(t, engine="fiducials", positions_nm=pos)
    assert res.info["fiducials"][0]["given"] and drift_error_rms(res.drift_nm, truth) < 3.0
    with pytest.raises(InputError, match=r"no localization lies within 150 nm of the fiducial given at "
                       r"\(-5000, -5000\)"):
        estimate_drift(t, engine="fiducials", positions_nm=[(-5000.0, -5000.0)])
    with pytest.raises(InputError, match="smooth_frames"):
        estimate_drift(t, engine="fiducials", smooth_frames=0)
    with pytest.raises(InputError, match="fiducial_min_share"):
        estimate_drift(t, engine="fiducials", min_share=1.5)


def test_a_dense_spot_of_the_sample_is_not_taken_for_a_marker():
    # a short filament of 400 molecules: localized in most frames, as a bead is, but no brighter than the sample
    rng = np.random.default_rng(3)
    truth = wobbly_drift(N, 100.0, rng=rng)
    mol = np.vstack([structure_points("uniform", 600, fov_nm=8000.0, rng=rng),
                     4000.0 + rng.normal(0.0, 20.0, (400, 2))])
    t = blinking_table(mol, n_frames=N, rng=rng, drift_nm=truth)
    t = with_fiducials(t, 2, n_frames=N, fov_nm=8000.0, drift_nm=truth, rng=rng)
    res = estimate_drift(t, engine="fiducials")
    assert res.info["n_found"] == 2 and drift_error_rms(res.drift_nm, truth) < 2.0
    assert int(np.sum(apply_drift(t, res)["id"] >= 0)) > int(np.sum(t["id"] >= 0)) - 100  # the spot is kept


def test_an_unreliable_estimate_is_flagged_by_the_common_rule():
    # markers of 60 nm precision, no smoothing, a drift of 5 nm: the curve is noise
    rng = np.random.default_rng(4)
    truth = np.zeros((N, 3))
    truth[:, 0] = np.linspace(0.0, 5.0, N)
    t = blinking_table(structure_points("uniform", 500, fov_nm=8000.0, rng=rng), n_frames=N, rng=rng, drift_nm=truth)
    t = with_fiducials(t, 2, n_frames=N, fov_nm=8000.0, drift_nm=truth, rng=rng, precision_nm=60.0)
    with pytest.warns(UnreliableDriftWarning, match="fiducials: the drift is known to about"):
        res = estimate_drift(t, engine="fiducials", smooth_frames=1)
    assert res.info["unreliable"]


def test_cli_end_to_end(tmp_path, capsys):
    t, truth = _table(3)
    src = tmp_path / "locs.csv"
    write_table(t, src)
    out = tmp_path / "dc.csv"
    assert main(["drift", str(src), "--out", str(out), "--engine", "fiducials", "--smooth", "7",
                 "--json", str(tmp_path / "d.json")]) == 0
    said = capsys.readouterr().out
    assert "drift (fiducials" in said and "3 used of 3 found" in said and "rows removed" in said
    corrected = read_table(out)
    assert not np.any(corrected["id"] < 0) and (tmp_path / "dc.csv.drift.png").stat().st_size > 1000
    with open(tmp_path / "d.json") as f:
        d = json.load(f)
    assert d["engine"] == "fiducials" and d["smooth_frames"] == 7 and len(d["fiducials"]) == 3
    assert drift_error_rms(np.asarray(d["drift_nm"]), truth) < 2.0
    # kept; given positions
    first = t["id"] == -1
    xy = f"{t['x_true_nm'][first][0]:.1f},{t['y_true_nm'][first][0]:.1f}"
    with warnings.catch_warnings():
        warnings.simplefilter("always", FiducialWarning)  # the command prints it
        assert main(["drift", str(src), "--out", str(tmp_path / "k.csv"), "--engine", "fiducials",
                     "--keep-fiducials", "--fiducials", xy]) == 0
    said = capsys.readouterr()
    assert len(read_table(tmp_path / "k.csv")) == len(t) and "rows kept" in said.out
    assert "warning: " in said.err and "one fiducial only" in said.err
    # a fiducial option with another engine; a bad position
    assert main(["drift", str(src), "--out", str(tmp_path / "r.csv"), "--smooth", "3"]) == 2
    assert "--smooth: option(s) of --engine fiducials only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["drift", str(src), "--out", str(tmp_path / "r.csv"), "--engine", "fiducials", "--fiducials", "1,x"])
    assert "X,Y in nm" in capsys.readouterr().err


def test_no_marker_error_on_the_command_line(tmp_path, capsys):
    t, _ = _table(0)
    src = tmp_path / "locs.csv"
    write_table(t, src)
    assert main(["drift", str(src), "--out", str(tmp_path / "dc.csv"), "--engine", "fiducials"]) == 2
    assert "no fiducial found" in capsys.readouterr().err and not (tmp_path / "dc.csv").exists()


def test_drift_result_default_removes_nothing():
    res = DriftResult(frames=np.arange(3), drift_nm=np.zeros((3, 3)), engine="rcc")
    assert res.remove_rows is None


def test_process_drift_step_with_the_fiducials_engine(tmp_path):
    from plexloc.workflow import ProcessOptions, _drift, _drift_line

    t, truth = _table(3)
    corrected, info = _drift(t, tmp_path, ProcessOptions(model=None, drift_engine="fiducials"), False)
    assert info["state"] == "applied" and info["engine"] == "fiducials" and info["fiducials"] == 3
    assert info["fiducial_rows_removed"] == len(t) - len(corrected) > 0 and not np.any(corrected["id"] < 0)
    assert (tmp_path / "drift.png").exists() and "3 fiducial marker(s)" in _drift_line(info)
    # no markers: the step says why and the table stays uncorrected
    t0, _ = _table(0)
    corrected, info = _drift(t0, tmp_path, ProcessOptions(model=None, drift_engine="fiducials"), False)
    assert corrected is None and info["state"] == "not estimated" and "no fiducial found" in info["reason"]
    from plexloc.cli.main import build_parser

    args = build_parser().parse_args(["process", "m.tif", "--model", "run", "--out", "o",
                                      "--drift-engine", "fiducials"])
    assert args.drift_engine == "fiducials"


def test_process_leaves_the_markers_out_of_what_follows_where_their_drift_is_not_subtracted(tmp_path):
    """An unreliable fiducial estimate: the drift is not subtracted (locs.csv stays the table), but the later steps
    (merge, image, FRC) took locs.csv with the beads' rows in, which outshine the sample (session 45 review)."""
    from plexloc.workflow import ProcessOptions, _drift, _drift_line

    rng = np.random.default_rng(4)
    truth = np.zeros((N, 3))
    truth[:, 0] = np.linspace(0.0, 5.0, N)
    t = blinking_table(structure_points("uniform", 500, fov_nm=8000.0, rng=rng), n_frames=N, rng=rng, drift_nm=truth)
    n_sample = len(t)
    t = with_fiducials(t, 2, n_frames=N, fov_nm=8000.0, drift_nm=truth, rng=rng, precision_nm=60.0)
    with pytest.warns(UnreliableDriftWarning):
        kept, info = _drift(t, tmp_path, ProcessOptions(model=None, drift_engine="fiducials"), False)
    assert info["state"] == "unreliable" and info["fiducials"] == 2
    assert kept is not None and info["fiducial_rows_removed"] == len(t) - len(kept) >= 0.9 * (len(t) - n_sample)
    assert np.array_equal(kept["x_nm"], t["x_nm"][np.isin(t["x_nm"], kept["x_nm"])])  # not shifted: uncorrected
    assert "the table is locs_no_fiducials.csv, locs.csv uncorrected without the markers' rows" in _drift_line(info)


def test_a_drift_faster_than_the_smoothing_counts_in_the_uncertainty_and_is_said():
    """A 20 nm vibration of a 10-frame period under the default 5-frame moving mean: the curve's error is mostly the
    smoothing's bias, which the uncertainty (the curve's noise) did not count: 3.3 nm reported for 7.3 nm actual in the
    bench. Now the residuals of the unsmoothed drift about the smoothed one measure it; a slow drift adds nothing."""
    rng = np.random.default_rng(3)
    f = np.arange(N)
    truth = wobbly_drift(N, 100.0, rng=rng)
    fast = truth.copy()
    fast[:, 0] += 20.0 * np.sin(2 * np.pi * f / 10.0)
    mol = structure_points("lines", 1500, fov_nm=8000.0, rng=rng)
    results = {}
    for name, drift in (("slow", truth), ("fast", fast)):
        t = blinking_table(mol, n_frames=N, rng=np.random.default_rng(4), drift_nm=drift)
        t = with_fiducials(t, 3, n_frames=N, fov_nm=8000.0, drift_nm=drift, rng=np.random.default_rng(5))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = estimate_drift(t, engine="fiducials")
        err = drift_error_rms(res.drift_nm, drift - drift[:1])
        results[name] = (err, res.info["uncertainty_nm"], res.info["smoothing_bias_nm"],
                         " ".join(str(w.message) for w in caught))
    err, unc, bias, said = results["slow"]
    assert bias == 0.0 and 0.8 < unc / err < 1.25 and "smaller --smooth" not in said
    err, unc, bias, said = results["fast"]
    assert err > 4.0 and bias > 2.0 and unc / err > 0.6, results  # was 0.47x (the noise alone)
    assert "moves faster than the smoothing over 5 frames" in said and "smaller --smooth" in said
