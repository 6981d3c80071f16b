"""Session 46 (fiducials): positions given on the command line in any order (--fiducial X,Y, once per marker), the
fiducial options in one list, the uncertainty at --smooth 1 where the drift moves between frames."""

from __future__ import annotations

import argparse
import inspect
import json
import warnings

import numpy as np
import pytest

from plexloc.cli.main import build_parser, main
from plexloc.io.tables import write_table
from plexloc.post.drift import drift_error_rms, estimate_drift
from plexloc.post.fiducials import FiducialWarning, fiducial_settings
from plexloc.post.synthetic import blinking_table, structure_points, with_fiducials, wobbly_drift

N = 1500
POSITIONS = np.array([[2000.0, 2100.0], [6000.0, 3000.0], [4000.0, 6500.0]])


def _table(n_fid: int = 3, *, n: int = N, seed: int = 0, fast: np.ndarray | None = None, **kw):
    rng = np.random.default_rng(seed)
    truth = wobbly_drift(n, 100.0, rng=rng)
    if fast is not None:
        truth = truth + fast
    t = blinking_table(structure_points("lines", 1500, fov_nm=8000.0, rng=rng), n_frames=n, rng=rng, drift_nm=truth)
    t = with_fiducials(t, n_fid, n_frames=n, fov_nm=8000.0, drift_nm=truth, rng=rng, positions_nm=POSITIONS[:n_fid],
                       **kw)
    return t, truth


# --- 1. positions on the command line -------------------------------------------------------------------------------

def test_fiducial_before_the_table_is_one_position_and_the_command_runs(tmp_path, capsys):
    """`plexloc drift --fiducials 100,200 locs.csv --out d` took locs.csv for a second position and failed; --fiducial
    takes one position each, anywhere on the command line (the table after it, as the README's example reads)."""
    t, truth = _table(2)
    src = tmp_path / "locs.csv"
    write_table(t, src)
    out = tmp_path / "dc.csv"
    assert main(["drift", "--engine", "fiducials", "--fiducial", "2000,2100", "--fiducial", "6000,3000", str(src),
                 "--out", str(out), "--json", str(tmp_path / "d.json")]) == 0
    assert "2 used of 2 found" in capsys.readouterr().out
    with open(tmp_path / "d.json") as f:
        d = json.load(f)
    assert [f_["given"] for f_ in d["fiducials"]] == [True, True] and d["positions_given"]
    assert drift_error_rms(np.asarray(d["drift_nm"]), truth) < 2.5


@pytest.mark.parametrize("argv, positions", [
    (["--fiducial", "100,200", "locs.csv", "--out", "d"], [(100.0, 200.0)]),
    (["--fiducial", "100,200", "--fiducial", "300,400.5", "locs.csv", "--out", "d"], [(100.0, 200.0), (300.0, 400.5)]),
    (["locs.csv", "--out", "d", "--fiducial=-5,20"], [(-5.0, 20.0)]),
    # the older spelling keeps working where it did: several after one option, the table before it or after --
    (["locs.csv", "--out", "d", "--fiducials", "1,2", "3,4"], [(1.0, 2.0), (3.0, 4.0)]),
    (["--out", "d", "--fiducials", "1,2", "3,4", "--", "locs.csv"], [(1.0, 2.0), (3.0, 4.0)]),
    # both: --fiducial's first
    (["locs.csv", "--fiducials", "1,2", "--fiducial", "5,6", "--out", "d"], [(5.0, 6.0), (1.0, 2.0)]),
])
def test_positions_parse_in_any_order(argv, positions):
    from plexloc.cli.drift import fiducial_kwargs

    args = build_parser().parse_args(["drift", "--engine", "fiducials"] + argv)
    assert str(args.locs) == "locs.csv" and fiducial_kwargs(args)["positions_nm"] == positions
    movie = build_parser().parse_args(["process", "--drift-engine", "fiducials", "--fiducial", "100,200", "m.tif",
                                       "--model", "m", "--out", "o"])
    assert [str(m) for m in movie.movie] == ["m.tif"] and fiducial_kwargs(movie)["positions_nm"] == [(100.0, 200.0)]


def test_a_bad_position_names_it_and_fiducials_swallowing_the_table_names_the_fix(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["drift", "locs.csv", "--out", "d", "--fiducial", "100"])
    err = capsys.readouterr().err
    assert "argument --fiducial: a fiducial's position must be X,Y in nm" in err and "'100'" in err
    assert "takes every word" not in err  # one position: nothing swallowed
    with pytest.raises(SystemExit):
        build_parser().parse_args(["drift", "--fiducials", "100,200", "locs.csv", "--out", "d"])
    err = capsys.readouterr().err
    assert "argument --fiducials" in err and "got 'locs.csv'" in err
    assert "give each marker as --fiducial X,Y (one position each, anywhere on the command line)" in err


# --- 2. one list of the options -------------------------------------------------------------------------------------

def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def test_the_fiducial_options_are_one_list_read_by_both_commands_and_the_checks(capsys):
    from plexloc.cli.drift import _fiducial_options, check_fiducial_options, fiducial_kwargs
    from plexloc.errors import InputError

    options = _fiducial_options("--engine")
    flags = [flag for flag, _, _ in options]
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command in ("drift", "process"):
        assert set(flags) <= _flags(sub.choices[command])
    # every keyword of fiducial_settings has an option, and nothing else
    assert {kw for _, kw, _ in options} == set(inspect.signature(fiducial_settings).parameters)
    base = ["drift", "l.csv", "--out", "d"]
    values = {"--fiducial": ["1,2"], "--fiducials": ["1,2"], "--fiducial-min-frames": ["0.4"],
              "--fiducial-min-brightness": ["0"], "--fiducial-radius": ["200"], "--smooth": ["3"],
              "--keep-fiducials": []}
    assert set(values) == set(flags)
    for flag in flags:  # each, given with another engine, is named and refused (--fiducial was not listed before)
        args = parser.parse_args(base + [flag] + values[flag])
        with pytest.raises(InputError, match=f"^{flag}: option\\(s\\) of --engine fiducials only, the engine is rcc"):
            check_fiducial_options(args, "rcc", "--engine")
        with pytest.raises(InputError, match=f"^{flag}: option\\(s\\) of the drift correction, which --no-drift"):
            check_fiducial_options(args, "fiducials", "--drift-engine", no_drift=True)
        check_fiducial_options(args, "fiducials", "--engine")
        kwargs = fiducial_kwargs(args)
        assert fiducial_settings(**kwargs)  # every keyword it gives is one fiducial_settings takes
        assert sum(v is not None and v is not False for v in kwargs.values()) == 1
    # plexloc process refuses --fiducial for another engine before anything else
    assert main(["process", "m.tif", "--model", "run", "--out", "o", "--fiducial", "1,2"]) == 2
    assert "--fiducial: option(s) of --drift-engine fiducials only, the engine is rcc" in capsys.readouterr().err


def test_process_options_know_the_keywords_of_fiducial_settings():
    from plexloc import workflow
    from plexloc.errors import InputError

    with pytest.raises(InputError, match="'radius' not known; they are min_share, radius_nm, min_brightness, "
                                         "positions_nm, smooth_frames, keep_fiducials"):
        workflow._check_fiducial_options(workflow.ProcessOptions(model=None, drift_engine="fiducials",
                                                                 fiducial_options={"radius": 3.0}))


# --- 3. the uncertainty where the drift moves between consecutive frames --------------------------------------------

def _vibration(n: int, period: float, amplitude: float = 20.0) -> np.ndarray:
    f = np.arange(n)
    out = np.zeros((n, 3))
    out[:, 0] = amplitude * np.sin(2 * np.pi * f / period)
    out[:, 1] = amplitude * np.sin(2 * np.pi * f / period + 2 * np.pi / 3)
    return out


def _run(t, truth, smooth: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FiducialWarning)
        res = estimate_drift(t, engine="fiducials", smooth_frames=smooth)
    n = len(res.drift_nm)
    return drift_error_rms(res.drift_nm, (truth - truth[:1])[:n]), res


@pytest.mark.parametrize("presence", [0.9, 0.6])
def test_smooth_1_uncertainty_follows_the_error_under_a_vibration_between_frames(presence):
    """A 20 nm vibration of a 10-frame period moves the markers between consecutive frames: their scatter, read from
    each one's own steps, took it in (about 8.5 nm for 3), and --smooth 1 (no bias term) reported 2.8x its error
    (7.5 nm for 2.7 in bench/fiducials45.py --fast). Their scatter against each other in the same frame does not."""
    t, truth = _table(3, n=2000, fast=_vibration(2000, 10.0), presence=presence)
    err, res = _run(t, truth, 1)
    unc = res.info["uncertainty_nm"]
    assert 0.85 < unc / err < 1.2, (err, unc)  # old: 2.8x
    # the markers' precision as listed: 3 nm (old: 8.5)
    assert all(2.5 < p < 3.5 for f_ in res.info["fiducials"] for p in f_["precision_nm"])
    # and at --smooth 3, where the bias term adds to an inflated noise (old: 1.6x)
    err3, res3 = _run(t, truth, 3)
    assert 0.9 < res3.info["uncertainty_nm"] / err3 < 1.25, (err3, res3.info["uncertainty_nm"])


def test_the_scatter_scale_leaves_the_drift_and_slow_cases_as_they_were():
    """The markers' scatter is scaled per axis by one factor: the weighted means, so the drift and the references, do
    not change, only their variance; where the drift is slow the factor is about 1."""
    from plexloc.post.fiducials import _solve

    t, truth = _table(3, n=2000)
    err, res = _run(t, truth, 5)
    assert 0.9 < res.info["uncertainty_nm"] / err < 1.15
    assert all(2.8 < p < 3.2 for f_ in res.info["fiducials"] for p in f_["precision_nm"])
    rng = np.random.default_rng(1)
    pos = rng.normal(0, 3.0, (3, 400, 3)) + rng.normal(0, 10.0, (1, 400, 3))
    pos[rng.uniform(size=pos.shape[:2]) < 0.2] = np.nan
    s = np.array([[3.0, 3.1, 1.0], [4.0, 2.5, 1.0], [2.0, 5.0, 1.0]])
    used = np.ones(3, dtype=bool)
    g = np.array([0.4, 0.7, 1.0])
    d, v, c = _solve(pos, s, used, 2)
    d2, v2, c2 = _solve(pos, s * g, used, 2)
    np.testing.assert_allclose(d2, d, atol=1e-9)
    np.testing.assert_allclose(c2, c, atol=1e-9)
    np.testing.assert_allclose(v2, v * g**2, rtol=1e-9)


def test_one_marker_keeps_its_own_scatter():
    """One marker: nothing to compare it with; its own steps' scatter stays (conservative under a vibration)."""
    from plexloc.post.fiducials import _cross_scale

    pos = np.random.default_rng(0).normal(0, 3.0, (2, 500, 3))
    s = np.full((2, 3), 3.0)
    assert np.array_equal(_cross_scale(pos, s, np.array([True, False]), [0, 1]), np.ones(3))
    g = _cross_scale(pos, s, np.array([True, True]), [0, 1])
    assert np.all(np.abs(g[:2] - 1.0) < 0.1) and g[2] == 1.0
    # the same markers with a common motion between frames: it cancels
    moved = pos + 20.0 * np.sin(np.arange(500) / 1.6)[None, :, None]
    np.testing.assert_allclose(_cross_scale(moved, s, np.array([True, True]), [0, 1]), g, atol=1e-9)
    # four markers in 90 % of the frames, one moving 80 nm on its own (detached) while a vibration moves them all:
    # the scale is that of their noise (a mean of the others changing members between frames read 1.16)
    rng = np.random.default_rng(2)
    f = np.arange(3000)
    pos = rng.normal(0, 3.0, (4, 3000, 3)) + 20.0 * np.sin(2 * np.pi * f / 10.0)[None, :, None]
    pos[1, :, 0] += np.linspace(0.0, 80.0, 3000)
    pos[rng.uniform(size=(4, 3000)) > 0.9] = np.nan
    g = _cross_scale(pos, np.full((4, 3), 3.0), np.ones(4, dtype=bool), [0, 1])
    assert np.all(np.abs(g[:2] - 1.0) < 0.06), g


# --- 4. a marker's rows in the window where it bleached --------------------------------------------------------------

@pytest.mark.parametrize("last", [690, 695])
def test_a_bleached_markers_last_rows_are_removed_too(last):
    """A marker that bleaches a few frames into a time window is localized there too seldom to be followed: its track
    ended at the window before, and its rows of that window stayed in the output (one per bleach in
    bench/fiducials45.py, 37 for a bead bleaching 40 frames into a window of 200). Bright rows near its held position in
    that window go with it; the sample's rows there stay."""
    from plexloc.post.drift import apply_drift

    t, truth = _table(3, last_frames=[None, last, None])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FiducialWarning)
        res = estimate_drift(t, engine="fiducials")
    bleached = next(f_ for f_ in res.info["fiducials"] if f_["last_frame"] < 1000)
    assert bleached["last_frame"] < last  # the window it bleached in is not on its track
    out = apply_drift(t, res)
    ids = np.asarray(out["id"])
    assert not np.any(ids < 0)
    removed_sample = int(np.sum(np.asarray(t["id"]) >= 0)) - int(np.sum(ids >= 0))
    assert res.info["fiducial_rows"] == len(t) - len(out) and removed_sample < 0.01 * len(t)
    # the same rows at the sample's photons are no marker's: they stay
    tail = (np.asarray(t["id"]) == -1 - bleached_id(t, bleached)) & (np.asarray(t["frame"]) > bleached["last_frame"])
    assert tail.sum() >= 1 and res.remove_rows(t)[tail].all()
    photons = np.asarray(t["photons"], dtype=float).copy()
    photons[tail] = np.median(photons[np.asarray(t["id"]) >= 0])
    assert not res.remove_rows(t.with_columns(photons=photons))[tail].any()


def bleached_id(t, entry) -> int:
    """The synthetic marker k (id -1 - k) nearest a listed fiducial's reference position."""
    ids = np.asarray(t["id"])
    ks = sorted({-1 - int(i) for i in ids[ids < 0]})
    xy = np.array([entry["x_nm"], entry["y_nm"]])
    return min(ks, key=lambda k: float(np.hypot(*(np.median(np.column_stack([t["x_nm"], t["y_nm"]])[ids == -1 - k],
                                                             axis=0) - xy))))
